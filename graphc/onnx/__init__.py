"""graphc.onnx: export a model's captured graph to ONNX (torch.onnx.export's signature) and check it in ONNX Runtime.
Needs the `onnx` and `onnxruntime` packages (`pip install graphc[onnx]`)."""
from .export import export
from .verify import verify

__all__ = ["export", "verify"]
