"""DataLoader throughput: seconds per epoch of a dataset whose samples take time to produce (a simulated 1 ms read,
then a numpy crop, flip and normalisation of a 3x32x32 image), with num_workers 0 and 2, graphc against torch.

    python benchmarks/dataloader.py [--samples 1024] [--batch-size 64] [--read-ms 1.0] [--repeats 3]

Each configuration runs one warm-up epoch (workers start) and then `repeats` epochs; the fastest is reported."""
from __future__ import annotations

import argparse
import time

import numpy as np


def make_dataset(lib, data, n: int, read_ms: float):
    class Images(data.Dataset):
        def __len__(self):
            return n

        def __getitem__(self, i):
            time.sleep(read_ms / 1000)  # a file read or a JPEG decode
            rng = np.random.default_rng(i)
            image = rng.random((3, 36, 36), dtype=np.float32)
            y, x = np.random.randint(0, 5, 2)
            image = image[:, y:y + 32, x:x + 32]
            if np.random.rand() < 0.5:
                image = image[:, :, ::-1]
            image = (image - 0.5) / 0.25
            return lib.tensor(np.ascontiguousarray(image)), i % 10
    return Images()


def seconds_per_epoch(lib, data, args, workers: int) -> float:
    loader = data.DataLoader(make_dataset(lib, data, args.samples, args.read_ms), batch_size=args.batch_size,
                             shuffle=True, num_workers=workers, persistent_workers=workers > 0)
    times = []
    for _ in range(args.repeats + 1):
        start = time.perf_counter()
        for images, labels in loader:
            assert images.shape[1:] == (3, 32, 32) and len(labels) == len(images)
        times.append(time.perf_counter() - start)
    return min(times[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=1024)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--read-ms", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import torch
    import torch.utils.data as tdata

    import graphc
    import graphc.utils.data as gdata

    print(f"{args.samples} samples, batch {args.batch_size}, {args.read_ms} ms read per sample")
    print(f"{'workers':>8} {'graphc s/epoch':>15} {'torch s/epoch':>14}")
    for workers in (0, 2):
        ours, theirs = (seconds_per_epoch(graphc, gdata, args, workers),
                        seconds_per_epoch(torch, tdata, args, workers))
        print(f"{workers:>8} {ours:>15.3f} {theirs:>14.3f}")


if __name__ == "__main__":
    main()
