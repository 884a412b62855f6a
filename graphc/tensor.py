"""Tensor: strided storage (a numpy array view, or a torch CUDA tensor), dtype, device and autograd metadata."""
from __future__ import annotations

import math

import numpy as np

from . import dtypes
from .dtypes import dtype as DType
from .state import STATE


class device:
    """torch.device: a device type and an optional index (device("cuda", 0), device("cuda:0"), device(0) for the
    first GPU). Two devices are equal when type and index are, as in torch (cuda is not cuda:0). A string compares
    by what it names: "cuda" matches any CUDA device, "cuda:0" only that one (torch says False to every string).
    Tensors live on "cpu" or "cuda:0"; the other type names torch knows are accepted here and refused when a
    tensor is moved there. Raises RuntimeError for an unknown or malformed device string."""

    __slots__ = ("type", "index", "_outer")

    def __init__(self, type: str | int | device = "cpu", index: int | None = None):  # noqa: A002  torch's name
        if isinstance(type, device):
            type, index = type.type, type.index
        elif isinstance(type, int) and not isinstance(type, bool):
            type, index = "cuda", type
        kind, colon, idx = str(type).partition(":")
        if kind not in DEVICE_TYPES:
            raise RuntimeError(f"Expected one of {', '.join(DEVICE_TYPES)} device type at start of device string: "
                               f"{type}")
        if colon and (not idx.isdigit() or index is not None):
            raise RuntimeError(f"Invalid device string: {type!r}")
        index = int(idx) if colon else index
        if index is not None and (not isinstance(index, int) or index < 0):
            raise RuntimeError(f"Device index must not be negative, got {index!r}")
        self.type, self.index = kind, index

    def __eq__(self, other) -> bool:
        if isinstance(other, str):
            named = device(other)
            return self.type == named.type and named.index in (None, self.index)
        return isinstance(other, device) and self.type == other.type and self.index == other.index

    def __hash__(self) -> int:
        return hash((self.type, self.index))

    def __str__(self) -> str:
        return self.type if self.index is None else f"{self.type}:{self.index}"

    def __repr__(self) -> str:
        index = "" if self.index is None else f", index={self.index}"
        return f"device(type='{self.type}'{index})"

    def __reduce__(self):
        return device, (self.type, self.index)

    def __enter__(self) -> device:
        """`with graphc.device("cuda"):` makes this the default device until the block ends, as in torch."""
        global _default_device
        self._outer, _default_device = _default_device, self
        return self

    def __exit__(self, *exc) -> None:
        global _default_device
        _default_device = self._outer


DEVICE_TYPES = ("cpu", "cuda", "ipu", "xpu", "mkldnn", "opengl", "opencl", "ideep", "hip", "ve", "fpga", "maia", "xla",
                "lazy", "vulkan", "mps", "meta", "hpu", "mtia", "privateuseone")  # the types torch.device knows
CPU, CUDA = device("cpu"), device("cuda", 0)
_default_device = CPU


def get_default_device() -> device:
    """torch.get_default_device: where factories called without device= put their results."""
    return _default_device


def set_default_device(dev: str | device | None) -> None:
    """torch.set_default_device: factories called without device= (zeros, rand, tensor, new layers' parameters)
    create their results on dev; None restores "cpu"."""
    global _default_device
    _default_device = CPU if dev is None else device(dev)


def to_torch(array: np.ndarray):
    """Wrap a numpy array as a torch CPU tensor without a copy (bfloat16 goes through its bits)."""
    import torch

    if array.dtype == dtypes.bfloat16.np:
        return torch.from_numpy(np.ascontiguousarray(array).view(np.uint16)).view(torch.bfloat16)
    return torch.from_numpy(array)


def from_torch(t) -> np.ndarray:
    """A torch tensor's values as a numpy array (copied to host when on CUDA)."""
    import torch

    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        return t.view(torch.uint16).numpy().view(dtypes.bfloat16.np)
    return t.numpy()


class memory_format:
    """torch.memory_format: contiguous_format, channels_last, channels_last_3d, preserve_format. graphc lays tensors
    out row-major: `x.contiguous(memory_format=...)`, `x.to(memory_format=...)` and `model.to(memory_format=...)`
    accept them and keep that layout (the values are the same; channels-last is a speed hint for cuDNN)."""

    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"graphc.{self.name}"


contiguous_format, channels_last = memory_format("contiguous_format"), memory_format("channels_last")
channels_last_3d, preserve_format = memory_format("channels_last_3d"), memory_format("preserve_format")
_CHANNELS_LAST = {channels_last: (0, 2, 3, 1), channels_last_3d: (0, 2, 3, 4, 1)}


class Size(tuple):
    """torch.Size: a tensor's shape, a tuple of ints with numel(); slicing and concatenation stay Sizes."""

    __slots__ = ()

    def numel(self) -> int:
        """The number of elements a tensor of this shape holds."""
        return math.prod(self)

    def __getitem__(self, i):
        out = tuple.__getitem__(self, i)
        return Size(out) if type(i) is slice else out

    def __add__(self, other: tuple) -> Size:
        return Size(tuple.__add__(self, other))

    def __radd__(self, other: tuple) -> Size:
        return Size(tuple(other) + tuple(self))

    def __repr__(self) -> str:
        return f"graphc.Size({list(self)})"

    __str__ = __repr__


_SIZES: dict[tuple, Size] = {}  # one Size per shape seen: .shape is read by every op; a lookup beats a new Size


def _new_size(shape: tuple) -> Size:
    if len(_SIZES) >= 4096:
        _SIZES.clear()
    size = _SIZES[shape] = Size(shape)
    return size


class VersionCounter:
    """torch's version counter, shared by a tensor and its views (and detach()): every in-place write adds one.
    Autograd nodes record the version of what they save, and backward refuses a saved tensor whose version moved.
    A counter is made on first need (a view, a write, a saved output); a tensor without one is at version 0. The
    first write since something may have saved the tensor (watched) notes where in the user's code it happened,
    for the error message."""

    # class defaults, no __init__: a counter is made for every saved output, so it must be cheap (no __slots__:
    # an instance gets its dict only when first written)
    version = 0
    watched = True  # a new counter may belong to a tensor saved at version 0, before it had a counter
    written_at = None

    def note_write(self) -> None:
        """Record the user's code position of the write being made (the line is worked out only for an error)."""
        from .errors import user_frame
        frame = user_frame()
        self.written_at = None if frame is None else (frame.f_code, frame.f_lasti)

    def where_written(self) -> str:
        """'file:line' of the last in-place write (while watched), or '<unknown>'."""
        if self.written_at is None:
            return "<unknown>"
        code, offset = self.written_at
        line = next((line for start, end, line in code.co_lines() if start <= offset < end), None)
        return f"{code.co_filename}:{line}"


class Tensor:
    """An n-d array with autograd. `_data` is a strided numpy view (cpu), a torch tensor (cuda),
    or None while the compiler traces it (then `_node` is its IR node). A view sharing its input's memory knows how it
    was made: `_view` is (the tensor it views, the view op, the op's other inputs, its attrs), as torch's `_base`.
    `_version` is its VersionCounter (None until needed)."""

    __slots__ = ("_data", "dtype", "requires_grad", "_grad", "grad_fn", "_node", "_hooks", "_post_accumulate_hooks",
                 "_view", "_version", "__weakref__")
    __array_priority__ = 1000  # numpy scalars on the left defer to Tensor's reflected operators

    def __new__(cls, *args, device=None) -> Tensor:
        """torch.Tensor(...), the legacy constructor public scripts still call (`torch.Tensor(env.reset())`): a
        tensor of the default float dtype, as `x.new(...)` makes one (see Tensor.new: sizes, a Size, a sequence or
        numpy array, a tensor of that dtype, or nothing). graphc.tensor(data) is the modern form."""
        default = dtypes.get_default_dtype()
        return Tensor._make(np.empty(0, default.np), default).new(*args, device=device)

    @staticmethod
    def _make(data, dt: DType, requires_grad: bool = False) -> Tensor:
        t = object.__new__(Tensor)
        t._data, t.dtype, t.requires_grad = data, dt, requires_grad
        t._grad = t.grad_fn = t._node = t._hooks = t._post_accumulate_hooks = t._view = t._version = None
        return t

    def _counter(self) -> VersionCounter:
        """This tensor's version counter, made on first need."""
        counter = self._version
        if counter is None:
            counter = self._version = VersionCounter()
        return counter

    def _bump_version(self) -> None:
        """An in-place write happened: the version moves (for this tensor, its views and its detached aliases)."""
        counter = self._counter()
        counter.version += 1
        if counter.watched:  # the first write since a save: the frame walk only there, as it is not free
            counter.watched = False
            counter.note_write()

    @property
    def _version_number(self) -> int:
        counter = self._version
        return 0 if counter is None else counter.version

    # ---- metadata -------------------------------------------------------------------------------
    @property
    def shape(self) -> Size:
        data = self._data
        if data is None or STATE.capture is not None:  # the compiler notes size reads (it specialises on them)
            return STATE.capture.shape_of(self)
        size = _SIZES.get(data.shape)
        return size if size is not None else _new_size(tuple(data.shape))

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def nelement(self) -> int:
        """torch.Tensor.nelement: numel()."""
        return self.numel()

    @property
    def ndim(self) -> int:
        return len(self._data.shape) if self._data is not None else len(self._node.shape)

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return math.prod(self.shape)

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    @property
    def device(self) -> device:
        data = self._data
        if data is None:
            return self._node.device
        return CPU if type(data) is np.ndarray else CUDA

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    def _layout(self):
        """The array whose strides are this tensor's: its storage, or inside graphc.compile, for a value the trace
        computes, the layout eager gives it, which the compiler models (functionalization.computed_layout), so that
        reading strides is not a graph break."""
        return self._storage() if self._data is not None or STATE.capture is None else STATE.capture.layout(self)

    def stride(self, dim: int | None = None):
        data = self._layout()
        strides = tuple(s // data.itemsize for s in data.strides) if type(data) is np.ndarray else data.stride()
        return strides if dim is None else strides[dim]

    def is_contiguous(self, memory_format: memory_format = contiguous_format) -> bool:
        """Whether the elements lie in memory in row-major order (or, for channels_last / channels_last_3d, in the
        order N, H, W, C / N, D, H, W, C of a 4-d / 5-d tensor), as torch's (inside graphc.compile, without a graph
        break: _layout)."""
        data = self._layout()
        order = _CHANNELS_LAST.get(memory_format)
        if order is not None:
            if len(order) != data.ndim:
                raise RuntimeError(f"required rank {len(order)} tensor to use {memory_format.name} format")
            data = data.transpose(order) if type(data) is np.ndarray else data.permute(order)
        return data.flags.c_contiguous if type(data) is np.ndarray else data.is_contiguous()

    def data_ptr(self) -> int:
        data = self._storage()
        return data.__array_interface__["data"][0] if type(data) is np.ndarray else data.data_ptr()

    def storage_offset(self) -> int:
        """torch.Tensor.storage_offset: where this view starts in its storage, in elements."""
        data = self._layout()
        if type(data) is not np.ndarray:
            return data.storage_offset()
        base = data
        while isinstance(base.base, np.ndarray):
            base = base.base
        return (data.__array_interface__["data"][0] - base.__array_interface__["data"][0]) // data.itemsize

    def element_size(self) -> int:
        """Bytes per element."""
        return self.dtype.itemsize

    @property
    def itemsize(self) -> int:
        """Bytes per element."""
        return self.dtype.itemsize

    @property
    def nbytes(self) -> int:
        """Bytes of the elements (numel * itemsize)."""
        return self.numel() * self.dtype.itemsize

    @property
    def is_cpu(self) -> bool:
        return self.device.type == "cpu"

    def get_device(self) -> int:
        """The CUDA device index, -1 for a CPU tensor (torch's convention)."""
        return -1 if self.device.type == "cpu" else self.device.index or 0

    def ndimension(self) -> int:
        """torch.Tensor.ndimension: ndim."""
        return self.ndim

    def is_signed(self) -> bool:
        """False for bool and uint8, True for the other dtypes."""
        return self.dtype.name not in ("bool", "uint8")

    def is_complex(self) -> bool:
        """False: graphc has no complex dtypes."""
        return False

    is_sparse = is_quantized = is_meta = is_nested = False  # graphc's tensors are dense, strided, materialised

    def is_inference(self) -> bool:
        """False: graphc has no inference mode tensors (inference_mode runs as no_grad)."""
        return False

    def is_same_size(self, other: Tensor) -> bool:
        return tuple(self.shape) == tuple(other.shape)

    def is_nonzero(self) -> bool:
        """torch.Tensor.is_nonzero: the truth of a one-element tensor; RuntimeError for another size."""
        if self.numel() != 1:
            what = "no values" if self.numel() == 0 else "more than one value"
            raise RuntimeError(f"Boolean value of Tensor with {what} is ambiguous")
        return bool(self.item())

    def __contains__(self, element) -> bool:
        """`element in tensor`: whether any element equals it (a number or a tensor broadcast against this one), as
        torch; RuntimeError for other types."""
        if not isinstance(element, (Tensor, int, float, bool)):
            raise RuntimeError(f"Tensor.__contains__ only supports Tensor or scalar, but you passed in a "
                               f"{type(element)}.")
        return bool((self == element).any())

    def pin_memory(self, device=None) -> Tensor:
        """torch.Tensor.pin_memory: pinning needs CUDA, so without it this raises RuntimeError, as torch does; with
        it the tensor is returned as it is (graphc's host copies are numpy arrays; nothing to pin)."""
        from . import cuda

        if not cuda.is_available():
            raise RuntimeError("Cannot access accelerator device when none is available.")
        return self

    def is_pinned(self, device=None) -> bool:
        return False

    def share_memory_(self) -> Tensor:
        """torch.Tensor.share_memory_: returns self; graphc tensors cross process boundaries only through
        DataLoader workers, by pipe."""
        return self

    # ---- autograd metadata ----------------------------------------------------------------------
    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def grad(self) -> Tensor | None:
        if STATE.capture is not None:  # a compiled function re-reads .grad at each call, not the object seen once
            STATE.capture.note_grad_read(self)
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        if STATE.capture is not None:
            STATE.capture.note_grad_write(self)
        self._grad = value

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and not self.dtype.is_floating_point:
            from .errors import op_error
            raise op_error("requires_grad_", f"only floating point tensors can require gradients, got a "
                           f"{self.dtype.name} tensor", (self,))
        if not self.is_leaf and not requires_grad:
            raise RuntimeError("requires_grad_(False) on a non-leaf tensor: use detach()")
        self.requires_grad = requires_grad
        return self

    def retain_grad(self) -> None:
        """Keep this non-leaf tensor's gradient in .grad after backward (leaves always keep theirs)."""
        if self.is_leaf:
            return

        def store(grad: Tensor) -> None:
            self.grad = grad.detach() if self.grad is None else self.grad + grad.detach()
        store.retains_grad = True  # runs after every other hook, so .grad holds what they produce, as in torch
        self.register_hook(store)

    @property
    def retains_grad(self) -> bool:
        """True for a non-leaf tensor whose retain_grad() was called."""
        return not self.is_leaf and any(getattr(hook, "retains_grad", False) for hook in self.grad_fn.hooks or ())

    def register_hook(self, hook):
        """Call hook(grad) when this tensor's gradient is computed; a non-None return replaces it."""
        if not self.requires_grad:
            raise RuntimeError("register_hook: this tensor does not require grad")
        owner = self if self.grad_fn is None else self.grad_fn  # a non-leaf's gradient is its grad_fn's input
        hooks = owner._hooks if owner is self else owner.hooks
        if hooks is None:
            hooks = []
            if owner is self:
                self._hooks = hooks
            else:
                owner.hooks = hooks
        retains = bool(hooks) and getattr(hooks[-1], "retains_grad", False)
        hooks.insert(len(hooks) - retains, hook)
        return _HookHandle(hooks, hook)

    def register_post_accumulate_grad_hook(self, hook):
        """Call hook(tensor) on this leaf once a backward has accumulated all of its gradient into .grad (a leaf
        used several times fires once, after its last contribution), as torch does; DDP starts its all-reduces here.
        Raises RuntimeError for a non-leaf or a tensor that does not require grad."""
        if not self.requires_grad or not self.is_leaf:
            raise RuntimeError("register_post_accumulate_grad_hook: only leaf tensors that require grad accumulate "
                               "gradients")
        from . import autograd

        autograd.POST_ACCUMULATE_HOOKS[0] += 1
        self._post_accumulate_hooks = self._post_accumulate_hooks or []
        self._post_accumulate_hooks.append(hook)
        return _HookHandle(self._post_accumulate_hooks, hook)

    def backward(self, gradient: Tensor | None = None, retain_graph: bool | None = None,
                 create_graph: bool = False) -> None:
        from .autograd import run_backward
        run_backward([self], [gradient], retain_graph=retain_graph, create_graph=create_graph)

    # ---- values (a traced tensor needs a graph break here) --------------------------------------
    def _storage(self):
        if self._data is None:
            STATE.capture.realize(self)
        return self._data

    def numpy(self, *, force: bool = False) -> np.ndarray:
        if self.requires_grad and not force:
            raise RuntimeError("numpy(): this tensor requires grad; use tensor.detach().numpy()")
        return self._host()

    def _host(self) -> np.ndarray:
        """The values on the host. Inside graphc.compile, reading a real tensor's values (an argument's .item(), a
        bool mask argument) makes the trace depend on them: the capture notes it, and such a trace is not replayed."""
        if STATE.capture is not None and self._data is not None:
            STATE.capture.note_value_read(self)
        data = self._storage()
        return data if type(data) is np.ndarray else from_torch(data)

    def item(self):
        if self.numel() != 1:
            raise RuntimeError(f"item(): a Tensor with {self.numel()} elements cannot be converted to a scalar "
                               f"(shape {list(self.shape)})")
        value = self._host().reshape(()).item()
        return value if STATE.capture is None else STATE.capture.note_number(value)

    def tolist(self):
        return self._host().tolist()

    def __bool__(self) -> bool:
        if self.numel() != 1:
            raise RuntimeError(f"bool(): the truth value of a Tensor with {self.numel()} elements is ambiguous "
                               f"(shape {list(self.shape)})")
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.dtype.category != 1 or self.numel() != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __array__(self, dtype=None, copy=None):
        data = self._host()
        return data if dtype is None else data.astype(dtype)

    def __repr__(self) -> str:
        from .tensor_str import tensor_str

        if STATE.capture is not None and STATE.capture.weak_node(self) is not None:
            return repr(self.item())  # a float argument standing as a scalar proxy prints as the float (guarded)
        host = self._host()
        default = dtypes.get_default_dtype()
        return tensor_str(host.astype(np.float32) if self.dtype in dtypes.LOW_PRECISION else host,
                          [f"device='{self.device}'"] if self.device.type != "cpu" else [],
                          None if self.dtype in (default, dtypes.int64, dtypes.bool_) else f"dtype={self.dtype!r}",
                          None if self.dtype is default else f"dtype={self.dtype!r}",
                          [f"grad_fn=<{self.grad_fn.name()}>"] if self.grad_fn is not None else
                          ["requires_grad=True"] if self.requires_grad else [])

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        """A 0-d tensor formats as its number (f"{loss:.3f}", f"{loss}"), as in torch; others take no format spec."""
        if self.ndim == 0:
            return format(self.item(), spec)
        if spec:
            raise TypeError("unsupported format string passed to Tensor.__format__")
        return repr(self)

    def __iter__(self):
        return (self[i] for i in range(len(self)))

    def __hash__(self) -> int:
        return id(self)

    def __reduce__(self):
        raise TypeError("graphc tensors are not picklable: use graphc.save, which never pickles")

    def __copy__(self) -> Tensor:
        """copy.copy of a leaf tensor: a new leaf sharing its memory and requires_grad, as torch's. Non-leaf tensors
        raise RuntimeError, as deepcopy does."""
        if not self.is_leaf:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the copy protocol "
                               "at the moment.")
        out = Tensor._make(self._data, self.dtype, self.requires_grad)
        out._version = self._counter()
        return out

    def __deepcopy__(self, memo: dict) -> Tensor:
        """copy.deepcopy of a leaf tensor (and so of a module, as nn.TransformerEncoder's clones of its layer): a new
        leaf with copied values, requires_grad and grad; a parameter stays a parameter. Non-leaf tensors raise
        RuntimeError, as torch's do."""
        if not self.is_leaf:
            raise RuntimeError("Only Tensors created explicitly by the user (graph leaves) support the deepcopy "
                               "protocol at the moment.")
        from .nn.module import Parameter

        out = self.detach().clone()
        out = Parameter(out, self.requires_grad) if isinstance(self, Parameter) else \
            out.requires_grad_(self.requires_grad)
        if self.grad is not None:
            out.grad = self.grad.detach().clone()
        memo[id(self)] = out
        return out

    # ---- conversions ----------------------------------------------------------------------------
    def to(self, *args, **kwargs) -> Tensor:
        """to(device), to(dtype), to(device, dtype) or to(other_tensor), as in torch; copy=True always returns a new
        tensor."""
        from .ops.creation import to_device
        target_device, target_dtype = kwargs.get("device"), kwargs.get("dtype")
        for a in args:
            if isinstance(a, Tensor):
                target_device, target_dtype = a.device, a.dtype
            elif isinstance(a, (str, device)) and str(a).split(":")[0] in DEVICE_TYPES:
                target_device = a
            else:
                target_dtype = a
        out = self
        if target_dtype is not None and dtypes.to_dtype(target_dtype) is not self.dtype:
            out = out.type(dtypes.to_dtype(target_dtype))
        if target_device is not None and device(target_device).type != out.device.type:
            out = to_device(out, device(target_device))
        return self.clone() if out is self and kwargs.get("copy") else out

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device: int | str | None = None, non_blocking: bool = False) -> Tensor:
        return self.to("cuda" if device is None else globals()["device"](device))

    def float(self) -> Tensor:
        return self.type(dtypes.float32)

    def double(self) -> Tensor:
        return self.type(dtypes.float64)

    def half(self) -> Tensor:
        return self.type(dtypes.float16)

    def bfloat16(self) -> Tensor:
        return self.type(dtypes.bfloat16)

    def long(self) -> Tensor:
        return self.type(dtypes.int64)

    def int(self) -> Tensor:
        return self.type(dtypes.int32)

    def bool(self) -> Tensor:
        return self.type(dtypes.bool_)

    def short(self) -> Tensor:
        return self.type(dtypes.int16)

    def char(self) -> Tensor:
        return self.type(dtypes.int8)

    def byte(self) -> Tensor:
        return self.type(dtypes.uint8)

    def type(self, dt) -> Tensor:
        from .ops.elementwise import cast
        dt = dtypes.to_dtype(dt)
        return self if dt is self.dtype else cast(self, dtype=dt)

    def type_as(self, other: Tensor) -> Tensor:
        return self.type(other.dtype)

    def new_tensor(self, data, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        """A new tensor of data, with this tensor's dtype and device unless told (torch.Tensor.new_tensor)."""
        from .ops.creation import tensor
        return tensor(data, dtype or self.dtype, device or self.device, requires_grad)

    def new_full(self, size, fill_value, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        """A new tensor of the given size filled with fill_value, with this tensor's dtype and device unless told."""
        from .ops.creation import full
        return full(size, fill_value, dtype or self.dtype, device or self.device, requires_grad)

    def new_zeros(self, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        from .ops.view import _sizes
        return self.new_full(_sizes(size), 0, dtype, device, requires_grad)

    def new_ones(self, *size, dtype=None, device=None, requires_grad: bool = False) -> Tensor:
        from .ops.view import _sizes
        return self.new_full(_sizes(size), 1, dtype, device, requires_grad)

    new_empty = new_zeros

    def new(self, *args, device=None) -> Tensor:
        """torch's legacy constructor, kept by old scripts (`weight.new(n_layers, batch, hidden).zero_()`), always in
        this tensor's dtype: `x.new(2, 3)` or `x.new(torch.Size([2, 3]))` a tensor of that size (zero-filled, where
        torch leaves it uninitialised), `x.new([1, 2])` one of a sequence's values, `x.new(t)` t's storage (t must
        have x's dtype), `x.new()` an empty one. Raises TypeError as torch does for a scalar `data` or another
        dtype's tensor."""
        device = device or self.device
        if not args:
            return self.new_zeros(0, device=device)
        if len(args) == 1 and isinstance(args[0], Tensor):
            if args[0].dtype is not self.dtype:
                raise TypeError(f"Tensor.new: expected a tensor of dtype {self.dtype.name}, got {args[0].dtype.name}")
            return args[0].detach()
        if len(args) == 1 and isinstance(args[0], Size):
            return self.new_zeros(args[0], device=device)
        if all(isinstance(a, (int, np.integer)) and not isinstance(a, bool) for a in args):
            return self.new_zeros(args, device=device)
        if len(args) == 1 and isinstance(args[0], (list, tuple, np.ndarray)):
            return self.new_tensor(args[0], device=device)
        raise TypeError(f"Tensor.new(): data must be a sequence or sizes must be ints (got "
                        f"{', '.join(type(a).__name__ for a in args)})")

    def detach(self) -> Tensor:
        """A tensor sharing this one's storage and version counter, outside autograd."""
        if STATE.capture is not None:  # an alias of the same memory, which the compiler tracks
            out = STATE.capture.alias(self)
        else:
            out = Tensor._make(self._data, self.dtype)
        out._version = self._counter()
        return out

    def detach_(self) -> Tensor:
        self.grad_fn, self.requires_grad = None, False
        return self

    # ---- in-place updates -----------------------------------------------------------------------
    def _assign(self, value: Tensor, fill: bool = False) -> Tensor:
        """Write value (broadcast to this shape) into this tensor's storage; autograd then sees this tensor as value
        (and a base this tensor is a view of sees the write, as in torch). As in torch, a tensor whose elements share
        memory (expanded) can only be filled with one number (fill: fill_, zero_); other writes raise RuntimeError."""
        if not fill and self._overlaps_itself():
            from .errors import overlap_error
            raise overlap_error(self.shape)
        if STATE.grad_enabled:
            from .autograd import refresh_view
            refresh_view(self)
            if self.requires_grad:
                if self.is_leaf:
                    raise RuntimeError(f"in-place update of a leaf tensor that requires grad (shape "
                                       f"{list(self.shape)}); wrap the update in graphc.no_grad()")
                if fill or not value.requires_grad:  # the overwritten values get zeros, as torch's ZeroBackward
                    from .ops.creation import filled
                    from .ops.elementwise import where
                    value = where(filled(self, False, dtypes.bool_), self, value)
            if self._view is not None and value.requires_grad:
                _rebase(self, value)
        record = STATE.grad_enabled and value.requires_grad
        node = value.grad_fn if record else None
        if node is not None:
            node.keep_inputs(self)
        if STATE.capture is not None:
            STATE.capture.assign(self, value, fill)
        elif type(self._data) is np.ndarray:
            try:
                np.copyto(self._data, value._data, casting="unsafe")
            except ValueError:
                from .errors import op_error
                raise op_error("copy_", f"cannot write a tensor of shape {list(value.shape)} into one of shape "
                               f"{list(self.shape)}", (self, value)) from None
        else:
            self._data.copy_(value._data)
        self._bump_version()
        if record:
            self.grad_fn, self.requires_grad = node, True
            if node is not None and node.saved_output is not None:  # its output is this tensor now, as in torch
                node.save_output(self)
        return self

    def _overlaps_itself(self) -> bool:
        return STATE.capture.overlaps(self) if STATE.capture is not None else has_internal_overlap(self._data)

    def _check_no_partial_overlap(self, name: str, inputs) -> None:
        """torch's assert_no_partial_overlap for an in-place op writing this tensor: an input covering part of its
        memory, or all of it in another order (x += x.t()), raises RuntimeError; the same elements in the same
        order (x += x) are fine. As in torch, only tensors whose elements are dense in memory are compared."""
        capture = STATE.capture
        out = capture.layout(self) if capture is not None else self._data
        if type(out) is not np.ndarray:  # a CUDA tensor's
            return
        for x in inputs:
            if type(x) is Tensor and x is not self:
                array = capture.layout(x) if capture is not None else x._data
                if type(array) is np.ndarray and partially_overlap(out, array):
                    from .errors import op_error
                    raise op_error(name, "unsupported operation: some elements of the input tensor and the "
                                   "written-to tensor refer to a single memory location. Please clone() the tensor "
                                   "before performing the operation.", (self, x))

    def _snapshot(self) -> Tensor:
        """A copy of this tensor's current values and autograd identity (under capture, a proxy of its value)."""
        old = STATE.capture.copy(self) if STATE.capture is not None else Tensor._make(copy_storage(self._data),
                                                                                        self.dtype)
        old.requires_grad, old.grad_fn = self.requires_grad, self.grad_fn
        return old


def partially_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """torch's MemOverlapStatus::Partial for two arrays dense in memory: their byte ranges intersect, and they are
    not the same elements in the same order. Arrays not dense (strided, expanded, reversed) are too hard to tell,
    as in torch: False."""
    if (a if a.base is None else a.base) is not (b if b.base is None else b.base):
        return False  # different memory (numpy points a view's base at the array owning the memory)
    begin_a, begin_b = a.__array_interface__["data"][0], b.__array_interface__["data"][0]
    if not (_dense(a) and _dense(b)) or begin_a >= begin_b + b.nbytes or begin_b >= begin_a + a.nbytes:
        return False
    return not (begin_a == begin_b and a.nbytes == b.nbytes and a.strides == b.strides)


def _dense(a: np.ndarray) -> bool:
    """Whether the elements fill their byte range exactly once (a permutation of a contiguous array)."""
    dims = sorted((s, n) for s, n in zip(a.strides, a.shape) if n != 1)
    step = a.itemsize
    for stride, n in dims:
        if stride != step:
            return False
        step *= n
    return True


def has_internal_overlap(data) -> bool:
    """torch's has_internal_overlap: some dim of more than one element has stride 0 (an expanded tensor)."""
    strides = data.strides if type(data) is np.ndarray else data.stride()
    return 0 in strides and any(s == 0 and n > 1 for n, s in zip(data.shape, strides))


def empty_in_order(arrays: list[np.ndarray], dtype) -> np.ndarray:
    """An uninitialised array of the arrays' broadcast shape, in their memory order, as a numpy ufunc allocates its
    result (order 'K'; torch's TensorIterator likewise: a transposed operand gives a transposed result, a broadcast
    dim keeps its logical place). Elementwise results, clone's included, have this layout, eagerly and as the
    compiler models them."""
    flags = [["readonly"]] * len(arrays) + [["writeonly", "allocate"]]
    return np.nditer([*arrays, None], ["refs_ok", "zerosize_ok"], flags, [None] * len(arrays) + [dtype],
                     order="K").operands[-1]


def copy_storage(data):
    """A private copy of a storage: a numpy array, or a torch tensor on CUDA; None (a traced proxy) stays None."""
    if data is None:
        return None
    return data.copy() if type(data) is np.ndarray else data.clone()


def _rebase(view: Tensor, value: Tensor) -> None:
    """Writing value into a view changes the tensor it views too: that one's history becomes the view op's inverse
    (its base with value written through the view, as torch's CopySlices), and so on down to the root."""
    base, op, others, attrs = view._view
    if base.requires_grad and base.is_leaf:
        raise RuntimeError(f"in-place update of a view of a leaf tensor that requires grad (shape "
                           f"{list(base.shape)}); wrap the update in graphc.no_grad()")
    if op.inverse is None:
        raise RuntimeError(f"in-place update through a {op.name} view cannot be differentiated")
    new_base = op.inverse(base, value, *others, **attrs)
    if base._view is not None:
        _rebase(base, new_base)
    base.grad_fn, base.requires_grad = new_base.grad_fn, True


class _HookHandle:
    def __init__(self, hooks: list, hook):
        self.hooks, self.hook = hooks, hook

    def remove(self) -> None:
        if self.hook in self.hooks:
            self.hooks.remove(self.hook)
