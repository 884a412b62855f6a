"""The disk cache of kernels: keyed by normalised source (and target), atomic writes, corrupt entries rebuilt, and two
processes compiling the same kernel at once leave a valid entry (precompile: test_precompile.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from conftest import assert_close

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
    assert ".target sm_90" in ptx and cache.normalise(step.source, step.name)[1] in ptx
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


def graph_break_step(x):
    """The issue's smallest case: two captured segments around a Python branch on a value."""
    y = x * 3
    if float(y.sum()) > -1e9:
        return (y + 1).tanh()
    return y


def run_compiled_twice():
    """Run graph_break_step compiled on the interpreter twice; both results must equal torch's."""
    import numpy as np
    import torch

    graphc.compiler.reset()
    step = graphc.compile(graph_break_step, backend="interpret")
    x = graphc.randn(4, 5)
    expected = (torch.from_numpy(x.numpy()) * 3 + 1).tanh().numpy()
    for _ in range(2):
        np.testing.assert_allclose(step(x).numpy(), expected, rtol=1e-6, atol=1e-6)
    return step


def unusable(kind: str, tmp_path, monkeypatch):
    if kind == "cache path is a file":
        (tmp_path / "file").write_text("x")
        monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "file"))
    elif kind == "kernels/ is a file":
        (tmp_path / "kernels").write_text("x")
        monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    elif kind == "cannot be created":
        monkeypatch.setenv("GRAPHC_CACHE_DIR", "/proc/graphc-cache")
    else:  # a read-only filesystem; root ignores permission bits, so the write itself fails as it would there
        monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))

        write = cache.write_atomic

        def read_only(path, data):
            if tmp_path in path.parents:
                raise OSError(30, "Read-only file system", str(path))
            write(path, data)
        monkeypatch.setattr(cache, "write_atomic", read_only)


@pytest.mark.parametrize("kind", ["cache path is a file", "kernels/ is a file", "cannot be created", "read-only"])
def test_an_unusable_cache_warns_once_and_compiles_elsewhere(kind, tmp_path, monkeypatch):
    unusable(kind, tmp_path, monkeypatch)
    cache.reset()
    with pytest.warns(RuntimeWarning, match="kernel cache at .* cannot be used") as caught:
        step = run_compiled_twice()
    assert len([w for w in caught if "kernel cache" in str(w.message)]) == 1
    assert not [w for w in caught if "eager" in str(w.message)], [str(w.message) for w in caught]
    compiles = step.num_compiles
    step(graphc.randn(4, 5))
    assert step.num_compiles == compiles  # replays: not eager for good, not recompiled
    cache.reset()


@pytest.mark.parametrize("damage", ["entry is a folder", "garbage bytecode"])
def test_damaged_entries_are_rebuilt_or_never_read(damage, cache_dir, recwarn):
    run_compiled_twice()
    sources = sorted((cache_dir / "kernels").glob("k*.py"))
    assert sources and not (cache_dir / "kernels" / "__pycache__").exists()  # no bytecode is written
    for path in sources:
        if damage == "entry is a folder":
            path.unlink()
            (path / "inner").mkdir(parents=True)
        else:
            tag = f"cpython-{sys.version_info[0]}{sys.version_info[1]}"
            pyc = cache_dir / "kernels" / "__pycache__" / f"{path.stem}.{tag}.pyc"
            pyc.parent.mkdir(exist_ok=True)
            pyc.write_bytes(b"\x00" * 7)  # "marshal data too short" for an importer that reads it
    cache.reset()
    run_compiled_twice()
    assert all(path.is_file() for path in sources)
    assert not [str(w.message) for w in recwarn if "runs eagerly" in str(w.message) or "kernel cache" in str(w.message)]


def test_kernels_differing_only_in_names_numbering_and_comments_are_one_kernel(cache_dir):
    w1, w2 = graphc.randn(8, 8), graphc.randn(8, 8)

    def layers(x):  # two identical layers: two groups, two sources (names, node ids and user lines differ)
        h = (x @ w1 + 1).relu()
        return (h @ w2 + 1).relu()

    x = graphc.randn(4, 8)
    first, second = graphc.explain(layers, x).kernels
    assert first.source != second.source and first.name != second.name
    assert cache.normalise(first.source, first.name) == cache.normalise(second.source, second.name)
    text, name, _ = cache.normalise(first.source, first.name)
    assert cache.normalise(text, name)[:2] == (text, name)  # precompile's workers load a kernel by its normalised text
    assert cache.load(first.source, first.name, "interpret") is cache.load(second.source, second.name, "interpret")
    assert first.ptx(90) == second.ptx(90) and len(list((cache_dir / "aot").iterdir())) == 1
    other = graphc.explain(lambda x: (x @ w1 + 1).tanh(), x).kernels[0]
    assert cache.normalise(other.source, other.name)[0] != cache.normalise(first.source, first.name)[0]
    ours = graphc.compile(layers, backend="interpret", fullgraph=True)(x)  # one kernel launched for both layers
    want = (torch.from_numpy(x.numpy()) @ torch.from_numpy(w1.numpy()) + 1).relu()
    assert_close(ours, (want @ torch.from_numpy(w2.numpy()) + 1).relu(), rtol=1e-5, atol=1e-5)


def test_a_gpt_with_more_identical_blocks_has_no_more_distinct_kernels():
    from graphc.bench.cases import CASES, Inputs

    distinct, counts = [], []
    for layers in (1, 3):
        setup = CASES["gpt_train_step"].build(graphc, Inputs(graphc, "cpu"), b=1, t=8, d=16, heads=2, layers=layers,
                                              vocab=32)
        setup.fn(*setup.args)  # the first step creates AdamW's state; the second is the step a compiled loop replays
        kernels = graphc.explain(setup.fn, *setup.args).kernels
        counts.append(len(kernels))
        distinct.append({(cache.normalise(k.source, k.name)[0], str(k.constexprs)) for k in kernels})
    assert counts[1] > counts[0] and distinct[1] == distinct[0], (counts, [len(d) for d in distinct])
