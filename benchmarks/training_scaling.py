"""Training steps at realistic sizes on CPU: graphc.compile (backend 'auto': native C kernels where a C compiler
works) against torch eager and torch.compile, at 1 and 2 threads, in one process with interleaved rounds (each
round runs every contender once per thread count, so all see the same machine load; the fastest step is kept).

- MLP 64-2048-2048-10, batch 512, Adam;
- GPT: 2 pre-norm blocks (d 256, 4 heads, GELU MLP), sequence 128, batch 16, vocabulary 512, AdamW.

    python benchmarks/training_scaling.py [--rounds 3] [--steps 5] [--threads 1,2] [--cpu-time] [--first-calls]

--cpu-time times the steps by the process's CPU time instead of the wall clock: on a shared machine other processes'
load then slows neither side (it still shares caches and memory bandwidth); only 1-thread rows mean something then
(at 2 threads it adds up both threads' time).

It also prints each contender's first call (graphc: capture and a run of the numpy backend's plan, the tiered start's
first tier, which needs no fusion and no C; torch.compile: Dynamo + Inductor, cold: TORCHINDUCTOR_CACHE_DIR,
TRITON_CACHE_DIR and GRAPHC_CACHE_DIR point to fresh temporary folders unless set, and torch.compile's one-off
start-up in the process is spent on a trivial function first, as graphc.bench does; each first call starts after
gc.collect(), as timeit's timings run without the collector: a full collection of the ~335,000 objects that torch,
Triton and graphc leave costs about 120 ms, and the set-up's allocations made it fall due inside whichever first call
ran next) and checks that graphc and torch eager compute the same loss on the first step; --first-calls stops there
(no native build, no timed steps). Each first call prints its wall-clock and CPU time (the process's, all threads)
and its page faults.
`uptime`'s load average is printed before and after: other processes on the machine slow both sides."""
from __future__ import annotations

import argparse
import gc
import os
import resource
import tempfile
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

import graphc
from graphc.bench.measure import torch_compile_startup_s

D, HEADS, SEQ, BATCH, VOCAB, BLOCKS = 256, 4, 128, 16, 512, 2


def mlp(lib):
    nn = lib.nn
    return nn.Sequential(nn.Linear(64, 2048), nn.ReLU(), nn.Linear(2048, 2048), nn.ReLU(), nn.Linear(2048, 10))


def gpt(lib):
    """A small GPT written once for both libraries (graphc mirrors torch's API)."""
    nn, F = lib.nn, lib.nn.functional

    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.ln1, self.ln2 = nn.LayerNorm(D), nn.LayerNorm(D)
            self.qkv, self.proj = nn.Linear(D, 3 * D), nn.Linear(D, D)
            self.fc, self.out = nn.Linear(D, 4 * D), nn.Linear(4 * D, D)

        def forward(self, x):
            b, t, _ = x.shape
            q, k, v = (z.view(b, t, HEADS, D // HEADS).transpose(1, 2) for z in self.qkv(self.ln1(x)).chunk(3, -1))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + self.proj(y.transpose(1, 2).reshape(b, t, D))
            return x + self.out(F.gelu(self.fc(self.ln2(x))))

    class GPT(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok, self.pos = nn.Embedding(VOCAB, D), nn.Embedding(SEQ, D)
            self.blocks = nn.ModuleList([Block() for _ in range(BLOCKS)])
            self.ln, self.head = nn.LayerNorm(D), nn.Linear(D, VOCAB)

        def forward(self, idx):
            x = self.tok(idx) + self.pos(lib.arange(idx.shape[1]))
            for block in self.blocks:
                x = block(x)
            return self.head(self.ln(x))

    return GPT()


def setup(name: str):
    """(graphc model, torch model with the same weights, graphc optimizer, torch optimizer, graphc batch, torch batch,
    loss function name)."""
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    build = mlp if name == "mlp" else gpt
    tmodel, gmodel = build(torch), build(graphc)
    gmodel.load_state_dict({k: graphc.tensor(v.detach().numpy()) for k, v in tmodel.state_dict().items()})
    if name == "mlp":
        x = rng.standard_normal((512, 64)).astype(np.float32)
        y = rng.integers(0, 10, 512)
        gopt, topt = graphc.optim.Adam(gmodel.parameters(), 1e-3), torch.optim.Adam(tmodel.parameters(), 1e-3)
    else:
        x = rng.integers(0, VOCAB, (BATCH, SEQ))
        y = rng.integers(0, VOCAB, (BATCH, SEQ))
        gopt = graphc.optim.AdamW(gmodel.parameters(), 3e-4)
        topt = torch.optim.AdamW(tmodel.parameters(), 3e-4)
    return gmodel, tmodel, gopt, topt, (graphc.tensor(x), graphc.tensor(y)), (torch.from_numpy(x), torch.from_numpy(y))


def step_fn(lib, model, opt, compile_forward=None):
    forward = compile_forward(model) if compile_forward else model
    F = lib.nn.functional

    def step(x, y):
        opt.zero_grad()
        logits = forward(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        loss.backward()
        opt.step()
        return loss
    return step


def timed(fn, *args, clock=time.perf_counter) -> tuple[float, object]:
    start = clock()
    out = fn(*args)
    float(out)
    return clock() - start, out


def time_first_call(fn, *args) -> tuple[float, float, int, object]:
    """(wall-clock seconds, CPU seconds, page faults, result) of a first call, which starts after a full collection.
    The page faults are the process's minor faults: each is a fresh 4 KB page, which costs more than the work
    writing it on the 2-core machine (docs/benchmarks.md, "Fresh memory")."""
    gc.collect()  # no first call pays for a full collection of the garbage set-up and the others left
    cpu, faults = time.process_time(), resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    wall, out = timed(fn, *args)
    return wall, time.process_time() - cpu, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=5, help="steps per contender per round (the fastest is kept)")
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--cpu-time", action="store_true", help="time steps by the process's CPU time")
    parser.add_argument("--first-calls", action="store_true", help="only the first calls")
    args = parser.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    threads = [int(t) for t in args.threads.split(",")]
    caches = tempfile.TemporaryDirectory(prefix="graphc-scaling-")  # cold compiles: fresh kernel caches
    for var in ("TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR", "GRAPHC_CACHE_DIR"):
        os.environ.setdefault(var, os.path.join(caches.name, var.lower()))
    print(f"load average {os.getloadavg()[0]:.1f}; torch.compile's one-off start-up {torch_compile_startup_s():.1f} s "
          f"(charged to neither step)")
    for name in ("mlp", "gpt"):
        gmodel, tmodel, gopt, topt, gbatch, tbatch = setup(name)
        _, tmodel_c, _, topt_c, _, _ = setup(name)
        first_call = graphc.compile(step_fn(graphc, gmodel, gopt))  # default mode: the numpy plan first
        contenders = {"graphc compiled": (first_call, gbatch),
                      "torch eager": (step_fn(torch, tmodel, topt), tbatch),
                      "torch.compile": (step_fn(torch, tmodel_c, topt_c, torch.compile), tbatch)}
        first = {}
        for label, (fn, batch) in contenders.items():
            first[label], cpu, faults, loss = time_first_call(fn, *batch)
            print(f"{name}: {label} first call {first[label]:.2f} s (CPU {cpu:.2f} s, {faults} page faults; loss "
                  f"{float(loss):.5f})")
        print(f"{name}: graphc's first call is {first['torch.compile'] / first['graphc compiled']:.0f}x faster than "
              f"torch.compile's (target: 20x)")
        if args.first_calls:
            continue
        start = time.perf_counter()
        steady = graphc.compile(step_fn(graphc, gmodel, gopt), mode="max-autotune")  # waits for the native build
        timed(steady, *gbatch)
        timed(steady, *gbatch)
        print(f"{name}: graphc's native build (max-autotune waits for it) took {time.perf_counter() - start:.1f} s")
        contenders["graphc compiled"] = (steady, gbatch)
        best = {(label, t): float("inf") for label in contenders for t in threads}
        for _ in range(args.rounds):
            for t in threads:
                with threadpool_limits(t):
                    torch.set_num_threads(t)
                    for label, (fn, batch) in contenders.items():
                        for _ in range(args.steps):
                            best[label, t] = min(best[label, t], timed(fn, *batch, clock=clock)[0])
        for t in threads:
            g, e, c = (best[label, t] for label in contenders)
            print(f"{name} {t} thread(s){', CPU time' if args.cpu_time else ''}: graphc compiled {g * 1e3:.1f} ms, "
                  f"torch eager {e * 1e3:.1f} ms, "
                  f"torch.compile {c * 1e3:.1f} ms; compiled / torch eager {g / e:.2f}x, compiled / torch.compile "
                  f"{g / c:.2f}x")
    print(f"load average {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
