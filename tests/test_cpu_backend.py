"""The `cpu` backend: the fused groups as native C kernels (render_c.py, native.py) against torch: values, gradients,
NaN and inf, fp16/bf16, integers, views and broadcasting, reductions, matmul epilogues, training steps; the tiered
start (numpy first, native once built), the disk cache, a missing or broken compiler, and the random programs.
mode="max-autotune" waits for the build, so these tests run the native kernels deterministically."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as TF
from conftest import assert_close, to_torch

import graphc
import graphc.nn.functional as F
from graphc.compiler import native
from graphc.compiler.native import compiler

pytestmark = pytest.mark.skipif(compiler() is None, reason="no C compiler on this machine")


@pytest.fixture(scope="module", autouse=True)
def _kernel_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRAPHC_CACHE_DIR", str(tmp_path_factory.mktemp("native")))
        yield


def native_steps(compiled) -> list:
    """The kernel steps of a compiled function's plans; each must have run its native kernel."""
    steps = [s for runtime in compiled._plans.values() for s in runtime.plan.steps if s.role == "kernel"]
    for step in steps:
        assert step.library.functions is not None, step.library.error
        assert step._function is not None, f"{step} ran with numpy"
    return steps


def check(fn, *arrays, rtol=1e-5, atol=1e-6, kernels=None, calls=2):
    """fn compiled for the cpu backend (native kernels) equals fn on torch tensors; returns the compiled function."""
    compiled = graphc.compile(fn, backend="cpu", mode="max-autotune")
    for _ in range(calls):
        ours = compiled(*(graphc.tensor(a) for a in arrays))
        theirs = fn(*(torch.from_numpy(a) for a in arrays))
        for o, t in zip(ours if isinstance(ours, tuple) else (ours,), theirs if isinstance(theirs, tuple) else
                        (theirs,)):
            assert_close(o, t, rtol=rtol, atol=atol)
    steps = native_steps(compiled)
    if kernels is not None:
        assert len(steps) == kernels, [s.source for s in steps]
    return compiled


def randn(*shape, dtype=np.float32):
    return np.random.randn(*shape).astype(dtype)


def special(*shape):
    """Normal values with NaN, inf and -inf among them."""
    a = randn(*shape)
    a.flat[:3] = [np.nan, np.inf, -np.inf]
    return a


def test_elementwise_with_views_and_broadcasting():
    def f(x, y):
        return (x.permute(1, 0).unsqueeze(0) - y.view(1, -1, 1)).exp() * x.t().reshape(1, 3, 5)

    check(f, randn(5, 3), randn(3), kernels=1)


def test_gelu_bias_and_unary_math_match_torch_with_nan_and_inf():
    def f(x, b):
        h = x + b
        # torch's float32 gelu gives NaN at +inf on CPUs with AVX-512 (its vectorised kernel) and inf elsewhere, as
        # its float64 gelu does everywhere: the reference is the float64 one
        gelu = F.gelu(h) if isinstance(x, graphc.Tensor) else TF.gelu(h.double()).float()
        return gelu, h.tanh(), h.sigmoid(), h.relu(), h.abs().sqrt().log1p(), h.sin() * h.cos()

    check(f, special(64, 100), randn(100), rtol=1e-5, atol=1e-5)


def test_maximum_minimum_clamp_and_sign_propagate_nan():
    def f(x, y):
        return x.maximum(y), x.minimum(y), x.clamp(-1, 1), x.clamp(min=0.5), x.sign(), (x > y), x.isnan()

    check(f, special(40, 33), special(33)[::-1].copy())


def test_reductions_softmax_norms_and_totals():
    def f(x, w):
        lib = F if isinstance(x, graphc.Tensor) else TF
        return (x.softmax(-1), x.log_softmax(0), lib.layer_norm(x, (x.shape[-1],), w, w * 0.5), x.sum(), x.mean(0),
                x.amax(1), x.amin(0, keepdim=True), x.var(1), (x * x).sum(1).mean())

    check(f, randn(37, 300), randn(300), rtol=1e-4, atol=1e-5)


def test_a_long_row_is_summed_accurately_and_nan_wins_in_max():
    x = randn(1 << 17)
    check(lambda a: (a.sum(), a.mean(), (a * 2).amax()), x, rtol=1e-5, atol=1e-4)
    x[12345] = np.nan
    check(lambda a: (a.amax(), a.amin(), a.sum()), x)


def test_row_passes_keep_exp_in_a_row_buffer_and_sum_floats_in_streams():
    """softmax stores exp(x - max) in a row buffer in its sum pass and its last pass reads it back (ATen's shape);
    a float sum runs in chunks of 4 streams of float partial sums: rows longer than a chunk, rows not a multiple of
    the 4 streams, NaN and inf rows, a strided row (the transposed input), forward and backward, match torch."""
    def f(x, w):
        lib = F if isinstance(x, graphc.Tensor) else TF
        return (x.softmax(-1), x.log_softmax(-1), x.t().softmax(0), lib.layer_norm(x, (x.shape[-1],), w, w),
                x.sum(-1), (x * x).mean(-1))

    x = randn(8, 4096 + 4 * 250 + 3)  # over PARALLEL_MIN elements: rows on the threads, a row buffer per thread
    x[1, 5] = np.inf
    x[2, 7] = np.nan
    x[3, :] = -np.inf
    x[4] *= 1e4
    compiled = check(f, x, randn(x.shape[1]), rtol=1e-5, atol=1e-5)
    sources = [s.source for s in native_steps(compiled)]
    assert any("gc_row_buffer" in s for s in sources) and any("ROW_CHUNK" in s for s in sources)

    def loss(x, w):
        lib = F if isinstance(x, graphc.Tensor) else TF
        return (x.softmax(-1) * w).sum() + lib.layer_norm(x, (x.shape[-1],), w, w).square().sum()

    check_gradients(loss, randn(9, 2000), randn(2000))


def test_cross_entropy_reads_a_per_row_target_as_a_constant_of_its_row():
    """A load broadcast along a dim is not indexed by it: the target of a row (stride 0 along the classes) lets the
    one-hot pass take its contiguous loop. Values, ignore_index, label smoothing and gradients match torch; the
    bool-to-float one-hot and relu's mask are computed as ints (a _Bool operand stops GCC from vectorising)."""
    def f(x, y, w):
        lib = F if isinstance(x, graphc.Tensor) else TF
        h = (x @ w).relu()
        return (lib.cross_entropy(h, y), lib.cross_entropy(x, y, ignore_index=3),
                lib.cross_entropy(x, y, label_smoothing=0.1), (h > 0.5).float() * x.sum(-1, keepdim=True))

    y = np.random.randint(0, 50, 64)
    y[:5] = 3
    compiled = check(f, randn(64, 50), y, randn(50, 50), rtol=1e-5, atol=1e-5)
    sources = "\n".join(s.source for s in native_steps(compiled))
    assert "_Bool v" not in sources and "gc_bool v" in sources

    check_gradients(lambda x, w: (F if isinstance(x, graphc.Tensor) else TF).cross_entropy(x @ w, y_of(x)),
                    randn(64, 50), randn(50, 50))


def y_of(x):
    """Fixed targets for a batch of logits x (of graphc or torch)."""
    y = np.arange(x.shape[0]) * 7 % x.shape[1]
    return graphc.tensor(y) if isinstance(x, graphc.Tensor) else torch.from_numpy(y)


def check_gradients(loss, *arrays, calls=2):
    """The gradients of loss (compiled for the cpu backend, backward inside the compiled step) equal torch's."""
    @graphc.compile(backend="cpu", mode="max-autotune")
    def step(*leaves):
        out = loss(*leaves)
        out.backward()
        return out

    for _ in range(calls):
        ours = [graphc.tensor(a, requires_grad=True) for a in arrays]
        theirs = [torch.from_numpy(a).requires_grad_() for a in arrays]
        assert_close(step(*ours), loss(*theirs), rtol=1e-4, atol=1e-4)
        loss(*theirs).backward()
        for o, t in zip(ours, theirs):
            assert_close(o.grad, t.grad, rtol=1e-4, atol=1e-5)
    native_steps(step)


def test_column_reductions_over_leading_dims_match_torch():
    """Sums over the batch dims (bias and norm-weight gradients) run down blocks of the last dim: ragged blocks
    (last dim 70 = 64 + 6), several kept dims, NaN in max/min, a mean, an elementwise output from the same pass, a
    transposed operand (strides other than 1 along the last dim) and per-row math after the sum."""
    def f(x, b, t):
        y = x + b
        return (y.sum((0, 1)), y * 2, x.sum(0), x.amax(0), x.amin((0, 1)), x.mean(1, keepdim=True),
                (t.transpose(0, 2) * 3).sum(0), y.sum((0, 1)).sqrt() * 0.5 + b)

    x = special(3, 50, 70)
    x[1, 7, 65] = np.nan
    compiled = check(f, x, randn(70), randn(70, 4, 6), rtol=1e-5, atol=1e-5)
    assert any("COLUMN_BLOCK" in s.source for s in native_steps(compiled))


def test_several_dims_are_walked_flat_when_every_operand_is_one_block():
    """A reduction over several dims (a loss summed over a 4-d tensor, partial sums over trailing dims, non-adjacent
    dims, keepdim) and an elementwise kernel whose last dim is small walk those dims as one flat dim when the strides
    allow it, and otherwise split the index per dim: the same compiled function called with row-major arrays, then
    with transposed and sliced views of the same shapes (which must not walk flat), a size-1 dim and odd sizes,
    values and gradients, match torch."""
    def f(x, y):
        z = x * y
        return (z.sum(), z.sum((1, 2, 3)), x.sum((2, 3), keepdim=True), x.amax((1, 2)), z.mean((0, 2)), z + x,
                (x.exp() * y).sum((1, 2, 3), keepdim=True) - y)

    compiled = graphc.compile(f, backend="cpu", mode="max-autotune")
    shape = (5, 3, 7, 9)
    contiguous = [randn(*shape), special(*shape)]
    views = [randn(5, 7, 3, 9).transpose(0, 2, 1, 3), randn(5, 3, 7, 18)[..., ::2]]
    for arrays in (contiguous, views, contiguous, [randn(4, 1, 6, 2), randn(4, 1, 6, 2)]):
        ours = compiled(*(graphc.from_numpy(a) for a in arrays))
        for o, t in zip(ours, f(*(torch.from_numpy(a.copy()) for a in arrays))):
            assert_close(o, t, rtol=1e-5, atol=1e-5)
    sources = [s.source for s in native_steps(compiled)]
    assert any("flat_cols" in s for s in sources), sources
    short_rows = check(lambda x: (x * 2 + 1, (x * x).sum((0, 1))), randn(64, 33, 3))  # and a column reduction
    assert any("for (int64_t k = 0;" in s.source for s in native_steps(short_rows))
    check_gradients(lambda x, y: (x * y).sum() + (x.sum((1, 2, 3)) * y.sum((1, 2, 3))).sum(), randn(*shape),
                    randn(*shape))


def test_kernels_take_contiguous_and_strided_operands_and_hoist_invariants():
    """Each inner loop has a version for unit strides and one for any strides; 0-d values (a step count's powers,
    as in Adam's bias corrections) are computed once per call: both give torch's values."""
    def f(x, s):
        c = (1 - 0.9 ** (s + 1)) * 2
        return (x * c).exp(), (x.t() * c).softmax(-1), x[:, ::2] + c, (x * s).sum(-1)

    compiled = check(f, randn(40, 64), np.array(3.0, np.float32), rtol=1e-5, atol=1e-5)
    assert any(" == 1) {" in s.source for s in native_steps(compiled))


def test_matmul_epilogues_batched_and_transposed():
    def f(x, w, b, y):
        lib = F if isinstance(x, graphc.Tensor) else TF
        return lib.gelu(x @ w.T + b), (y @ y.transpose(-1, -2) * 0.5).relu(), x @ w.T

    check(f, randn(16, 24), randn(20, 24), randn(20), randn(3, 5, 7), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [graphc.float16, graphc.bfloat16])
def test_low_precision_computes_in_fp32_and_rounds_when_stored(dtype):
    x, b = graphc.randn(32, 48).to(dtype), graphc.randn(48).to(dtype)

    def f(x, b):
        h = (x + b) * 1.5
        return h.softmax(-1), h.float() * 2, (h.float() - 1).to(x.dtype), x.sum(0)

    compiled = graphc.compile(f, backend="cpu", mode="max-autotune")
    ours = compiled(x, b)
    theirs = f(to_torch(x), to_torch(b))
    for o, t in zip(ours, theirs):
        assert str(o.dtype) == str(t.dtype).replace("torch.", "graphc.")
        assert_close(o, t, rtol=1e-2, atol=1e-2)
    native_steps(compiled)


def test_integer_and_boolean_ops():
    a = np.random.randint(-20, 20, (6, 7)).astype(np.int64)
    b = np.random.randint(1, 6, (7,)).astype(np.int64)

    def f(a, b):
        return a // b, a % b, a * b + 3, (a > 2) & (b < 4), a.maximum(b), a.sum(1), a.amax(0), (a * 0.5).floor()

    check(f, a, b)


def test_training_step_with_adam_matches_torch():
    torch.manual_seed(0)
    tmodel = torch.nn.Sequential(torch.nn.Linear(20, 32), torch.nn.GELU(), torch.nn.Linear(32, 5))
    model = graphc.nn.Sequential(graphc.nn.Linear(20, 32), graphc.nn.GELU(), graphc.nn.Linear(32, 5))
    model.load_state_dict({k: graphc.tensor(v.detach().numpy()) for k, v in tmodel.state_dict().items()})
    opt, topt = graphc.optim.Adam(model.parameters(), lr=1e-2), torch.optim.Adam(tmodel.parameters(), lr=1e-2)

    @graphc.compile(backend="cpu", mode="max-autotune")
    def step(x, y):
        model.zero_grad()
        logits = model(x)
        F.cross_entropy(logits, y).backward()
        opt.step()
        return F.cross_entropy(logits.detach(), y)

    for i in range(4):
        x, y = randn(16 - i, 20), np.random.randint(0, 5, 16 - i)  # a new batch size reuses the native kernels
        loss = step(graphc.tensor(x), graphc.tensor(y))
        topt.zero_grad()
        tloss = TF.cross_entropy(tmodel(torch.from_numpy(x)), torch.from_numpy(y))
        tloss.backward()
        topt.step()
        assert_close(loss, tloss, rtol=1e-4, atol=1e-5)
    for p, tp in zip(model.parameters(), tmodel.parameters()):
        assert_close(p, tp, rtol=1e-4, atol=1e-5)
    assert step.num_compiles == 1  # one plan for every batch size (the first call made Adam's state: not kept)
    native_steps(step)


def test_first_calls_run_the_numpy_plan_then_the_kernels_once_built(monkeypatch):
    from graphc.compiler import render_c

    compiled = graphc.compile(lambda x: (x * 2).softmax(-1), backend="cpu")
    x = randn(8, 9)
    want = torch.from_numpy(x * 2).softmax(-1)
    with monkeypatch.context() as m:  # the first call fuses nothing and renders no C
        m.setattr(render_c, "generate", None)
        m.setattr(render_c, "render_unit", None)
        assert_close(compiled(graphc.tensor(x)), want)
    (runtime,) = compiled._plans.values()
    assert runtime.kernels is None and {s.role for s in runtime.plan.steps} == {"op"}  # the numpy backend's plan
    assert_close(compiled(graphc.tensor(x)), want)
    library = runtime.kernels.plan.steps.library  # the second run made the kernel plan and asked for its build
    library.wait()
    assert_close(compiled(graphc.tensor(x)), want)
    (step,) = [s for s in runtime.plan.steps if s.role == "kernel"]
    assert runtime.plan is runtime.kernels.plan and step._function is not None


def test_the_numpy_tier_of_a_training_step_matches_torch(monkeypatch):
    """A cpu plan's first tier (the numpy plan, with its shared buffers and optimizer updates computed into the
    parameters and moments) trains as torch does; the build never arrives here."""
    from graphc.compiler import tiered

    monkeypatch.setattr(tiered.TieredRuntime, "tier_up", lambda self: None)
    rng = np.random.default_rng(3)
    x, y = rng.standard_normal((32, 20)).astype(np.float32), rng.integers(0, 5, 32)
    models = [L.nn.Sequential(L.nn.Linear(20, 64), L.nn.GELU(), L.nn.LayerNorm(64), L.nn.Linear(64, 5))
              for L in (graphc, torch)]
    models[0].load_state_dict({k: graphc.tensor(v.detach().numpy()) for k, v in models[1].state_dict().items()})
    for make in (lambda L, p: L.optim.AdamW(p, 1e-2), lambda L, p: L.optim.SGD(p, 0.1, momentum=0.9)):
        opts = [make(L, m.parameters()) for L, m in zip((graphc, torch), models)]

        def step(model, opt, x, y, F):
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            return loss

        compiled = graphc.compile(step, backend="cpu")
        grads = []
        for _ in range(4):
            loss = compiled(models[0], opts[0], graphc.tensor(x), graphc.tensor(y), F)
            want = step(models[1], opts[1], torch.from_numpy(x), torch.from_numpy(y), TF)
            assert_close(loss, want, rtol=1e-5, atol=1e-6)
            grads.append([(p.grad, q.grad) for p, q in zip(models[0].parameters(), models[1].parameters())])
            for p, q in zip(models[0].parameters(), models[1].parameters()):
                assert_close(p, q, rtol=1e-4, atol=1e-5)
        for pairs in grads:  # a weight gradient is its product's buffer (passes.elide_copies): no call reuses it
            for ours, theirs in pairs:
                assert_close(ours, theirs, rtol=1e-4, atol=1e-6)
        assert compiled._entries  # the calls after the first (which made the optimizer's state) replayed
        assert all(r.kernels is None for r in compiled._plans.values())
        assert sum(len(r.first.written) for r in compiled._plans.values()) > 0  # updates computed in place
        for p, q in zip(models[0].parameters(), models[1].parameters()):
            assert_close(p, q, rtol=1e-4, atol=1e-5)


def test_a_built_library_is_loaded_from_disk_by_a_new_process(monkeypatch):
    fn = lambda x: (x - 1).exp().sum(-1)  # noqa: E731
    x = randn(4, 5)
    check(fn, x)
    monkeypatch.setattr(native, "_build", None)  # a new plan of the same kernels: found on disk, no compiler run
    compiled = graphc.compile(fn, backend="cpu", mode="max-autotune")
    assert_close(compiled(graphc.tensor(x)), torch.from_numpy(x - 1).exp().sum(-1))
    native_steps(compiled)


def test_a_broken_compiler_warns_once_and_runs_numpy(monkeypatch, tmp_path):
    broken = tmp_path / "cc"
    broken.write_text("#!/bin/sh\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.setenv("CC", str(broken))
    native.probe.cache_clear()
    try:
        x = randn(3, 4)
        with pytest.warns(RuntimeWarning, match="native kernels are not available"):
            f = graphc.compile(lambda x: (x * 3).tanh(), backend="cpu", mode="max-autotune")
            assert_close(f(graphc.tensor(x)), torch.from_numpy(x * 3).tanh())
        g = graphc.compile(lambda x: (x * 3).relu().sum(), backend="cpu", mode="max-autotune")
        assert_close(g(graphc.tensor(x)), torch.from_numpy(x * 3).relu().sum())  # no second warning
    finally:
        native.probe.cache_clear()


def test_auto_picks_numpy_without_a_compiler(monkeypatch):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    compiled = graphc.compile(lambda x: x * 2 + 1)
    x = randn(3)
    with pytest.warns(RuntimeWarning, match="no C compiler found: /nonexistent/cc"):
        assert_close(compiled(graphc.tensor(x)), torch.from_numpy(x) * 2 + 1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # one notice per process
        graphc.compile(lambda x: x - 1)(graphc.tensor(x))
    assert all(s.role == "op" for r in compiled._plans.values() for s in r.plan.steps)


def test_explain_shows_the_c_source_with_user_lines():
    report = graphc.explain(lambda x: (x * 2).softmax(-1), graphc.randn(4, 8))
    assert "#pragma omp simd" in report.c_source and "expf(" in report.c_source
    assert f"// exp at {__file__}:" in report.c_source
    assert "void " + report.kernels[0].name + "(" in report.c_source


def test_random_programs_run_native_kernels_equal_eager():
    """The 300 random programs of test_random_programs.py on the cpu backend: a first pass runs them (the numpy
    tier), then every plan's kernels are built together (a few compiler runs), and a second pass compiles them again
    with mode="max-autotune", whose plans find those builds and run the native kernels."""
    from test_random_programs import NUM_PROGRAMS, check_program

    runtimes = [r for seed in range(NUM_PROGRAMS) for r in check_program(seed, backend="cpu")._plans.values()]
    for runtime in runtimes:  # every plan's build, requested at once: built together
        runtime.tier_up()
    for runtime in runtimes:
        if runtime.kernels.plan.steps.library is not None:
            runtime.kernels.plan.steps.library.wait()
    for seed in range(NUM_PROGRAMS):  # plans of the same kernels: built already, found on disk
        native_steps(check_program(seed, backend="cpu", mode="max-autotune"))


@pytest.mark.parametrize("backend", ["eager", "numpy", "cpu"])
def test_a_0d_float64_tensor_does_not_widen_a_float32_op(backend):
    x, third = randn(1000), np.array(1 / 3)

    def f(x, s):
        return x * s + s

    want = f(torch.from_numpy(x), torch.from_numpy(third))
    if backend == "eager":
        got = f(graphc.tensor(x), graphc.tensor(third))
    else:
        got = graphc.compile(f, backend=backend, mode="max-autotune")(graphc.tensor(x), graphc.tensor(third))
    assert got.dtype is graphc.float32
    np.testing.assert_array_equal(got.numpy(), want.numpy())  # computed in float32, as torch does


def test_large_eager_ops_run_one_node_native_kernels_once_built(monkeypatch):
    from graphc.state import STATE

    monkeypatch.setattr(STATE.cpu_runner, "plans", {})  # this test's plans only (not other tests' in this process)
    x = randn(256, 300)  # above eager_kernels.NATIVE_MIN elements
    x.flat[:2] = [np.nan, -np.inf]
    a, t = graphc.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    for _ in range(3):  # numpy at first; the second call asks for the build, which this test then waits for
        y, ty = F.softmax(F.gelu(a), -1), torch.softmax(TF.gelu(t), -1)
        for runtime in STATE.cpu_runner.plans.values():
            if runtime.plan.steps.library.requested:
                runtime.plan.steps.library.wait()
    assert_close(y, ty, rtol=1e-5, atol=1e-6)
    ran = [s for key, runtime in STATE.cpu_runner.plans.items() if key[0] in ("gelu", "amax", "exp", "sum", "div")
           for s in runtime.plan.steps]
    assert ran and all(s._function is not None for s in ran)  # the forward ran three times: its kernels are built
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    assert_close(a.grad, t.grad, rtol=1e-4, atol=1e-6)


def test_math_ops_with_lowerings_match_torch():
    x, y = special(50, 41), randn(41) * 3

    def f(x, y):
        return (x.expm1(), x.trunc(), x.round(), x.round(decimals=1), x.nan_to_num(), x.isinf(), x.isfinite(),
                x.fmod(y), x.remainder(y), x.logaddexp(y), x.logical_xor(y))

    check(f, x, y, rtol=1e-5, atol=1e-5)


def test_a_stale_cached_library_is_built_anew():
    fn = lambda x: (x + 3).sqrt().sum(0)  # noqa: E731
    x = np.abs(randn(6, 7))
    check(fn, x)
    for index in (native.cache.cache_dir() / "native").glob("*.index"):
        index.write_text(str(index))  # not a shared library
    check(fn, x)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_copied_outputs_and_shape_only_operands_match_torch_when_a_new_size_breaks_them(dtype):
    """A linear layer's backward sums its gradients to their targets' shapes: with a batch of 1 the bias's sum_to
    keeps its shape (a copy the kernel does not store, fusion's copy propagation), with 5 it sums rows, which the
    fused kernel cannot (that call runs the group op by op); sum_to's targets are never stored for it. Values and
    gradients against torch over batches 1, 5 and 1 (NaN in the last)."""
    w0, b0 = randn(8, 8).astype(dtype), randn(1, 8).astype(dtype)
    w, b = graphc.tensor(w0, requires_grad=True), graphc.tensor(b0, requires_grad=True)
    tw, tb = torch.tensor(w0, requires_grad=True), torch.tensor(b0, requires_grad=True)
    opt, topt = graphc.optim.SGD([w, b], lr=0.1), torch.optim.SGD([tw, tb], lr=0.1)

    def step(lib, opt, x, w, b):
        opt.zero_grad()
        h = lib.nn.functional.layer_norm(x @ w + b, (8,)).tanh()
        (h * h).sum().backward()
        opt.step()
        return h

    compiled = graphc.compile(lambda x: step(graphc, opt, x, w, b), backend="cpu", mode="max-autotune")
    for i, n in enumerate((1, 5, 1)):
        x = randn(n, 8).astype(dtype)
        x[0, 0] = np.nan if i == 2 else x[0, 0]
        assert_close(compiled(graphc.tensor(x)), step(torch, topt, torch.from_numpy(x), tw, tb), rtol=1e-4,
                     atol=1e-5)
        assert_close(w, tw, rtol=1e-4, atol=1e-5)
        assert_close(b, tb, rtol=1e-4, atol=1e-5)
    assert any(s.group.copies for s in native_steps(compiled))



def _pieces_loss(x, how):
    """A loss over the pieces of x split along its last dim (how: chunk, split sizes, or slices written out,
    literal or running to the end)."""
    if how == "chunk":
        pieces = x.chunk(3, -1)
    elif how == "split":
        pieces = x.split([3, 4, 2], dim=-1)
    elif how == "open":
        pieces = x[..., :2], x[..., 2:]
    else:
        pieces = x[..., :2], x[..., 2:9]
    return sum(((p * (i + 1)).tanh() * p).sum() for i, p in enumerate(pieces))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("how", ["chunk", "split", "open", "literal"])
def test_split_gradients_are_one_cat_and_match_torch(how, dtype):
    """Autograd adds up the gradients of split's pieces, each an index_grad zero-filling the whole input: the capture
    records one cat of the pieces' gradients instead (cat's replaces), where the pieces tile a dim the trace is
    specialised to (split, chunk) or the last runs to the end. Literal bounds that tile the dim only at this size
    keep the index_grads: the replay on a wider input (its gradient zero past the pieces) must still match torch.
    Values and gradients against torch, NaN and inf in the first input, widths 9 then 11 where the split allows."""
    def step(x):
        loss = _pieces_loss(x, how)
        loss.backward()
        return loss

    compiled = graphc.compile(step, backend="cpu", mode="max-autotune")
    for width in (9, 11) if how in ("open", "literal") else (9, 9):
        x0 = (special if width == 9 else randn)(7, 4, width).astype(dtype)
        x, tx = graphc.tensor(x0, requires_grad=True), torch.tensor(x0, requires_grad=True)
        loss, tloss = compiled(x), _pieces_loss(tx, how)
        tloss.backward()
        assert_close(loss, tloss, rtol=1e-5, atol=1e-5)
        assert_close(x.grad, tx.grad, rtol=1e-5, atol=1e-5)
    assert compiled.num_compiles == 1
    ops = [n.op.name for runtime in compiled._plans.values() for n in runtime.graph.nodes if n.kind == "op"]
    assert ("index_grad" in ops) == (how == "literal") and ("cat" in ops) == (how != "literal"), ops


def test_a_reduction_without_an_accumulator_renders_valid_openmp():
    """var over one element with its backward in the same graph has a reduction that declares no accumulator: the
    C renderer wrote `#pragma omp simd reduction()`, cc refused the whole translation unit and the plan lost its
    native kernels. Values (NaN, as torch) and gradients are torch's; no warning."""
    def f(L, x):
        v = x.var(0, keepdim=True)
        return v, L.autograd.grad((v * v).sum(), [x])[0]

    compiled = graphc.compile(lambda x: f(graphc, x), backend="cpu", mode="max-autotune")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for shape in ((1,), (1, 3)):
            x = np.ones(shape, np.float32)
            mine = compiled(graphc.tensor(x, requires_grad=True))
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch's: degrees of freedom <= 0
                theirs = f(torch, torch.tensor(x, requires_grad=True))
            for a, b in zip(mine, theirs):
                assert_close(a, b)
