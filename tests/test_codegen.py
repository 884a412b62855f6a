"""Codegen on the `interpret` backend against torch: views as index arithmetic, broadcast and 0-d outputs, looped
and column reductions, low precision, integer and boolean ops, matmul epilogues, numpy fallbacks between kernels,
and the fusion reasons the explain report shows. Every kernel these programs generate also compiles ahead of time
for sm_90; bfloat16 kernels (which the interpreter cannot run) are checked that way only. Also: eager ops on device
tensors (one-node graphs through the same codegen), max-autotune, and backend='triton' without CUDA."""
from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch
from conftest import KERNEL_BACKEND, assert_close, assert_compiles_for_sm90

import graphc
from graphc import dtypes
from graphc.compiler import cache, codegen, runtime
from graphc.compiler.codegen import plan_kernels
from graphc.compiler.eager_kernels import EagerRunner
from graphc.state import STATE
from graphc.tensor import Tensor


@pytest.fixture(autouse=True)
def _kernel_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))


def check(fn, *arrays, rtol=1e-5, atol=1e-6, kernels=None):
    """fn compiled for the interpreter equals fn on torch tensors, and its kernels compile for sm_90; returns the
    explain report."""
    compiled = graphc.compile(fn, backend=KERNEL_BACKEND, fullgraph=True)  # a failing plan raises, never runs eagerly
    ours = compiled(*(graphc.tensor(a) for a in arrays))
    theirs = fn(*(torch.from_numpy(a) for a in arrays))
    for o, t in zip(ours if isinstance(ours, tuple) else (ours,), theirs if isinstance(theirs, tuple) else (theirs,)):
        assert_close(o, t, rtol=rtol, atol=atol)
    report = graphc.explain(fn, *(graphc.tensor(a) for a in arrays))
    if kernels is not None:
        assert report.num_kernels == kernels, str(report)
    assert_compiles_for_sm90(report.kernels)
    return report


def randn(*shape, dtype=np.float32):
    return np.random.randn(*shape).astype(dtype)


def test_views_are_index_math_in_one_kernel():
    def f(x, y):
        return (x.transpose(0, 1) * y.unsqueeze(0)).exp() + x.t().reshape(3, 5)

    check(f, randn(5, 3), randn(5), kernels=1)


def test_permuted_and_expanded_inputs_and_broadcast_outputs():
    def f(x, b):
        y = x.permute(2, 0, 1) + b.view(-1, 1, 1)
        return y.sigmoid(), (b * 2).tanh(), y.sum()

    check(f, randn(2, 3, 4), randn(4), rtol=1e-4, atol=1e-5)


def test_looped_reduction_when_the_row_does_not_fit():
    def f(x):
        return torch_like_softmax(x), x.var(-1)

    check(f, randn(2, 5000), rtol=1e-4, atol=1e-6)


def torch_like_softmax(x):
    e = (x - x.amax(-1, keepdim=True)).exp()
    return e / e.sum(-1, keepdim=True)


def test_column_and_multi_dim_reductions():
    check(lambda x: (x.sum(0), x.mean(dim=(0, 2)), x.amax(1)), randn(3, 4, 5), rtol=1e-5, atol=1e-5)


def test_keepdim_false_results_broadcast_back():
    def f(x):
        m = x.mean(-1)
        return x - m.unsqueeze(-1), m * 3

    check(f, randn(4, 6), kernels=1)


def test_float16_computes_in_float32_and_rounds_once():
    check(lambda x, y: (x * y + 1).exp() / (x * x).sum(-1, keepdim=True), randn(4, 8, dtype=np.float16),
          randn(4, 8, dtype=np.float16), rtol=2e-3, atol=1e-3)


def test_an_explicit_cast_to_float16_inside_a_kernel_rounds_as_torch_does():
    x = (1 + np.random.rand(64) * 1e-3).astype(np.float32)  # values fp16 cannot tell apart
    bfloat16 = {torch.Tensor: torch.bfloat16, graphc.Tensor: graphc.bfloat16}
    check(lambda x: x.half().float() * 2 + x.to(bfloat16[type(x)]).float() - 3, x, kernels=1, rtol=0, atol=0)


def test_a_matmul_operand_made_by_a_group_its_epilogue_reads_is_stored_before_the_matmul():
    def f(w):
        a = w * w - 1
        return (a.unsqueeze(1) @ a.unsqueeze(0)).minimum(a)

    check(f, randn(5))


def test_sizes_equal_by_coincidence_at_plan_time_may_differ_later():
    def f(x, w):  # traced with as many rows in x as elements in w: fusion may compute w's sum as one value per row
        return (x.mean(1, keepdim=True) ** 2).sum() + (w * w).sum()

    compiled = graphc.compile(f, backend=KERNEL_BACKEND)
    w = randn(3)
    for rows in (3, 5, 1):
        x = randn(rows, 3)
        assert_close(compiled(graphc.tensor(x), graphc.tensor(w)), f(torch.from_numpy(x), torch.from_numpy(w)),
                     rtol=1e-5, atol=1e-6)


def test_integer_and_boolean_ops():
    def f(a, b, x):
        mask = (a > b) | (a == 0)
        return (a + b * 2, torch_where(mask, x, -x), x.masked_fill(mask, 0.5), x.clamp(min=0.1), a.sum(-1))

    check(f, np.random.randint(-3, 3, (3, 5)), np.random.randint(-3, 3, (3, 5)), randn(3, 5))


def torch_where(mask, a, b):
    return a.where(mask, b) if isinstance(a, torch.Tensor) else graphc.where(mask, a, b)


def test_pow_and_libdevice_functions():
    def f(x):
        return x ** 2, x.abs() ** 0.5, (x * 0.3).tanh(), x.sigmoid(), x.erf(), 2.0 ** x

    check(f, randn(3, 7), rtol=1e-5, atol=1e-6)


def test_batched_matmul_with_transposed_operand_and_residual_epilogue():
    def f(q, k, r):
        return (q @ k.transpose(-1, -2)) * 0.5 + r

    check(f, randn(2, 3, 17, 8), randn(3, 19, 8), randn(19), rtol=1e-4, atol=1e-5, kernels=1)


def test_fallback_ops_run_between_kernels():
    def f(x, w):
        nn = graphc.nn.functional if isinstance(x, graphc.Tensor) else torch.nn.functional
        return nn.max_pool2d(nn.conv2d((x * 2).relu(), w), 2).sigmoid()

    report = check(f, randn(1, 2, 8, 8), randn(3, 2, 3, 3), rtol=1e-4, atol=1e-5)
    assert {name for name, _ in report.fallbacks} == {"conv2d", "max_pool2d"}
    assert all("no lowering" in reason for _, reason in report.fallbacks)
    assert report.num_kernels == 2, str(report)


def test_a_second_pass_over_all_rows_splits_the_kernel_and_says_why():
    def f(x):
        rows = x.sum(-1)
        return rows - rows.mean()  # needs the mean over all rows before any row's result

    report = check(f, randn(4, 5), kernels=2, rtol=1e-5, atol=1e-5)
    steps = plan_kernels(report.graphs[0], "interpret")
    assert any("second pass" in reason for reason in steps.reasons)


def test_batch_size_one_at_trace_time_stays_correct_later():
    def f(x, w):
        return (x * w).sum(0) + x.mean()

    compiled = graphc.compile(f, backend=KERNEL_BACKEND)
    w = randn(1, 4)
    for rows in (1, 3):
        x = randn(rows, 4)
        assert_close(compiled(graphc.tensor(x), graphc.tensor(w)), f(torch.from_numpy(x), torch.from_numpy(w)),
                     rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(1,), (4, 1), (1, 3)])
def test_outputs_with_a_size_one_dim(shape):
    # the store skips repeated writes along a size-1 output dim with a mask that or-s in a scalar condition; Triton
    # 3.9's interpreter turned that into an int32 block and refused it as a mask
    check(lambda q: q + 1, randn(*shape), kernels=1)


def test_batched_matmul_with_a_batch_of_one():
    # the same with a per-program (scalar) index: the batch dim of a matmul's output
    check(lambda a, b: (a @ b).relu(), randn(1, 2, 4, 3), randn(1, 1, 3, 5), kernels=1)


def test_backward_reading_two_views_that_start_at_one_address():
    # v1 and v1[0] start at the same address with different lengths: the interpreter copies arguments to host by
    # storage and refused the pair ("size does not match, self was 36 bytes but src was 64 bytes")
    def f(x0):
        v1 = (x0 + 0.1).transpose(-2, -1)
        v2, v4 = v1[0], (v1.half() * 2).amin(0)
        ((v2 * v2).sum() + (v4 * v4).sum()).backward()
        return v2.detach(), v4.detach()

    x = randn(2, 8)
    ours_x, theirs_x = graphc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    ours, theirs = graphc.compile(f, backend=KERNEL_BACKEND, fullgraph=True)(ours_x), f(theirs_x)
    for o, t in zip(ours, theirs):
        assert_close(o, t, rtol=1e-3, atol=1e-3)
    assert_close(ours_x.grad, theirs_x.grad, rtol=1e-3, atol=1e-3)


def test_kernels_do_not_contract_multiply_adds():
    # the FP-fusion knob is set, not left to Triton's default (which changes in 3.10): a * b + c rounds twice, as
    # in torch and under the interpreter
    report = graphc.explain(lambda a, b, c: a * b + c, *(graphc.randn(8) for _ in range(3)))
    ptx = report.kernels[0].ptx(90)
    assert "fma" not in ptx and "mul" in ptx, ptx


def test_bfloat16_kernels_compile_for_sm90():
    F, bf16 = graphc.nn.functional, graphc.bfloat16
    x, w, b = graphc.randn(8, 32).to(bf16), graphc.randn(16, 32).to(bf16), graphc.randn(16).to(bf16)
    programs = {"elementwise": (lambda x: F.gelu(x * 2 + 1).float(), x),
                "reduction": (lambda x: (graphc.softmax(x, -1), F.layer_norm(x, (32,))), x),
                "matmul": (lambda x, w, b: F.relu(F.linear(x, w, b)) * 0.5 + 1, x, w, b)}
    for kind, (fn, *args) in programs.items():
        report = graphc.explain(fn, *args)
        assert report.kernels and {k.kind for k in report.kernels} == {kind}, str(report)
        assert all("*bf16" in k.signature.values() for k in report.kernels)
        assert_compiles_for_sm90(report.kernels)


# ---- eager ops on device tensors: one-node graphs through the codegen (CPU torch storages, interpret backend) ----
@pytest.fixture
def runner(monkeypatch):
    """A tensor whose storage is a torch tensor is a device tensor; its ops run under Triton's interpreter here."""
    runner = EagerRunner("interpret")
    monkeypatch.setattr(STATE, "cuda_runner", runner)
    return runner


def on_device(a: np.ndarray, requires_grad: bool = False) -> Tensor:
    return Tensor._make(torch.from_numpy(a.copy()), dtypes.from_numpy_dtype(a.dtype), requires_grad)


def test_eager_device_ops_run_through_the_codegen_with_autograd(runner):
    def f(nn, x, w, k):
        h = nn.conv2d(x, w).relu()  # a numpy fallback step, then an elementwise kernel
        h = h.permute(0, 2, 3, 1).reshape(-1, 4)[1:]  # views
        return nn.log_softmax(h @ k, -1).mean(0)  # matmul and row-reduction kernels

    arrays = randn(2, 3, 6, 6), randn(4, 3, 3, 3), randn(4, 5)
    ours, theirs = [on_device(a, True) for a in arrays], [torch.from_numpy(a).requires_grad_() for a in arrays]
    out, want = f(graphc.nn.functional, *ours), f(torch.nn.functional, *theirs)
    assert isinstance(out._data, torch.Tensor) and out.device == "cuda"
    assert_close(out, want, rtol=1e-5, atol=1e-6)
    (out * out).sum().backward()
    (want * want).sum().backward()
    for o, t in zip(ours, theirs):
        assert isinstance(o.grad._data, torch.Tensor)
        assert_close(o.grad, t.grad, rtol=1e-4, atol=1e-6)
    steps = [s for runtime in runner.plans.values() for s in runtime.plan.steps]
    assert "conv2d" in {s.nodes[0].op.name for s in steps if s.role == "fallback"}
    kernels = [s for s in steps if s.role == "kernel"]
    assert {"elementwise", "reduction", "matmul"} <= {k.kind for k in kernels}
    assert_compiles_for_sm90(kernels)


def test_eager_device_views_share_storage(runner):
    a = randn(3, 4)
    x, t = on_device(a), torch.from_numpy(a.copy())
    view, torch_view = x.t()[1:].unsqueeze(0), t.t()[1:].unsqueeze(0)
    assert view._data.untyped_storage().data_ptr() == x._data.untyped_storage().data_ptr()
    view.mul_(0.5)
    torch_view.mul_(0.5)
    assert_close(x, t)


def test_eager_device_plans_are_reused_for_every_size(runner):
    def f(x):
        return (x * 2).sum(-1)

    for rows in (3, 5, 8):
        x = randn(rows, 4)
        assert_close(f(on_device(x)), f(torch.from_numpy(x)), atol=1e-5)
        if rows == 3:
            plans, loaded = dict(runner.plans), len(cache._loaded)
    assert runner.plans == plans and len(cache._loaded) == loaded  # the same plans and kernels for new sizes
    x = randn(1, 4)  # a size-1 dim broadcasts differently: plans of its own
    assert_close(f(on_device(x)), f(torch.from_numpy(x)), atol=1e-5)
    assert len(runner.plans) == len(plans) + 2


# ---- modes and backends that need a GPU to run ---------------------------------------------------------------
def test_max_autotune_plans_and_times_each_config_once_per_space(monkeypatch):
    def f(x, w):
        return (x @ w).relu().softmax(-1)

    compiled = graphc.compile(f, backend="interpret", mode="max-autotune")  # the interpreter runs the heuristic
    x, w = randn(6, 8), randn(8, 5)
    assert_close(compiled(graphc.tensor(x), graphc.tensor(w)), f(torch.from_numpy(x), torch.from_numpy(w)))
    launched = []
    monkeypatch.setattr(runtime, "gpu_ms", lambda run: run() or (0 if launched[-1] == fastest else 1))
    report = graphc.explain(f, graphc.tensor(x), graphc.tensor(w))
    assert_compiles_for_sm90(report.kernels)
    for step in report.kernels:
        configs = step.template.configs(step.group, step.group.space)
        assert len(configs) > 1 and configs[0] == step.constexprs  # the heuristic is what compiles by default
        step.mode, step.backend, fastest = "max-autotune", "triton", configs[-1]
        step.pick(step.group.space, launched.append)
        assert launched[-1] == fastest and len(launched) == len(configs) + 1  # each timed, then the fastest
        step.pick(step.group.space, launched.append)
        assert launched[-1] == fastest and len(launched) == len(configs) + 2  # timed once per space
        launched.clear()


def test_triton_backend_without_cuda_warns_and_runs_eagerly(monkeypatch):
    monkeypatch.setattr(importlib.import_module("graphc.compiler.compile"), "cuda_available", lambda: False)

    def f(x):
        return (x * 2).exp().sum(-1)

    x = randn(3, 4)
    compiled = graphc.compile(f, backend="triton")
    with pytest.warns(RuntimeWarning, match=r"runs eagerly: backend='triton' needs a CUDA device"):
        assert_close(compiled(graphc.tensor(x)), f(torch.from_numpy(x)), rtol=1e-5)
    assert_close(compiled(graphc.tensor(x)), f(torch.from_numpy(x)), rtol=1e-5)
    assert compiled.num_compiles == 0
    with pytest.raises(RuntimeError, match=r"f: backend='triton' needs a CUDA device"):
        graphc.compile(f, backend="triton", fullgraph=True)(graphc.tensor(x))


def test_one_row_at_trace_time_keeps_per_row_values_out_of_the_all_rows_pass():
    def f(x):
        r = x.mean(-1).sigmoid()
        return r * (r * r).sum()  # a per-row value times a reduction over all rows: a second kernel

    check(f, randn(1, 5), kernels=2)


def test_eager_device_inplace_update_of_a_saved_output_is_refused_like_torch(runner):
    """exp's backward reads its output; writing that output in place moves its version, and backward refuses it
    instead of reading the overwritten values, as torch does."""
    a = randn(3, 4)
    for lib_x in (on_device(a, True), torch.from_numpy(a.copy()).requires_grad_()):
        y = lib_x.exp()
        y.mul_(2.0)
        with pytest.raises(RuntimeError, match="modified by an inplace operation"):
            y.sum().backward()


@pytest.mark.parametrize("where", ["plan", "first run"])
def test_codegen_failure_warns_and_runs_eagerly_or_raises_with_fullgraph(monkeypatch, where):
    def broken(*args, **kwargs):
        raise RuntimeError("simulated codegen bug")

    if where == "plan":
        monkeypatch.setattr(codegen, "plan_kernels", broken)
    else:
        monkeypatch.setattr(runtime.TritonKernelStep, "__call__", broken)
    x = randn(3, 4)
    f = graphc.compile(lambda x: (x * 2).softmax(-1), backend="interpret")
    with pytest.warns(RuntimeWarning, match="runs eagerly: .*simulated codegen bug"):
        got = f(graphc.tensor(x))
    assert_close(got, (torch.from_numpy(x) * 2).softmax(-1))
    assert_close(f(graphc.tensor(x)), (torch.from_numpy(x) * 2).softmax(-1))  # later calls: eagerly, silently
    strict = graphc.compile(lambda x: (x * 2).softmax(-1), backend="interpret", fullgraph=True)
    with pytest.raises(graphc.compiler.CaptureError, match="simulated codegen bug"):
        strict(graphc.tensor(x))
