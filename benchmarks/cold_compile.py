"""Cold compile: seconds from a fresh process (empty caches) to the first compiled training step of the digits MLP
(64-100-100-10, Adam, cross-entropy, batch 64), graphc.compile against torch.compile, each in its own subprocess;
and graphc.compiler.precompile for sm_90 (every Triton kernel of a training step compiled ahead of time, no GPU
needed) of the digits step and of a GPT step (2 and 4 blocks, d 256), cold (empty graphc and Triton caches) and
warm (a new process on the filled cache); on a machine with a CUDA GPU, the first GPU run of the digits step (its
first two calls: the first creates Adam's state, the second is the plan that is replayed) after precompile in
another process, against the same run with empty caches, with the kernels Triton compiled during the run (after
precompile: 0) and those it loaded from its cache.

    python benchmarks/cold_compile.py [--repeats 3] [--only plan|precompile|first-gpu-run] [--model digits|gpt]

For graphc, 'first step' is the first call (capture, passes, plan and run) and 'cached' the time until the
replayable plan exists (the first call creates the optimizer state, the second is the capture that is cached).
For torch, the first call of torch.compile(step) (Dynamo + Inductor, forward, backward and optimizer), after a
trivial torch.compile call that absorbs its one-off start-up (reported separately, not counted). It also
prints the steady-state step time (fastest of many single steps) of graphc compiled and eager, torch eager and
torch.compile."""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "examples")
STEPS = 100  # steady-state steps timed one by one; the fastest is reported (load on a shared machine only adds)

FASTEST = """
def fastest(fn, *args):
    times = []
    for _ in range({steps}):
        t = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t)
    return min(times) * 1e3
"""

GRAPHC = """
import sys, time, json
sys.path.insert(0, {examples!r})
import graphc
from graphc import nn
from digits import load_split, train_step
from train_digits_mlp import make_model
x, y, _, _ = load_split()
X, Y = graphc.tensor(x[:64]), graphc.tensor(y[:64])
model = make_model()
opt, loss_fn = graphc.optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss()
step = graphc.compile(train_step)
start = time.perf_counter()
step(model, opt, loss_fn, X, Y)
first = time.perf_counter() - start
step(model, opt, loss_fn, X, Y)
cached = time.perf_counter() - start


{fastest}

eager_model = make_model()
eager_opt = graphc.optim.Adam(eager_model.parameters(), lr=1e-3)
print(json.dumps({{"first": first, "cached": cached, "steady_ms": fastest(step, model, opt, loss_fn, X, Y),
                  "eager_ms": fastest(train_step, eager_model, eager_opt, loss_fn, X, Y),
                  "num_compiles": step.num_compiles}}))
"""

TORCH = """
import sys, time, json
sys.path.insert(0, {examples!r})
import torch
from digits import load_split
x, y, _, _ = load_split()
X, Y = torch.from_numpy(x[:64]), torch.from_numpy(y[:64])
model = torch.nn.Sequential(torch.nn.Linear(64, 100), torch.nn.ReLU(), torch.nn.Linear(100, 100), torch.nn.ReLU(),
                            torch.nn.Linear(100, 10))
opt, loss_fn = torch.optim.Adam(model.parameters(), lr=1e-3), torch.nn.CrossEntropyLoss()


def train_step(x, y):
    opt.zero_grad()
    loss = loss_fn(model(x), y)
    loss.backward()
    opt.step()
    return loss


{fastest}

eager_ms = fastest(train_step, X, Y)
start = time.perf_counter()
torch.compile(lambda t: t + 1)(X)  # Dynamo/Inductor's one-off start-up, charged separately
startup = time.perf_counter() - start
step = torch.compile(train_step)
start = time.perf_counter()
step(X, Y)
first = time.perf_counter() - start
print(json.dumps({{"first": first, "startup": startup, "steady_ms": fastest(step, X, Y), "eager_ms": eager_ms}}))
"""


PRECOMPILE = """
import sys, json
sys.path.insert(0, {examples!r})
import graphc
from graphc.bench.cases import CASES, Inputs
if {model!r} == "digits":
    from graphc import nn
    from digits import train_step
    from train_digits_mlp import make_model
    model = make_model()
    opt = graphc.optim.Adam(model.parameters(), lr=1e-3)
    fn, args = train_step, (model, opt, nn.CrossEntropyLoss(), graphc.randn(64, 64), graphc.randint(0, 10, (64,)))
else:
    setup = CASES["gpt_train_step"].build(graphc, Inputs(graphc, "cpu"), b=1, t=64, d=256, heads=4, layers={layers},
                                          vocab=1024)  # batch 1: Triton specialises on sizes, so a real
    # precompile takes the batch of the GPU run; here it is the compile time of the step's kernels that is measured
    fn, args = setup.fn, setup.args
done = graphc.compiler.precompile(fn, *args, arch=90)
print(json.dumps({{**vars(done), "torch": "torch" in sys.modules}}))
"""


FIRST_GPU_RUN = """
import sys, time, json
sys.path.insert(0, {examples!r})
import graphc
from graphc import nn
from digits import train_step
from train_digits_mlp import make_model
from triton import knobs
graphc.manual_seed(0)
device = {device!r}
model = make_model().to(device)
args = (model, graphc.optim.Adam(model.parameters(), lr=1e-3), nn.CrossEntropyLoss(),
        graphc.randn(64, 64, device=device), graphc.randint(0, 10, (64,), device=device))
if device == "cpu":  # precompile, on CPU, for the GPU the run uses
    print(json.dumps(vars(graphc.compiler.precompile(train_step, *args, arch={arch}))))
else:
    import torch
    events = []  # one per kernel Triton compiled or loaded from its cache
    knobs.compilation.listener = lambda **event: events.append(event["cache_hit"])
    step = graphc.compile(train_step, backend="triton", fullgraph=True)
    start = time.perf_counter()
    for _ in range(2):
        step(*args)
    torch.cuda.synchronize()
    print(json.dumps({{"seconds": time.perf_counter() - start, "compiled": events.count(False),
                      "loaded": events.count(True)}}))
"""


def run(code: str, env: dict, **params) -> dict:
    code = code.format(examples=EXAMPLES, fastest=FASTEST.format(steps=STEPS), **params)
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"the measured process failed (exit {out.returncode}):\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def fresh_env(cache: str) -> dict:
    """Environment of a cold process: graphc's, Inductor's and Triton's caches in cache (a new folder)."""
    return {**os.environ, "GRAPHC_CACHE_DIR": os.path.join(cache, "graphc"),
            "TORCHINDUCTOR_CACHE_DIR": os.path.join(cache, "inductor"), "TORCHINDUCTOR_FX_GRAPH_CACHE": "0",
            "TRITON_CACHE_DIR": os.path.join(cache, "triton"),
            "PYTHONPATH": os.path.join(HERE, "..") + os.pathsep + os.environ.get("PYTHONPATH", "")}


def plan_vs_torch_compile(repeats: int) -> None:
    rows = []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory() as cache:
            env = fresh_env(cache)
            rows.append((run(GRAPHC, env), run(TORCH, env)))
    for g, t in rows:
        print(f"cold: graphc first step {g['first']:.3f} s, cached plan after {g['cached']:.3f} s "
              f"({g['num_compiles']} compile) | torch.compile first step {t['first']:.2f} s after a start-up of "
              f"{t['startup']:.2f} s | {t['first'] / g['cached']:.0f}x (start-up excluded)")
        print(f"  step (fastest of {STEPS}): graphc compiled {g['steady_ms']:.3f} ms, graphc eager "
              f"{g['eager_ms']:.3f} ms, torch eager {t['eager_ms']:.3f} ms, torch.compile {t['steady_ms']:.3f} ms | "
              f"compiled / torch eager = {g['steady_ms'] / t['eager_ms']:.2f}")
    best_g = min(g["cached"] for g, _ in rows)
    best_t = min(t["first"] for _, t in rows)
    print(f"best of {repeats}: graphc {best_g:.3f} s to a cached plan, torch.compile {best_t:.2f} s (its start-up "
          f"excluded): {best_t / best_g:.0f}x faster")


def precompile_for_sm90(repeats: int, model: str | None = None) -> None:
    """precompile(step, arch=90) in a process with empty caches, then in a new process on the filled ones; model:
    only that step (digits, gpt)."""
    for model, layers in [m for m in (("digits", 0), ("gpt", 2), ("gpt", 4)) if model in (None, m[0])]:
        cold, warm = [], []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory() as cache:
                env = fresh_env(cache)
                cold.append(run(PRECOMPILE, env, model=model, layers=layers))
                warm.append(run(PRECOMPILE, env, model=model, layers=layers))
        name = "digits MLP step" if model == "digits" else f"GPT step ({layers} blocks, d 256)"
        c, w = min(cold, key=lambda r: r["seconds"]), min(warm, key=lambda r: r["seconds"])
        runs = ", ".join(f"{r['seconds']:.1f}" for r in cold)
        print(f"precompile sm_90, {name}: {c['kernels']} kernels, {c['distinct']} distinct | cold "
              f"{c['seconds']:.1f} s (runs: {runs}), warm {w['seconds']:.2f} s "
              f"({w['compiled']} compiled, torch {'imported' if w['torch'] else 'not imported'}) | "
              f"{os.cpu_count()} CPUs")


def first_gpu_run() -> None:
    """The digits step's first GPU run after precompile (in another process, for this GPU's arch), and without."""
    import torch

    if not torch.cuda.is_available():
        print("first GPU run: no GPU present (torch.cuda.is_available() is False); not measured")
        return
    major, minor = torch.cuda.get_device_capability()
    with tempfile.TemporaryDirectory() as warm, tempfile.TemporaryDirectory() as cold:
        done = run(FIRST_GPU_RUN, fresh_env(warm), device="cpu", arch=10 * major + minor)
        after = run(FIRST_GPU_RUN, fresh_env(warm), device="cuda", arch=0)
        without = run(FIRST_GPU_RUN, fresh_env(cold), device="cuda", arch=0)
    print(f"first GPU run of the digits step on {torch.cuda.get_device_name()}: after precompile "
          f"({done['seconds']:.1f} s, {done['distinct']} distinct kernels for sm_{done['arch']}) "
          f"{after['seconds']:.2f} s, {after['compiled']} kernels compiled during the run, {after['loaded']} loaded "
          f"from Triton's cache | without precompile {without['seconds']:.2f} s, {without['compiled']} compiled")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=["plan", "precompile", "first-gpu-run"], help="run one measurement")
    parser.add_argument("--model", choices=["digits", "gpt"], help="precompile: that step only")
    args = parser.parse_args()
    if args.only in (None, "plan"):
        plan_vs_torch_compile(args.repeats)
    if args.only in (None, "precompile"):
        precompile_for_sm90(args.repeats, args.model)
    if args.only in (None, "first-gpu-run"):
        first_gpu_run()


if __name__ == "__main__":
    main()
