"""graphc.onnx.verify: run an exported file in ONNX Runtime (CPU execution provider) and compare with graphc eager."""
from __future__ import annotations

import os

import numpy as np

from ..autograd import no_grad
from ..tensor import Tensor


def verify(model, args, f, rtol: float = 1e-5, atol: float = 1e-6) -> list[np.ndarray]:
    """Run the ONNX file f (a path, or bytes) in ONNX Runtime on args and compare each output with model(*args)
    run eagerly (in eval mode, under no_grad). Inputs are fed in the file's input order. Returns ONNX Runtime's
    outputs; raises AssertionError naming the output and the largest difference where
    |ort - eager| > atol + rtol * |eager|."""
    import onnxruntime
    args = tuple(args) if isinstance(args, (tuple, list)) else (args,)
    source = os.fspath(f) if isinstance(f, (str, os.PathLike)) else f
    session = onnxruntime.InferenceSession(source, providers=["CPUExecutionProvider"])
    tensors = [a for a in args if type(a) is Tensor]
    feed = {i.name: a.numpy() for i, a in zip(session.get_inputs(), tensors)}
    got = session.run(None, feed)
    training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        with no_grad():
            result = model(*args)
    finally:
        if training:
            model.train(True)
    expected = [t.numpy() for t in (result if isinstance(result, (tuple, list)) else [result])]
    for out, (a, b) in zip(session.get_outputs(), zip(got, expected)):
        if a.shape != b.shape:
            raise AssertionError(f"graphc.onnx.verify: output {out.name}: ONNX Runtime gives shape {list(a.shape)}, "
                                 f"graphc {list(b.shape)}")
        if not np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True):
            worst = float(np.max(np.abs(a.astype(np.float64) - b)))
            raise AssertionError(f"graphc.onnx.verify: output {out.name} differs from graphc eager by up to {worst:g} "
                                 f"(rtol={rtol}, atol={atol})")
    return got
