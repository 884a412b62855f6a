"""Disk cache of generated kernels, keyed by a hash of their source (and target for compiled code).

Sources are written to GRAPHC_CACHE_DIR (default: the user cache dir) because triton.jit needs a real file;
ahead-of-time PTX/cubin for a CUDA arch are stored beside them. Writes go to a temporary file renamed into
place, so two processes compiling at once never see half a file; an entry that fails its checksum is rebuilt.
Kernel modules are executed from their source, never from bytecode, so no .pyc can go stale or corrupt.
A cache that cannot be used (not a folder, not writable, cannot be created) costs one warning naming it: this
process then compiles into a temporary folder (docs/compiler.md, "The kernel cache")."""
from __future__ import annotations

import atexit
import base64
import hashlib
import json
import os
import re
import shutil
import tempfile
import types
import warnings
from pathlib import Path

import numpy as np
import scipy.special

# Whether Triton may contract a * b + c into one fused multiply-add, set on every launch and ahead-of-time compile
# rather than left to Triton's default (enabled up to 3.9, disabled from 3.10): off, each op rounds as it does op by
# op in torch and under the interpreter, so a kernel's values do not change with the Triton version.
FP_FUSION = False
_loaded: dict[tuple[str, str], object] = {}
_compiled: dict[tuple[str, int], dict] = {}
_fallback: list[Path] = []  # the temporary folder used once the configured cache proved unusable


def cache_dir() -> Path:
    if _fallback:
        return _fallback[0]
    root = os.environ.get("GRAPHC_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "graphc")
    return Path(root)


def store(relative: str, data: bytes) -> Path:
    """Write data at cache_dir()/relative, atomically. An entry that is a folder is replaced; a cache that cannot be
    written switches this process to a temporary folder, with one warning naming the unusable path."""
    path = cache_dir() / relative
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        write_atomic(path, data)
    except OSError as e:
        if _fallback:
            raise
        _fallback.append(Path(tempfile.mkdtemp(prefix="graphc-cache-")))
        atexit.register(shutil.rmtree, _fallback[0], ignore_errors=True)  # this process's only: not left in /tmp
        warnings.warn(f"graphc: the kernel cache at {path.parent} cannot be used ({type(e).__name__}: {e}); this "
                      f"process compiles into {_fallback[0]} instead (set GRAPHC_CACHE_DIR to a writable folder)",
                      RuntimeWarning, stacklevel=2)
        return store(relative, data)
    return path


def digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def write_atomic(path: Path, data: bytes) -> None:
    """Write data to path via a temporary file in the same folder and a rename (atomic on POSIX)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def source_file(source: str) -> Path:
    """The cached file holding this kernel source, (re)written when missing or not byte-identical."""
    relative = f"kernels/k{digest(source)}.py"
    try:
        intact = (cache_dir() / relative).read_text() == source
    except (OSError, UnicodeDecodeError):
        intact = False
    return cache_dir() / relative if intact else store(relative, source.encode())


# The names generated code numbers by IR node id (values v12, v12_w; accumulators acc12; scratch total_part12), and
# the group id that ends a kernel's name: two groups that differ only in these compute the same thing.
_NODE_IDS = re.compile(r"\b(v|acc|total_part|row_part|total)(\d+)")
_COMMENT = re.compile(r"#.*$")


def normalise(source: str, name: str, signature: dict | None = None) -> tuple[str, str, dict]:
    """(source, name, signature) as compiled and cached: comments dropped, node ids renumbered in order of first
    appearance, the kernel named by its ops only (`matmul_add_relu_7` -> `matmul_add_relu_kernel`). Kernels that differ
    only in names, numbering and comments (the same layer in each of N transformer blocks) normalise to one text,
    so they are compiled, cached and loaded once. A normalised kernel normalises to itself."""
    ids: dict[str, str] = {}

    def renumber(m: re.Match) -> str:
        return m.group(1) + ids.setdefault(m.group(2), str(len(ids)))

    short = re.sub(r"(_kernel)?(_\d+)?$", "", name) + "_kernel"  # never a builtin's name (a one-op `sum` kernel)
    lines = []
    for line in source.splitlines():
        line = _COMMENT.sub("", line).rstrip()  # generated code has no '#' inside strings
        if line:
            lines.append(_NODE_IDS.sub(renumber, line))
    text = "\n".join(lines).replace(f"def {name}(", f"def {short}(", 1) + "\n"
    sig = {_NODE_IDS.sub(renumber, k): v for k, v in (signature or {}).items()}
    return text, short, sig


def load(source: str, name: str, backend: str):
    """The launchable kernel `name` defined by source: a JITFunction, or an InterpretedFunction for 'interpret'.
    Sources that normalise to one text share one kernel (and Triton compiles it once per specialisation)."""
    key = (source, backend)
    kernel = _loaded.get(key)
    if kernel is None:
        text, short, _ = normalise(source, name)
        kernel = _loaded.get((text, backend))
        if kernel is None:
            module = _execute(text, source_file(text), backend)
            kernel = getattr(module, short)
            if backend == "interpret":
                from triton.runtime.interpreter import InterpretedFunction

                module.libdevice, module.range = InterpreterLibdevice, _interpreter_range
                _splat_as_declared()
                _bfloat16_rounds_to_nearest_even()
                kernel = InterpretedFunction(kernel.fn)
        _loaded[key] = _loaded[(text, backend)] = kernel
    return kernel


def _execute(source: str, path: Path, backend: str) -> types.ModuleType:
    """The kernel module: source compiled in memory with path as its file name (triton.jit reads the function's
    source back from that file), so no bytecode file is read or written."""
    module = types.ModuleType(f"graphc_kernel_{path.stem}_{backend}")
    module.__file__ = str(path)
    exec(compile(source, str(path), "exec"), module.__dict__)  # noqa: S102 (graphc's own generated kernel source)
    return module


def aot(source: str, name: str, signature: dict, constexprs: dict, arch: int) -> dict:
    """{'ptx': str, 'cubin': bytes} for sm_<arch>, compiled with no GPU present and cached on disk (by the normalised
    source: kernels that differ only in names, numbering and comments share one entry)."""
    text, short, sig = normalise(source, name, signature)
    key = aot_key(text, sig, constexprs, arch)
    if (key, arch) not in _compiled:
        entry = _read_entry(cache_dir() / "aot" / f"{key}.json")
        _compiled[(key, arch)] = entry if entry is not None else _compile(text, short, sig, constexprs, arch, key)
    return _compiled[(key, arch)]


def aot_key(text: str, signature: dict, constexprs: dict, arch: int) -> str:
    return digest(text, json.dumps(signature), json.dumps(constexprs), str(arch), f"fp_fusion={FP_FUSION}")


def _compile(text: str, name: str, signature: dict, constexprs: dict, arch: int, key: str) -> dict:
    """Compile a normalised kernel for sm_<arch> with triton.compile and store the entry in the disk cache."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    fn = getattr(_execute(text, source_file(text), "aot"), name)
    sig = dict(signature, **{k: "constexpr" for k in constexprs})
    compiled = triton.compile(ASTSource(fn=fn, signature=sig, constexprs=constexprs),
                              target=GPUTarget("cuda", arch, 32), options={"enable_fp_fusion": FP_FUSION})
    entry = {"ptx": compiled.asm["ptx"], "cubin": compiled.asm["cubin"]}
    blob = {"ptx": entry["ptx"], "cubin": base64.b64encode(entry["cubin"]).decode()}
    blob["sha256"] = digest(blob["ptx"], blob["cubin"])
    store(f"aot/{key}.json", json.dumps(blob).encode())
    return entry


def _read_entry(path: Path) -> dict | None:
    """A cached AOT entry, or None when it is missing or corrupt (then it is rebuilt)."""
    try:
        blob = json.loads(path.read_text())
        if blob["sha256"] != digest(blob["ptx"], blob["cubin"]):
            return None
        return {"ptx": blob["ptx"], "cubin": base64.b64decode(blob["cubin"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def unload(backend: str) -> None:
    """Forget the kernels loaded for backend: the next launch loads (and the JIT specialises) anew."""
    for key in [k for k in _loaded if k[1] == backend]:
        del _loaded[key]


def reset() -> None:
    """Drop the in-memory caches and forget a fallback folder (the disk cache stays)."""
    _loaded.clear()
    _compiled.clear()
    _fallback.clear()


def _splat_as_declared() -> None:
    """Make the interpreter's splat give the element type it is asked for, as compiled code does. The interpreter
    tags a scalar comparison with its operands' type (int32 for `b0 == 0`), so broadcasting it into a block
    (`mask & (b0 == 0)`, a store guarded by a per-program index) made an int32 block, which Triton 3.9 rejects as a
    mask ('mask has unsupported dtype'). Idempotent; the wrapped method is Triton's own."""
    from triton.runtime import interpreter

    builder = interpreter.InterpreterBuilder
    splat = builder.create_splat
    if getattr(splat, "declared_type", False):
        return

    def create_splat(self, ret_ty, arg):
        out = splat(self, ret_ty, arg)
        return interpreter.TensorHandle(out.data.astype(interpreter._get_np_dtype(ret_ty), copy=False), ret_ty.scalar)

    create_splat.declared_type = True
    builder.create_splat = create_splat


def _bfloat16_rounds_to_nearest_even() -> None:
    """Make the interpreter round float32 to bfloat16 to nearest even, as compiled code (`cvt.rn.bf16.f32`) and
    torch do: it truncates, so `x.bfloat16() + 1` came out one bfloat16 step off eager's under the interpreter.
    The interpreter holds bfloat16 values as uint16 bits; ml_dtypes rounds. Idempotent; Triton's own method
    handles every other conversion."""
    import ml_dtypes
    import triton.language as tl
    from triton.runtime import interpreter

    builder = interpreter.InterpreterBuilder
    cast = builder.cast_impl
    if getattr(cast, "rounds_to_nearest_even", False):
        return

    def cast_impl(self, src, dst_type):
        if src.dtype.scalar == tl.float32 and dst_type.scalar == tl.bfloat16:
            return interpreter.TensorHandle(src.data.astype(ml_dtypes.bfloat16).view(np.uint16), dst_type.scalar)
        return cast(self, src, dst_type)

    cast_impl.rounds_to_nearest_even = True
    builder.cast_impl = cast_impl


def _interpreter_range(*bounds):
    """range() over kernel arguments: the interpreter holds scalars as 1-element arrays, which numpy 2 no longer
    converts with int(), so take their item."""
    return range(*(int(b.handle.data.item()) if hasattr(b, "handle") else int(b) for b in bounds))


def _numpy_stand_in(fn):
    """A libdevice function as the interpreter computes its own tl.erf: a numpy function over the block's values
    (the result has the type of the widest operand, to which libdevice broadcasts the others)."""
    def call(*args):
        import triton.language as tl
        from triton.runtime import interpreter

        blocks = [a for a in args if isinstance(a, tl.tensor)]
        widest = max(blocks, key=lambda a: a.handle.data.size)
        values = fn(*(a.handle.data if isinstance(a, tl.tensor) else a for a in args))
        data = np.asarray(values).astype(widest.handle.data.dtype, copy=False)
        return tl.tensor(interpreter.TensorHandle(data, widest.handle.dtype), widest.type)

    return staticmethod(call)


class InterpreterLibdevice:
    """Stand-ins for the libdevice functions kernels call, written with tl ops the interpreter implements, or with
    numpy where none fits."""

    tan, asin, acos, atan, atan2 = map(_numpy_stand_in, (np.tan, np.arcsin, np.arccos, np.arctan, np.arctan2))
    sinh, cosh, asinh, acosh, atanh = map(_numpy_stand_in, (np.sinh, np.cosh, np.arcsinh, np.arccosh, np.arctanh))
    log2, log10, exp2, hypot = map(_numpy_stand_in, (np.log2, np.log10, np.exp2, np.hypot))
    tanh, log1p, expm1, pow = map(_numpy_stand_in, (np.tanh, np.log1p, np.expm1, np.power))  # C99's special values
    erfc = _numpy_stand_in(scipy.special.erfc)
    lgamma = _numpy_stand_in(lambda x: np.where(x == -np.inf, np.inf, scipy.special.gammaln(x)))  # as C's lgamma

    @staticmethod
    def erf(x):
        import triton.language as tl

        return tl.erf(x)

    @staticmethod
    def floor(x):
        import triton.language as tl

        return tl.floor(x)

    @staticmethod
    def ceil(x):
        import triton.language as tl

        return tl.ceil(x)

