"""The kernel-fusion benchmark suite: `python -m graphc.bench [--quick] [--out DIR]` (see __main__.py).
Each case in cases.py runs in graphc (eager and compiled) and in torch (eager and torch.compile) on identical data."""
