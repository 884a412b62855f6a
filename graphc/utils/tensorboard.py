"""graphc.utils.tensorboard.SummaryWriter: torch.utils.tensorboard's SummaryWriter (which writes real event files
through the tensorboard package), taking graphc tensors wherever torch's takes tensors. add_graph writes the graph
graphc captures, each fused kernel as a name scope, so TensorBoard's graph tab shows what the compiler fuses.

Needs the `tensorboard` package (`pip install tensorboard`, or graphc's `tensorboard` extra)."""
from __future__ import annotations

import functools
from typing import Any

from ..tensor import Tensor

try:
    from torch.utils.tensorboard import SummaryWriter as _TorchSummaryWriter
except ImportError as e:  # torch's writer imports the tensorboard package
    raise ImportError("graphc.utils.tensorboard needs the tensorboard package: pip install tensorboard") from e

__all__ = ["SummaryWriter"]


def _plain(value: Any) -> Any:
    """graphc tensors (also inside dicts, lists and tuples) as numpy arrays, which torch's writer accepts."""
    if isinstance(value, Tensor):
        return value.detach().numpy()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_plain(v) for v in value)
    return value


def _taking_graphc_tensors(method):
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        return method(self, *[_plain(a) for a in args], **{k: _plain(v) for k, v in kwargs.items()})
    return wrapper


class SummaryWriter(_TorchSummaryWriter):
    """torch.utils.tensorboard.SummaryWriter(log_dir=None, comment="", purge_step=None, max_queue=10,
    flush_secs=120, filename_suffix=""): add_scalar, add_scalars, add_histogram, add_text, add_hparams, add_image,
    flush, close and the rest of torch's methods, with graphc tensors or numbers as values."""

    def add_graph(self, model: Any, input_to_model: Any = None, verbose: bool = False,
                  use_strict_trace: bool = True) -> None:
        """Capture model(*input_to_model) with graphc's compiler and write its IR graph: one TensorBoard node per
        IR node (op, output shape and dtype, and the user's file:line as attributes), grouped into a name scope per
        fused kernel ("kernel3_reduction/...") or fallback step. verbose prints graphc.explain's report.
        use_strict_trace is accepted for torch compatibility (graphc's capture has no such switch)."""
        from ..autograd import no_grad
        from ..compiler import explain

        args = input_to_model if isinstance(input_to_model, (list, tuple)) else (
            () if input_to_model is None else (input_to_model,))
        with no_grad():  # the forward graph, as torch's add_graph shows
            report = explain(model, *args)
        if verbose:
            print(report)
        self._get_file_writer().add_event(_event(_graph_def(report)))


def _graph_def(report):
    """The report's graphs as a TensorFlow GraphDef (the protocol TensorBoard's graph tab reads)."""
    from tensorboard.compat.proto.attr_value_pb2 import AttrValue
    from tensorboard.compat.proto.graph_pb2 import GraphDef
    from tensorboard.compat.proto.node_def_pb2 import NodeDef
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.compat.proto.versions_pb2 import VersionDef

    nodes = []
    for g, graph in enumerate(report.graphs):
        scope = {}
        for k, kernel in enumerate(report.kernels):
            for n in kernel.nodes:
                scope[id(n)] = f"kernel{k}_{kernel.kind}"
        prefix = f"graph{g}/" if len(report.graphs) > 1 else ""

        def name(n) -> str:
            where = scope.get(id(n)) or ("inputs" if n.kind in ("input", "const") else "ops")
            return f"{prefix}{where}/{n.label}_{n.id}"
        for n in graph.nodes:
            shape = TensorShapeProto(dim=[TensorShapeProto.Dim(size=d) for d in n.shape])
            nodes.append(NodeDef(name=name(n), op=n.label, input=[name(x) for x in n.inputs if hasattr(x, "kind")],
                                 attr={"_output_shapes": AttrValue(list=AttrValue.ListValue(shape=[shape])),
                                       "dtype": AttrValue(s=n.dtype.name.encode()),
                                       "where": AttrValue(s=(n.where or "").encode())}))
    return GraphDef(node=nodes, versions=VersionDef(producer=22))


def _event(graph_def):
    from tensorboard.compat.proto.event_pb2 import Event

    return Event(graph_def=graph_def.SerializeToString())


for _name in ("add_scalar", "add_scalars", "add_histogram", "add_histogram_raw", "add_hparams", "add_image",
              "add_images", "add_image_with_boxes", "add_figure", "add_video", "add_audio", "add_embedding",
              "add_pr_curve", "add_mesh", "add_tensor"):
    if hasattr(_TorchSummaryWriter, _name):
        setattr(SummaryWriter, _name, _taking_graphc_tensors(getattr(_TorchSummaryWriter, _name)))
