"""Train the digits MLP with DistributedDataParallel: each process trains on its share of every epoch
(DistributedSampler) and gradients are averaged over the process group (gloo on CPU, NCCL on GPUs).

    torchrun --nproc_per_node=2 examples/train_digits_ddp.py [--epochs N] [--compile]

Across machines, run on each: torchrun --nnodes=2 --nproc_per_node=K --rdzv-backend=c10d
--rdzv-endpoint=HOST:29500 examples/train_digits_ddp.py (docs/distributed.md)."""
from __future__ import annotations

import argparse
import time

from digits import BATCH_SIZE, LR, accuracy, load_split, train_step
from train_digits_mlp import make_model

import graphc
import graphc.distributed as dist
from graphc import nn
from graphc.nn.parallel import DistributedDataParallel
from graphc.utils.data import DataLoader, DistributedSampler, TensorDataset


def main(argv: list[str] | None = None) -> float:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--compile", action="store_true", help="run the train step through graphc.compile")
    args = parser.parse_args(argv)

    dist.init_process_group()  # gloo on CPU, NCCL when CUDA is available; torchrun sets the rendezvous
    rank, world = dist.get_rank(), dist.get_world_size()
    device = graphc.device("cuda" if graphc.cuda.is_available() else "cpu")
    graphc.manual_seed(rank)  # different on purpose: DDP starts every replica from rank 0's weights
    train_x, train_y, test_x, test_y = (graphc.tensor(a) for a in load_split(0))
    data = TensorDataset(train_x, train_y)
    sampler = DistributedSampler(data, shuffle=True, seed=0)
    # the global batch is BATCH_SIZE: each of the world's ranks takes its share
    loader = DataLoader(data, batch_size=BATCH_SIZE // world, sampler=sampler, drop_last=True)
    model = DistributedDataParallel(make_model().to(device))
    optimizer = graphc.optim.Adam(model.parameters(), lr=LR)
    loss_fn = nn.CrossEntropyLoss()
    step = graphc.compile(train_step) if args.compile else train_step
    start = time.perf_counter()
    for epoch in range(1, args.epochs + 1):
        sampler.set_epoch(epoch)
        for x, y in loader:
            loss = step(model, optimizer, loss_fn, x.to(device), y.to(device))
        if rank == 0:
            print(f"epoch {epoch:2d}: loss {loss.item():.4f} (rank 0's last batch)")
    hits = accuracy(model.module, test_x.to(device), test_y.to(device))
    if rank == 0:
        print(f"{world} processes trained {args.epochs} epochs in {time.perf_counter() - start:.2f} s; test "
              f"accuracy {hits:.2%}")
    dist.destroy_process_group()
    return hits


if __name__ == "__main__":
    main()
