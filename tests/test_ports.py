"""The port suite: training scripts written with plain `import torch` lines in the styles of common public PyTorch
code (tests/ports/). Each runs under torch and under graphc, the graphc run differing only in its import lines
(rewritten here), from the same initial weights (copied through the state dict), eagerly and compiled. The losses
must agree: step for step where the script is deterministic, in trend where it draws random numbers (dropout,
sampling noise, a shuffled sampler), which the two libraries draw differently."""
from __future__ import annotations

import functools
import re
import types
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import graphc

PORTS = Path(__file__).with_name("ports")
IMPORT = re.compile(r"^(\s*)(import torch\b|from torch\b)")
# script -> (rtol, mode): "steps" compares every loss, "trend" the mean of the first and of the last third
TOLERANCE = {
    "char_transformer": (2e-3, "steps"),
    "lstm_lm": (1e-3, "steps"),
    "polynomial_fit": (1e-3, "steps"),
    "resnet_block": (2e-3, "steps"),
    "mnist_cnn": (0.2, "trend"),      # dropout masks
    "vae": (0.05, "trend"),           # the reparameterization noise
    "trainer_class": (0.35, "trend"),  # the RandomSampler's order
    "gan": (0.05, "trend"),  # an adversarial game amplifies rounding differences over the steps
    "seq2seq": (2e-3, "steps"),
    "vit": (2e-3, "steps"),
    "tabular": (2e-3, "steps"),
    "unet": (2e-3, "steps"),
    "word_lm": (2e-3, "steps"),
    "sine_lbfgs": (1e-6, "steps"),  # float64
    "fast_style": (2e-3, "steps"),
    "onecycle_amp": (2e-3, "steps"),  # bfloat16 autocast: both round the same products
    "super_resolution": (2e-3, "steps"),
    "siamese": (2e-3, "steps"),
    "annotated_transformer": (2e-3, "steps"),
    "simclr": (2e-3, "steps"),
    "text_bag": (2e-3, "steps"),
    "char_rnn": (2e-3, "steps"),
    "maml": (2e-3, "steps"),
    "video_3dcnn": (2e-3, "steps"),
    "ctc_speech": (2e-3, "steps"),
    "prune_finetune": (2e-3, "steps"),
    "sac_actor": (2e-3, "steps"),
    "bayesian_regression": (2e-3, "steps"),
    "reinforce": (2e-3, "steps"),
}


def to_graphc(source: str) -> str:
    """The script with its import lines pointed at graphc (`import torch` -> `import graphc as torch`,
    `import torch.nn as nn` -> `import graphc.nn as nn`, `from torch.X import Y` -> `from graphc.X import Y`)."""
    out = []
    for line in source.splitlines():
        if IMPORT.match(line):
            line = re.sub(r"^(\s*)import torch$", r"\1import graphc as torch", line)
            line = re.sub(r"^(\s*)import torch\.", r"\1import graphc.", line)
            line = re.sub(r"^(\s*)from torch\b", r"\1from graphc", line)
        out.append(line)
    return "\n".join(out) + "\n"


def load(name: str, lib: str) -> types.ModuleType:
    path = PORTS / f"{name}.py"
    source = path.read_text()
    if lib == "graphc":
        source = to_graphc(source)
    module = types.ModuleType(f"port_{name}_{lib}")
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 (the project's own test scripts)
    return module


@functools.cache
def torch_run(name: str) -> tuple[dict, list[float]]:
    torch.manual_seed(0)
    module = load(name, "torch")
    model = module.make_model()
    state = {k: v.detach().clone().numpy() for k, v in model.state_dict().items()}
    return state, module.run(model)


def test_the_rewrite_changes_only_import_lines():
    for path in PORTS.glob("*.py"):
        source = path.read_text()
        assert "graphc" not in source, f"{path.name} must be a plain torch script"
        changed = [(a, b) for a, b in zip(source.splitlines(), to_graphc(source).splitlines()) if a != b]
        assert changed and all(IMPORT.match(a) for a, _ in changed), path.name


@pytest.mark.parametrize("compiled", [False, True], ids=["eager", "compiled"])
@pytest.mark.parametrize("name", sorted(TOLERANCE))
def test_port_matches_torch(name, compiled):
    state, expected = torch_run(name)
    graphc.manual_seed(0)
    module = load(name, "graphc")
    model = module.make_model()
    model.load_state_dict(state)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        losses = module.run(model, compile=compiled)
    slow = [str(w.message) for w in caught if "on every call" in str(w.message)]
    assert not slow, slow  # every compiled port replays its plans
    rtol, mode = TOLERANCE[name]
    assert len(losses) == len(expected)
    if mode == "steps":
        np.testing.assert_allclose(losses, expected, rtol=rtol, atol=rtol)
    else:
        third = max(len(losses) // 3, 1)
        for part in (slice(0, third), slice(-third, None)):
            np.testing.assert_allclose(np.mean(losses[part]), np.mean(expected[part]), rtol=rtol)
    assert losses[-2] < losses[0]  # every port learns (resnet_block's last entry is its accuracy)
