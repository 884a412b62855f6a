"""graphc.save / graphc.load without pickle: a zip archive holding a JSON manifest (the object's structure, with
tensors as references) and each tensor's raw little-endian bytes. Loading parses data and never runs code."""
from __future__ import annotations

import json
import os
import secrets
import zipfile
from typing import IO, Any

import numpy as np

from . import dtypes
from .tensor import Tensor, device

FORMAT, VERSION = "graphc-checkpoint", 1
MANIFEST = "graphc/manifest.json"
_DTYPES = {d.name: d for d in dtypes.ALL}
_PLAIN = (str, int, float, bool, type(None))
_MALFORMED = (ValueError, TypeError, KeyError, IndexError, AttributeError, RecursionError, OverflowError, EOFError,
              zipfile.BadZipFile)  # what parsing a damaged archive or manifest raises


class CheckpointError(RuntimeError):
    """graphc.load refused a file: not a graphc checkpoint (a pickle or torch.save file, say), truncated or corrupt."""


def save(obj: Any, f: str | os.PathLike | IO[bytes]) -> None:
    """Write nested dicts/lists/tuples of tensors and plain values (str, int, float, bool, None) to f.
    A path is written atomically: a temporary file in the same directory, then os.replace."""
    tensors: list[Tensor] = []
    manifest = {"format": FORMAT, "version": VERSION, "root": _encode(obj, tensors, {}, "obj")}
    manifest["tensors"] = [{"dtype": t.dtype.name, "shape": list(t.shape), "device": t.device.type,
                            "requires_grad": t.requires_grad} for t in tensors]
    if hasattr(f, "write"):
        _write(f, manifest, tensors)
        return
    path = os.fspath(f)
    tmp = f"{path}.{secrets.token_hex(6)}.tmp"
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as out:
            _write(out, manifest, tensors)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def load(f: str | os.PathLike | IO[bytes], map_location: str | device | None = None) -> Any:
    """Read what save wrote. Tensors go back to the device they were saved from, or to map_location.
    Any other file (pickle, torch.save, truncated, corrupt) raises CheckpointError naming it; nothing is executed."""
    name = repr(getattr(f, "name", f)) if hasattr(f, "read") else repr(os.fspath(f))
    stream = f if hasattr(f, "read") else open(f, "rb")
    try:
        head = stream.read(4)
        stream.seek(0)
        try:
            archive = zipfile.ZipFile(stream)
        except zipfile.BadZipFile:
            raise CheckpointError(f"graphc.load: cannot read {name}: {_what_is(head, None)}") from None
        with archive:
            names = archive.namelist()
            if MANIFEST not in names:
                raise CheckpointError(f"graphc.load: cannot read {name}: {_what_is(head, names)}")
            try:
                return _read(archive, map_location)
            except _MALFORMED as e:
                raise CheckpointError(f"graphc.load: cannot read {name}: a corrupt or truncated graphc checkpoint "
                                      f"({type(e).__name__}: {e})") from None
    finally:
        if stream is not f:
            stream.close()


def _what_is(head: bytes, names: list[str] | None) -> str:
    """Why a file is not a checkpoint, from its first bytes and (for a readable zip) its member names."""
    if head[:1] == b"\x80":
        return "it is a pickle file (pickle.dump or an old torch.save); graphc never unpickles"
    if names is not None and any(n.endswith("data.pkl") for n in names):
        return ("it is a torch.save archive; load it with torch.load(path, weights_only=True) and convert each "
                "tensor with graphc.tensor(t.numpy())")
    if names is None and head[:2] == b"PK":
        return "the zip archive is truncated or corrupt"
    return f"it is not a graphc checkpoint (a zip archive holding {MANIFEST})"


def _encode(obj: Any, tensors: list[Tensor], index: dict[int, int], where: str):
    """obj as JSON: plain values and lists as themselves; tensors, tuples and dicts as one-key tagged objects."""
    if isinstance(obj, Tensor):
        if id(obj) not in index:
            index[id(obj)] = len(tensors)
            tensors.append(obj)
        return {"tensor": index[id(obj)]}
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, list):
        return [_encode(x, tensors, index, f"{where}[{i}]") for i, x in enumerate(obj)]
    if isinstance(obj, tuple):
        return {"tuple": [_encode(x, tensors, index, f"{where}[{i}]") for i, x in enumerate(obj)]}
    if isinstance(obj, dict):
        return {"dict": [[_encode(k, tensors, index, f"{where} key {k!r}"), _encode(v, tensors, index,
                                                                                     f"{where}[{k!r}]")]
                         for k, v in obj.items()]}
    raise TypeError(f"graphc.save: cannot save {where}, a {type(obj).__name__}: checkpoints hold tensors, str, int, "
                    "float, bool, None and lists, tuples and dicts of them")


def _write(out: IO[bytes], manifest: dict, tensors: list[Tensor]) -> None:
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest))
        for i, t in enumerate(tensors):
            array = np.ascontiguousarray(t._host())
            if t.dtype is dtypes.bfloat16:
                array = array.view(np.uint16)
            archive.writestr(f"graphc/tensors/{i}", array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes())


def _read(archive: zipfile.ZipFile, map_location) -> Any:
    manifest = json.loads(archive.read(MANIFEST))
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError(f"unsupported format {manifest.get('format')!r} version {manifest.get('version')!r}")
    tensors = [_read_tensor(archive, i, spec, map_location) for i, spec in enumerate(manifest["tensors"])]
    return _decode(manifest["root"], tensors)


def _read_tensor(archive: zipfile.ZipFile, i: int, spec: dict, map_location) -> Tensor:
    dt, shape = _DTYPES[spec["dtype"]], spec["shape"]
    if not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError(f"tensor {i} has a bad shape {shape!r}")
    member = f"graphc/tensors/{i}"
    nbytes = int(np.prod(shape, dtype=object)) * dt.itemsize
    if archive.getinfo(member).file_size != nbytes:
        raise ValueError(f"tensor {i} holds {archive.getinfo(member).file_size} bytes, its {dt.name} shape "
                         f"{shape} needs {nbytes}")
    storage = np.dtype(np.uint16 if dt is dtypes.bfloat16 else dt.np)
    array = np.frombuffer(archive.read(member), storage.newbyteorder("<")).astype(storage).reshape(shape)
    t = Tensor._make(array.view(dt.np), dt)
    if spec["requires_grad"] not in (False, dt.is_floating_point):
        raise ValueError(f"tensor {i} of dtype {dt.name} cannot require grad")
    t = t.to(map_location if map_location is not None else device(spec["device"]))
    return t.requires_grad_(True) if spec["requires_grad"] else t


def _decode(node: Any, tensors: list[Tensor]) -> Any:
    if isinstance(node, _PLAIN):
        return node
    if isinstance(node, list):
        return [_decode(x, tensors) for x in node]
    if isinstance(node, dict) and len(node) == 1:
        (tag, body), = node.items()
        if tag == "tensor" and type(body) is int and 0 <= body < len(tensors):
            return tensors[body]
        if tag == "tuple" and isinstance(body, list):
            return tuple(_decode(x, tensors) for x in body)
        if tag == "dict" and isinstance(body, list):
            return {_decode(k, tensors): _decode(v, tensors) for k, v in body}
    raise ValueError(f"unexpected manifest entry {json.dumps(node)[:80]}")
