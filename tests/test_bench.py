"""The benchmark CLI: a tiny run on two cases writes results.json (the API.md schema), results.md and
results.png, and its measured results agree with torch."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest

from graphc.bench.__main__ import main

API_KEYS = {"name", "kernels_unfused", "kernels_fused", "bytes_unfused", "bytes_fused", "bytes_ideal", "compile_s",
            "cpu_eager_ms", "cpu_compiled_ms", "torch_eager_ms", "torch_compile_ms", "gpu_ms", "gpu_torch_ms",
            "gpu_torch_compile_ms", "device"}
CASES = ["elementwise_chain", "rms_norm"]


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench")
    run = subprocess.run([sys.executable, "-m", "graphc.bench", "--quick", "--cases", ",".join(CASES),
                          "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    return out, run.stdout, json.loads((out / "results.json").read_text())


def test_files_and_schema(results):
    out, stdout, data = results
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / "results.md").read_text()
    rows = data["rows"]
    assert [r["name"] for r in rows] == CASES
    for row in rows:
        assert API_KEYS <= row.keys()
        assert row["name"] in stdout and row["name"] in markdown
        assert row["target"] == "cpu" and row["device"] == data["meta"]["cpu"]
        assert row["gpu_ms"] is None and row["torch_compile_ms"] is None  # no GPU here; --quick skips torch.compile
        assert row["skipped"] == {"torch.compile": "skipped in --quick"}
    assert data["meta"]["quick"] is True and data["meta"]["peaks"]["cpu"]["bandwidth"] > 0


def test_measurements(results):
    for row in results[2]["rows"]:
        assert row["errors"] == {}, row["errors"]
        assert row["torch_eager_ms"] > 0 and row["cpu_eager_ms"] > 0 and row["cpu_compiled_ms"] > 0
        assert row["err_eager"] < 1e-5 and row["err_compiled"] < 1e-5
        assert row["num_compiles"] == 1 and row["compile_s"] > 0
        assert 1 <= row["kernels_fused"] < row["kernels_unfused"]
        assert row["bytes_ideal"] <= row["bytes_fused"] < row["bytes_unfused"]
        assert 0 < row["bound_frac"]


def test_unknown_case_is_an_error(capsys):
    with pytest.raises(SystemExit):
        main(["--cases", "no_such_case"])
    assert "no_such_case" in capsys.readouterr().err


def test_without_matplotlib_the_chart_is_skipped_with_a_notice(results, tmp_path, monkeypatch, capsys):
    from graphc.bench import report

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # a plain `pip install graphc` has no matplotlib
    assert report.write_chart(tmp_path / "results.png", results[2]["rows"]) is False
    assert not (tmp_path / "results.png").exists()
    assert "pip install 'graphc[bench]'" in capsys.readouterr().out
