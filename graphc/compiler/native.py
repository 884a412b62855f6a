"""Native kernels for the `cpu` backend: a plan's C kernels (render_c.py) built by the system C compiler in a
background thread and loaded with ctypes.

The compiler is $CC, else `cc`. Flags: -O2 -march=native -fno-math-errno (so sqrt and the vector math calls
inline; NaN and inf keep their meaning, unlike -ffast-math) -ffp-contract=off (each op rounds, as eagerly), plus
-fopenmp and glibc's vector math library (-lmvec) when a probe build shows they work. A built library is cached
on disk (GRAPHC_CACHE_DIR/native/) under a hash of its source, the compiler's --version, the flags and the CPU
(the code is built for this CPU); an index file per plan names the library holding its kernels. Everything about a
build happens in the background thread once it is requested: rendering the plan's C (render_c.render_unit), its
digest, the look-up of an earlier build on disk, the compiler run (a subprocess, so the GIL stays free and the
plan's calls go on with numpy meanwhile: tiered.py). A plan's build is requested when the plan runs a second time
(a function called once never pays for a build, as a JIT compiles what is hot); mode="max-autotune" builds at once
and waits. Plans that wait at the same time are built together, as one translation unit (one compiler start for
the forward and backward of a step). A missing or failing compiler costs one warning; the plan then keeps running
with numpy.

One thread pool: a matmul kernel calls a BLAS (gemm(): on Intel CPUs with torch imported, the MKL inside torch,
through its Fortran ?gemm_; else numpy's OpenBLAS, its cblas ?gemm; both found by symbol through ctypes) from its own
OpenMP threads, and the BLAS runs on one thread while a plan runs (one_blas_thread): a BLAS's threads and OpenMP's
both spin while idle, and two pools on the same cores slow each other down. Where there is neither (numpy's BLAS is
Accelerate, or an OpenBLAS without cblas), products are numpy's matmul."""
from __future__ import annotations

import atexit
import contextlib
import ctypes
import itertools
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import warnings
from functools import cache as once
from pathlib import Path

from . import cache
from .logs import log, logs_on

# -O2: `omp simd` loops are vectorised at -O2 too, and building takes half as long as at -O3;
# -ffp-contract=off: a * b + c rounds twice, as the eager ops do (a fused multiply-add would round once);
# -fno-trapping-math: a float comparison may raise no FP exception flag, so GCC turns the NaN-propagating max/min
# selects into vector blends; with it on, no loop holding a clamp or relu was vectorised (elementwise_chain: 53 ms,
# against torch's 12). Values, NaN and inf are unchanged: only exception flags, which torch does not expose, differ
BASE_FLAGS = ["-O2", "-march=native", "-fno-math-errno", "-fno-trapping-math", "-ffp-contract=off", "-fPIC",
              "-shared"]
# where the CPU has AVX-512, GCC's -march=native still prefers 256-bit vectors (a choice made for older Xeons'
# clock penalty); torch's kernels use 512. On a Xeon with AVX-512 (docs/benchmarks.md, "The tenth session")
# elementwise_chain took 1.78 -> 1.03 ms and softmax 0.44 -> 0.34 ms with 512-bit vectors; elsewhere the flag changes
# nothing, and a compiler without it builds without it
WIDE_VECTORS = ["-mprefer-vector-width=512"]
PROBE = "#include <omp.h>\n#include <math.h>\nint graphc_probe(void) { return omp_get_max_threads(); }\n"
# the math functions glibc's vector math library (libmvec) has simd versions of: since glibc 2.22, and since 2.35
VECTOR_MATH = (("exp", "log", "sin", "cos", "pow"),
               ("exp", "log", "sin", "cos", "pow", "expm1", "log1p", "tanh", "erf"))
_pending: list[Library] = []  # libraries waiting for the build thread
_worker: threading.Thread | None = None
_lock = threading.Lock()
_noticed: set[str] = set()


def compiler() -> str | None:
    """The C compiler's path, or None when there is none."""
    return shutil.which(os.environ.get("CC") or "cc")


class NativeUnavailable(RuntimeError):
    """The C compiler is missing or cannot build the kernels."""


@once
def probe() -> tuple[tuple | None, NativeUnavailable | None]:
    """(the toolchain, None) or (None, why there is none): probed once per process."""
    try:
        return _toolchain(), None
    except NativeUnavailable as e:
        return None, e


def toolchain() -> tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(compiler path, its --version, flags, libraries to link, math functions with vector versions);
    NativeUnavailable when there is none."""
    found, error = probe()
    if error is not None:
        raise error
    return found


def _toolchain() -> tuple[str, str, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    cc = compiler()
    if cc is None:
        raise NativeUnavailable("no C compiler found (set CC or install cc)")
    try:
        version = subprocess.run([cc, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError) as e:
        raise NativeUnavailable(f"{cc} --version failed: {e}") from e
    plain = "int graphc_probe(void) { return 0; }\n"
    if not _builds(cc, plain, BASE_FLAGS, []):
        raise NativeUnavailable(f"{cc} cannot build a shared library with {' '.join(BASE_FLAGS)}")
    flags = BASE_FLAGS + WIDE_VECTORS * _builds(cc, plain, BASE_FLAGS + WIDE_VECTORS, [])
    flags += ["-fopenmp"] * _builds(cc, PROBE, flags + ["-fopenmp"], [])
    libs = ["-lmvec", "-lm"] if _builds(cc, plain, flags, ["-lmvec", "-lm"]) else ["-lm"]
    simd = ()
    if "-fopenmp" in flags and "-lmvec" in libs:
        simd = next((names for names in reversed(VECTOR_MATH) if _builds(cc, _vector_probe(names), flags, libs,
                                                                         load=True)), ())
    return cc, version, tuple(flags), tuple(libs), simd


_scratch_dirs: set[str] = set()  # folders of builds under way, removed at exit if the build thread is still at one


@contextlib.contextmanager
def scratch(prefix: str):
    """A temporary folder for a compiler run, removed afterwards; a build the interpreter's exit interrupts (the
    build thread is a daemon) leaves it to the exit handler, where TemporaryDirectory's finalizer warned."""
    path = tempfile.mkdtemp(prefix=prefix)
    _scratch_dirs.add(path)
    try:
        yield path
    finally:
        _scratch_dirs.discard(path)
        shutil.rmtree(path, ignore_errors=True)


@atexit.register
def _remove_scratch_dirs() -> None:
    for path in list(_scratch_dirs):
        shutil.rmtree(path, ignore_errors=True)


def _vector_probe(names: tuple[str, ...]) -> str:
    """A library whose simd loops call the vector versions of these math functions (it loads only if libmvec has
    them all)."""
    from .render_c import simd_declarations

    calls = " + ".join(f"{n}f(x[i]{', x[i]' if n == 'pow' else ''})" for n in names)
    return (f"#include <math.h>\n{simd_declarations(names)}\nvoid graphc_probe(float *x, int n) {{\n"
            f"#pragma omp simd\n  for (int i = 0; i < n; i++) x[i] = {calls};\n}}\n")


def _builds(cc: str, source: str, flags: list[str], libs: list[str], load: bool = False) -> bool:
    """Whether cc builds source into a shared library (and, when load, the library loads: its symbols resolve)."""
    with scratch("graphc-probe-") as tmp:
        c, so = Path(tmp, "probe.c"), Path(tmp, "probe.so")
        c.write_text(source)
        try:
            done = subprocess.run([cc, *flags, str(c), "-o", str(so), *libs], capture_output=True, timeout=120)
            if load and done.returncode == 0:
                ctypes.CDLL(str(so))
        except (OSError, subprocess.SubprocessError):
            return False
        return done.returncode == 0 and so.exists()


@once
def cpu_identity() -> str:
    """What -march=native builds for: the machine and its CPU's feature flags."""
    try:
        flags = next((line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")),
                     "")
    except OSError:
        flags = ""
    return f"{platform.machine()} {flags}"


class Library:
    """One plan's kernels. .functions maps kernel names to ctypes functions once built and loaded (None until
    then); .error says why a build failed; .key is the digest of the kernels' rendered C, known once the build
    thread has rendered them. Plans waiting at the same time are built together, as one translation unit (one
    compiler run), by a background thread."""

    def __init__(self, kernels: list, templates: tuple[str, ...] = ()):
        self.kernels, self.templates = kernels, templates
        self.key: str | None = None
        self.functions: dict | None = None
        self.handle: ctypes.CDLL | None = None  # the loaded library (the templates' functions: render_c_attention)
        self.error: str | None = None
        self.done = threading.Event()
        self.requested = False

    def request(self) -> None:
        """Queue the build (once) for the background thread."""
        with _lock:
            if not self.requested:
                self.requested = True
                _pending.append(self)
                _start_worker()

    def symbol(self, name: str) -> str:
        """The kernel's exported name: unique across the plans a build combines."""
        return f"{name}_{self.key[:12]}"

    def wait(self) -> None:
        """Block until the build is done or failed (requesting it first: an unrequested build never finishes)."""
        self.request()
        self.done.wait()

    def load(self, path: Path) -> None:
        lib = ctypes.CDLL(str(path))
        functions = {}
        for kernel in self.kernels:
            fn = getattr(lib, self.symbol(kernel.name))
            fn.argtypes, fn.restype = [ctypes.c_void_p, ctypes.c_void_p], None
            functions[kernel.name] = fn
        self.handle, self.functions = lib, functions
        keep_freed_memory()
        self.done.set()

    def fail(self, error: str) -> None:
        self.error = error
        self.done.set()

    def take(self, other: Library) -> None:
        """The outcome of other's build, a plan with the same kernels."""
        if other.functions is not None:
            self.handle, self.functions = other.handle, other.functions
            self.done.set()
        else:
            self.fail(other.error)


def library(kernels: list, wait: bool, templates: tuple[str, ...] = ()) -> Library:
    """The library of a plan's kernels (render_c.Kernel) and the C sources of its kernel templates, not built yet:
    its build (rendering included) runs in the background thread once requested (Library.request; a tiered plan asks
    on its second run), or now when wait."""
    lib = Library(kernels, templates)
    if wait:
        lib.wait()
    return lib


def _built(key: str) -> Path | None:
    """The cached shared library holding a plan's kernels, if an earlier build made one."""
    try:
        path = Path((cache.cache_dir() / "native" / f"{key}.index").read_text().strip())
    except (OSError, UnicodeDecodeError):
        return None
    return path if path.is_file() else None


def _start_worker() -> None:
    global _worker
    if _worker is None:
        _worker = threading.Thread(target=_work, name="graphc-cc", daemon=True)
        _worker.start()


def _work() -> None:
    """Build every waiting plan, together, until none waits."""
    global _worker
    while True:
        with _lock:
            batch = list(_pending)
            _pending.clear()
            if not batch:
                _worker = None
                return
        _build_each(batch)


def _build_each(batch: list[Library]) -> None:
    """Render each plan's C and load an earlier build of it from disk; build the others as one library (one build
    per distinct key: identical plans share it); if that fails, each plan alone, so one failing plan keeps only
    itself on numpy."""
    from .render_c import render_unit

    todo: dict[str, list[Library]] = {}
    for lib in batch:
        try:
            lib.key = cache.digest(render_unit(lib.kernels, [k.name for k in lib.kernels], (), lib.templates))
        except Exception as e:  # noqa: BLE001 (a renderer bug leaves this plan on numpy, with one notice)
            lib.fail(f"rendering its C failed: {type(e).__name__}: {e}")
            continue
        built = _built(lib.key)
        if built is not None:
            try:
                lib.load(built)
                continue
            except (OSError, AttributeError):  # a stale library (another build, another C library): built anew
                pass
        todo.setdefault(lib.key, []).append(lib)
    if not todo:
        return
    try:
        path = _build([libs[0] for libs in todo.values()])
        for libs in todo.values():
            for lib in libs:
                lib.load(path)
    except Exception as e:  # noqa: BLE001 (any failure leaves these plans on numpy, with one notice)
        if len(todo) > 1 and probe()[1] is None:
            for libs in todo.values():
                _build_each(libs[:1])
                for lib in libs[1:]:
                    lib.take(libs[0])
            return
        for libs in todo.values():
            for lib in libs:
                lib.fail(f"{type(e).__name__}: {e}")


def _build(batch: list) -> Path:
    """Compile the plans of batch into one shared library (cached on disk); each plan's key points at it."""
    from .render_c import render_unit

    cc, version, flags, libs, simd = toolchain()
    source = render_unit([k for lib in batch for k in lib.kernels],
                         [lib.symbol(k.name) for lib in batch for k in lib.kernels], simd,
                         tuple(t for lib in batch for t in lib.templates))
    key = cache.digest(source, cc, version, " ".join(flags + libs), cpu_identity())
    path = cache.cache_dir() / "native" / f"k{key}.so"
    if not path.is_file():
        with scratch("graphc-cc-") as tmp:
            c, so = Path(tmp, f"k{key}.c"), Path(tmp, f"k{key}.so")
            c.write_text(source)
            done = subprocess.run([cc, *flags, str(c), "-o", str(so), *libs], capture_output=True, text=True,
                                  timeout=600)
            if done.returncode != 0:
                raise NativeUnavailable(f"{cc} failed on the kernels of these plans, a graphc code generation bug "
                                        f"(please report it): {done.stderr.strip()[-2000:]}")
            path = cache.store(f"native/k{key}.so", so.read_bytes())
    for lib in batch:
        cache.store(f"native/{lib.key}.index", str(path).encode())
    return path


# the BLAS interfaces the kernels call (render_c's gc_?gemm_call): cblas with 32-bit or 64-bit integers, Fortran
CBLAS32, INT64, FORTRAN32 = 0, 1, 2


class Blas:
    """A BLAS as the kernels call it: the addresses of its ?gemm by product dtype name, its interface (CBLAS32,
    INT64: cblas with 64-bit integers, as numpy's OpenBLAS wheels; FORTRAN32: Fortran ?gemm_), and two functions:
    its thread count's getter, and a setter returning what restores the count it replaced."""

    def __init__(self, gemm: dict[str, int], interface: int, get_threads, set_threads):
        self.gemm, self.interface = gemm, interface  # gemm: product dtype name -> function address
        self.get_threads, self.set_threads = get_threads, set_threads


@once
def blas() -> Blas | None:
    """numpy's OpenBLAS (threadpoolctl finds the library numpy loaded; symbol names differ between builds by a prefix
    and a suffix: scipy_cblas_sgemm64_, cblas_sgemm64_, cblas_sgemm), or None, logged once (GRAPHC_LOGS=code), where
    numpy's BLAS is not an OpenBLAS with cblas."""
    from threadpoolctl import threadpool_info

    found = [lib for lib in threadpool_info() if lib.get("internal_api") == "openblas"]
    found.sort(key=lambda lib: "numpy" not in lib["filepath"])  # numpy's own before scipy's
    for info in found:
        try:
            lib = ctypes.CDLL(info["filepath"])
        except OSError:
            continue
        for prefix, suffix in itertools.product(("scipy_", ""), ("64_", "_64", "")):
            names = {n: f"{prefix}{n}{suffix}" for n in ("cblas_sgemm", "cblas_dgemm", "openblas_get_num_threads",
                                                         "openblas_set_num_threads", "openblas_get_config")}
            if all(hasattr(lib, name) for name in names.values()):
                config = getattr(lib, names["openblas_get_config"])
                config.restype = ctypes.c_char_p
                get_threads, set_threads = getattr(lib, names["openblas_get_num_threads"]), \
                    getattr(lib, names["openblas_set_num_threads"])
                get_threads.restype, set_threads.argtypes = ctypes.c_int, [ctypes.c_int]

                def replace(threads: int, get=get_threads, set=set_threads):
                    before = get()
                    set(threads)
                    return lambda: set(before)
                gemm = {dt: ctypes.cast(getattr(lib, names[f"cblas_{x}gemm"]), ctypes.c_void_p).value
                        for dt, x in (("float32", "s"), ("float64", "d"))}
                return Blas(gemm, INT64 if b"USE64BITINT" in (config() or b"") else CBLAS32, get_threads, replace)
    if logs_on("code"):
        log.info("code] numpy's BLAS is not an OpenBLAS with cblas (threadpoolctl found "
                 f"{[lib.get('internal_api') for lib in threadpool_info()]})")
    return None


@once
def torch_mkl() -> Blas | None:
    """The MKL inside torch's libtorch_cpu (its Fortran sgemm_ and dgemm_, and MKL's per-thread thread count), where
    torch is already imported and the CPU is Intel's; None elsewhere. MKL runs generic code on other vendors' CPUs
    (on an AMD EPYC it took 65.7 GFLOP/s where OpenBLAS took 89.2); on a Xeon with AVX-512 it is 5-13% faster than
    numpy's OpenBLAS on a training step's products (docs/benchmarks.md, "The tenth session"), and it is the BLAS torch
    eager's products use. Loading libtorch_cpu only for it would cost more than it saves, so an unimported torch is
    not imported."""
    torch = sys.modules.get("torch")
    if torch is None or platform.machine() not in ("x86_64", "AMD64") or "GenuineIntel" not in cpu_vendor():
        return None
    try:
        lib = ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
        # the C functions (mkl_service.h's macros name these); the lower-case symbols are the Fortran ones
        get_threads, local = lib.MKL_Get_Max_Threads, lib.MKL_Set_Num_Threads_Local
        gemm = {dt: ctypes.cast(getattr(lib, f"{x}gemm_"), ctypes.c_void_p).value
                for dt, x in (("float32", "s"), ("float64", "d"))}
    except (OSError, AttributeError):  # another platform's build, without MKL
        return None
    get_threads.restype, local.restype, local.argtypes = ctypes.c_int, ctypes.c_int, [ctypes.c_int]

    def replace(threads: int):  # the calling thread's count; its previous one (0: MKL's global count) after
        before = local(threads)
        return lambda: local(before)
    return Blas(gemm, FORTRAN32, get_threads, replace)


def gemm() -> Blas | None:
    """The BLAS the kernels call for their products: torch's MKL where torch_mkl finds it, else numpy's OpenBLAS
    (blas); None where neither is there (the kernels then read their products from numpy's matmul)."""
    return torch_mkl() or blas()


def cpu_vendor() -> str:
    """The CPU's vendor_id from /proc/cpuinfo ("GenuineIntel", "AuthenticAMD"), or "" where there is none."""
    try:
        return next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("vendor_id")), "")
    except OSError:
        return ""


# glibc's mallopt parameters (malloc.h) and the values the cpu backend sets: blocks up to 32 MB (glibc's own ceiling
# for its adaptive threshold) come from the heap, and up to 256 MB of freed heap stays mapped
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
HEAP_LIMITS = ((M_MMAP_THRESHOLD, 32 << 20), (M_TRIM_THRESHOLD, 256 << 20))


@once
def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory mapped for the next allocation (once per process, when a plan's native
    kernels load); whether it did (False on another C library). By default glibc returns a freed block of more than
    its mmap threshold, and the top of its heap past the trim threshold, to the system, so every training step's
    new activations and gradients (arrays of 1-16 MB, allocated fresh by each kernel step and freed when their last
    reader ran) cost page faults again: 9,000-21,000 faults per step of the GPT in benchmarks/training_scaling.py,
    10-40 ms of its 330-370 ms. Freed memory is then reused by the process instead (its resident size stays at its
    peak; what numpy allocates is unchanged), as the jemalloc and tcmalloc that PyTorch's CPU performance guide
    recommends do."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in HEAP_LIMITS)


@contextlib.contextmanager
def one_blas_thread():
    """numpy's OpenBLAS, and the kernels' BLAS (gemm), on one thread inside the block (a plan's run: its products
    run on OpenMP's threads), their thread counts restored after."""
    restore = [found.set_threads(1) for found in {id(b): b for b in (blas(), gemm()) if b is not None}.values()
               if found.get_threads() != 1]
    try:
        yield
    finally:
        for undo in restore:
            undo()


def notice(why: str, stacklevel: int = 4) -> None:
    """Warn once per process and reason that native kernels are not available (the plan runs with numpy)."""
    if why not in _noticed:
        _noticed.add(why)
        warnings.warn(f"graphc: the cpu backend's native kernels are not available ({why}); the plans concerned run "
                      f"with numpy instead", RuntimeWarning, stacklevel=stacklevel)
