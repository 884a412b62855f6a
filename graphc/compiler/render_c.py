"""The C renderer: the same fused groups as render_triton*.py, as C functions for the `cpu` backend.

Every kernel of a plan goes into one translation unit (render_unit), compiled once by the system C compiler
(native.py). A kernel is `void name(void *const *p, const int64_t *a)`: p holds the operand and output pointers,
a the sizes, the strides (in elements) and any extra integers, so one build serves every batch size and layout.
Loops: rows of the iteration space (its leading dims) run in parallel with OpenMP, the last dim (or a row's reduced
elements) in an `omp simd` loop; math calls are declared `omp declare simd`, so GCC calls glibc's vector math
library (libmvec) without -ffast-math, and NaN and inf behave as in torch. fp16/bf16 values are computed in fp32
and rounded when stored, as the numpy path does. A matmul group's kernel computes its product with BLAS inside its own
OpenMP region (render_gemm), then its epilogue over the product's rows on the same threads: the cpu backend keeps
one thread pool, OpenMP's (numpy's OpenBLAS runs on one thread while a plan runs: native.blas)."""
from __future__ import annotations

import ast
import importlib.util
import math
import re
from collections import Counter

import numpy as np

from .. import dtypes
from .fusion import Group, load_key, padded
from .ir import Node
from .kernel import (
    Dialect,
    Emitter,
    Scope,
    invariant,
    invariant_scope,
    kernel_name,
    parse,
    reduction_identity,
    split_index,
)
from .lowering import lowering
from .views import view_chain

STREAMS = 4  # independent float partial sums per simd lane in a pass over a row (see streamed_pass)
# an elementwise kernel whose last dim (at capture) is shorter walks its space flat where the strides allow it (see
# elementwise_body); longer rows gain nothing from it (16384x64: the same time), and the copy lengthens the build
SHORT_ROW = 64
PARALLEL_MIN = 32768  # fewest elements a kernel splits across threads (below that, starting threads costs more)
GEMM_PARALLEL_MIN = 262144  # fewest multiply-adds (M * N * K) a product splits across threads (as OpenBLAS's own)
GEMM_TYPES = {"float32": "s", "float64": "d"}  # product dtypes computed by BLAS in the kernel: their ?gemm
TYPES = {"bool": "uint8_t", "uint8": "uint8_t", "int8": "int8_t", "int16": "int16_t", "int32": "int32_t",
         "int64": "int64_t", "float16": "_Float16", "bfloat16": "uint16_t", "float32": "float", "float64": "double"}
# the numpy type of each C compute type
NUMPY_TYPES = {"double": "float64", "float": "float32", "int64_t": "int64", "int32_t": "int32", "int16_t": "int16",
               "int8_t": "int8", "uint8_t": "uint8", "gc_bool": "bool"}
# math primitives: float and double functions
MATH = {"exp": "exp", "expm1": "expm1", "log": "log", "log1p": "log1p", "sqrt": "sqrt", "sin": "sin", "cos": "cos",
        "tanh": "tanh", "erf": "erf", "floor": "floor", "ceil": "ceil", "pow": "pow", **{name: name for name in (
            "tan", "asin", "acos", "atan", "atan2", "sinh", "cosh", "asinh", "acosh", "atanh", "log2", "log10",
            "exp2", "erfc", "lgamma", "hypot")}}
# primitives costing more than a load and a store (every math function but rounding): a member calling one that
# several passes over a row need is kept in a row buffer (see CEmitter)
COSTLY = frozenset(MATH) - {"floor", "ceil"} | {"rsqrt"}
PRELUDE = r"""/* graphc: native CPU kernels (generated; each line names its op and the user's file:line) */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
/* math functions with simd versions in glibc's libmvec: `declare simd` lets the vectoriser call them (the
   -ffast-math route would also assume no NaN or inf, which torch semantics need) */
%(simd)s
/* maximum/minimum propagate NaN, as torch does (fmaxf would drop it) */
#define GC_MAX(a, b) (((a) > (b) || (a) != (a)) ? (a) : (b))
#define GC_MIN(a, b) (((a) < (b) || (a) != (a)) ? (a) : (b))
#define ROW_CHUNK 4096  /* elements of a row a pass sums in float before adding them to its double sum */
#define COLUMN_BLOCK 64  /* last-dim elements a column reduction's task accumulates side by side */
#define COLUMN_ROWS 128  /* rows a column reduction sums in float before adding them to its double sums */
#define GC_SIGN(a) (((a) > 0) - ((a) < 0))  /* 0 for NaN, as torch.sign */
/* bools are computed as ints and stored as bytes holding 0 or 1 (numpy's bool): GCC 12 vectorises no loop that
   converts, loads or stores a _Bool (a mask times a gradient, a one-hot of a target, relu's saved mask) */
typedef int gc_bool;
static inline float gc_from_bf16(uint16_t h) { uint32_t b = (uint32_t)h << 16; float f; memcpy(&f, &b, 4); return f; }
static inline uint16_t gc_to_bf16(float f) {  /* round to nearest even, NaN stays NaN */
  uint32_t b; memcpy(&b, &f, 4);
  if (f != f) return (uint16_t)((b >> 16) | 0x40);
  return (uint16_t)((b + 0x7fff + ((b >> 16) & 1)) >> 16);
}
static void *gc_row_buffer(int64_t n, size_t size) {  /* one thread's row buffer (a kernel has no way to fail) */
  void *b = malloc(n > 0 ? (size_t)n * size : 1);
  if (!b) { fputs("graphc: out of memory for a row buffer\n", stderr); abort(); }
  return b;
}
/* A matmul group's product with BLAS, in the kernel's own OpenMP region, each thread computing one block of it
   (rows, or columns when the product has fewer rows than columns: a weight gradient of a narrow layer) by a call of
   BLAS on one thread. g: [batches, rows M of a batch, N, K, A transposed, lda, B transposed, ldb, the BLAS interface
   (gc_?gemm_call)]; q: [A, B, the ?gemm function (a pointer from native.gemm(): nothing links against numpy's or
   torch's private libraries; NULL: the caller computed the product), per batch the element offsets of its A and B].
   The product is C-contiguous (batches, M, N). */
#ifdef _OPENMP
#include <omp.h>
#define GC_THREAD() omp_get_thread_num()
#define GC_THREADS() omp_get_num_threads()
#else
#define GC_THREAD() 0
#define GC_THREADS() 1
#endif
#define GEMM_ALIGN 16  /* rows or columns of a thread's block: a multiple of BLAS kernels' register tiles */
#define GC_GEMM_PARALLEL(g) ((double)(g)[0] * (g)[1] * (g)[2] * (g)[3] >= %(gemm_min)d)
#define GC_GEMM(T, X) \
typedef void (*gc_##X##gemm64)(int, int, int, int64_t, int64_t, int64_t, T, const T *, int64_t, const T *, int64_t, \
                               T, T *, int64_t); \
typedef void (*gc_##X##gemm32)(int, int, int, int32_t, int32_t, int32_t, T, const T *, int32_t, const T *, int32_t, \
                               T, T *, int32_t); \
typedef void (*gc_##X##gemm_fortran)(const char *, const char *, const int32_t *, const int32_t *, const int32_t *, \
                                     const T *, const T *, const int32_t *, const T *, const int32_t *, const T *, \
                                     T *, const int32_t *); \
/* C = alpha op(A) op(B) + beta C, all row-major, through a BLAS interface kind: 0 cblas with 32-bit integers, 1 \
   cblas with 64-bit integers (numpy's OpenBLAS), 2 Fortran ?gemm_ with 32-bit integers (the MKL inside torch, which \
   exports no cblas ?gemm), column-major: it computes C^T = op(B)^T op(A)^T from the same memory */ \
static void gc_##X##gemm_call(int64_t kind, void *fn, int ta, int tb, int64_t m, int64_t n, int64_t k, T alpha, \
                              const T *A, int64_t lda, const T *B, int64_t ldb, T beta, T *C, int64_t ldc) { \
  if (kind == 1) ((gc_##X##gemm64)fn)(101, ta ? 112 : 111, tb ? 112 : 111, m, n, k, alpha, A, lda, B, ldb, beta, C, \
                                      ldc); \
  else if (kind == 0) ((gc_##X##gemm32)fn)(101, ta ? 112 : 111, tb ? 112 : 111, (int32_t)m, (int32_t)n, (int32_t)k, \
                                           alpha, A, (int32_t)lda, B, (int32_t)ldb, beta, C, (int32_t)ldc); \
  else { \
    const char tA = ta ? 'T' : 'N', tB = tb ? 'T' : 'N'; \
    const int32_t M = (int32_t)n, N = (int32_t)m, K = (int32_t)k, la = (int32_t)lda, lb = (int32_t)ldb, \
                  lc = (int32_t)ldc; \
    ((gc_##X##gemm_fortran)fn)(&tB, &tA, &M, &N, &K, &alpha, B, &lb, A, &la, &beta, C, &lc); \
  } \
} \
static void gc_##X##gemm_block(void *const *q, const int64_t *g, T *C, int64_t r0, int64_t r1, int64_t c0, \
                               int64_t c1) { \
  const T *A = (const T *)q[0], *B = (const T *)q[1]; \
  const int64_t *off = (const int64_t *)q[3]; \
  const int64_t M = g[1], N = g[2], K = g[3], ta = g[4], lda = g[5], tb = g[6], ldb = g[7]; \
  for (int64_t r = r0; r < r1;) { /* the rows r0..r1 of the flattened (batch, M) rows, batch by batch */ \
    const int64_t b = r / M, m0 = r - b * M, m = M - m0 < r1 - r ? M - m0 : r1 - r; \
    const T *x = A + off[2 * b] + (ta ? m0 : m0 * lda), *y = B + off[2 * b + 1] + (tb ? c0 * ldb : c0); \
    T *z = C + r * N + c0; \
    gc_##X##gemm_call(g[8], q[2], (int)ta, (int)tb, m, c1 - c0, K, 1, x, lda, y, ldb, 0, z, N); \
    r += m; \
  } \
} \
static void gc_##X##gemm_part(void *const *q, const int64_t *g, T *C) { /* the calling thread's block */ \
  if (!q[2]) return; \
  const int64_t rows = g[0] * g[1], n = g[2], along = rows >= n ? rows : n; \
  const int64_t parts = GC_GEMM_PARALLEL(g) ? GC_THREADS() : 1, t = GC_THREAD(); \
  const int64_t chunk = ((along + parts - 1) / parts + GEMM_ALIGN - 1) / GEMM_ALIGN * GEMM_ALIGN; \
  const int64_t lo = t * chunk, hi = lo + chunk < along ? lo + chunk : along; \
  if (t >= parts || lo >= hi) return; \
  if (rows >= n) gc_##X##gemm_block(q, g, C, lo, hi, 0, n); \
  else gc_##X##gemm_block(q, g, C, 0, rows, lo, hi); \
}
GC_GEMM(float, s)
GC_GEMM(double, d)
"""


class CDialect(Dialect):
    comment = "//"
    terminator = ";"

    def compute_type(self, dt: dtypes.dtype) -> str:
        if dt is dtypes.bool_:
            return "gc_bool"
        return "float" if dt.is_low_precision else TYPES[dt.name]

    def storage_type(self, dt: dtypes.dtype) -> str:
        return TYPES[dt.name]

    def literal(self, value, ty: str | None = None) -> str:
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, bool) or value is None:
            return str(int(bool(value)))
        if isinstance(value, int) and ty not in ("float", "double"):
            return f"{value}LL" if not -2**31 <= value < 2**31 else str(value)
        value = float(value)
        suffix = "f" if ty == "float" else ""
        if math.isnan(value):
            return f"({'NAN' if suffix else '(double)NAN'})"
        if math.isinf(value):
            return f"({'-' if value < 0 else ''}{'INFINITY' if suffix else '(double)INFINITY'})"
        return f"{value!r}{suffix}" if value >= 0 else f"({value!r}{suffix})"

    def cast(self, value: str, ty: str) -> str:
        if ty == "gc_bool":
            return f"((gc_bool)(({value}) != 0))"  # as a cast to _Bool: any nonzero value, NaN included, is true
        return f"(({ty})({value}))"

    def constant(self, value: str, ty: str) -> str:
        return self.cast(value, ty)

    def round(self, value: str, dt: dtypes.dtype) -> str:
        if dt is dtypes.bfloat16:
            return f"gc_from_bf16(gc_to_bf16({value}))"
        return f"((float)(_Float16)({value}))"

    def binary(self, op: str, a: str, b: str, ty: str) -> str:
        floating = ty in ("float", "double")
        if op == "/" and not floating:
            return f"((double)({a}) / ({b}))"  # an integer op's division is true division, as in torch (floor of it)
        if op == "%" and floating:
            return f"fmod{'f' if ty == 'float' else ''}({a}, {b})"
        return f"({a} {op} {b})"

    def call(self, name: str, args: list[str], constants: list[bool], ty: str) -> str:
        if name in MATH:
            return f"{MATH[name]}{'f' if ty == 'float' else ''}({', '.join(args)})"
        if name == "rsqrt":
            return f"(1 / sqrt{'f' if ty == 'float' else ''}({args[0]}))"
        if name == "abs":
            return f"fabs{'f' if ty == 'float' else ''}({args[0]})" if ty in ("float", "double") else \
                f"(({args[0]}) < 0 ? -({args[0]}) : ({args[0]}))"
        if name == "where":
            return f"(({args[0]}) ? ({args[1]}) : ({args[2]}))"
        return {"maximum": "GC_MAX({0}, {1})", "minimum": "GC_MIN({0}, {1})", "sign": "GC_SIGN({0})"}[name].format(
            *args)

    def assign(self, var: str, value: str, ty: str) -> str:
        return f"const {ty} {var} = {value}"

    def load(self, var: str, ptr: str, offset: str, mask: str | None, dt: dtypes.dtype) -> str:
        read = f"{ptr}[{offset}]"
        if dt is dtypes.bfloat16:
            read = f"gc_from_bf16({read})"
        return f"const {self.compute_type(dt)} {var} = {read};"

    def store(self, ptr: str, offset: str, value: str, mask: list[str], dt: dtypes.dtype) -> str:
        stored = f"gc_to_bf16({value})" if dt is dtypes.bfloat16 else f"({self.storage_type(dt)})({value})"
        line = f"{ptr}[{offset}] = {stored};"
        return f"if ({' && '.join(mask)}) {line}" if mask else line


C = CDialect()


class RowPass(Scope):
    """The body of one pass over a row's reduced elements (flat index `col`)."""


class CEmitter(Emitter):
    """The shared emitter in C, plus:
    - broadcast operands: a load never indexes a dim along which it is broadcast (size 1 in its shape, which the
      plan's size guards keep), so a loop over that dim reads it as a constant, and the contiguous copy of the loop
      (unit_stride) serves a row of logits with a per-row target;
    - row buffers, as ATen's CPU softmax keeps exp(x - max) between its passes: a member in `buffered` is stored by
      the first pass over a row that computes it, and read back by the later passes instead of computed again.
      .recomputed counts, per member, the passes that compute it."""

    def __init__(self, group: Group, loads: list[tuple], outputs: list[Node], buffered: frozenset = frozenset()):
        super().__init__(group, C, loads, outputs)
        self.broadcast = {ptr: broadcast_dims(group, key) for key, ptr in self.loads.items()}
        self.buffered = buffered
        self.buffers: dict[Node, str] = {}  # members a pass has stored -> their buffer
        self.recomputed: Counter[Node] = Counter()

    def row_constant_load(self, x: Node, consumer: Node) -> bool:
        """Whether consumer reads x from memory broadcast along every reduced dim (one value per row)."""
        ptr = self.loads.get(load_key(self.group, x, consumer))
        return ptr is not None and set(self.group.dims) <= self.broadcast[ptr]

    def value(self, x, scope: Scope, consumer: Node | None = None) -> str:
        if isinstance(scope, RowPass) and isinstance(x, Node) and self.row_constant_load(x, consumer):
            return self.value(x, scope.parent, consumer)  # loaded once per row, before the pass
        return super().value(x, scope, consumer)

    def offset(self, ptr: str, scope: Scope) -> str:
        fixed = self.broadcast.get(ptr, ())
        terms = [f"{i} * {ptr}_s{d}" for d, i in enumerate(scope.index) if i is not None and d not in fixed]
        return " + ".join(terms) or scope.zero

    def member(self, n: Node, scope: Scope) -> str:
        if not isinstance(scope, RowPass):
            return super().member(n, scope)
        ty = C.compute_type(n.dtype)
        if n in self.buffers:
            var = f"v{n.id}{scope.tag}"
            scope.emit(f"const {ty} {var} = {self.buffers[n]}[col];  // {n.op.name}, kept by an earlier pass")
            return var
        self.recomputed[n] += 1
        var = super().member(n, scope)
        if n in self.buffered:
            self.buffers[n] = f"buf{n.id}"
            scope.emit(f"buf{n.id}[col] = {var};")
        return var


def broadcast_dims(group: Group, key: tuple) -> set[int]:
    """The dims of the iteration space along which a load (a group.loads key) is broadcast: where its shape is 1
    (runtime.place gives it stride 0 there), or a per-row consumer's reduced dims."""
    x, consumer = key
    if consumer is not None:
        return set(group.dims)
    return {d for d, size in enumerate(padded(tuple(x.shape), len(group.space))) if size == 1}


def costly(n: Node) -> bool:
    """Whether member n's lowering calls a COSTLY primitive."""
    expr = n.op.lowering.expr
    return expr is not None and any(isinstance(e, ast.Call) and e.func.id in COSTLY for e in ast.walk(parse(expr)))


class Kernel:
    """One C kernel of a plan: its name, body, kind, and the layout of its arguments; .source is the function.

    A matmul group's kernel with .gemm computes its product itself (render_gemm); its arguments then go on after the
    epilogue's: the pointers [A, B, the ?gemm function, the batch offsets] after the loads and outputs, the GEMM's
    integers after the sizes and strides. Without .gemm (fp16/bf16, integers, a 1-d operand) the caller passes the
    product (numpy's matmul) as the epilogue's last load."""

    def __init__(self, group: Group, name: str, body: str, loads: list[tuple], outputs: list[Node],
                 product: Node | None, gemm: bool = False, ints: int = 0):
        self.group, self.name, self.body, self.kind = group, name, body, group.kind
        self.loads, self.outputs = loads, outputs  # operands read through strides, outputs the kernel stores
        self.product = product  # a matmul group's matmul: computed by BLAS, read by the epilogue as an operand
        self.gemm, self.ints = gemm, ints  # ints: how many integers the epilogue reads (the GEMM's come after)
        self.source = self.function(name)

    def function(self, symbol: str) -> str:
        """The kernel as a C function exported as symbol."""
        if not self.gemm:
            return f"void {symbol}(void *const *p, const int64_t *a) {{\n{self.body}\n}}"
        return render_gemm(self, symbol)


def template_module(group: Group):
    """The module computing a kernel-template group on the cpu backend (render_c_attention.py for
    "attention.forward"), or None when the template has none (its ops then run one by one with numpy)."""
    name = f"{__package__}.render_c_{group.template.split('.')[0]}"
    return importlib.import_module(name) if importlib.util.find_spec(name) is not None else None


def generate(group: Group) -> Kernel:
    """The C kernel of a group."""
    product = group.matmul if group.kind == "matmul" else None
    loads = group.kernel_loads() + ([(product, None)] if product is not None else [])
    outputs = [n for n in group.outputs if n is not product]
    gemm = product is not None and product.dtype.name in GEMM_TYPES and all(x.ndim >= 2 for x in product.inputs)
    em = CEmitter(group, loads, outputs)
    name = kernel_name(group)
    if gemm:
        body = elementwise_body(group, em, team=True) if outputs else []
    else:
        body = (elementwise_body if group.kind != "reduction" else column_reduction_body if column_reduction(group)
                else reduction_body)(group, em)
    buffered = frozenset(n for n, passes in em.recomputed.items() if passes > 1 and costly(n))
    if buffered:  # rendered again, keeping those in row buffers
        em = CEmitter(group, loads, outputs, buffered)
        body = reduction_body(group, em)
    head = []
    restrict = "" if group.may_compute_in_place else "restrict "  # an output may then be an input: they alias
    for i, (key, ptr) in enumerate(em.loads.items()):
        ty = C.storage_type(key[0].dtype)
        head.append(f"  const {ty} *{restrict}{ptr} = (const {ty} *)p[{i}];")
    for i, (n, ptr) in enumerate(em.outputs.items()):
        ty = C.storage_type(n.dtype)
        head.append(f"  {ty} *{restrict}{ptr} = ({ty} *)p[{len(em.loads) + i}];")
    ints = [f"size{d}" for d in range(em.rank)] + em.strides()
    head += [f"  const int64_t {v} = a[{i}];" for i, v in enumerate(ints)]
    return Kernel(group, name, "\n".join(head + body), list(em.loads), outputs, product, gemm, len(ints))


def render_gemm(kernel: Kernel, symbol: str) -> str:
    """A matmul group's kernel computing its product (see Kernel): one OpenMP region in which each thread computes its
    block of the product with BLAS (gc_?gemm_part), then, after a barrier, the epilogue's rows are shared among the
    same threads (their own rows when the product was split by rows, still in cache). numpy's own matmul would run
    in OpenBLAS's thread pool, whose idle workers spin against OpenMP's on the same cores."""
    pointers = len(kernel.loads) + len(kernel.outputs)
    product = GEMM_TYPES[kernel.product.dtype.name]
    ty = C.storage_type(kernel.product.dtype)
    return "\n".join([
        f"static void {symbol}_epilogue(void *const *p, const int64_t *a) {{", kernel.body, "}",
        f"void {symbol}(void *const *p, const int64_t *a) {{",
        f"  const int64_t *g = a + {kernel.ints};  // {kernel.product.op.name} at {kernel.product.where}",
        f"  #pragma omp parallel if (GC_GEMM_PARALLEL(g) || g[0] * g[1] * g[2] >= {PARALLEL_MIN})", "  {",
        f"    gc_{product}gemm_part(p + {pointers}, g, ({ty} *)p[{len(kernel.loads) - 1}]);",
        "    #pragma omp barrier", f"    {symbol}_epilogue(p, a);", "  }", "}"])


def _parallel(count: str, rows: str, clauses: str = "", construct: str = "parallel for") -> str:
    """The pragma running a loop over rows on the OpenMP threads when the work is worth it."""
    return f"#pragma omp {construct} schedule(static){clauses} if ({rows} > 1 && {count} >= {PARALLEL_MIN})"


def elementwise_body(group: Group, em: Emitter, team: bool = False) -> list[str]:
    """Rows (the leading dims) in parallel, the last dim in a simd loop; a 1-d space is one parallel simd loop. team:
    the caller runs the body on every thread of a parallel region (render_gemm), which share the rows."""
    rank = em.rank
    lines: list[str] = []
    if rank == 0:
        scope = Scope(lines, [], None, "", "  ")
        for n in em.outputs:
            em.store(n, em.value(n, scope), scope)
        return lines
    last = f"i{rank - 1}"
    rows = " * ".join(f"size{d}" for d in range(rank - 1)) or "1"
    before = invariant_scope(group, rank)
    inner: list[str] = []
    scope = Scope(inner, [f"i{d}" for d in range(rank)], None, "", "    " if rank == 1 else "      ", before,
                  lambda n: invariant(group, n))
    for n in em.outputs:
        at = before if invariant(group, n) else scope
        em.store(n, em.value(n, at), at)
    loop = f"for (int64_t {last} = 0; {last} < size{rank - 1}; {last}++) {{"
    if rank == 1:
        return [*before.lines, *unit_stride([f"  {_parallel('size0', 'size0', construct='parallel for simd')}",
                                             f"  {loop}", *inner, "  }"], 0, "  ")]
    share = "#pragma omp for schedule(static)" if team else _parallel(f"n_rows * size{rank - 1}", "n_rows")
    by_rows = [f"  const int64_t n_rows = {rows};", f"  {share}", "  for (int64_t row = 0; row < n_rows; row++) {",
               *split_index([f"i{d}" for d in range(rank - 1)], "row", [f"size{d}" for d in range(rank - 1)], "    ",
                            "const int64_t ", ";"),
               *unit_stride(["    #pragma omp simd", f"    {loop}", *inner, "    }"], rank - 1, "    "), "  }"]
    varying = walked(em, tuple(range(rank)))
    if varying is None or group.space[-1] >= SHORT_ROW:
        return [*before.lines, *by_rows]
    # every operand one row-major block (flat_condition): one flat loop, as a 1-d space, instead of short rows of the
    # last dim, each costing an index split and a loop tail (x * y + x over 256x64x32x2: 18x torch's time)
    count = " * ".join(f"size{d}" for d in varying)
    share = "#pragma omp for simd schedule(static)" if team else _parallel(count, count, construct="parallel for simd")
    flat = [f"    {share}", f"    for (int64_t k = 0; k < {count}; k++) {{",
            *(f"      const int64_t i{d} = {'k' if d == varying[-1] else '0'};" for d in range(rank)), *inner, "    }"]
    return [*before.lines, f"  if ({flat_condition(inner, tuple(range(rank)), varying)}) {{",
            *unit_stride(flat, varying[-1], "    "), "  } else {", *by_rows, "  }"]


def unit_stride(lines: list[str], dim: int, indent: str) -> list[str]:
    """A loop over dim (its lines) twice: for operands contiguous along dim (strides of 1 the compiler knows let it
    use vector loads and stores; stride variables make it gather and scatter element by element) and as written,
    for any strides. The call picks one by the strides it gets."""
    pattern = re.compile(rf"\b((?:in|out)\d+)_s{dim}\b")
    pointers = sorted({m.group(1) for line in lines for m in pattern.finditer(line)})
    if not pointers:
        return lines
    contiguous = " && ".join(f"{p}_s{dim} == 1" for p in pointers)
    return [f"{indent}if ({contiguous}) {{", *(pattern.sub("1", line) for line in lines), f"{indent}}} else {{",
            *lines, f"{indent}}}"]


def accumulator(r: Node) -> str:
    """The type a reduction accumulates in: sums of floats in double (a long row stays accurate), integer sums in
    int64, max/min in the compute type."""
    ty = C.compute_type(r.inputs[0].dtype)
    if r.op.lowering.reduce == "sum":
        return "double" if ty in ("float", "double") else "int64_t"
    return ty


def _declare(r: Node, acc: str, scope: Scope) -> list[str]:
    """Declare r's accumulator (and, for a float max/min, its NaN flag) in scope; returns the simd reduction
    clauses."""
    ty = accumulator(r)
    start = reduction_identity(r, NUMPY_TYPES[ty])
    scope.emit(f"{ty} {acc} = {C.literal(start, ty)};")
    combine = {"sum": "+", "max": "max", "min": "min"}[r.op.lowering.reduce]
    clauses = [f"{combine}:{acc}"]
    if combine != "+" and ty in ("float", "double"):
        scope.emit(f"int {acc}_nan = 0;")
        clauses.append(f"|:{acc}_nan")
    return clauses


def _fold(r: Node, acc: str, value: str, scope: Scope, nan: str | None = None, ty: str | None = None) -> None:
    """Fold value into r's accumulator of type ty (default accumulator(r)); a NaN is remembered apart in nan, default
    acc_nan: simd max/min would not keep it."""
    ty = ty or accumulator(r)
    combine = r.op.lowering.reduce
    if combine == "sum":
        scope.emit(f"{acc} += ({ty})({value});")
        return
    scope.emit(f"{acc} = ({value}) {'>' if combine == 'max' else '<'} {acc} ? ({value}) : {acc};")
    if ty in ("float", "double"):
        scope.emit(f"{nan or acc + '_nan'} |= ({value}) != ({value});")


def _finish(r: Node, acc: str, count: str, scope: Scope, em: Emitter, nan: str | None = None) -> None:
    """r's value from its accumulator (a NaN seen wins; a mean divides by the count)."""
    value = acc
    if r.op.lowering.reduce != "sum" and accumulator(r) in ("float", "double"):
        value = f"({nan or acc + '_nan'} ? {C.literal(math.nan, accumulator(r))} : {acc})"
    value = r.op.lowering.finish.format(f"({value})", count=count)
    ty = C.compute_type(r.dtype)
    scope.emit(f"const {ty} v{r.id} = ({ty})({value});  // {r.op.name} at {r.where}")
    em.reduced[r] = f"v{r.id}"


def row_constants(group: Group, em: CEmitter, per_row: set[Node]) -> set[Node]:
    """The members with one value per row: the per-row ones, and pointwise members of those, of scalars and of loads
    broadcast along the reduced dims (a gradient expanded along the row and divided by the count of its mean: its
    shape is the row's, its value is not). The passes over a row compute them once, before the pass."""
    constant = set(per_row)
    members = set(group.nodes)
    for n in group.nodes:
        if n not in constant and lowering(n) == "pointwise" and n not in group.after_global and all(
                not isinstance(x, Node) or view_chain(x)[0] in constant or
                (view_chain(x)[0] not in members and em.row_constant_load(x, n)) for x in n.inputs):
            constant.add(n)
    return constant


def float_partials(r: Node) -> bool:
    """Whether r is a sum of float values: see streamed_pass."""
    return r.op.lowering.reduce == "sum" and C.compute_type(r.inputs[0].dtype) == "float"


def _folds(done: list[Node], values: dict, loop: Scope, stream: int | None = None) -> list[str]:
    """The lines folding each reduction's value into its accumulator (a float sum into its partial sum of this
    stream when stream is given)."""
    folds = Scope([], loop.index, None, loop.tag, loop.indent)
    for r in done:
        if stream is not None and float_partials(r):
            _fold(r, f"part{r.id}_{stream}", values[r], folds, ty="float")
        else:
            _fold(r, f"acc{r.id}", values[r], folds)
    return folds.lines


def streamed_pass(group: Group, done: list[Node], values: dict, loop: Scope, clauses: list[str], inner_loop
                  ) -> list[str]:
    """A pass whose reductions include a sum of float values: the row in chunks of ROW_CHUNK elements, each summed
    in float by STREAMS independent streams (its quarters) of vector partial sums, which are then added to the double
    accumulator. A double accumulator alone costs two conversions per element and one chain of dependent adds: the
    pass ran at the speed of that chain (layer_norm's statistics at twice torch's time). Each float partial sums at
    most ROW_CHUNK / (STREAMS * 8) elements, so a long row stays accurate (as numpy's pairwise and ATen's cascade
    sums, which also add in float). A single row (x.sum()) runs its chunks in parallel."""
    partial = [r for r in done if float_partials(r)]
    names = [f"part{r.id}_{s}" for r in partial for s in range(STREAMS)]
    simd_clauses = [c for c in clauses if not any(c.endswith(f":acc{r.id}") for r in partial)]
    simd_clauses.append(f"+:{','.join(names)}")
    streams = []
    for s in range(STREAMS):
        streams += [f"    {{ const int64_t col = chunk + k + {s} * quarter;", *loop.lines,
                    *_folds(done, values, loop, s), "    }"]
    chunk = ["    for (int64_t chunk = 0; chunk < n_inner; chunk += ROW_CHUNK) {",
             "      const int64_t n_chunk = n_inner - chunk < ROW_CHUNK ? n_inner - chunk : ROW_CHUNK;",
             f"      const int64_t quarter = n_chunk / {STREAMS};",
             f"      float {', '.join(f'{name} = 0.0f' for name in names)};",
             *("  " + line for line in inner_loop([
                 _reductions("    #pragma omp simd", simd_clauses),
                 "    for (int64_t k = 0; k < quarter; k++) {", *streams, "    }"])),
             f"      for (int64_t col = chunk + {STREAMS} * quarter; col < chunk + n_chunk; col++) {{",
             *("  " + line for line in [*loop.lines, *_folds(done, values, loop, 0)]), "      }",
             *(f"      acc{r.id} += " + " + ".join(f"(double)part{r.id}_{s}" for s in range(STREAMS)) + ";"
               for r in partial),
             "    }"]
    if not group.splittable:
        return chunk
    # one long row (x.sum()): its chunks in parallel (a branch, not an `if` clause: see reduction_body)
    return [f"    if (n_rows == 1 && n_inner >= {PARALLEL_MIN}) {{",
            _reductions("    #pragma omp parallel for schedule(static)", clauses), *chunk,
            "    } else {", *chunk, "    }"]


def _reductions(pragma: str, clauses: list[str]) -> str:
    """An OpenMP pragma with one reduction clause per accumulator (none at all for none: `reduction()` is a syntax
    error, and a reduction whose value needs no accumulator, as var over one element, declares none)."""
    return pragma + "".join(f" reduction({c})" for c in clauses)


def reduction_body(group: Group, em: Emitter) -> list[str]:
    """One row (the kept dims) per iteration of a parallel loop; per stage, a simd loop over the row's reduced
    elements accumulates the reductions whose inputs need the previous stage; values constant along a row are
    computed once per row. Reductions over all rows (a loss mean) combine across threads with OpenMP reductions."""
    rank, dims = em.rank, group.dims
    kept = [d for d in range(rank) if d not in dims]
    stage = group.stage
    per_row = {n for n in group.nodes if all(group.aligned[n][d] == 1 for d in dims)} - group.after_global
    constant = row_constants(group, em, per_row)
    whole_lines: list[str] = []
    whole = Scope(whole_lines, [None] * rank, None, "_g", "  ")
    row_lines: list[str] = []
    row = Scope(row_lines, [f"r{d}" if d in kept else None for d in range(rank)], None, "_r", "    ")
    row_lines += split_index([f"r{d}" for d in kept], "row", [f"size{d}" for d in kept], "    ", "const int64_t ",
                             ";")
    reductions = [n for n in group.nodes if lowering(n) == "reduction" and n not in group.global_reductions]

    varying = walked(em, dims)

    def inner_loop(lines: list[str]) -> list[str]:
        """A loop over the reduced elements: contiguous if the last dim, flat when the strides allow it (the kernel
        tests them once, into flat_cols)."""
        general = unit_stride(lines, rank - 1, "    ") if rank - 1 in dims else lines
        if varying is None:
            return general
        return ["    if (flat_cols) {", *unit_stride(flat_walk(lines, varying), varying[-1], "    "), "    } else {",
                *general, "    }"]

    for k in range(1, max((stage[r] for r in reductions), default=0) + 1):
        done = [r for r in reductions if stage[r] == k]
        loop = _loop(row, f"_s{k}", rank, dims, lambda n, k=k: n in constant and stage[n] < k)
        clauses = []
        for r in done:
            clauses += _declare(r, f"acc{r.id}", row)
        values = {r: em.value(r.inputs[0], loop) for r in done}
        if any(float_partials(r) for r in done):
            row_lines += streamed_pass(group, done, values, loop, clauses, inner_loop)
        else:
            body = [*loop.lines, *_folds(done, values, loop), "    }"]
            simd = inner_loop([_reductions("    #pragma omp simd", clauses), ALL_COLUMNS, *body])
            if group.splittable:
                # one long row (x.sum()): its elements in parallel. A branch, not an `if` clause: a parallel region
                # nested in the row loop would start a team per row even when the clause is false
                simd = [f"    if (n_rows == 1 && n_inner >= {PARALLEL_MIN}) {{",
                        *inner_loop([_reductions("    #pragma omp parallel for simd", clauses),
                                     ALL_COLUMNS, *body]), "    } else {", *simd, "    }"]
            row_lines += simd
        for r in done:
            _finish(r, f"acc{r.id}", "n_inner", row, em)
    for n in group.outputs:
        if n in per_row:
            em.store(n, em.value(n, row), row)
    elementwise_outputs = [n for n in group.outputs if n not in per_row and n not in group.after_global]
    if elementwise_outputs:
        loop = _loop(row, "_w", rank, dims, lambda n: n in constant)
        for n in elementwise_outputs:
            em.store(n, em.value(n, loop), loop)
        row_lines += inner_loop(["    #pragma omp simd", ALL_COLUMNS, *loop.lines, "    }"])
    clauses = []
    for r in group.global_reductions:
        clauses += _declare(r, f"total{r.id}", whole)
        _fold(r, f"total{r.id}", em.value(r.inputs[0], row), row)
    rows = ["  for (int64_t row = 0; row < n_rows; row++) {", *row_lines, "  }"]
    reduce_clauses = _reductions("", clauses)
    if em.buffers:  # each thread allocates its buffers once, in a parallel region around the row loop
        buffers = []
        for n, buf in em.buffers.items():
            ty = C.compute_type(n.dtype)
            buffers += [f"    {ty} *restrict {buf} = ({ty} *)gc_row_buffer(n_inner, sizeof({ty}));"]
        parallel = _parallel("n_rows * n_inner", "n_rows", construct="parallel").replace(" schedule(static)", "")
        rows = [f"  {parallel}", "  {", *buffers, f"    #pragma omp for schedule(static){reduce_clauses}",
                *("  " + line for line in rows), *(f"    free({buf});" for buf in em.buffers.values()), "  }"]
    else:
        rows = ["  " + _parallel("n_rows * n_inner", "n_rows", reduce_clauses), *rows]
    lines = [f"  const int64_t n_rows = {' * '.join(f'size{d}' for d in kept) or '1'};",
             f"  const int64_t n_inner = {' * '.join(f'size{d}' for d in dims)};", "  (void)n_rows; (void)n_inner;",
             *([f"  const int flat_cols = {flat_condition(rows, dims, varying)};"] if varying else []),
             *whole_lines, *rows]
    after: list[str] = []
    finished = Scope(after, [None] * rank, None, "_g", "  ")
    for r in group.global_reductions:
        _finish(r, f"total{r.id}", "n_rows", finished, em)
    for n in group.outputs:
        if n in group.after_global:
            em.store(n, em.value(n, finished), finished)
    return lines + after


def column_reduction(group: Group) -> bool:
    """Whether a reduction group reduces leading dims only, in one stage, with nothing after a reduction over all
    rows (a bias or norm-weight gradient: a sum over the batch dims). Its rows are then the contiguous last dim:
    summing down each of them, one at a time, would read memory a stride apart."""
    return group.splittable and not group.global_reductions and len(group.space) - 1 not in group.dims


def column_reduction_body(group: Group, em: Emitter) -> list[str]:
    """A column reduction (see column_reduction): each task takes a block of COLUMN_BLOCK consecutive elements of the
    last (kept) dim and walks the reduced elements, adding to one accumulator per element of the block in a simd
    loop across the block (contiguous loads); elementwise outputs are stored in the same pass. A sum of floats adds
    COLUMN_ROWS rows at a time in float, then into its double accumulator (as streamed_pass does a row's chunks): a
    double accumulator alone costs a conversion per element (a GPT step's bias gradients: 0.43 -> 0.27 ms for
    2048 x 768, 1.17 -> 0.68 ms for 2048 x 1024, the loop alone, 1 thread). Then a loop over the
    block finishes each reduction and computes the per-row values. Tasks (outer kept rows x blocks) run in parallel."""
    rank, dims = em.rank, group.dims
    last = rank - 1
    outer = [d for d in range(last) if d not in dims]
    reductions = [n for n in group.nodes if lowering(n) == "reduction"]
    per_row = {n for n in group.nodes if all(group.aligned[n][d] == 1 for d in dims)}
    index = [f"c{d}" if d in dims else f"r{d}" for d in range(rank)]
    task = ["    const int64_t blk = (task % n_blocks) * COLUMN_BLOCK;", "    const int64_t outer = task / n_blocks;",
            f"    const int64_t nb = size{last} - blk < COLUMN_BLOCK ? size{last} - blk : COLUMN_BLOCK;",
            "    (void)outer;",
            *split_index([f"r{d}" for d in outer], "outer", [f"size{d}" for d in outer], "    ", "const int64_t ",
                         ";")]
    for r in reductions:
        ty = accumulator(r)
        start = C.literal(reduction_identity(r, NUMPY_TYPES[ty]), ty)
        task += [f"    {ty} acc{r.id}[COLUMN_BLOCK];", f"    for (int64_t j = 0; j < nb; j++) acc{r.id}[j] = {start};"]
        if r.op.lowering.reduce != "sum" and ty in ("float", "double"):
            task += [f"    int acc{r.id}_nan[COLUMN_BLOCK];",
                     f"    for (int64_t j = 0; j < nb; j++) acc{r.id}_nan[j] = 0;"]
    partial = [r for r in reductions if float_partials(r)]
    task += [f"    float part{r.id}[COLUMN_BLOCK];" for r in partial]
    inner_lines: list[str] = []
    inner = Scope(inner_lines, index, None, "_s1", "          ")
    inner.emit(f"const int64_t r{last} = blk + j;")
    for r in reductions:
        if r in partial:
            _fold(r, f"part{r.id}[j]", em.value(r.inputs[0], inner), inner, ty="float")
        else:
            _fold(r, f"acc{r.id}[j]", em.value(r.inputs[0], inner), inner, f"acc{r.id}_nan[j]")
    for n in group.outputs:
        if n not in per_row:
            em.store(n, em.value(n, inner), inner)
    task += ["    for (int64_t chunk = 0; chunk < n_inner; chunk += COLUMN_ROWS) {",
             "      const int64_t chunk_end = n_inner - chunk < COLUMN_ROWS ? n_inner : chunk + COLUMN_ROWS;",
             *(f"      for (int64_t j = 0; j < nb; j++) part{r.id}[j] = 0.0f;" for r in partial),
             "      for (int64_t col = chunk; col < chunk_end; col++) {",
             *split_index([f"c{d}" for d in dims], "col", [f"size{d}" for d in dims], "        ", "const int64_t ",
                          ";"),
             *unit_stride(["        #pragma omp simd", "        for (int64_t j = 0; j < nb; j++) {", *inner_lines,
                           "        }"], last, "        "), "      }",
             *(f"      for (int64_t j = 0; j < nb; j++) acc{r.id}[j] += (double)part{r.id}[j];" for r in partial),
             "    }"]
    finish_lines: list[str] = []
    finish = Scope(finish_lines, [None if d in dims else f"r{d}" for d in range(rank)], None, "_r", "      ")
    finish.emit(f"const int64_t r{last} = blk + j;")
    for r in reductions:
        _finish(r, f"acc{r.id}[j]", "n_inner", finish, em, f"acc{r.id}_nan[j]")
    for n in group.outputs:
        if n in per_row:
            em.store(n, em.value(n, finish), finish)
    task += ["    for (int64_t j = 0; j < nb; j++) {", *finish_lines, "    }"]
    n_outer = " * ".join(f"size{d}" for d in outer) or "1"
    return [f"  const int64_t n_inner = {' * '.join(f'size{d}' for d in dims)};",
            f"  const int64_t n_blocks = (size{last} + COLUMN_BLOCK - 1) / COLUMN_BLOCK;",
            f"  const int64_t n_tasks = {n_outer} * n_blocks;",
            "  " + _parallel("n_tasks * COLUMN_BLOCK * n_inner", "n_tasks"),
            "  for (int64_t task = 0; task < n_tasks; task++) {", *task, "  }"]


ALL_COLUMNS = "    for (int64_t col = 0; col < n_inner; col++) {"
COLUMN_INDEX = re.compile(r"^(\s*)const int64_t (c\d+|col_\d+) = col")


def walked(em: CEmitter, dims: tuple) -> list[int] | None:
    """The dims a loop over `dims` walks as one flat dim when the strides allow it (flat_condition; the dimension
    collapsing of Inductor and TVM): those of size more than 1 (the plan's size guards keep a size 1). None when
    that is one dim or none (nothing to split), or when an operand is broadcast along some of them but not all (its
    offset skips those dims: it never collapses)."""
    varying = [d for d in dims if em.group.space[d] != 1]
    if len(varying) < 2 or any((fixed := em.broadcast[ptr] & set(varying)) and fixed != set(varying)
                               for ptr in em.loads.values()):
        return None
    return varying


def flat_condition(lines: list[str], dims: tuple, varying: list[int]) -> str:
    """The C condition under which a flat walk of `varying` (of `dims`) is exact: the other dims have size 1, and every
    operand that the lines index along those dims is laid out along them as one row-major block (its stride along
    each, unless its size is 1, is the last one's times the sizes after it), so an element's offset is the flat index
    times its stride along the last."""
    pattern = re.compile(rf"\b((?:in|out)\d+)_s(?:{'|'.join(map(str, dims))})\b")
    terms = [f"size{d} == 1" for d in dims if d not in varying]
    for ptr in sorted({m.group(1) for line in lines for m in pattern.finditer(line)}):
        for i, d in enumerate(varying[:-1]):
            span = " * ".join(f"size{e}" for e in varying[i + 1:])
            terms.append(f"(size{d} == 1 || {ptr}_s{d} == {ptr}_s{varying[-1]} * {span})")
    return " && ".join(terms) or "1"


def flat_walk(lines: list[str], varying: list[int]) -> list[str]:
    """A pass over a row's reduced elements (its lines) walking them as one flat dim: col is the index along the last
    varying dim, the others are 0 (the compiler drops their terms), where the lines split col by division at every
    element (a loss summed over a 4-d tensor took 22x torch's time)."""
    carrier, flat = f"c{varying[-1]}", []
    for line in lines:
        m = COLUMN_INDEX.match(line)
        if m is None:
            flat.append(line)
        elif not m.group(2).startswith("col_"):
            flat.append(f"{m.group(1)}const int64_t {m.group(2)} = {'col' if m.group(2) == carrier else '0'};")
    return flat


def _loop(row: Scope, tag: str, rank: int, dims: tuple, hoist) -> Scope:
    """The body of a pass over one row's reduced elements, at flat index `col`: emitted into the returned scope (the
    caller opens and closes the loop around it, ALL_COLUMNS or streamed_pass's)."""
    inner = "      "
    body = split_index([f"c{d}" for d in dims], "col", [f"size{d}" for d in dims], inner, "const int64_t ", ";")
    index = [f"c{d}" if d in dims else row.index[d] for d in range(rank)]
    return RowPass(body, index, None, tag, inner, parent=row, hoist=hoist)


def simd_declarations(names: tuple[str, ...]) -> str:
    """`declare simd` for these math functions (float and double), so vectorised loops call their libmvec versions
    (declaring one libmvec lacks would leave an undefined symbol)."""
    lines = []
    for name in names:
        args = 2 if name == "pow" else 1
        for ty, suffix in (("float", "f"), ("double", "")):
            lines.append(f"#pragma omp declare simd notinbranch\n{ty} {name}{suffix}({', '.join([ty] * args)});")
    return "\n".join(lines)


def render_unit(kernels: list[Kernel], symbols: list[str], simd: tuple[str, ...] = (),
                templates: tuple[str, ...] = ()) -> str:
    """One translation unit holding these kernels, each exported under its symbol; simd: the math functions with
    vector versions to declare (native.toolchain finds which the C library has); templates: the C sources of the
    kernel templates the plans run (a template module's SOURCE, such as render_c_attention's), each once."""
    functions = "\n\n".join(k.function(symbol) for k, symbol in zip(kernels, symbols))
    return (PRELUDE % {"simd": simd_declarations(simd), "gemm_min": GEMM_PARALLEL_MIN} + "\n" +
            "".join(dict.fromkeys(templates)) + functions + "\n")
