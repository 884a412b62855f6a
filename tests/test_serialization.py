"""graphc.save / graphc.load: exact round trips, atomic writes, and files that must never execute code."""
from __future__ import annotations

import io
import json
import math
import os
import pathlib
import pickle
import zipfile

import ml_dtypes
import numpy as np
import pytest
import torch

import graphc
from graphc.serialization import MANIFEST, CheckpointError

DTYPES = {"float32": np.float32, "float16": np.float16, "bfloat16": ml_dtypes.bfloat16, "float64": np.float64,
          "int64": np.int64, "int32": np.int32, "bool": np.bool_}


def sample_arrays(rng) -> dict[str, np.ndarray]:
    arrays = {name: (rng.standard_normal((3, 5)) * 100).astype(np_dtype) for name, np_dtype in DTYPES.items()}
    arrays["bool"] = rng.random((4, 2)) > 0.5
    arrays["scalar"] = np.array(2.5, np.float32)
    arrays["empty"] = np.zeros((0, 3), np.float32)
    return arrays


def assert_bitwise_equal(t: graphc.Tensor, expected: np.ndarray) -> None:
    actual = t.detach().numpy()
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    assert actual.tobytes() == np.ascontiguousarray(expected).tobytes()


class Malicious:
    """Unpickling this creates `marker` (a stand-in for running arbitrary code)."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return pathlib.Path.touch, (self.marker,)


def test_round_trip_of_nested_structures(tmp_path):
    arrays = sample_arrays(np.random.default_rng(0))
    tensors = {name: graphc.tensor(a, dtype=name if name in DTYPES else None) for name, a in arrays.items()}
    tensors["transposed"] = graphc.tensor(arrays["float32"]).T
    shared = tensors["float32"]
    obj = {"tensors": tensors, "shared": [shared, (shared, 3)], 7: "seven", (1, "a"): None, "nan": math.nan,
           "inf": -math.inf, "flags": [True, False, None], "text": "π ≈ 3.14", "big": 2**62,
           "nested": {"a": [[1, 2.5], ({"b": ()},)]}, "param": graphc.ones(2, requires_grad=True)}
    graphc.save(obj, tmp_path / "ckpt")
    back = graphc.load(tmp_path / "ckpt")

    for name, a in arrays.items():
        assert_bitwise_equal(back["tensors"][name], a)
        assert back["tensors"][name].dtype is tensors[name].dtype
    assert_bitwise_equal(back["tensors"]["transposed"], arrays["float32"].T)
    assert back["shared"][0] is back["shared"][1][0] is back["tensors"]["float32"]
    assert isinstance(back["shared"][1], tuple) and back["shared"][1][1] == 3
    assert back[7] == "seven" and back[(1, "a")] is None and math.isnan(back["nan"]) and back["inf"] == -math.inf
    assert back["flags"] == [True, False, None] and back["text"] == "π ≈ 3.14" and back["big"] == 2**62
    assert back["nested"] == {"a": [[1, 2.5], ({"b": ()},)]}
    assert back["param"].requires_grad and not back["tensors"]["float32"].requires_grad
    assert list(back) == list(obj)


def test_file_holds_json_and_raw_bytes_only(tmp_path):
    graphc.save({"w": graphc.tensor([1.0, 2.0], dtype=graphc.bfloat16)}, tmp_path / "ckpt")
    with zipfile.ZipFile(tmp_path / "ckpt") as archive:
        assert archive.namelist() == [MANIFEST, "graphc/tensors/0"]
        manifest = json.loads(archive.read(MANIFEST))
        raw = archive.read("graphc/tensors/0")
    assert manifest["tensors"] == [{"dtype": "bfloat16", "shape": [2], "device": "cpu", "requires_grad": False}]
    expected = torch.tensor([1.0, 2.0], dtype=torch.bfloat16).view(torch.int16).numpy().astype("<i2").tobytes()
    assert raw == expected


def test_file_objects(tmp_path):
    buffer = io.BytesIO()
    graphc.save([graphc.arange(4)], buffer)
    buffer.seek(0)
    assert graphc.load(buffer, map_location="cpu")[0].tolist() == [0, 1, 2, 3]


def test_unsupported_values_name_their_place(tmp_path):
    with pytest.raises(TypeError, match=r"obj\['model'\]\['w'\], a ndarray"):
        graphc.save({"model": {"w": np.zeros(2)}}, tmp_path / "ckpt")
    assert not os.listdir(tmp_path)


def test_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    graphc.save({"version": 1}, path)

    def fail_midway(out, manifest, tensors):
        out.write(b"PK partial")
        raise OSError("disk full")

    monkeypatch.setattr(graphc.serialization, "_write", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        graphc.save({"version": 2}, path)
    monkeypatch.undo()
    assert graphc.load(path) == {"version": 1}
    assert os.listdir(tmp_path) == ["ckpt"]


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_pickle_files_are_refused_without_running_code(tmp_path, writer):
    marker = tmp_path / "pwned"
    payload = {"weights": [1.0, 2.0], "evil": Malicious(marker)}
    path = tmp_path / "model.pt"
    if writer == "pickle":
        path.write_bytes(pickle.dumps(payload))
        pickle.loads(path.read_bytes())  # the payload is live: unpickling it does create the marker
        assert marker.exists()
        marker.unlink()
    else:
        torch.save(payload, path)
    with pytest.raises(CheckpointError, match=f"cannot read '{path}'.*(pickle|torch.save)"):
        graphc.load(path)
    assert not marker.exists()


def test_crafted_archive_with_pickled_tensor_is_refused(tmp_path):
    """A zip that looks like a checkpoint but whose tensor bytes are a pickle: the bytes are only ever numbers."""
    marker, path = tmp_path / "pwned", tmp_path / "crafted"
    evil = pickle.dumps(Malicious(marker))
    manifest = {"format": "graphc-checkpoint", "version": 1, "root": {"tensor": 0},
                "tensors": [{"dtype": "float32", "shape": [1], "device": "cpu", "requires_grad": False}]}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MANIFEST, json.dumps(manifest))
        archive.writestr("graphc/tensors/0", evil)
    with pytest.raises(CheckpointError, match=f"cannot read '{path}'.*holds {len(evil)} bytes"):
        graphc.load(path)
    assert not marker.exists()


@pytest.mark.parametrize("manifest", [
    {"format": "graphc-checkpoint", "version": 1, "root": {"__reduce__": ["os.system", "echo hi"]}, "tensors": []},
    {"format": "graphc-checkpoint", "version": 1, "root": {"tensor": 3}, "tensors": []},
    {"format": "graphc-checkpoint", "version": 1, "root": {"dict": [[[1], 2]]}, "tensors": []},
    {"format": "graphc-checkpoint", "version": 2, "root": None, "tensors": []},
    {"format": "graphc-checkpoint", "version": 1, "root": None,
     "tensors": [{"dtype": "object", "shape": [1], "device": "cpu", "requires_grad": False}]},
    {"format": "graphc-checkpoint", "version": 1, "root": None,
     "tensors": [{"dtype": "int64", "shape": [1], "device": "cpu", "requires_grad": True}]},
    ["not", "a", "manifest"],
])
def test_malformed_manifests_are_refused(tmp_path, manifest):
    path = tmp_path / "crafted"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(MANIFEST, json.dumps(manifest))
        archive.writestr("graphc/tensors/0", np.zeros(1, np.int64).tobytes())
    with pytest.raises(CheckpointError, match=f"cannot read '{path}': a corrupt or truncated"):
        graphc.load(path)


def test_truncated_and_corrupt_files_raise_naming_the_file(tmp_path):
    path = tmp_path / "ckpt"
    graphc.save({"w": graphc.randn(50, 50), "step": 3}, path)
    data = path.read_bytes()
    broken = tmp_path / "broken"
    for cut in (0, 3, 100, len(data) // 2, len(data) - 1):
        broken.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match=f"cannot read '{broken}'"):
            graphc.load(broken)
    for offset in (data.index(b"graphc/tensors/0") + 100, data.index(b'"root"')):
        corrupt = bytearray(data)
        corrupt[offset] ^= 0xFF
        broken.write_bytes(bytes(corrupt))
        with pytest.raises(CheckpointError, match=f"cannot read '{broken}'.*(CRC|corrupt)"):
            graphc.load(broken)


def test_foreign_files_are_refused(tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a graphc checkpoint"):
        graphc.load(text)
    other_zip = tmp_path / "other.zip"
    with zipfile.ZipFile(other_zip, "w") as archive:
        archive.writestr("readme", "hi")
    with pytest.raises(CheckpointError, match="not a graphc checkpoint"):
        graphc.load(other_zip)
