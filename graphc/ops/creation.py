"""Tensor creation: from data, constant factories, random ops (recorded by the compiler, so each call draws
anew) and device moves."""
from __future__ import annotations

import numpy as np

from .. import dtypes
from ..dispatch import OTHER, Lowering, Op, op
from ..state import STATE
from ..tensor import Tensor, device, from_torch, get_default_device
from .view import _sizes

_DEVICE = device  # Generator's argument is named device, as in torch


def _break_before_new_stream(what: str) -> None:
    """Inside graphc.compile, random ops draw when the graph runs: the draws recorded so far must run before the
    stream is read or changed, so reseeding or reading its state is a graph break there (as eagerly, the draws
    before and after it differ)."""
    if STATE.capture is not None:
        STATE.capture.graph_break(f"{what}() changes the random stream the graph's random ops draw from")


class Generator:
    """torch.Generator: a seeded random stream that every random function takes as generator= (numpy's PCG64
    underneath, so the values differ from torch's for the same seed; the distributions do not)."""

    def __init__(self, device: str | device = "cpu"):
        self.device = _DEVICE(device)
        self.seed()

    def manual_seed(self, seed: int) -> Generator:
        """Restart the stream from seed (any int in [-2**63, 2**64); negatives wrap as in torch)."""
        seed = int(seed)
        if not -2**63 <= seed < 2**64:
            raise RuntimeError(f"manual_seed: seed must be within [-2**63, 2**64), got {seed}")
        _break_before_new_stream("manual_seed")
        self._initial = seed % 2**64
        self._rng = np.random.default_rng(self._initial)
        return self

    def seed(self) -> int:
        """Seed the stream from the operating system's entropy; returns the seed used."""
        seed = int(np.random.SeedSequence().entropy % 2**63)
        self.manual_seed(seed)
        return seed

    def initial_seed(self) -> int:
        """The seed the stream was last started from."""
        return self._initial

    def get_state(self) -> Tensor:
        """The stream's position as an int64 tensor (set_state restores it; torch's is a uint8 tensor)."""
        _break_before_new_stream("get_state")  # the position after the draws recorded so far
        state = self._rng.bit_generator.state
        words = [state["state"]["state"], state["state"]["inc"]]
        flat = [w >> shift & (2**64 - 1) for w in words for shift in (0, 64)]
        flat += [state["has_uint32"], state["uinteger"], self._initial]
        return Tensor._make(np.array(flat, np.uint64).view(np.int64), dtypes.int64)

    def set_state(self, new_state: Tensor) -> Generator:
        """Restore a position returned by get_state."""
        if not isinstance(new_state, Tensor) or new_state.dtype is not dtypes.int64:
            raise TypeError("RNG state must be the int64 tensor Generator.get_state returns")
        if new_state.shape != (7,):
            raise RuntimeError(f"RNG state is wrong size: expected 7 words, got shape {list(new_state.shape)}")
        w = [int(v) for v in new_state._host().view(np.uint64)]
        _break_before_new_stream("set_state")
        self._rng = np.random.default_rng()
        self._rng.bit_generator.state = {"bit_generator": "PCG64", "has_uint32": w[4], "uinteger": w[5],
                                         "state": {"state": w[0] | w[1] << 64, "inc": w[2] | w[3] << 64}}
        self._initial = w[6]
        return self


default_generator = Generator()


def manual_seed(seed: int) -> Generator:
    """Seed graphc's default random stream (rand, randn, dropout, shuffling, init)."""
    return default_generator.manual_seed(seed)


def seed() -> int:
    """torch.seed: seed the default stream from the operating system's entropy; returns the seed."""
    return default_generator.seed()


def initial_seed() -> int:
    """torch.initial_seed: the seed the default stream was last started from."""
    return default_generator.initial_seed()


def get_rng_state() -> Tensor:
    """torch.get_rng_state: the default stream's position (an int64 tensor; see Generator.get_state)."""
    return default_generator.get_state()


def set_rng_state(new_state: Tensor) -> None:
    """torch.set_rng_state: restore a position returned by get_rng_state."""
    default_generator.set_state(new_state)


def _place(t: Tensor, dev, requires_grad: bool) -> Tensor:
    """t on dev (the default device when None), requiring grad if asked."""
    dev = get_default_device() if dev is None else device(dev)
    if dev.type != "cpu":
        t = to_device(t, dev)
    if requires_grad:
        t.requires_grad_(True)
    elif STATE.capture is not None:  # made inside a compiled function: a new tensor at each call, not state
        STATE.capture.note_made(t)
    return t


def tensor(data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    """A new tensor holding a copy of data (nested lists, numbers, numpy arrays or tensors). Python floats make
    the default dtype (float32 unless set_default_dtype), numpy values keep their dtype, as in torch.

    Raises ValueError naming the dim and the lengths where nested sequences are not rectangular."""
    if isinstance(data, Tensor):
        data = data._host()
    try:
        arr = np.asarray(data)
    except ValueError:
        raise _ragged(data) or ValueError(f"tensor: cannot make a tensor of {type(data).__name__}") from None
    if arr.dtype == object:
        raise _ragged(data) or TypeError(f"tensor: cannot make a tensor of {type(data).__name__}")
    if dtype is None:
        python_floats = arr.dtype.kind == "f" and not isinstance(data, (np.ndarray, np.generic))
        dt = dtypes.get_default_dtype() if python_floats else dtypes.from_numpy_dtype(arr.dtype)
    else:
        dt = dtypes.to_dtype(dtype)
    return _place(Tensor._make(np.array(arr, dtype=dt.np), dt), device, requires_grad)


def _ragged(data) -> Exception | None:
    """torch's error for nested sequences that are not rectangular: the shape is read along the first elements,
    and the first sequence (or number) that does not fit it is named with its dim, as torch does."""
    sequences = (list, tuple)
    shape, first = [], data
    while isinstance(first, sequences):
        shape.append(len(first))
        first = first[0] if len(first) else None

    def check(x, dim: int) -> Exception | None:
        if dim == len(shape):
            return TypeError(f"tensor: expected a number at dim {dim}, got a sequence of length {len(x)}") \
                if isinstance(x, sequences) else None
        if not isinstance(x, sequences):
            return TypeError(f"tensor: expected a sequence of length {shape[dim]} at dim {dim}, got "
                             f"{type(x).__name__} {x!r} (not a sequence)")
        if len(x) != shape[dim]:
            return ValueError(f"tensor: expected sequence of length {shape[dim]} at dim {dim} (got {len(x)})")
        return next((e for e in (check(v, dim + 1) for v in x) if e is not None), None)

    return check(data, 0)


def as_tensor(data, dtype=None, device=None) -> Tensor:
    if isinstance(data, Tensor) and dtype is None and device is None:
        return data
    return tensor(data, dtype=dtype, device=device)


def from_numpy(array: np.ndarray) -> Tensor:
    """A tensor sharing memory with a numpy array."""
    return Tensor._make(array, dtypes.from_numpy_dtype(array.dtype))


def _factory(fill):
    def make(*size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
        return _place(Tensor._make(fill(_sizes(size), dt.np), dt), device, requires_grad)
    return make


zeros = _factory(np.zeros)
ones = _factory(np.ones)
empty = _factory(np.empty)


def full(size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.scalar_dtype(fill_value)
    return _place(Tensor._make(np.full(_sizes((size,)), fill_value, dt.np), dt), device, requires_grad)


def arange(start=0, end=None, step=1, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    if end is None:
        start, end = 0, start
    if dtype is None:
        dtype = dtypes.get_default_dtype() if dtypes.result_type(start, end, step).is_floating_point else dtypes.int64
    dt = dtypes.to_dtype(dtype)
    return _place(Tensor._make(np.arange(start, end, step).astype(dt.np), dt), device, requires_grad)


def linspace(start, end, steps: int, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
    return _place(Tensor._make(np.linspace(start, end, steps).astype(dt.np), dt), device, requires_grad)


def logspace(start, end, steps: int, base: float = 10.0, dtype=None, device=None,
             requires_grad: bool = False) -> Tensor:
    """torch.logspace: base ** linspace(start, end, steps), in the default float dtype unless told."""
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
    values = np.logspace(start, end, steps, base=base)
    return _place(Tensor._make(values.astype(dt.np), dt), device, requires_grad)


def _triangle_indices(which, row: int, col: int, offset: int, dtype, device) -> Tensor:
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.int64
    return _place(Tensor._make(np.stack(which(row, offset, col)).reshape(2, -1).astype(dt.np), dt), device, False)


def tril_indices(row: int, col: int, offset: int = 0, *, dtype=None, device=None) -> Tensor:
    """torch.tril_indices: the [2, N] row and column indices of the lower triangle (below diagonal `offset`) of a
    row x col matrix, in row-major order."""
    return _triangle_indices(np.tril_indices, row, col, offset, dtype, device)


def triu_indices(row: int, col: int, offset: int = 0, *, dtype=None, device=None) -> Tensor:
    """torch.triu_indices: the [2, N] row and column indices of the upper triangle (above diagonal `offset`)."""
    return _triangle_indices(np.triu_indices, row, col, offset, dtype, device)


def eye(n: int, m: int | None = None, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    dt = dtypes.to_dtype(dtype) if dtype is not None else dtypes.get_default_dtype()
    return _place(Tensor._make(np.eye(n, m, dtype=dt.np), dt), device, requires_grad)


# Each distribution draws an array of `shape` from a numpy Generator, given torch's parameters.
DISTRIBUTIONS = {
    "uniform": lambda rng, shape, low, high: rng.uniform(low, high, shape),
    "normal": lambda rng, shape, mean, std: rng.normal(mean, std, shape),
    "integers": lambda rng, shape, low, high: rng.integers(low, high, shape),
    "bernoulli": lambda rng, shape, p: rng.random(shape) < p,
    "exponential": lambda rng, shape, lambd: rng.exponential(1 / lambd, shape),
    "geometric": lambda rng, shape, p: rng.geometric(p, shape),
    "log_normal": lambda rng, shape, mean, std: rng.lognormal(mean, std, shape),
    "cauchy": lambda rng, shape, median, sigma: median + sigma * rng.standard_cauchy(shape),
}


def _check_params(distribution: str, params: tuple) -> None:
    """torch's refusals of bad distribution parameters."""
    if distribution == "integers" and params[0] >= params[1]:
        raise ValueError(f"expected 'low' to be less than 'high', but got low={params[0]} >= high={params[1]}")
    if distribution == "uniform" and params[0] > params[1]:
        raise ValueError(f"uniform_ expects to return a [from, to) range, but found from={params[0]} > to={params[1]}")
    if distribution in ("normal", "log_normal") and params[1] < 0:
        raise ValueError(f"normal expects std >= 0.0, but found std {params[1]}")
    if distribution in ("bernoulli", "geometric") and not 0 <= params[0] <= 1:
        raise ValueError(f"{distribution} expects 0 <= p <= 1, but got p={params[0]}")
    if distribution == "exponential" and params[0] <= 0:
        raise ValueError(f"exponential expects lambd > 0.0, but found lambd={params[0]}")


def _sample_parse(*like, size=None, distribution: str, params: tuple, dtype=None, generator=None):
    if generator is not None and not isinstance(generator, Generator):
        raise TypeError(f"generator must be a graphc.Generator, got {type(generator).__name__}")
    _check_params(distribution, params)
    if size is not None and any(n < 0 for n in size):
        raise ValueError(f"Trying to create tensor with negative dimension: {list(size)}")
    dt = dtypes.to_dtype(dtype) if dtype is not None else (
        like[0].dtype if like else dtypes.int64 if distribution == "integers" else dtypes.get_default_dtype())
    return like, {"size": size, "distribution": distribution, "params": params, "dtype": dt,
                  "generator": generator or default_generator}


def _sample_infer(*like, size, distribution, params, dtype, generator):
    return (tuple(like[0].shape) if like else size), dtype


_RANDOM_FALLBACK = "draws from a graphc.Generator (numpy's PCG64), which has no Triton lowering: runs on numpy"


@op("sample", OTHER, _sample_infer, parse=_sample_parse, pure=False, backward=lambda c, g: (None,) * len(c.inputs),
    fallback=_RANDOM_FALLBACK, saves=())
def sample(*like, size, distribution, params, dtype, generator):
    """Values drawn from a distribution: of `size`, or of the shape of the one input (x_like, x.normal_())."""
    return DISTRIBUTIONS[distribution](generator._rng, like[0].shape if like else size, *params)


def _with_grad(fn):
    """A creation function with torch's device=, requires_grad= and pin_memory= (accepted; host memory is plain
    numpy); its result is a new leaf (x_like(w) of a w that requires grad does not, as in torch)."""
    def make(*args, requires_grad: bool = False, device=None, pin_memory: bool = False, **kwargs) -> Tensor:
        out = fn(*args, **kwargs)
        return _place(out.detach() if out.grad_fn is not None else out, device, requires_grad)
    make.__name__, make.__doc__ = fn.name if isinstance(fn, Op) else fn.__name__, fn.__doc__
    return make


@_with_grad
def rand(*size, generator=None, dtype=None) -> Tensor:
    """torch.rand: uniform values in [0, 1)."""
    return sample(size=_sizes(size), distribution="uniform", params=(0.0, 1.0), dtype=dtype, generator=generator)


@_with_grad
def randn(*size, generator=None, dtype=None) -> Tensor:
    """torch.randn: standard normal values."""
    return sample(size=_sizes(size), distribution="normal", params=(0.0, 1.0), dtype=dtype, generator=generator)


@_with_grad
def randint(low, high=None, size=None, *, generator=None, dtype=None) -> Tensor:
    """torch.randint(low=0, high, size): integers in [low, high) (int64 unless dtype says)."""
    if size is None:  # randint(high, size)
        low, high, size = 0, low, high
    return sample(size=_sizes((size,)), distribution="integers", params=(int(low), int(high)), dtype=dtype,
                  generator=generator)


@_with_grad
def rand_like(x: Tensor, *, generator=None, dtype=None) -> Tensor:
    """torch.rand_like: uniform values in [0, 1) of x's shape (and dtype unless told)."""
    return sample(x.detach(), distribution="uniform", params=(0.0, 1.0), dtype=dtype, generator=generator)


@_with_grad
def randn_like(x: Tensor, *, generator=None, dtype=None) -> Tensor:
    """torch.randn_like: standard normal values of x's shape (and dtype unless told)."""
    return sample(x.detach(), distribution="normal", params=(0.0, 1.0), dtype=dtype, generator=generator)


@_with_grad
def randint_like(x: Tensor, low=0, high=None, *, generator=None, dtype=None) -> Tensor:
    """torch.randint_like(x, low=0, high): integers in [low, high) of x's shape (and dtype unless told)."""
    if high is None:
        low, high = 0, low
    return sample(x.detach(), distribution="integers", params=(int(low), int(high)), dtype=dtype, generator=generator)


def _randperm_parse(n, *, generator=None, dtype=None):
    if n < 0:
        raise ValueError(f"Trying to create tensor with negative dimension {n}: [{n}]")
    return (), {"n": int(n), "dtype": dtypes.to_dtype(dtype) if dtype is not None else dtypes.int64,
                "generator": generator or default_generator}


@op("randperm", OTHER, lambda n, dtype, generator: ((n,), dtype), parse=_randperm_parse, pure=False,
    fallback=_RANDOM_FALLBACK)
def _randperm(n, dtype, generator):
    """A random permutation of 0 .. n-1."""
    return generator._rng.permutation(n)


randperm = _with_grad(_randperm)
randperm.__doc__ = "torch.randperm(n, *, generator=None, dtype=int64): a random permutation of 0 .. n-1."


def _multinomial_parse(x, num_samples: int, replacement: bool = False, *, generator=None):
    return (x,), {"num_samples": int(num_samples), "replacement": bool(replacement),
                  "generator": generator or default_generator}


def _multinomial_infer(x, num_samples, replacement, generator):
    if x.ndim not in (1, 2):
        raise ValueError("prob_dist must be 1 or 2 dim")
    if not x.dtype.is_floating_point:
        raise ValueError(f"multinomial only supports floating-point dtypes for input, got: {x.dtype.name}")
    if num_samples <= 0:
        raise ValueError(f"cannot sample n_sample <= 0 samples (got {num_samples})")
    if not replacement and num_samples > x.shape[-1]:
        raise ValueError("cannot sample n_sample > prob_dist.size(-1) samples without replacement")
    return tuple(x.shape[:-1]) + (num_samples,), dtypes.int64


@op("multinomial", OTHER, _multinomial_infer, parse=_multinomial_parse, pure=False, fallback=_RANDOM_FALLBACK)
def multinomial(x, num_samples, replacement, generator):
    """torch.multinomial: indices drawn from the rows of x as unnormalised weights; without replacement each index
    at most once (an exponential race: the smallest keys -log(u)/w win, which is sampling without replacement)."""
    w = x.reshape(-1, x.shape[-1]).astype(np.float64)
    if not np.isfinite(w).all() or (w < 0).any():
        raise ValueError("probability tensor contains either `inf`, `nan` or element < 0")
    total = w.sum(-1, keepdims=True)
    if (total <= 0).any():
        raise ValueError("invalid multinomial distribution (sum of probabilities <= 0)")
    rng = generator._rng
    if replacement:
        cdf = np.cumsum(w / total, -1)
        u = rng.random((w.shape[0], num_samples))
        out = np.stack([np.searchsorted(row, draws, side="right") for row, draws in zip(cdf, u)])
        out = np.minimum(out, w.shape[-1] - 1)
    else:
        with np.errstate(divide="ignore"):
            keys = -np.log(rng.random(w.shape)) / w
        out = np.argsort(keys, -1, kind="stable")[:, :num_samples]
    return out.reshape(x.shape[:-1] + (num_samples,))


def bernoulli(x: Tensor, p=None, *, generator=None) -> Tensor:
    """torch.bernoulli: 1 with probability x (or p when given), else 0, in x's dtype."""
    if p is not None:
        return sample(x.detach(), distribution="bernoulli", params=(float(p),), generator=generator)
    from .elementwise import cast, lt
    return cast(lt(rand_like(x, generator=generator, dtype=dtypes.float64), x.detach()), x.dtype)


def normal(mean, std=1.0, size=None, *, generator=None, dtype=None, device=None, requires_grad: bool = False):
    """torch.normal: normal values with the given mean and std (numbers, or tensors broadcast together; with
    numbers, size gives the shape). Like torch, no gradient flows to tensor mean or std."""
    if not isinstance(mean, Tensor) and not isinstance(std, Tensor):
        if size is None:
            raise TypeError("normal: with a number mean and std, size must be given")
        return _place(sample(size=_sizes((size,)), distribution="normal", params=(float(mean), float(std)),
                             dtype=dtype, generator=generator), device, requires_grad)
    if isinstance(std, Tensor) and bool((std < 0).any()):
        raise ValueError("normal expects all elements of std >= 0.0")
    noise = randn_like(mean * std if isinstance(std, Tensor) and isinstance(mean, Tensor) else
                       (mean if isinstance(mean, Tensor) else std), generator=generator)
    return (noise * std + mean).detach()


def _inplace_sampler(distribution: str, *defaults, doc: str):
    def method(self: Tensor, *params, generator=None) -> Tensor:
        params = tuple(float(v) if distribution != "integers" else int(v) for v in params + defaults[len(params):])
        return self._assign(sample(self.detach(), distribution=distribution, params=params, generator=generator))
    method.__doc__ = doc
    return method


_MANTISSA_DIGITS = {"float16": 11, "bfloat16": 8, "float32": 24, "float64": 53}


def _random_(self: Tensor, low=0, high=None, *, generator=None) -> Tensor:
    """Tensor.random_(from=0, to=None): integers in [from, to); without to, in [0, 2**mantissa digits] (floats,
    every integer exactly representable) or [0, the dtype's max), as in torch."""
    if high is None:
        low, high = (0, low) if low else (0, None)
    if high is None:
        high = 2 ** _MANTISSA_DIGITS[self.dtype.name] + 1 if self.dtype.is_floating_point else \
            np.iinfo(self.dtype.np).max
    return self._assign(sample(self.detach(), distribution="integers", params=(int(low), int(high)),
                               generator=generator))


def _bernoulli_(self: Tensor, p=0.5, *, generator=None) -> Tensor:
    """Tensor.bernoulli_(p=0.5): 1 with probability p (a number or a tensor broadcast to self), else 0."""
    from .view import expand_as
    value = bernoulli(expand_as(p.detach(), self), generator=generator) if isinstance(p, Tensor) else \
        sample(self.detach(), distribution="bernoulli", params=(float(p),), generator=generator)
    return self._assign(value)


INPLACE_SAMPLERS = {
    "uniform_": _inplace_sampler("uniform", 0.0, 1.0, doc="Tensor.uniform_(from=0, to=1): uniform values."),
    "normal_": _inplace_sampler("normal", 0.0, 1.0, doc="Tensor.normal_(mean=0, std=1): normal values."),
    "exponential_": _inplace_sampler("exponential", 1.0, doc="Tensor.exponential_(lambd=1): exponential values."),
    "geometric_": _inplace_sampler("geometric", doc="Tensor.geometric_(p): geometric values (trials to success)."),
    "log_normal_": _inplace_sampler("log_normal", 1.0, 2.0, doc="Tensor.log_normal_(mean=1, std=2)."),
    "cauchy_": _inplace_sampler("cauchy", 0.0, 1.0, doc="Tensor.cauchy_(median=0, sigma=1): Cauchy values."),
    "random_": _random_,
    "bernoulli_": _bernoulli_,
}


def _like_parse(x, fill_value=None, dtype=None):
    return (x,), {"fill_value": fill_value, "dtype": dtypes.to_dtype(dtype) if dtype is not None else x.dtype}


def _no_grad(c, g):
    """Values that do not depend on the input's values: no gradient flows back."""
    return (None,)


def _like_infer(x, fill_value, dtype):
    return tuple(x.shape), dtype


filled = op("full_like", OTHER, _like_infer, parse=_like_parse, lowering=Lowering("{fill_value}"), backward=_no_grad,
            saves=())(
    lambda x, fill_value, dtype: np.full(x.shape, fill_value, dtype.np))
full_like = _with_grad(filled)


def zeros_like(x: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return full_like(x, 0, dtype=dtype, device=device, requires_grad=requires_grad)


def ones_like(x: Tensor, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
    return full_like(x, 1, dtype=dtype, device=device, requires_grad=requires_grad)


empty_like = zeros_like


def to_device(x: Tensor, dev: device) -> Tensor:
    """x copied to another device; a leaf copy keeps requires_grad (as Module.to does for parameters).
    Raises RuntimeError for a device graphc cannot hold tensors on (not cpu or cuda:0) or CUDA without a GPU."""
    if dev.type not in ("cpu", "cuda") or dev.type == "cuda" and dev.index not in (None, 0):
        raise RuntimeError(f"to({str(dev)!r}): graphc holds tensors on 'cpu' and 'cuda:0' only")
    if dev.type == "cuda":
        import torch

        from ..tensor import to_torch
        if not torch.cuda.is_available():
            raise RuntimeError("to('cuda'): no CUDA device is available (torch.cuda.is_available() is False)")
        data = to_torch(np.ascontiguousarray(x._host())).to("cuda")
    else:
        data = from_torch(x._storage()) if type(x._storage()) is not np.ndarray else x._data
    return Tensor._make(data, x.dtype, x.requires_grad and x.is_leaf)

