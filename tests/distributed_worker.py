"""One rank of tests/test_distributed.py's 2-process gloo runs (started by the test, not collected by pytest).

usage: python tests/distributed_worker.py SCENARIO OUT_DIR, with torchrun's variables (RANK, WORLD_SIZE,
MASTER_ADDR=127.0.0.1, MASTER_PORT) set. Each scenario writes OUT_DIR/<scenario>-<rank>.json for the test."""
from __future__ import annotations

import datetime
import json
import os
import sys

import numpy as np

import graphc
import graphc.distributed as dist
import graphc.nn as nn
import graphc.nn.functional as F
from graphc.nn.parallel import DistributedDataParallel as DDP

TIMEOUT = datetime.timedelta(seconds=20)


def mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))


def batches(steps: int, per_rank: int, world: int):
    """The same global batches on every rank (seeded); rank r trains on rows [r*per_rank, (r+1)*per_rank)."""
    rng = np.random.default_rng(0)
    return [(rng.standard_normal((per_rank * world, 8)).astype(np.float32), rng.integers(0, 4, per_rank * world))
            for _ in range(steps)]


def collectives(rank: int, world: int) -> dict:
    out = {}
    t = graphc.tensor([1.0, 2.0, 3.0]) * (rank + 1)
    dist.all_reduce(t)
    out["sum"] = t.tolist()
    t = graphc.tensor([float(rank), -float(rank)])
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    out["max"] = t.tolist()
    t = graphc.full((2, 3), float(rank)).T  # a non-contiguous view: reduced through a copy, written back
    dist.all_reduce(t)
    out["transposed"] = t.tolist()
    t = graphc.arange(4).float() + 10 * rank
    dist.broadcast(t, src=1)
    out["broadcast"] = t.tolist()
    gathered = [graphc.zeros(2) for _ in range(world)]
    dist.all_gather(gathered, graphc.tensor([rank, rank + 0.5]))
    out["all_gather"] = [g.tolist() for g in gathered]
    result = graphc.zeros(2)
    dist.reduce_scatter(result, [graphc.tensor([1.0, 2.0]) * (rank + 1) * (i + 1) for i in range(world)])
    out["reduce_scatter"] = result.tolist()
    work = dist.all_reduce(graphc.ones(3), async_op=True)
    out["async_done"] = bool(work.wait())
    try:
        dist.all_reduce(graphc.zeros(3 + rank))
    except RuntimeError as e:
        out["mismatch"] = str(e)
    return out


def ddp_training(rank: int, world: int, compiled: bool = False) -> dict:
    graphc.manual_seed(rank)  # different initial weights per rank: DDP must broadcast rank 0's
    model = DDP(mlp())
    opt = graphc.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    per = 6

    def step(x, y):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        return loss

    run = graphc.compile(step, backend="numpy") if compiled else step
    for x, y in batches(5, per, world):
        run(graphc.tensor(x[rank * per:(rank + 1) * per]), graphc.tensor(y[rank * per:(rank + 1) * per]))
    out = {k: v.tolist() for k, v in model.state_dict().items()}
    if compiled:
        out["num_traces"] = run.num_traces
        x, y = batches(1, per, world)[0]  # one more step, after the state was recorded, to read the plan
        report = graphc.explain(step, graphc.tensor(x[:per]), graphc.tensor(y[:per]))
        out["fallbacks"] = [name for name, _ in report.fallbacks]
    return out


def no_sync_accumulation(rank: int, world: int) -> dict:
    graphc.manual_seed(0)
    model = DDP(mlp())
    per = 3
    (x, y), (x2, y2) = batches(2, per, world)
    with model.no_sync():
        F.cross_entropy(model(graphc.tensor(x[rank * per:(rank + 1) * per])),
                        graphc.tensor(y[rank * per:(rank + 1) * per])).backward()
    local = {n: p.grad.tolist() for n, p in model.named_parameters()}
    F.cross_entropy(model(graphc.tensor(x2[rank * per:(rank + 1) * per])),
                    graphc.tensor(y2[rank * per:(rank + 1) * per])).backward()
    return {"local": local, "synced": {n: p.grad.tolist() for n, p in model.named_parameters()},
            "initial": {n: p.tolist() for n, p in model.named_parameters()}}


class TwoHeads(nn.Module):
    def __init__(self):
        super().__init__()
        self.body, self.a, self.b, self.never = nn.Linear(4, 4), nn.Linear(4, 2), nn.Linear(4, 2), nn.Linear(4, 2)

    def forward(self, x, head):
        h = self.body(x).relu()
        return self.a(h) if head == "a" else self.b(h)


def unused_parameters(rank: int, world: int) -> dict:
    graphc.manual_seed(0)
    model = DDP(TwoHeads(), find_unused_parameters=True)
    x = graphc.ones(2, 4) * (rank + 1)
    model(x, "a" if rank == 0 else "b").sum().backward()
    grads = {n: (None if p.grad is None else p.grad.tolist()) for n, p in model.named_parameters()}
    strict = DDP(TwoHeads())
    strict(x, "a").sum().backward()
    try:
        strict(x, "a")
        error = None
    except RuntimeError as e:
        error = str(e)
    return {"grads": grads, "error": error, "params": {n: p.tolist() for n, p in model.named_parameters()}}


def sampler(rank: int, world: int) -> dict:
    from graphc.utils.data import DataLoader, DistributedSampler, TensorDataset

    data = TensorDataset(graphc.arange(11))
    out = {}
    for shuffle, drop_last in ((True, False), (False, False), (True, True)):
        s = DistributedSampler(data, shuffle=shuffle, drop_last=drop_last, seed=3)
        epochs = []
        for epoch in (0, 1):
            s.set_epoch(epoch)
            epochs.append(list(s))
        out[f"{shuffle}-{drop_last}"] = {"epochs": epochs, "len": len(s)}
    loader = DataLoader(data, batch_size=2, sampler=DistributedSampler(data, shuffle=False))
    out["loader"] = [b[0].tolist() for b in loader]
    return out


SCENARIOS = {"collectives": collectives, "ddp": ddp_training, "ddp_compiled": lambda r, w: ddp_training(r, w, True),
             "no_sync": no_sync_accumulation, "unused": unused_parameters, "sampler": sampler}


def main() -> None:
    scenarios, folder = sys.argv[1].split(","), sys.argv[2]
    if scenarios == ["rank_dies"]:
        dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=10))
        if dist.get_rank() == 1:
            os._exit(3)
        try:
            dist.all_reduce(graphc.ones(4))
            dist.all_reduce(graphc.ones(4))
            message = "no error"
        except RuntimeError as e:
            message = str(e)
        json.dump({"error": message}, open(os.path.join(folder, "rank_dies-0.json"), "w"))
        return
    if scenarios == ["no_rendezvous"]:
        try:
            dist.init_process_group("gloo", timeout=datetime.timedelta(seconds=3))
            message = "no error"
        except RuntimeError as e:
            message = str(e)
        json.dump({"error": message}, open(os.path.join(folder, "no_rendezvous-0.json"), "w"))
        return
    dist.init_process_group("gloo", timeout=TIMEOUT)
    rank, world = dist.get_rank(), dist.get_world_size()
    for name in scenarios:
        result = SCENARIOS[name](rank, world)
        with open(os.path.join(folder, f"{name}-{rank}.json"), "w") as f:
            json.dump(result, f)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
