"""The attention kernel templates (graphc/ops/attention.py) on the cpu backend: C functions (SOURCE, built into the
plan's library with its kernels) that run one (batch, head) and block of query rows per OpenMP task, with the
products in the BLAS of native.gemm() called on one thread from the task's thread (as a matmul group's kernel calls
it) and the masks and softmax in C, the scores of a block staying in the thread's cache. A causal block computes only
the keys its rows see, so the hidden half of the scores is never computed. The forward and the logsumexp of one
attention are one call (joins), and so are the gradients of one attention, which share the probabilities and dS.
Until the library is built, and where there is no BLAS to call (native.gemm), the templates run as ops.attention's
numpy forwards, which share the same work."""
from __future__ import annotations

import ctypes
import math

import numpy as np

from ..ops.attention import gradients, outputs
from .fusion import Group

SHARED = {"attention.forward": "out", "attention.logsumexp": "lse"}  # templates computed by ops.attention.outputs
SOURCE = r"""/* Attention on the cpu backend (render_c_attention.py). p: [q, k, v, mask or NULL, then (forward) out
   and lse, either NULL when not wanted, | (backward) out, grad, lse, dq, dk, dv (NULL when not wanted), then the
   sgemm of native.gemm()]; a: [B0, B1 (the batch dims, two after collapsing), L, S, E, Ev, the BLAS interface
   (gc_sgemm_call), mask kind (0 none, 1 bool, 2 float), keep, is_causal, safe, then the strides in elements of q, k, v
   (batch 0, batch 1, row), the
   mask (batch 0, batch 1, row, column), (backward) out and grad (batch 0, batch 1, row)]; f: [scale, fill]. Every
   operand is float32 (the mask bytes or float32) with a unit-strided last dim (the mask: any); outputs are
   C-contiguous float32: out (B0, B1, L, Ev), lse (B0, B1, L), dq (B0, B1, L, E), dk (B0, B1, S, E), dv (B0, B1, S,
   Ev). */
#define ATTN_ROWS 32  /* query rows per block: a block's scores (ATTN_ROWS x S floats) stay in a thread's cache */
static void gc_attn_gemm(void *const *p, int fn, const int64_t *a, int ta, int tb, int64_t m, int64_t n, int64_t k,
                         float alpha, const float *A, int64_t lda, const float *B, int64_t ldb, float beta, float *C,
                         int64_t ldc) {
  gc_sgemm_call(a[6], p[fn], ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
/* Whether the masks hide key j from query row (the bool mask's hidden scores become fill, the causal ones -inf). */
static inline int gc_attn_hidden(const int64_t *a, const uint8_t *m, int64_t row, int64_t j) {
  return (a[7] == 1 && (m[j * a[23]] != 0) != (a[8] != 0)) || (a[9] && j > row);
}
/* The scores s (rows r0..r1 by keys 0..c) of task (b0, b1): q k^T * scale, then the bool mask's hidden scores at
   fill or the float mask added, then -inf after the diagonal when causal (the order of ops.attention._scores). */
static void gc_attn_scores(void *const *p, int fn, const int64_t *a, const double *f, int64_t b0, int64_t b1,
                           int64_t r0, int64_t r1, int64_t c, float *s) {
  const int64_t E = a[4];
  const float *q = (const float *)p[0] + b0 * a[11] + b1 * a[12] + r0 * a[13];
  const float *k = (const float *)p[1] + b0 * a[14] + b1 * a[15];
  gc_attn_gemm(p, fn, a, 0, 1, r1 - r0, c, E, (float)f[0], q, a[13], k, a[16], 0, s, c);
  for (int64_t row = r0; row < r1; row++) {
    float *si = s + (row - r0) * c;
    if (a[7] == 1) {
      const uint8_t *m = (const uint8_t *)p[3] + b0 * a[20] + b1 * a[21] + row * a[22];
      const float fill = (float)f[1];
      const int keep = a[8] != 0;
      for (int64_t j = 0; j < c; j++) si[j] = (m[j * a[23]] != 0) != keep ? fill : si[j];
    } else if (a[7] == 2) {
      const float *m = (const float *)p[3] + b0 * a[20] + b1 * a[21] + row * a[22];
      for (int64_t j = 0; j < c; j++) si[j] += m[j * a[23]];
    }
    if (a[9])
      for (int64_t j = row + 1; j < c; j++) si[j] = -INFINITY;
  }
}
/* The keys a block of rows r0..r1 sees: a causal block none after its last row. */
static inline int64_t gc_attn_keys(const int64_t *a, int64_t r1) { return a[9] && r1 < a[3] ? r1 : a[3]; }

void graphc_attention_forward(void *const *p, const int64_t *a, const double *f) {
  const int64_t B1 = a[1], L = a[2], S = a[3], Ev = a[5], blocks = (L + ATTN_ROWS - 1) / ATTN_ROWS;
  const int64_t tasks = a[0] * B1 * blocks;
  float *out = (float *)p[4], *lse = (float *)p[5];
  #pragma omp parallel if (tasks > 1)
  {
    float *s = (float *)gc_row_buffer(ATTN_ROWS * S, sizeof(float));
    #pragma omp for schedule(static)
    for (int64_t t = 0; t < tasks; t++) {
      const int64_t b = t / blocks, b0 = b / B1, b1 = b % B1, r0 = t % blocks * ATTN_ROWS;
      const int64_t r1 = r0 + ATTN_ROWS < L ? r0 + ATTN_ROWS : L, c = gc_attn_keys(a, r1);
      float shift[ATTN_ROWS], total[ATTN_ROWS];
      if (c > 0) gc_attn_scores(p, 6, a, f, b0, b1, r0, r1, c, s);
      for (int64_t i = 0; i < r1 - r0; i++) {  /* p = exp(s - max), the max of a row of -inf taken as 0 */
        float *si = s + i * c, m = -INFINITY, sum = 0;
        int nan = 0;
        #pragma omp simd reduction(max:m) reduction(|:nan)
        for (int64_t j = 0; j < c; j++) { m = si[j] > m ? si[j] : m; nan |= si[j] != si[j]; }
        m = nan ? NAN : m == -INFINITY ? 0 : m;
        #pragma omp simd reduction(+:sum)
        for (int64_t j = 0; j < c; j++) { si[j] = expf(si[j] - m); sum += si[j]; }
        shift[i] = m, total[i] = sum;
      }
      if (out) {
        float *o = out + (b * L + r0) * Ev;
        if (c > 0) {
          const float *v = (const float *)p[2] + b0 * a[17] + b1 * a[18];
          gc_attn_gemm(p, 6, a, 0, 0, r1 - r0, Ev, c, 1, s, c, v, a[19], 0, o, Ev);
        } else {
          memset(o, 0, (size_t)((r1 - r0) * Ev) * sizeof(float));
        }
        for (int64_t i = 0; i < r1 - r0; i++) {  /* out / total: 0 / 0 is NaN, as softmax's; 0 when safe */
          float *oi = o + i * Ev;
          const float d = total[i];
          const int zero = a[10] && d == 0;
          #pragma omp simd
          for (int64_t e = 0; e < Ev; e++) oi[e] = zero ? 0 : oi[e] / d;
        }
      }
      if (lse)
        for (int64_t i = 0; i < r1 - r0; i++)
          lse[b * L + r0 + i] = a[10] && total[i] == 0 ? INFINITY : logf(total[i]) + shift[i];
    }
    free(s);
  }
}

/* The gradients (FlashAttention's backward, Algorithm 4, over blocks of rows): P = exp(s - lse), dV += P^T dO,
   dP = dO V^T, dS = P (dP - rowsum(dO * O)) (0 where a mask hides the score), dQ = dS K scale, dK += dS^T Q scale.
   A task is one (batch, head): its blocks add into the same dK and dV. */
void graphc_attention_backward(void *const *p, const int64_t *a, const double *f) {
  const int64_t B1 = a[1], L = a[2], S = a[3], E = a[4], Ev = a[5], tasks = a[0] * B1;
  const float scale = (float)f[0], *lse = (const float *)p[6];
  float *dq = (float *)p[7], *dk = (float *)p[8], *dv = (float *)p[9];
  #pragma omp parallel if (tasks > 1)
  {
    float *s = (float *)gc_row_buffer(ATTN_ROWS * S, sizeof(float));
    float *dp = (float *)gc_row_buffer(ATTN_ROWS * S, sizeof(float));
    #pragma omp for schedule(static)
    for (int64_t b = 0; b < tasks; b++) {
      const int64_t b0 = b / B1, b1 = b % B1;
      const float *q = (const float *)p[0] + b0 * a[11] + b1 * a[12];
      const float *k = (const float *)p[1] + b0 * a[14] + b1 * a[15];
      const float *v = (const float *)p[2] + b0 * a[17] + b1 * a[18];
      const float *o = (const float *)p[4] + b0 * a[24] + b1 * a[25];
      const float *g = (const float *)p[5] + b0 * a[27] + b1 * a[28];
      const uint8_t *mask = a[7] == 1 ? (const uint8_t *)p[3] + b0 * a[20] + b1 * a[21] : NULL;
      if (dk) memset(dk + b * S * E, 0, (size_t)(S * E) * sizeof(float));
      if (dv) memset(dv + b * S * Ev, 0, (size_t)(S * Ev) * sizeof(float));
      for (int64_t r0 = 0; r0 < L; r0 += ATTN_ROWS) {
        const int64_t r1 = r0 + ATTN_ROWS < L ? r0 + ATTN_ROWS : L, rows = r1 - r0, c = gc_attn_keys(a, r1);
        if (c == 0) {
          if (dq) memset(dq + (b * L + r0) * E, 0, (size_t)(rows * E) * sizeof(float));
          continue;
        }
        gc_attn_scores(p, 10, a, f, b0, b1, r0, r1, c, s);
        for (int64_t i = 0; i < rows; i++) {
          float *si = s + i * c;
          const float l = lse[b * L + r0 + i];
          #pragma omp simd
          for (int64_t j = 0; j < c; j++) si[j] = expf(si[j] - l);
        }
        if (dv) gc_attn_gemm(p, 10, a, 1, 0, c, Ev, rows, 1, s, c, g + r0 * a[29], a[29], 1, dv + b * S * Ev, Ev);
        if (!dq && !dk) continue;
        gc_attn_gemm(p, 10, a, 0, 1, rows, c, Ev, 1, g + r0 * a[29], a[29], v, a[19], 0, dp, c);
        for (int64_t i = 0; i < rows; i++) {
          const int64_t row = r0 + i;
          const float *gi = g + row * a[29], *oi = o + row * a[26], *pi = s + i * c;
          float *di = dp + i * c, d = 0;
          #pragma omp simd reduction(+:d)
          for (int64_t e = 0; e < Ev; e++) d += gi[e] * oi[e];
          #pragma omp simd
          for (int64_t j = 0; j < c; j++) di[j] = (di[j] - d) * pi[j];
          if (mask || a[9]) {
            const uint8_t *mi = mask ? mask + row * a[22] : NULL;
            for (int64_t j = 0; j < c; j++)
              if (gc_attn_hidden(a, mi, row, j)) di[j] = 0;
          }
        }
        if (dq) gc_attn_gemm(p, 10, a, 0, 0, rows, E, c, scale, dp, c, k, a[16], 0, dq + (b * L + r0) * E, E);
        if (dk) gc_attn_gemm(p, 10, a, 1, 0, c, E, rows, scale, dp, c, q + r0 * a[13], a[13], 1, dk + b * S * E, E);
      }
    }
    free(s);
    free(dp);
  }
}
"""
ARGUMENTS = (ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p)


def joins(group: Group, other: Group) -> bool:
    """Whether other's nodes are computed in group's step: the forward and the logsumexp of one attention (the same
    operands and attrs)."""
    a, b = group.nodes[0], other.nodes[0]
    return group.template in SHARED and other.template in SHARED and group.template != other.template and \
        a.inputs == b.inputs and a.attrs == b.attrs


def launch(groups: list[Group], operands: list[np.ndarray], library=None) -> list[np.ndarray]:
    """The values of the groups' nodes (in order) from the operands their nodes share, each in its node's dtype;
    library: the plan's native library (native.Library), whose SOURCE functions compute them once it is built."""
    from .native import gemm

    node = groups[0].nodes[0]
    nodes = [n for g in groups for n in g.nodes]
    backward = groups[0].template == "attention.backward"
    attrs = {k: v for k, v in node.attrs.items() if k not in ("wrt", "safe")} if backward else node.attrs
    q, k, v = operands[:3]
    handle = library.handle if library is not None else None
    found = None
    if handle is not None and gemm() is not None and q.shape[-1] and v.shape[-1]:
        found = _native(handle, node, nodes, operands, backward)
    if found is None:
        if backward:
            by_wrt = gradients(*operands, **attrs, wrts=tuple(n.attrs["wrt"] for n in nodes))
            found = [by_wrt[n.attrs["wrt"]] for n in nodes]
        else:
            by_name = outputs(*operands, **attrs, want=tuple(SHARED[g.template] for g in groups))
            found = [by_name[SHARED[n.op.lowering.template]] for n in nodes]
    return [a.astype(n.dtype.np, copy=False) for a, n in zip(found, nodes)]


def _native(handle, node, nodes, operands, backward: bool) -> list[np.ndarray] | None:
    """The nodes' values from the library's graphc_attention_forward or _backward; None where a size or stride
    overflows a 32-bit BLAS's integers."""
    from .native import INT64, gemm

    attrs = node.attrs
    mask = operands[3] if len(operands) in (4, 7) else None
    q, k, v = operands[:3]
    batch, (L, E), (S, Ev) = q.shape[:-2], q.shape[-2:], v.shape[-2:]
    matrices = [q, k, v, *(operands[-3:-1] if backward else ())]  # (backward) out, grad
    if mask is not None:
        mask = np.broadcast_to(mask.view(np.uint8) if mask.dtype == np.bool_ else mask.astype(np.float32, copy=False),
                               (*batch, L, S))
    matrices = [_blas_rows(m) for m in matrices]
    dims = _batch_dims(batch, matrices + ([mask] if mask is not None else []))
    if dims is None:  # more than two batch dims that no stride joins: made contiguous, they join into one
        matrices = [np.ascontiguousarray(m) for m in matrices]
        mask = None if mask is None else np.ascontiguousarray(mask)
        dims = _batch_dims(batch, matrices + ([mask] if mask is not None else []))
    sizes, batch_strides = dims
    strides = [s for m in matrices[:3] for s in (*batch_strides(m), m.strides[-2] // m.itemsize)]
    strides += [*batch_strides(mask), *(s // mask.itemsize for s in mask.strides[-2:])] if mask is not None else [0] * 4
    strides += [s for m in matrices[3:] for s in (*batch_strides(m), m.strides[-2] // m.itemsize)]
    kind = 0 if mask is None else 1 if mask.dtype == np.uint8 else 2
    found = gemm()
    ints = np.array([*sizes, L, S, E, Ev, found.interface, kind, attrs["keep"], attrs["is_causal"], attrs["safe"],
                     *strides], np.int64)
    if found.interface != INT64 and int(np.abs(ints).max()) >= 2**31:
        return None
    floats = np.array([attrs["scale"], attrs["fill"]], np.float64)
    pointers = [m.ctypes.data for m in matrices[:3]] + [mask.ctypes.data if mask is not None else 0]
    if backward:
        wanted = {n.attrs["wrt"] for n in nodes}
        lse = np.ascontiguousarray(operands[-1], np.float32)
        grads = [np.empty((*batch, n, e), np.float32) if i in wanted else None
                 for i, (n, e) in enumerate(((L, E), (S, E), (S, Ev)))]
        pointers += [m.ctypes.data for m in matrices[3:]] + [lse.ctypes.data]
        pointers += [g.ctypes.data if g is not None else 0 for g in grads]
        function = _function(handle, "graphc_attention_backward")
        results = [grads[n.attrs["wrt"]] for n in nodes]
    else:
        want = {SHARED[n.op.lowering.template] for n in nodes}
        made = {"out": np.empty((*batch, L, Ev), np.float32) if "out" in want else None,
                "lse": np.empty((*batch, L), np.float32) if "lse" in want else None}
        pointers += [a.ctypes.data if a is not None else 0 for a in made.values()]
        function = _function(handle, "graphc_attention_forward")
        results = [made[SHARED[n.op.lowering.template]] for n in nodes]
    pointers.append(found.gemm["float32"])
    function((ctypes.c_uint64 * len(pointers))(*pointers), ints.ctypes.data, floats.ctypes.data)
    return results


def _function(handle, name: str):
    function = getattr(handle, name)
    if function.argtypes is None:
        function.argtypes, function.restype = ARGUMENTS, None
    return function


def _blas_rows(a: np.ndarray) -> np.ndarray:
    """a as float32 whose matrices BLAS can read: a unit-strided last dim and a row stride of at least the row's
    length (copied where not)."""
    a = a.astype(np.float32, copy=False)
    row, last = a.strides[-2:]
    if last != a.itemsize or row < a.itemsize * max(1, a.shape[-1]) or row % a.itemsize or \
            any(s % a.itemsize for s in a.strides):
        return np.ascontiguousarray(a)
    return a


def _batch_dims(batch: tuple, arrays: list[np.ndarray]):
    """((B0, B1), strides): the batch dims as two, adjacent dims joined where every array's strides allow (dims of
    size 1 dropped); strides(array) gives an array's two batch strides in elements. None where more than two
    remain."""
    dims = [d for d in range(len(batch)) if batch[d] != 1]
    groups: list[list[int]] = []
    for d in dims:
        if groups and all(a.strides[groups[-1][-1]] == a.strides[d] * batch[d] for a in arrays):
            groups[-1].append(d)
        else:
            groups.append([d])
    if len(groups) > 2:
        return None
    groups = [[]] * (2 - len(groups)) + groups
    sizes = tuple(math.prod(batch[d] for d in g) for g in groups)

    def strides(a: np.ndarray) -> tuple[int, int]:
        return tuple(a.strides[g[-1]] // a.itemsize if g else 0 for g in groups)
    return sizes, strides
