"""scripts/gpu_check.sh on a machine without a GPU: it says that no GPU is present, writes that into its folder and
exits cleanly, installing and running nothing."""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.sh"


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the script runs the whole check there")
def test_without_a_gpu_it_says_so_and_exits_cleanly(tmp_path):
    run = subprocess.run(["bash", str(SCRIPT), str(tmp_path / "out")], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert "no GPU present" in run.stdout and "did not run" in run.stdout
    assert "no GPU present" in (tmp_path / "out" / "summary.txt").read_text()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["device.txt", "summary.txt"]


def test_its_time_limits_fit_in_eight_minutes():
    """The worst case, every stage stopped at its limit (the device check included), stays within the issue's 8
    minutes; and the script also stops handing out time at its own deadline."""
    lines = SCRIPT.read_text().splitlines()
    limits = [int(line.split()[2]) for line in lines if line.startswith("stage ")]
    device = [int(line.split("timeout ")[1].split()[0]) for line in lines if line.startswith("if ! timeout ")]
    deadline = [line for line in lines if line.startswith("DEADLINE=$((SECONDS + ")]
    assert len(limits) == 5 and len(device) == 1 and sum(limits) + device[0] <= 480, (limits, device)
    assert len(deadline) == 1 and int(deadline[0].split("+ ")[1].split(")")[0]) <= 480
