"""graphc.utils.tensorboard.SummaryWriter writes event files that TensorBoard's own EventAccumulator reads back,
with the same contents as torch's writer given the same values."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import graphc
from graphc import nn
from graphc.utils.tensorboard import SummaryWriter


def read(folder) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "histograms": 0, "tensors": 0})
    acc.Reload()
    return acc


def write_both(tmp_path, write):
    """Run write(writer, as_tensor) with graphc's writer and with torch's, each into its own folder."""
    from torch.utils.tensorboard import SummaryWriter as TorchWriter

    for folder, writer, as_tensor in ((tmp_path / "graphc", SummaryWriter, graphc.tensor),
                                      (tmp_path / "torch", TorchWriter, torch.tensor)):
        with writer(str(folder)) as w:
            write(w, as_tensor)
    return read(tmp_path / "graphc"), read(tmp_path / "torch")


def test_scalars_histograms_and_text_match_torch(tmp_path):
    values = np.random.default_rng(0).standard_normal(1000).astype(np.float32)

    def write(w, as_tensor):
        for step in range(5):
            w.add_scalar("loss", as_tensor(1.0 / (step + 1)), step)
            w.add_scalar("lr", 0.1 * step, global_step=step)
        w.add_scalars("run", {"train": as_tensor(0.5), "val": 0.75}, 3)
        w.add_histogram("weights", as_tensor(values), 7)
        w.add_text("note", "hello **tensorboard**", 1)
    ours, theirs = write_both(tmp_path, write)
    for tag in ("loss", "lr"):
        assert [(e.step, e.value) for e in ours.Scalars(tag)] == [(e.step, e.value) for e in theirs.Scalars(tag)]
    assert [e.value for e in ours.Scalars("loss")] == pytest.approx([1, 1 / 2, 1 / 3, 1 / 4, 1 / 5])
    (ours_h,), (theirs_h,) = ours.Histograms("weights"), theirs.Histograms("weights")
    assert ours_h.step == 7 and ours_h.histogram_value == theirs_h.histogram_value
    assert ours.Tensors("note/text_summary")[0].tensor_proto == theirs.Tensors("note/text_summary")[0].tensor_proto
    run_ours = read(tmp_path / "graphc" / "run_train").Scalars("run")
    assert [(e.step, e.value) for e in run_ours] == [(3, 0.5)]


def test_hparams_are_written(tmp_path):
    with SummaryWriter(str(tmp_path)) as w:
        w.add_hparams({"lr": 0.1, "optimizer": "adam"}, {"hparam/accuracy": graphc.tensor(0.9)}, run_name="trial")
    acc = read(tmp_path / "trial")
    assert "_hparams_/session_start_info" in acc.summary_metadata
    assert [e.value for e in acc.Scalars("hparam/accuracy")] == pytest.approx([0.9])


def test_add_graph_writes_the_captured_graph_with_kernels_as_scopes(tmp_path):
    model = nn.Sequential(nn.Linear(4, 8), nn.GELU(), nn.Linear(8, 2))
    with SummaryWriter(str(tmp_path)) as w:
        w.add_graph(model, graphc.randn(3, 4))
    graph = read(tmp_path).Graph()
    ops = [n.op for n in graph.node]
    assert ops.count("matmul") == 2 and "gelu" in ops
    scoped = [n.name for n in graph.node if n.name.startswith("kernel")]
    assert scoped and all("/" in name for name in scoped)
    report = graphc.explain(model, graphc.randn(3, 4))
    assert len({name.split("/")[0] for name in scoped}) == report.num_kernels
    gelu = next(n for n in graph.node if n.op == "gelu")
    assert [d.size for d in gelu.attr["_output_shapes"].list.shape[0].dim] == [3, 8]
    assert gelu.attr["dtype"].s == b"float32"
