"""Kernels over several dims on the cpu backend against torch eager: a reduction into one value over a 4-d tensor (a
loss written as a sum), a partial sum over its trailing dims, and elementwise kernels whose last dim is small or 1;
each with row-major operands (walked as one flat dim: render_c.walked) and with a transposed operand (split per dim).
Both sides run on one thread (OMP_NUM_THREADS=1 is set before the native library loads; torch.set_num_threads(1));
the fastest call of each is kept (graphc.bench.measure.cpu_times_ms, interleaved rounds).

    python benchmarks/collapsed_dims.py [--budget 2]
"""
from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from threadpoolctl import threadpool_limits  # noqa: E402

import graphc  # noqa: E402
from graphc.bench.measure import cpu_times_ms  # noqa: E402

CASES = {  # name: (function, shape of both operands, whether the second is passed transposed in its last two dims)
    "(x * y).sum(), 16x4x128x64": (lambda x, y: (x * y).sum(), (16, 4, 128, 64), False),
    "(x * y).sum((1, 2, 3)), 16x4x128x64": (lambda x, y: (x * y).sum((1, 2, 3)), (16, 4, 128, 64), False),
    "(x * y).sum(), y transposed": (lambda x, y: (x * y).sum(), (16, 4, 128, 64), True),
    "x * y + x, 256x64x32x2": (lambda x, y: x * y + x, (256, 64, 32, 2), False),
    "x * y + x, 16x4x128x64x1": (lambda x, y: x * y + x, (16, 4, 128, 64, 1), False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--budget", type=float, default=2.0, help="seconds of timing per case")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    print(f"load average {os.getloadavg()[0]:.1f}")
    with threadpool_limits(1):
        for name, (fn, shape, transposed) in CASES.items():
            x = rng.standard_normal(shape, dtype=np.float32)
            y = rng.standard_normal(shape[:-2] + shape[-2:][::-1] if transposed else shape, dtype=np.float32)
            y = y.swapaxes(-1, -2) if transposed else y
            compiled = graphc.compile(fn, backend="cpu", mode="max-autotune")
            gx, gy, tx, ty = graphc.from_numpy(x), graphc.from_numpy(y), torch.from_numpy(x), torch.from_numpy(y)
            np.testing.assert_allclose(compiled(gx, gy).numpy(), fn(tx, ty).numpy(), rtol=1e-4, atol=1e-2)
            ms = cpu_times_ms({"graphc": lambda: compiled(gx, gy), "torch": lambda: fn(tx, ty)}, args.budget)
            print(f"{name}: graphc {ms['graphc']:.3f} ms, torch eager {ms['torch']:.3f} ms, "
                  f"{ms['graphc'] / ms['torch']:.2f}x")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
