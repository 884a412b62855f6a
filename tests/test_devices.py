"""Device-agnostic code against torch: graphc.cuda, graphc.cuda.amp, graphc.accelerator, graphc.backends (with TF32
matmul kernels checked through their source and sm_90 PTX), graphc.device, and the default dtype and device."""
from __future__ import annotations

import re
import warnings

import numpy as np
import pytest
import torch
from conftest import assert_close

import graphc
from graphc.compiler.eager_kernels import EagerRunner
from graphc.state import STATE
from graphc.tensor import Tensor


@pytest.fixture(autouse=True)
def _restore_switches(tmp_path, monkeypatch):
    """Each test starts from the defaults and leaves them (graphc's and torch's) as it found them."""
    monkeypatch.setenv("GRAPHC_CACHE_DIR", str(tmp_path))
    yield
    graphc.set_default_dtype(graphc.float32)
    torch.set_default_dtype(torch.float32)
    graphc.set_default_device(None)
    torch.set_default_device(None)
    graphc.set_float32_matmul_precision("highest")
    torch.set_float32_matmul_precision("highest")


# ---- graphc.cuda and graphc.accelerator answer what torch sees -----------------------------------------------
@pytest.mark.parametrize("name", ["is_available", "device_count", "is_bf16_supported", "memory_allocated",
                                  "max_memory_allocated", "current_device", "get_device_name", "synchronize"])
def test_cuda_queries_match_torch(name):
    def call(module):
        try:
            return "value", getattr(module, name)()
        except Exception as e:  # noqa: BLE001 (without a GPU, torch raises; graphc must raise the same)
            return "error", type(e)
    assert call(graphc.cuda) == call(torch.cuda)


def test_cuda_seeding_is_accepted_and_checks_the_seed():
    assert graphc.cuda.manual_seed(3) is None and graphc.cuda.manual_seed_all(3) is None
    with pytest.raises(ValueError):
        torch.cuda.manual_seed("seed")
    with pytest.raises(ValueError):
        graphc.cuda.manual_seed("seed")


@pytest.mark.parametrize("name", ["is_available", "current_accelerator", "device_count", "current_device_index",
                                  "synchronize"])
def test_accelerator_matches_torch(name):
    def call(module):
        try:
            value = getattr(module, name)()
            return "value", None if value is None else str(value)
        except Exception as e:  # noqa: BLE001
            return "error", type(e), str(e)
    assert call(graphc.accelerator) == call(torch.accelerator)


class Recorder:
    """An optimizer stand-in that records its step() calls."""

    def __init__(self):
        self.calls = []

    def step(self, *args, **kwargs):
        self.calls.append((args, kwargs))
        return "stepped"


def test_disabled_amp_changes_nothing():
    scaler, tscaler = graphc.cuda.amp.GradScaler(enabled=False), torch.amp.GradScaler("cuda", enabled=False)
    x = np.random.randn(4, 3).astype(np.float32)
    with graphc.cuda.amp.autocast(enabled=False):
        loss = (graphc.tensor(x) @ graphc.ones(3, 1)).mean()
    with torch.autocast("cuda", enabled=False):
        tloss = (torch.from_numpy(x) @ torch.ones(3, 1)).mean()
    assert loss.dtype is graphc.float32 and scaler.scale(loss) is loss and tscaler.scale(tloss) is tloss
    assert_close(loss, tloss)
    ours, theirs = Recorder(), Recorder()
    for s, opt in ((scaler, ours), (tscaler, theirs)):
        s.unscale_(opt)
        assert s.step(opt, closure=None) == "stepped"
        s.update()
    assert ours.calls == theirs.calls == [((), {"closure": None})]
    assert (scaler.get_scale(), scaler.state_dict(), scaler.is_enabled()) == \
        (tscaler.get_scale(), tscaler.state_dict(), tscaler.is_enabled())
    assert graphc.cuda.amp.autocast(enabled=False)(lambda a: a * 2)(3) == 6


def test_enabled_amp_without_cuda_warns_and_disables_like_torch(monkeypatch):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")  # the next test covers that case
    with pytest.warns(UserWarning, match="CUDA is not available.*Disabling"):
        scaler = graphc.cuda.amp.GradScaler()
    with pytest.warns(UserWarning, match="CUDA is not available"):
        tscaler = torch.amp.GradScaler("cuda")
    assert scaler.is_enabled() is tscaler.is_enabled() is False
    with pytest.warns(UserWarning, match="CUDA is not available"), graphc.cuda.amp.autocast():
        assert (graphc.ones(2) * 2).dtype is graphc.float32


def test_enabled_amp_on_a_gpu_computes_in_float16(monkeypatch):
    monkeypatch.setattr(graphc.cuda, "is_available", lambda: True)
    with graphc.cuda.amp.autocast() as region:
        assert graphc.amp.is_autocast_enabled("cuda") and graphc.amp.get_autocast_dtype("cuda") is graphc.float16
    assert region.enabled and not graphc.amp.is_autocast_enabled()
    assert graphc.cuda.amp.GradScaler().is_enabled()


# ---- graphc.backends -----------------------------------------------------------------------------------------
def test_backend_flags_have_torchs_defaults_and_are_settable():
    for ours, theirs in ((graphc.backends.cudnn, torch.backends.cudnn),):
        for flag in ("benchmark", "deterministic", "enabled", "allow_tf32"):
            assert getattr(ours, flag) == getattr(theirs, flag), flag
    assert graphc.backends.cuda.matmul.allow_tf32 is torch.backends.cuda.matmul.allow_tf32 is False
    assert graphc.backends.mps.is_available() == torch.backends.mps.is_available()
    graphc.backends.cudnn.benchmark = graphc.backends.cudnn.deterministic = True
    assert graphc.backends.cudnn.benchmark and graphc.backends.cudnn.deterministic
    graphc.backends.cudnn.benchmark = graphc.backends.cudnn.deterministic = False
    with pytest.raises(AttributeError):
        graphc.backends.cuda.matmul.allow_fp64 = True


def test_float32_matmul_precision_is_the_tf32_switch_as_in_torch():
    for precision in ("high", "highest", "medium", "highest"):
        graphc.set_float32_matmul_precision(precision)
        torch.set_float32_matmul_precision(precision)
        assert graphc.backends.cuda.matmul.allow_tf32 == torch.backends.cuda.matmul.allow_tf32
        assert graphc.get_float32_matmul_precision() == torch.get_float32_matmul_precision()
    for allow in (True, False):  # torch refuses get_float32_matmul_precision after this legacy switch
        graphc.backends.cuda.matmul.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = allow
        assert graphc.backends.cuda.matmul.allow_tf32 == torch.backends.cuda.matmul.allow_tf32
        assert graphc.get_float32_matmul_precision() == ("high" if allow else "highest")
    with pytest.raises(RuntimeError, match="invalid precision 'fast'"):
        graphc.set_float32_matmul_precision("fast")


def matmul_kernel(report):
    (kernel,) = [k for k in report.kernels if k.kind == "matmul"]
    return kernel


def test_allow_tf32_switches_the_matmul_kernels_input_precision(monkeypatch, capfd):
    """TF32 shows in the kernel source and in the sm_90 PTX (the interpreter computes tf32 dots in full float32, so
    values cannot tell); changing the switch recompiles instead of replaying the old kernel."""
    monkeypatch.setenv("GRAPHC_LOGS", "recompiles")
    a, b = np.random.randn(32, 16).astype(np.float32), np.random.randn(16, 8).astype(np.float32)
    compiled = graphc.compile(lambda x, y: (x @ y).relu(), backend="interpret")
    seen = []
    for allow in (False, True, False):
        graphc.backends.cuda.matmul.allow_tf32 = allow
        out = compiled(graphc.tensor(a), graphc.tensor(b))
        assert_close(out, (torch.from_numpy(a) @ torch.from_numpy(b)).relu(), atol=1e-5)
        kernel = matmul_kernel(graphc.explain(lambda x, y: (x @ y).relu(), graphc.tensor(a), graphc.tensor(b)))
        precision = "tf32" if allow else "ieee"
        assert f'input_precision="{precision}"' in kernel.source
        assert bool(re.search(r"mma\S*\.tf32", kernel.ptx(90))) is allow  # the tensor-core instruction
        seen.append(compiled.num_compiles)
    assert seen == [1, 2, 2]  # the third call reuses the first plan
    assert "float32 matmul precision (TF32 switch): highest -> high" in capfd.readouterr().err
    half = graphc.explain(lambda x, y: x @ y, graphc.tensor(a).half(), graphc.tensor(b).half())
    assert "input_precision=None" in matmul_kernel(half).source  # float16 has no TF32 question


def test_eager_device_plans_follow_the_tf32_switch(monkeypatch):
    runner = EagerRunner("interpret")
    monkeypatch.setattr(STATE, "cuda_runner", runner)
    a, b = np.random.randn(4, 8).astype(np.float32), np.random.randn(8, 3).astype(np.float32)
    x, y = (Tensor._make(torch.from_numpy(v), graphc.float32) for v in (a, b))
    for allow in (False, True):
        graphc.backends.cuda.matmul.allow_tf32 = allow
        assert_close(x @ y, torch.from_numpy(a) @ torch.from_numpy(b), atol=1e-5)
    sources = [s.source for runtime in runner.plans.values() for s in runtime.plan.steps if s.role == "kernel"]
    assert len(sources) == 2 and {'"ieee"' in s for s in sources} == {True, False}


# ---- graphc.device ---------------------------------------------------------------------------------------------
SPECS = [("cpu",), ("cuda",), ("cuda:0",), ("cuda", 0), ("cuda:1",), ("cpu", 0), ("mps",)]


@pytest.mark.parametrize("spec", SPECS, ids=str)
def test_device_objects_match_torch(spec):
    ours, theirs = graphc.device(*spec), torch.device(*spec)
    assert (ours.type, ours.index, str(ours), repr(ours)) == (theirs.type, theirs.index, str(theirs), repr(theirs))
    assert graphc.device(ours) == ours and hash(graphc.device(*spec)) == hash(ours)
    for other in SPECS:
        assert (ours == graphc.device(*other)) == (theirs == torch.device(*other)), other


def test_device_strings_compare_by_what_they_name():
    cuda0 = graphc.device("cuda", 0)
    assert cuda0 == "cuda" and cuda0 == "cuda:0" and cuda0 != "cuda:1" and cuda0 != "cpu"
    assert graphc.device("cuda") != "cuda:0"  # an unindexed device is not a particular GPU, as in torch
    assert graphc.zeros(1).device == "cpu" and repr(graphc.zeros(1).device) == repr(torch.zeros(1).device)


@pytest.mark.parametrize("spec", ["tpu", "cuda:-1", "cpu:x", "cuda:0:1"])
def test_bad_device_strings_raise_like_torch(spec):
    with pytest.raises(RuntimeError) as theirs:
        torch.device(spec)
    with pytest.raises(RuntimeError) as ours:
        graphc.device(spec)
    assert str(ours.value).split(":")[0] == str(theirs.value).split(":")[0]


def test_tensors_refuse_devices_graphc_does_not_run_on():
    with pytest.raises(RuntimeError, match="'cpu' and 'cuda:0' only"):
        graphc.zeros(2).to("mps")
    with pytest.raises(RuntimeError, match="'cpu' and 'cuda:0' only"):
        graphc.zeros(2).cuda(1)
    x = graphc.zeros(2)
    assert x.to("cpu") is x and x.to(graphc.device("cpu", 0)) is x


# ---- default dtype and device ----------------------------------------------------------------------------------
def default_dtype_results(lib, nn_lib):
    return [lib.tensor([1.5]).dtype, lib.tensor([1]).dtype, lib.arange(0.5, 2).dtype, (lib.arange(3) * 1.5).dtype,
            lib.arange(3).exp().dtype, lib.full((1,), 2.0).dtype, lib.full((1,), 2).dtype, lib.zeros(2).dtype,
            lib.randn(2).dtype, lib.rand(2).dtype, lib.linspace(0, 1, 3).dtype, lib.eye(2).dtype,
            nn_lib.Linear(2, 2).weight.dtype, nn_lib.LayerNorm(2).weight.dtype, lib.get_default_dtype()]


@pytest.mark.parametrize("name", ["float64", "float16", "bfloat16", "float32"])
def test_default_dtype_matches_torch(name):
    graphc.set_default_dtype(getattr(graphc, name))
    torch.set_default_dtype(getattr(torch, name))
    ours, theirs = default_dtype_results(graphc, graphc.nn), default_dtype_results(torch, torch.nn)
    assert [d.name for d in ours] == [str(d).removeprefix("torch.") for d in theirs]
    assert repr(graphc.tensor([1.5])) == repr(torch.tensor([1.5]))


def test_default_dtype_refuses_integers_like_torch():
    with pytest.raises(TypeError, match="only floating-point types are supported as the default type"):
        torch.set_default_dtype(torch.int64)
    with pytest.raises(TypeError, match="only floating-point types are supported as the default type"):
        graphc.set_default_dtype(graphc.int64)
    assert graphc.get_default_dtype() is graphc.float32


def test_compiled_functions_guard_on_the_default_dtype(monkeypatch, capfd):
    monkeypatch.setenv("GRAPHC_LOGS", "recompiles")
    compiled = graphc.compile(lambda x: x * 1.5 + graphc.ones(3), backend="numpy")
    assert compiled(graphc.arange(3)).dtype is graphc.float32
    graphc.set_default_dtype(graphc.float64)
    torch.set_default_dtype(torch.float64)
    out = compiled(graphc.arange(3))
    assert out.dtype is graphc.float64 and compiled.num_compiles == 2
    assert_close(out, torch.arange(3) * 1.5 + torch.ones(3))
    assert "the default dtype: float32 -> float64" in capfd.readouterr().err


def test_default_device():
    assert str(graphc.get_default_device()) == str(torch.get_default_device()) == "cpu"
    graphc.set_default_device("cuda")
    assert graphc.get_default_device() == graphc.device("cuda")
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device is available"):
            graphc.zeros(2)
        with pytest.raises(RuntimeError, match="no CUDA device is available"):
            graphc.nn.Linear(2, 2)
    graphc.set_default_device(None)
    assert graphc.zeros(2).device == "cpu" and graphc.tensor([1.0], device="cpu").device == "cpu"
    with graphc.device("cuda"), torch.device("meta"):  # a device as a context manager sets the default inside
        assert graphc.get_default_device() == "cuda" and str(torch.get_default_device()) == "meta"
    assert graphc.get_default_device() == "cpu" and str(torch.get_default_device()) == "cpu"


def test_device_agnostic_preamble_runs():
    """The lines a typical script starts with."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        device = graphc.device("cuda" if graphc.cuda.is_available() else "cpu")
        graphc.backends.cudnn.benchmark = True
        graphc.backends.cuda.matmul.allow_tf32 = True
        graphc.backends.cudnn.allow_tf32 = True
        use_mps = graphc.backends.mps.is_available()
        model = graphc.nn.Linear(4, 2).to(device)
        out = model(graphc.randn(3, 4, device=device))
    graphc.backends.cudnn.benchmark = False
    assert not use_mps and out.device.type == device.type and out.shape == (3, 2)
