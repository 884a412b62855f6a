"""The disk cache of kernels: keyed by source (and target), atomic writes, corrupt entries rebuilt, and two
processes compiling the same kernel at once leave a valid entry."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import graphc
from graphc.compiler import cache


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    cache.reset()
    yield tmp_path
    cache.reset()


def kernel():
    (step,) = graphc.explain(lambda x: (x * 2 + 1).relu(), graphc.randn(4, 4)).kernels
    return step


def test_source_file_is_keyed_by_source_and_rewritten_when_corrupt(cache_dir):
    step = kernel()
    path = cache.source_file(step.source)
    assert path.parent.parent == cache_dir and path.read_text() == step.source
    assert cache.source_file(step.source + "\n# other") != path
    path.write_text("garbage (a half-written file from a crashed process)")
    assert cache.source_file(step.source).read_text() == step.source
    assert not [p for p in path.parent.iterdir() if p.suffix == ".tmp"]


def test_aot_entry_is_cached_and_a_corrupt_entry_is_rebuilt(cache_dir):
    step = kernel()
    ptx = step.ptx(90)
    assert ".target sm_90" in ptx and step.name in ptx
    (entry,) = (cache_dir / "aot").iterdir()
    cache.reset()
    assert step.ptx(90) == ptx  # read back from disk
    blob = json.loads(entry.read_text())
    entry.write_text(json.dumps(dict(blob, ptx=blob["ptx"][:100])))  # fails its checksum
    cache.reset()
    assert step.ptx(90) == ptx and json.loads(entry.read_text())["ptx"] == ptx
    entry.write_bytes(b"\x00\x01 not json")
    cache.reset()
    assert step.cubin(90) == step.cubin(90) and len(step.cubin(90)) > 1000


def test_two_processes_compiling_at_once_leave_a_valid_entry(cache_dir):
    code = ("import graphc; from graphc.compiler import cache\n"
            "(k,) = graphc.explain(lambda x: (x * 2 + 1).relu(), graphc.randn(4, 4)).kernels\n"
            "print(len(k.ptx(90)))")
    env = dict(os.environ, GRAPHC_CACHE_DIR=str(cache_dir))
    procs = [subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True)
             for _ in range(2)]
    outputs = [p.communicate(timeout=120)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outputs[0] == outputs[1] and int(outputs[0]) > 1000
    (entry,) = (cache_dir / "aot").iterdir()
    assert cache._read_entry(entry) is not None
    assert not [p for p in cache_dir.rglob("*.tmp")]


def test_interpreter_and_gpu_kernels_load_from_the_same_file(cache_dir):
    step = kernel()
    interpreted = cache.load(step.source, step.name, "interpret")
    assert cache.load(step.source, step.name, "interpret") is interpreted
    assert type(interpreted).__name__ == "InterpretedFunction"
    assert len(list((cache_dir / "kernels").iterdir())) == 1
