"""Peak memory of a training step's plan against graphc eager, traced by tracemalloc: the MLP 64-2048-2048-10
(batch 512, Adam) step of benchmarks/training_scaling.py.

Usage: python benchmarks/plan_memory.py [--backends eager,numpy,cpu]. Each backend runs in its own process (so
imports and caches of one do not count against another): 3 calls (the first two trace: the first creates the
optimizer's state), a garbage collection (the traces leave reference cycles), then the peak over 4 steady calls. The
cpu backend waits for its native kernels (mode="max-autotune"). Prints each peak and its ratio to eager's."""
from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tracemalloc

from training_scaling import mlp, step_fn


def peak(backend: str) -> float:
    """MB at the peak of 4 steady calls of the step compiled for backend ('eager': not compiled)."""
    import graphc
    import graphc.compiler.codegen  # noqa: F401  (imported before tracing, as eager's native kernels import it)

    tracemalloc.start()  # the parameters count, the modules imported do not
    graphc.manual_seed(0)
    model = mlp(graphc)
    opt = graphc.optim.Adam(model.parameters(), 1e-3)
    x, y = graphc.randn(512, 64), graphc.randint(0, 10, (512,))
    step = step_fn(graphc, model, opt)
    fn = step if backend == "eager" else graphc.compile(
        step, backend=backend, mode="max-autotune" if backend == "cpu" else "default")
    for _ in range(3):
        fn(x, y)
    gc.collect()
    tracemalloc.reset_peak()
    for _ in range(4):
        fn(x, y)
    return tracemalloc.get_traced_memory()[1] / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="eager,numpy,cpu")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # run one backend in this process
    args = parser.parse_args()
    if args.one:
        print(peak(args.one))
        return
    results = {b: float(subprocess.run([sys.executable, __file__, "--one", b], capture_output=True, text=True,
                                       check=True).stdout.split()[-1]) for b in args.backends.split(",")}
    for backend, mb in results.items():
        ratio = f" ({mb / results['eager']:.2f}x eager)" if "eager" in results else ""
        print(f"{backend:>6}: {mb:.1f} MB{ratio}")


if __name__ == "__main__":
    main()
