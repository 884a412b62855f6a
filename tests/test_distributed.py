"""graphc.distributed and DistributedDataParallel with 2 processes on gloo over loopback, against torch computing
the same training in one process. Each run is bounded in time and started by the test itself."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import graphc

WORKER = Path(__file__).with_name("distributed_worker.py")


def launch(scenarios: str, folder: Path, world: int = 2, timeout: float = 120, ranks: int | None = None) -> dict:
    """Run the worker's scenarios on `ranks` processes of a `world`-rank gloo group; {name: [result per rank]}."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world),
               PYTHONPATH=os.pathsep.join([str(WORKER.parent.parent), os.environ.get("PYTHONPATH", "")]))
    procs = [subprocess.Popen([sys.executable, str(WORKER), scenarios, str(folder)], env=dict(env, RANK=str(r)),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for r in range(world if ranks is None else ranks)]
    logs = []
    for p in procs:
        try:
            logs.append(p.communicate(timeout=timeout)[0])
        except subprocess.TimeoutExpired:
            for q in procs:
                q.kill()
            pytest.fail(f"distributed run {scenarios} did not finish within {timeout} s")
    results: dict = {}
    for name in scenarios.split(","):
        files = sorted(folder.glob(f"{name}-*.json"))
        assert files, f"{name} wrote nothing; logs:\n" + "\n".join(logs)
        results[name] = [json.loads(f.read_text()) for f in files]
    return results


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    return launch("collectives,ddp,no_sync,unused,sampler,ddp_compiled", tmp_path_factory.mktemp("dist"))


def torch_mlp() -> torch.nn.Module:
    graphc.manual_seed(0)
    sys.path.insert(0, str(WORKER.parent))
    from distributed_worker import mlp

    state = {k: torch.from_numpy(v.numpy().copy()) for k, v in mlp().state_dict().items()}
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    model.load_state_dict(state)
    return model


def test_collectives(runs):
    r0, r1 = runs["collectives"]
    for r in (r0, r1):
        assert r["sum"] == [3.0, 6.0, 9.0] and r["max"] == [1.0, 0.0]
        assert r["transposed"] == [[1.0, 1.0]] * 3
        assert r["broadcast"] == [10.0, 11.0, 12.0, 13.0]
        assert r["all_gather"] == [[0.0, 0.5], [1.0, 1.5]]
        assert r["async_done"]
        assert "rank 0 passed [float32 [3]], rank 1 passed [float32 [4]]" in r["mismatch"]
    assert r0["reduce_scatter"] == [3.0, 6.0] and r1["reduce_scatter"] == [6.0, 12.0]


@pytest.mark.parametrize("scenario", ["ddp", "ddp_compiled"])
def test_ddp_equals_one_process_on_the_concatenated_batches(runs, scenario):
    sys.path.insert(0, str(WORKER.parent))
    from distributed_worker import batches

    model = torch_mlp()  # rank 0's initial weights: DDP broadcasts them
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for x, y in batches(5, 6, 2):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.from_numpy(x)), torch.from_numpy(y)).backward()
        opt.step()
    for rank_state in runs[scenario]:
        for k, v in model.state_dict().items():
            np.testing.assert_allclose(rank_state[f"module.{k}"], v.numpy(), rtol=1e-5, atol=1e-6)
        if scenario == "ddp_compiled":
            assert rank_state["num_traces"] <= 2
            assert rank_state["fallbacks"].count("all_reduce") == 1  # one bucket: one collective step


def test_no_sync_accumulates_locally_then_averages(runs):
    sys.path.insert(0, str(WORKER.parent))
    from distributed_worker import batches

    (x, y), (x2, y2) = batches(2, 3, 2)
    model = torch_mlp()
    per_rank = []
    for r in range(2):
        model.zero_grad()
        for a, b in ((x, y), (x2, y2)):
            torch.nn.functional.cross_entropy(model(torch.from_numpy(a[r * 3:(r + 1) * 3])),
                                              torch.from_numpy(b[r * 3:(r + 1) * 3])).backward()
        per_rank.append({f"module.{k}": p.grad.numpy().copy() for k, p in model.named_parameters()})
    local = [r["local"] for r in runs["no_sync"]]
    assert not np.allclose(local[0]["module.0.weight"], local[1]["module.0.weight"])
    for r in runs["no_sync"]:
        for k, g in r["synced"].items():
            np.testing.assert_allclose(g, (per_rank[0][k] + per_rank[1][k]) / 2,
                                       rtol=1e-5, atol=1e-6)


def test_find_unused_parameters(runs):
    r0, r1 = runs["unused"]
    assert r0["grads"]["module.never.weight"] is None and r1["grads"]["module.never.weight"] is None
    for k in ("a.weight", "b.weight", "body.weight"):
        np.testing.assert_allclose(r0["grads"][f"module.{k}"], r1["grads"][f"module.{k}"])
    state = {k.removeprefix("module."): torch.tensor(v) for k, v in r0["params"].items()}
    body, a = torch.nn.Linear(4, 4), torch.nn.Linear(4, 2)
    body.load_state_dict({"weight": state["body.weight"], "bias": state["body.bias"]})
    a.load_state_dict({"weight": state["a.weight"], "bias": state["a.bias"]})
    a(body(torch.ones(2, 4)).relu()).sum().backward()  # rank 0's loss; rank 1 gave head a nothing
    np.testing.assert_allclose(r0["grads"]["module.a.weight"], a.weight.grad.numpy() / 2, rtol=1e-5)
    for r in (r0, r1):
        assert "find_unused_parameters=True" in r["error"] and "never.weight" in r["error"]


def test_distributed_sampler_partitions(runs):
    r0, r1 = runs["sampler"]
    for key, expected_len in (("True-False", 6), ("False-False", 6), ("True-True", 5)):
        a, b = r0[key], r1[key]
        assert a["len"] == b["len"] == expected_len
        for e0, e1 in zip(a["epochs"], b["epochs"]):
            assert len(e0) == len(e1) == expected_len
            if key.endswith("False"):  # padded with repeats to an even split, covering everything
                assert set(e0) | set(e1) == set(range(11))
            else:  # trimmed: disjoint shares
                assert not set(e0) & set(e1) and len(set(e0) | set(e1)) == 10
        if key.startswith("True"):
            assert a["epochs"][0] != a["epochs"][1]  # set_epoch reshuffles
    for rank, r in enumerate((r0, r1)):  # no shuffle: torch's exact order
        ref = torch.utils.data.DistributedSampler(list(range(11)), num_replicas=2, rank=rank, shuffle=False)
        assert r["False-False"]["epochs"][0] == list(ref)
    assert r0["loader"] == [[0, 2], [4, 6], [8, 10]]
    with pytest.raises(ValueError, match="Invalid rank 2"):
        graphc.utils.data.DistributedSampler(list(range(4)), num_replicas=2, rank=2)


def test_a_dead_rank_gives_the_other_a_clear_error(tmp_path):
    (result,) = launch("rank_dies", tmp_path, timeout=90)["rank_dies"]
    assert "graphc.distributed.all_reduce failed on rank 0" in result["error"]
    assert "another rank may have exited" in result["error"]


def test_a_rendezvous_that_never_completes_times_out_with_a_clear_error(tmp_path):
    (result,) = launch("no_rendezvous", tmp_path, ranks=1, timeout=90)["no_rendezvous"]
    assert "rendezvous at env://127.0.0.1" in result["error"] and "did not complete" in result["error"]
