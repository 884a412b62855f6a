"""examples/train_gpt.py end to end at a toy size: both attention forms train the same model to the same losses
(the written-out tril mask and scaled_dot_product_attention(is_causal=True)), a checkpoint resumes, text samples."""
from __future__ import annotations

import math
import os
import sys

import pytest

import graphc

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples"))
import train_gpt  # noqa: E402

TOY = ["--n-embd", "32", "--n-head", "2", "--n-layer", "1", "--block-size", "16", "--batch-size", "4",
       "--eval-interval", "3", "--sample-tokens", "8", "--warmup", "2"]


def test_both_attention_forms_train_alike_and_a_checkpoint_resumes(tmp_path):
    mask = train_gpt.main(TOY + ["--steps", "6", "--attention", "mask", "--out", str(tmp_path / "a")])
    causal = train_gpt.main(TOY + ["--steps", "6", "--attention", "causal", "--out", str(tmp_path / "b")])
    assert causal["val"] == pytest.approx(mask["val"], rel=1e-4)
    assert len(mask["sample"]) == len("And God said") + 8 and mask["sample"].startswith("And God said")
    resumed = train_gpt.main(TOY + ["--steps", "9", "--resume", mask["checkpoint"], "--out", str(tmp_path / "a")])
    assert resumed["checkpoint"] == mask["checkpoint"] and math.isfinite(resumed["val"])
    assert graphc.load(resumed["checkpoint"])["step"] == 9


def test_compiled_training_runs(tmp_path):
    eager = train_gpt.main(TOY + ["--steps", "4", "--out", str(tmp_path / "e")])
    compiled = train_gpt.main(TOY + ["--steps", "4", "--compile", "--out", str(tmp_path / "c")])
    assert compiled["val"] == pytest.approx(eager["val"], rel=1e-4)
