"""graphc.save / graphc.load without pickle: a zip archive holding a JSON manifest (the object's structure, with
tensors as references) and each tensor's raw little-endian bytes. Loading parses data and never runs code.

Safety of load (docs/serialization.md): only regular files are read; every member must be stored uncompressed,
unencrypted, and lie inside the file, so no declared size can make load allocate more than the file holds; zip's
CRC-32 covers every byte of the manifest and tensors; anything else wrong raises CheckpointError naming the file."""
from __future__ import annotations

import fcntl
import json
import os
import re
import secrets
import stat
import zipfile
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from . import dtypes
from .tensor import Tensor, device

FORMAT, VERSION = "graphc-checkpoint", 1
MANIFEST = "graphc/manifest.json"
_DTYPES = {d.name: d for d in dtypes.ALL}
_PLAIN = (str, int, float, bool, type(None))
# zip general-purpose flags save may write: bit 3 (sizes after the data, for unseekable streams), bit 11 (UTF-8 names)
_KNOWN_FLAGS = 0x0008 | 0x0800
_TEMPORARY = re.compile(r"\.[0-9a-f]{12}\.tmp$")

MapLocation = str | device | dict | Callable | None


class CheckpointError(RuntimeError):
    """graphc.load refused a file: not a graphc checkpoint (a pickle or torch.save file, say), truncated or corrupt."""


def save(obj: Any, f: str | os.PathLike | IO[bytes]) -> None:
    """Write nested dicts/lists/tuples of tensors and plain values (str, int, float, bool, None) to f.

    A path is written atomically: a temporary file beside the target, then os.replace, so an interrupted save leaves
    the previous file whole. A symbolic link is written through (the link stays, its target is replaced), as torch
    does. Temporaries left by killed saves to the same place are removed.
    Raises TypeError for values a checkpoint cannot hold (an nn.Module: save its state_dict()), ValueError for a
    container that contains itself, and OSError naming the file when the write fails."""
    tensors: list[Tensor] = []
    manifest = {"format": FORMAT, "version": VERSION, "root": _encode(obj, tensors, {}, "obj", [])}
    manifest["tensors"] = [{"dtype": t.dtype.name, "shape": list(t.shape), "device": t.device.type,
                            "requires_grad": t.requires_grad} for t in tensors]
    if hasattr(f, "write"):
        _write(f, manifest, tensors)
        return
    path = os.path.realpath(os.fspath(f))
    _remove_stale_temporaries(path)
    tmp = f"{path}.{secrets.token_hex(6)}.tmp"
    try:
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as out:
            fcntl.flock(out.fileno(), fcntl.LOCK_EX)  # marks the temporary as in use (see _remove_stale_temporaries)
            _write(out, manifest, tensors)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.lexists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            if e.errno is not None and not e.filename:
                e.filename = os.fspath(f)
            e.add_note(f"graphc.save: nothing was written; an earlier file at {os.fspath(f)!r} is unchanged")
        raise


def _remove_stale_temporaries(path: str) -> None:
    """Delete temporaries of earlier saves to path whose writer is gone (killed mid-save): a live writer holds an
    exclusive lock on its temporary, so only unlocked ones are removed."""
    folder, base = os.path.split(path)
    try:
        names = os.listdir(folder or ".")
    except OSError:
        return
    for name in names:
        if not (name.startswith(base + ".") and _TEMPORARY.fullmatch(name[len(base):])):
            continue
        candidate = os.path.join(folder, name)
        try:
            with open(candidate, "rb") as fh:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                os.unlink(candidate)
        except OSError:
            continue


def load(f: str | os.PathLike | IO[bytes], map_location: MapLocation = None, *, weights_only: bool | None = None,
         **kwargs) -> Any:
    """Read what save wrote. Tensors go back to the device they were saved from, or as map_location says:
    a device or string (everything there), a dict mapping saved locations to new ones ({"cuda:0": "cpu"}), or a
    callable(tensor, location) returning the tensor to use (or None to keep the default), as in torch.load.
    weights_only is accepted for torch compatibility: a graphc checkpoint never holds code, so load is always safe.

    Raises CheckpointError naming the file for anything that is not an intact graphc checkpoint (a pickle, a
    torch.save file, a device or FIFO, a truncated or corrupt archive), FileNotFoundError for a missing path, and
    RuntimeError naming map_location when a tensor was saved on CUDA and this machine has none."""
    if kwargs:
        raise TypeError(f"graphc.load: unexpected keyword arguments {sorted(kwargs)} (pickle_module and the "
                        "other pickle options do not apply: graphc checkpoints hold no pickles)")
    name = repr(getattr(f, "name", f)) if hasattr(f, "read") else repr(os.fspath(f))
    if not hasattr(f, "read"):
        mode = os.stat(f).st_mode  # before open: opening a FIFO would wait for a writer
        if not stat.S_ISREG(mode):
            raise CheckpointError(f"graphc.load: cannot read {name}: it is not a regular file "
                                  f"({'a directory' if stat.S_ISDIR(mode) else 'a device, FIFO or socket'})")
    stream = f if hasattr(f, "read") else open(f, "rb")  # noqa: SIM115 (closed below)
    try:
        head = stream.read(4)
        stream.seek(0)
        try:
            archive = zipfile.ZipFile(stream)
        except Exception as e:  # noqa: BLE001 (every way zipfile fails on bad bytes is "not a checkpoint")
            reason = _what_is(head, None) if isinstance(e, zipfile.BadZipFile) else f"{type(e).__name__}: {e}"
            raise CheckpointError(f"graphc.load: cannot read {name}: {reason}") from None
        with archive:
            names = archive.namelist()
            if MANIFEST not in names:
                raise CheckpointError(f"graphc.load: cannot read {name}: {_what_is(head, names)}")
            try:
                manifest, arrays = _read(archive, stream)
            except Exception as e:  # noqa: BLE001 (parsing untrusted bytes: any failure means a damaged file)
                raise CheckpointError(f"graphc.load: cannot read {name}: a corrupt or truncated graphc checkpoint "
                                      f"({type(e).__name__}: {e})") from None
    finally:
        if stream is not f:
            stream.close()
    tensors = [_place(t, spec, map_location, name) for t, spec in zip(arrays, manifest["tensors"])]
    return _decode(manifest["root"], tensors)


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


def _encode(obj: Any, tensors: list[Tensor], index: dict[int, int], where: str, path: list[tuple[int, str]]):
    """obj as JSON: plain values and lists as themselves; tensors, tuples and dicts as one-key tagged objects.
    path holds the containers being encoded (id, place), so a container that holds itself is named, not recursed."""
    if isinstance(obj, Tensor):
        if id(obj) not in index:
            index[id(obj)] = len(tensors)
            tensors.append(obj)
        return {"tensor": index[id(obj)]}
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, (list, tuple, dict)):
        for i, (ident, place) in enumerate(path):
            if ident == id(obj):
                cycle = " -> ".join([p for _, p in path[i:]] + [where])
                raise ValueError(f"graphc.save: cannot save {where}: it is {place} again, a container that holds "
                                 f"itself ({cycle}); a checkpoint holds trees of values")
        inner = [*path, (id(obj), where)]
        if isinstance(obj, dict):
            return {"dict": [[_encode(k, tensors, index, f"{where} key {k!r}", inner),
                              _encode(v, tensors, index, f"{where}[{k!r}]", inner)] for k, v in obj.items()]}
        items = [_encode(x, tensors, index, f"{where}[{i}]", inner) for i, x in enumerate(obj)]
        return items if isinstance(obj, list) else {"tuple": items}
    from .nn import Module

    if isinstance(obj, Module):
        raise TypeError(f"graphc.save: cannot save {where}, a whole {type(obj).__name__} module: a checkpoint holds "
                        "no code; save model.state_dict() and, to restore, build the model and call "
                        "model.load_state_dict(graphc.load(path))")
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


def _check_members(archive: zipfile.ZipFile, size: int) -> None:
    """Refuse any member save would not write (compressed, encrypted, unknown flags) or whose declared extent does
    not fit in the file, before anything is decompressed or allocated."""
    for info in archive.infolist():
        if info.compress_type != zipfile.ZIP_STORED or info.flag_bits & ~_KNOWN_FLAGS:
            raise ValueError(f"member {info.filename!r} uses compression method {info.compress_type} with flags "
                             f"{info.flag_bits:#x}; graphc checkpoints store members uncompressed and unencrypted")
        if info.compress_size != info.file_size or info.header_offset + info.file_size > size:
            raise ValueError(f"member {info.filename!r} declares {info.file_size} bytes at offset "
                             f"{info.header_offset}, beyond the file's {size} bytes")


def _read(archive: zipfile.ZipFile, stream: IO[bytes]) -> tuple[dict, list[np.ndarray]]:
    size = stream.seek(0, os.SEEK_END)
    _check_members(archive, size)
    manifest = json.loads(archive.read(MANIFEST))
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise ValueError("unsupported format or version")
    arrays = [_read_tensor(archive, i, spec) for i, spec in enumerate(manifest["tensors"])]
    _decode(manifest["root"], arrays)  # validate the structure before any tensor is moved
    return manifest, arrays


def _read_tensor(archive: zipfile.ZipFile, i: int, spec: dict) -> Tensor:
    dt, shape = _DTYPES[spec["dtype"]], spec["shape"]
    if not isinstance(shape, list) or not all(type(n) is int and n >= 0 for n in shape):
        raise ValueError(f"tensor {i} has a bad shape {shape!r}")
    member = f"graphc/tensors/{i}"
    nbytes = int(np.prod(shape, dtype=object)) * dt.itemsize
    if archive.getinfo(member).file_size != nbytes:
        raise ValueError(f"tensor {i} holds {archive.getinfo(member).file_size} bytes, its {dt.name} shape "
                         f"{shape} needs {nbytes}")
    if spec["requires_grad"] not in (False, dt.is_floating_point) or spec["device"] not in ("cpu", "cuda"):
        raise ValueError(f"tensor {i} has a bad entry {spec!r}")
    storage = np.dtype(np.uint16 if dt is dtypes.bfloat16 else dt.np)
    array = np.frombuffer(archive.read(member), storage.newbyteorder("<")).astype(storage).reshape(shape)
    return Tensor._make(array.view(dt.np), dt)


def _place(t: Tensor, spec: dict, map_location: MapLocation, name: str) -> Tensor:
    """The loaded CPU tensor t on the device map_location gives for its saved location."""
    saved = spec["device"]
    target: Any = saved
    location = device(saved, 0 if saved == "cuda" else None)  # torch's location tag of a CUDA tensor: "cuda:0"
    if callable(map_location):
        mapped = map_location(t, str(location))
        target = mapped.device if isinstance(mapped, Tensor) else saved
        t = mapped if isinstance(mapped, Tensor) else t
    elif isinstance(map_location, dict):  # a key matches as a string names a device (so "cuda" matches too)
        target = next((v for k, v in map_location.items() if location == str(k)), saved)
    elif map_location is not None:
        target = map_location
    target = device(target)
    if target.type == "cuda" and t.device.type != "cuda":
        from .compiler.compile import cuda_available

        if not cuda_available():
            raise RuntimeError(f"graphc.load: {name} holds tensors saved on {saved!r}, and this machine has no CUDA "
                               "device; pass map_location='cpu' (or map_location={'cuda': 'cpu'}) to load them "
                               "onto the CPU")
    t = t.to(target)
    return t.requires_grad_(True) if spec["requires_grad"] else t


def _decode(node: Any, tensors: list) -> Any:
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
