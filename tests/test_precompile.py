"""graphc.compiler.precompile on a machine without a GPU compiles what the first run of a training step on an sm_90
GPU launches, into Triton's cache under the keys that run's JIT computes. The first GPU run is simulated by the same
plans and launch code under a stand-in Triton driver reporting sm_90, with fresh JIT functions: after precompile it
compiles nothing, and a kernel taken out of Triton's cache is compiled again (so the check is not vacuous)."""
from __future__ import annotations

import importlib
import json
import multiprocessing
import shutil

import pytest
import torch
from conftest import KERNEL_BACKEND, assert_close
from triton import knobs

import graphc
import graphc.nn.functional as F
from graphc.compiler import cache, standin
from graphc.compiler.precompile import capture, precompile, run

module = importlib.import_module("graphc.compiler.precompile")  # graphc.compiler.precompile is also the function
pytestmark = pytest.mark.filterwarnings("error::RuntimeWarning")


@pytest.fixture
def triton_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path / "graphc"))
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton"))
    cache.reset()
    yield tmp_path / "triton"
    cache.reset()


def first_gpu_run(make_step, *args) -> int:
    """How many kernels Triton compiles in the first run of a fresh make_step() on an sm_90 GPU: the same capture,
    plans and launches, each launch a JIT warmup under the stand-in driver, with JIT functions loaded anew."""
    compiled: list[bool] = []
    listener, knobs.compilation.listener = knobs.compilation.listener, lambda **e: compiled.append(not e["cache_hit"])
    cache.unload("triton")
    try:
        run(capture(make_step(), *args), 90)
    finally:
        knobs.compilation.listener = listener
        cache.unload("triton")
    return sum(compiled)


def mlp_step():
    graphc.manual_seed(0)
    model = graphc.nn.Sequential(graphc.nn.Linear(8, 16), graphc.nn.ReLU(), graphc.nn.Linear(16, 16),
                                 graphc.nn.ReLU(), graphc.nn.Linear(16, 16), graphc.nn.ReLU(), graphc.nn.Linear(16, 4))
    opt = graphc.optim.Adam(model.parameters(), lr=1e-3)

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss
    return step


def attention_step():
    graphc.manual_seed(0)
    qkv = graphc.nn.Linear(16, 48, bias=False)
    opt = graphc.optim.SGD(qkv.parameters(), lr=0.1)

    def step(x):
        opt.zero_grad()
        b, t, _ = x.shape
        q, k, v = qkv(x).view(b, t, 3, 2, 8).permute(2, 0, 3, 1, 4)
        loss = F.scaled_dot_product_attention(q, k, v, is_causal=True).square().mean()
        loss.backward()
        opt.step()
        return loss
    return step


def test_the_first_gpu_run_of_a_training_step_compiles_nothing_after_precompile(triton_cache):
    x, y = graphc.randn(5, 8), graphc.randint(0, 4, (5,))
    done = precompile(mlp_step(), x, y, arch=90, workers=2)
    # Adam's first call (creating its state) and the replayed step: the two 16x16 layers share their kernels
    assert done.kernels > done.distinct == done.compiled > 0, done
    assert done.cache_dir == str(triton_cache) and f"sm_90 in {done.seconds:.2f} s into {triton_cache}" in str(done)
    assert first_gpu_run(mlp_step, x, y) == 0

    again = precompile(mlp_step(), x, y, arch=90)  # warm: everything is in the cache
    assert (again.kernels, again.distinct, again.compiled) == (done.kernels, done.distinct, 0)

    kernel = next(p for p in triton_cache.iterdir() if p.is_dir())
    shutil.rmtree(kernel)  # one compiled kernel gone: the GPU run compiles it (into the cache again)
    assert first_gpu_run(mlp_step, x, y) == 1
    shutil.rmtree(kernel)
    assert precompile(mlp_step(), x, y, arch=90, workers=1).compiled == 1  # the manifest does not hide it
    assert first_gpu_run(mlp_step, x, y) == 0


def scaled(x):
    return (x * 2 + 1).relu()


@pytest.fixture
def stand_in_runs(monkeypatch) -> list:
    """Each precompile that ran the stand-in GPU (did not take its manifest's word) appends to the list."""
    runs: list = []
    launches = module.launches
    monkeypatch.setattr(module, "launches", lambda *a: runs.append(a) or launches(*a))
    return runs


def test_a_warm_precompile_trusts_its_manifest_only_for_the_same_program_and_files(triton_cache, stand_in_runs):
    x = graphc.randn(5, 8)
    cold = precompile(scaled, x, workers=1)
    assert cold.compiled == cold.distinct > 0 and len(stand_in_runs) == 1
    warm = precompile(scaled, x, workers=1)
    assert (warm.kernels, warm.distinct, warm.compiled) == (cold.kernels, cold.distinct, 0)
    assert len(stand_in_runs) == 1  # the manifest listed every file: no stand-in run, nothing compiled

    assert precompile(lambda x: (x * 2 + 1).sigmoid(), x, workers=1).compiled > 0  # another function
    assert precompile(scaled, graphc.randn(16, 8), workers=1).compiled > 0  # a size Triton specialises (16 | 16)
    runs = len(stand_in_runs)
    assert precompile(scaled, graphc.randn(7, 8), workers=1).compiled == 0  # another shape, the same kernels
    assert len(stand_in_runs) == runs + 1  # ... found by the stand-in, not assumed

    manifests = list((triton_cache.parent / "graphc" / "precompiled").iterdir())
    for path in manifests:
        path.write_text(path.read_text()[:-3])  # a corrupt manifest is no manifest
    assert precompile(scaled, x, workers=1).compiled == 0 and len(stand_in_runs) == runs + 2

    listed = json.loads(next(p for p in manifests if p.read_text().endswith("}")).read_text())["files"]
    victim = next(iter(listed))
    with open(victim, "r+b") as f:
        f.truncate(1)  # a file of the wrong size is no file
    assert precompile(scaled, x, workers=1).compiled + len(stand_in_runs) > runs + 2


def loss_of_linear():
    graphc.manual_seed(0)
    model = graphc.nn.Linear(8, 4)
    return lambda x, y: F.cross_entropy(model(x), y)


def test_a_loss_whose_backward_runs_outside_has_its_backward_plan_precompiled(triton_cache):
    x, y = graphc.randn(5, 8), graphc.randint(0, 4, (5,))
    # the traced call's joint graph, then the forward plan that replays and the backward plan loss.backward() runs
    assert len(capture(loss_of_linear(), x, y)) == 3
    done = precompile(loss_of_linear(), x, y, workers=1)
    assert done.distinct == done.compiled > 0, done
    assert first_gpu_run(loss_of_linear, x, y) == 0


def test_a_module_whose_output_requires_grad_is_precompiled_without_a_backward(triton_cache):
    """The logits of a module with trainable parameters require grad, but what gradient reaches them is the caller's
    choice: its joint graph and its forward plan are compiled, no backward is run."""
    graphc.manual_seed(0)
    model = graphc.nn.Linear(8, 4)
    x = graphc.randn(5, 8)
    done = precompile(model, x, workers=1)
    assert done.distinct == done.compiled > 0 and model.weight.grad is None, done
    graphc.manual_seed(0)
    assert first_gpu_run(lambda: graphc.nn.Linear(8, 4), x) == 0


def test_the_first_gpu_run_of_an_attention_step_compiles_nothing_after_precompile(triton_cache):
    x = graphc.randn(2, 8, 16)
    done = precompile(attention_step(), x, arch=90, workers=1)
    assert done.distinct == done.compiled > 0 and done.kernels >= done.distinct, done
    assert first_gpu_run(attention_step, x) == 0


def test_the_stand_in_gpu_leaves_tritons_driver_as_it_was():
    from triton.runtime import driver

    before = driver._active
    with standin.gpu(80):
        assert driver.active.get_current_target().arch == 80 and standin.device() == "cpu"
    assert driver._active is before and not standin.active()


def test_the_workers_start_with_the_pool_and_compile_each_kernel_as_it_is_launched(triton_cache):
    """The pool's processes start when it is made (they compute triton_key while the stand-in run imports torch),
    not at the first kernel; each launch is handed to them as the stand-in makes it."""
    before = set(multiprocessing.active_children())
    with module.Workers(2, 90) as pool:
        assert len(set(multiprocessing.active_children()) - before) == 2
        x = graphc.randn(5, 8)
        handed: list = []
        launched = module.launches(capture(scaled, x), 90, lambda *job: handed.append(job) or pool.submit(*job))
        assert handed == launched and len(launched) == 1
        [(compiled, files)] = pool.results()
    assert compiled and all(size > 0 for size in files.values())  # compiled, not found in the cache
    assert first_gpu_run(lambda: scaled, x) == 0


def test_what_does_not_vary_over_a_matmul_tile_is_computed_once_per_program():
    """Adam's bias corrections from its step count (a 0-d tensor) fused into a weight gradient's product: computed
    as scalars before the tile's values, not at each of its elements (a float64 pow at each element made the digits
    step's largest kernel 3x slower to compile), with torch's values."""
    def corrected(a, b, step):
        step = step + 1
        return a @ b / (1 - 0.9 ** step), step

    args = graphc.randn(5, 8), graphc.randn(8, 6), graphc.tensor(2.0, dtype=graphc.float64)
    report = graphc.explain(corrected, *args)
    assert report.num_kernels == 1 and report.kernels[0].kind == "matmul"
    pow_line = next(line for line in report.kernels[0].source.splitlines() if "libdevice.pow" in line)
    assert pow_line.split("=")[0].strip().endswith("_i"), pow_line  # the invariant scope's scalar
    out, step = graphc.compile(corrected, backend=KERNEL_BACKEND, fullgraph=True)(*args)
    want, want_step = corrected(*(torch.from_numpy(t.numpy()) for t in args))
    assert_close(out, want)
    assert_close(step, want_step)
