"""graphc.load on hostile and broken files, and graphc.save's failure modes: every bad file raises CheckpointError
naming it (or, for a flip in bytes load ignores, gives back exactly what was saved), nothing allocates beyond the
file's size, and a failed save names its file and leaves no temporary behind."""
from __future__ import annotations

import errno
import fcntl
import json
import os
import random
import struct
import subprocess
import sys
import textwrap
import zipfile

import numpy as np
import pytest
import torch

import graphc
from graphc.serialization import MANIFEST, CheckpointError


def small_checkpoint(path) -> dict:
    obj = {"w": graphc.tensor(np.arange(12, dtype=np.float32).reshape(3, 4)), "b": graphc.arange(3), "n": 2}
    graphc.save(obj, path)
    return obj


def same(a, b) -> bool:
    if isinstance(a, graphc.Tensor):
        return isinstance(b, graphc.Tensor) and a.dtype is b.dtype and a.numpy().tobytes() == b.numpy().tobytes() \
            and a.shape == b.shape
    if isinstance(a, dict):
        return isinstance(b, dict) and list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    return a == b


def write_archive(path, manifest, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest))
        for name, data in members.items():
            archive.writestr(name, data)


def manifest_for(*specs) -> dict:
    return {"format": "graphc-checkpoint", "version": 1, "root": {"tensor": 0},
            "tensors": [dict(dtype=d, shape=s, device=dev, requires_grad=False) for d, s, dev in specs]}


def test_device_files_are_refused_at_once():
    with pytest.raises(CheckpointError, match="'/dev/zero'.*not a regular file"):
        graphc.load("/dev/zero")
    with pytest.raises(Exception):  # noqa: B017 (torch refuses too; its message is its own)
        torch.load("/dev/zero")


def test_a_fifo_and_a_directory_are_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(CheckpointError, match="not a regular file"):
        graphc.load(fifo)
    with pytest.raises(CheckpointError, match="a directory"):
        graphc.load(tmp_path)
    with pytest.raises(FileNotFoundError):
        graphc.load(tmp_path / "missing")


def test_a_small_deflated_file_declaring_a_huge_tensor_is_refused_before_allocating(tmp_path):
    path, n = tmp_path / "bomb", 1 << 24
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST, json.dumps(manifest_for(("float32", [n], "cpu"))))
        with archive.open("graphc/tensors/0", "w") as member:
            for _ in range(64):
                member.write(bytes(n * 4 // 64))
    assert path.stat().st_size < 200_000
    with pytest.raises(CheckpointError, match="'.*bomb'.*compression method 8"):
        graphc.load(path)


@pytest.mark.parametrize("flags, method, words", [
    (0x1, 0, "flags 0x1"),                      # encrypted
    (0x20, 0, "flags 0x20"),                    # compressed patched data
    (0x0, 99, "compression method 99"),         # AES
    (0x0, 12, "compression method 12"),         # bzip2
])
def test_members_save_never_writes_are_refused(tmp_path, flags, method, words):
    """The last member's local and central headers patched as single-bit flips do: flags and method fields."""
    path = tmp_path / "ckpt"
    small_checkpoint(path)
    data = bytearray(path.read_bytes())
    local, central = data.rindex(b"PK\x03\x04"), data.rindex(b"PK\x01\x02")
    for at in (local + 6, central + 8):
        old_flags, _ = struct.unpack_from("<HH", data, at)
        struct.pack_into("<HH", data, at, old_flags | flags, method)
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"'.*ckpt'.*{words}"):
        graphc.load(path)


def test_truncation_at_every_offset_is_a_checkpoint_error(tmp_path):
    path = tmp_path / "ckpt"
    small_checkpoint(path)
    data, broken = path.read_bytes(), tmp_path / "broken"
    for cut in range(len(data)):
        broken.write_bytes(data[:cut])
        with pytest.raises(CheckpointError, match="'.*broken'"):
            graphc.load(broken)


def test_random_bit_flips_give_a_checkpoint_error_or_the_saved_values(tmp_path):
    path = tmp_path / "ckpt"
    original = small_checkpoint(path)
    data, broken, rng = path.read_bytes(), tmp_path / "broken", random.Random(0)
    errors = 0
    for _ in range(1000):
        flipped = bytearray(data)
        bit = rng.randrange(len(data) * 8)
        flipped[bit // 8] ^= 1 << (bit % 8)
        broken.write_bytes(bytes(flipped))
        try:
            back = graphc.load(broken)
        except CheckpointError as e:
            assert "broken" in str(e)
            errors += 1
        else:  # a flip in a field load does not use (a timestamp, a local-header copy of the CRC)
            assert same(back, original), f"bit {bit} changed what loads"
    assert errors > 500


def test_wrong_declared_sizes_are_refused(tmp_path):
    path = tmp_path / "ckpt"
    write_archive(path, manifest_for(("float32", [1 << 30], "cpu")), {"graphc/tensors/0": b"\0" * 16})
    with pytest.raises(CheckpointError, match="holds 16 bytes.*needs 4294967296"):
        graphc.load(path)
    small_checkpoint(path)
    data = bytearray(path.read_bytes())
    directory = data.rindex(b"PK\x01\x02")  # the last central-directory entry: the last tensor
    for field in (20, 24):  # its compressed and uncompressed sizes
        patched = bytearray(data)
        patched[directory + field:directory + field + 4] = struct.pack("<I", 1 << 31)
        path.write_bytes(bytes(patched))
        with pytest.raises(CheckpointError, match="'.*ckpt'"):
            graphc.load(path)
    zip64 = bytearray(data)  # a member offset of 2**62 behind a zip64 extra field
    eocd = data.rindex(b"PK\x05\x06")
    zip64[eocd + 16:eocd + 20] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(zip64))
    with pytest.raises(CheckpointError, match="'.*ckpt'"):
        graphc.load(path)


def cuda_checkpoint(path):
    write_archive(path, manifest_for(("float32", [2], "cuda")), {"graphc/tensors/0": np.float32([1, 2]).tobytes()})


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without CUDA")
def test_cuda_checkpoint_on_a_cpu_machine_names_the_file_and_map_location(tmp_path):
    path = tmp_path / "gpu.ckpt"
    cuda_checkpoint(path)
    with pytest.raises(RuntimeError, match="'.*gpu.ckpt'.*saved on 'cuda'.*map_location='cpu'"):
        graphc.load(path)
    reference = torch.tensor([1.0, 2.0])
    for where in ("cpu", graphc.device("cpu"), {"cuda:0": "cpu"}, {"cuda": graphc.device("cpu")},
                  lambda storage, location: storage):
        back = graphc.load(path, map_location=where, weights_only=True)
        assert back.device == "cpu" and back.tolist() == reference.tolist()
    seen = []
    graphc.load(path, map_location=lambda storage, location: seen.append(location) or storage)
    assert seen == ["cuda:0"]  # torch's location tag of a tensor saved on the first GPU


def test_torch_only_keywords_are_refused_clearly(tmp_path):
    small_checkpoint(tmp_path / "ckpt")
    with pytest.raises(TypeError, match="pickle_module"):
        graphc.load(tmp_path / "ckpt", pickle_module=None)


def test_cyclic_containers_name_the_cycle(tmp_path):
    loop: list = []
    loop.append(loop)
    with pytest.raises(ValueError, match=r"obj\[0\].*holds itself \(obj -> obj\[0\]\)"):
        graphc.save(loop, tmp_path / "ckpt")
    d: dict = {"a": {}}
    d["a"]["back"] = d
    with pytest.raises(ValueError, match=r"obj -> obj\['a'\] -> obj\['a'\]\['back'\]"):
        graphc.save(d, tmp_path / "ckpt")
    shared = [1, 2]
    graphc.save({"x": shared, "y": shared}, tmp_path / "ckpt")  # shared, not cyclic: fine
    assert graphc.load(tmp_path / "ckpt") == {"x": [1, 2], "y": [1, 2]}
    assert os.listdir(tmp_path) == ["ckpt"]


def test_saving_a_module_says_to_save_its_state_dict(tmp_path):
    with pytest.raises(TypeError, match=r"state_dict\(\)"):
        graphc.save(graphc.nn.Linear(2, 2), tmp_path / "ckpt")


def test_a_write_failing_with_no_space_names_the_file_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "ckpt"
    small_checkpoint(path)

    def no_space(out, manifest, tensors):
        out.write(b"PK partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(graphc.serialization, "_write", no_space)
    with pytest.raises(OSError, match="No space left on device: '.*ckpt'") as caught:
        graphc.save({"n": 3}, path)
    assert caught.value.errno == errno.ENOSPC and caught.value.filename == str(path)
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["ckpt"] and graphc.load(path)["n"] == 2


def test_a_file_too_large_for_the_limit_names_the_file(tmp_path):
    """A real EFBIG: the process's file-size limit is below the checkpoint's size."""
    path = tmp_path / "ckpt"
    code = textwrap.dedent(f"""
        import resource, signal, graphc
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        try:
            graphc.save({{"w": graphc.zeros(10000)}}, {str(path)!r})
        except OSError as e:
            print(e.errno, e.filename)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert out.stdout.split() == [str(errno.EFBIG), str(path)], out.stderr
    assert os.listdir(tmp_path) == []


def test_the_next_save_removes_temporaries_of_killed_saves_but_not_live_ones(tmp_path):
    path = tmp_path / "ckpt"
    stale, live = tmp_path / "ckpt.0123456789ab.tmp", tmp_path / "ckpt.ba9876543210.tmp"
    stale.write_bytes(b"PK half a checkpoint")
    live.write_bytes(b"PK being written")
    unrelated = tmp_path / "other.0123456789ab.tmp"
    unrelated.write_bytes(b"")
    with open(live, "rb") as writer:
        fcntl.flock(writer.fileno(), fcntl.LOCK_EX)
        small_checkpoint(path)
        assert sorted(os.listdir(tmp_path)) == sorted(["ckpt", live.name, unrelated.name])


def test_a_killed_save_leaves_the_old_file_and_the_next_save_cleans_up(tmp_path):
    path = tmp_path / "ckpt"
    graphc.save({"v": 1}, path)
    code = textwrap.dedent(f"""
        import os, graphc, graphc.serialization as s
        real = s._write
        def die_midway(out, manifest, tensors):
            out.write(b"PK partial"); out.flush(); os._exit(9)
        s._write = die_midway
        graphc.save({{"v": 2}}, {str(path)!r})
    """)
    subprocess.run([sys.executable, "-c", code], timeout=60, env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert len(os.listdir(tmp_path)) == 2 and graphc.load(path) == {"v": 1}
    graphc.save({"v": 3}, path)
    assert os.listdir(tmp_path) == ["ckpt"] and graphc.load(path) == {"v": 3}


def test_saving_through_a_symlink_writes_its_target(tmp_path):
    target, link = tmp_path / "real.ckpt", tmp_path / "latest.ckpt"
    graphc.save({"v": 1}, target)
    link.symlink_to(target.name)
    graphc.save({"v": 2}, link)
    assert link.is_symlink() and graphc.load(target) == {"v": 2} and graphc.load(link) == {"v": 2}
    torch_target, torch_link = tmp_path / "t.pt", tmp_path / "t-link.pt"  # torch does the same
    torch.save({"v": 1}, torch_target)
    torch_link.symlink_to(torch_target.name)
    torch.save({"v": 2}, torch_link)
    assert torch_link.is_symlink()
