"""A corpus of hostile and broken checkpoint files, each with the command that reads it and what
that command must say. Built at test time into a folder (the payloads write a marker file whose
path only the test knows), by the builders below; ``tests/test_untrusted.py`` runs them.

A payload is a pickled object whose ``__reduce__`` names a callable that writes the marker: what a
malicious ``.pth`` or ``.pkl`` does with ``os.system``, ``exec`` or ``open``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import shutil
import struct
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

ARCH = "timm:resnet18"


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[Path, Path, Path], list[str]]  # (folder, marker, a real run) -> CLI arguments
    expect: str  # a fragment of the one-line error (or of the warning, for code 0)
    code: int = 2


class System:
    """Unpickling calls os.system (GLOBAL posix.system)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return os.system, (f"touch {self.marker}",)


class Exec:
    """Unpickling calls exec on Python source (GLOBAL builtins.exec)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return exec, (f"open({str(self.marker)!r}, 'w').close()",)


class Open:
    """Unpickling opens the marker for writing (GLOBAL builtins.open)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # noqa: ANN204
        return open, (str(self.marker), "w")


def _weights() -> dict[str, torch.Tensor]:
    import timm

    torch.manual_seed(0)
    return timm.create_model("resnet18", pretrained=False).state_dict()


def _save(path: Path, value: object, zip_format: bool = True) -> Path:
    torch.save(value, path, _use_new_zipfile_serialization=zip_format)
    return path


def _inspect(path: Path) -> list[str]:
    return ["zoo", "inspect", f"{ARCH}@{path}"]


def _torch_case(name: str, make: Callable[[Path], object], expect: str, zip_format: bool = True) -> Case:
    def build(folder: Path, marker: Path, run: Path) -> list[str]:
        return _inspect(_save(folder / name, make(marker), zip_format))

    return Case(name, build, expect)


def _pickle_case(name: str, make: Callable[[Path], object], expect: str, protocol: int = 2) -> Case:
    def build(folder: Path, marker: Path, run: Path) -> list[str]:
        (folder / name).write_bytes(pickle.dumps(make(marker), protocol=protocol))
        return _inspect(folder / name)

    return Case(name, build, expect)


def _run_case(name: str, make: Callable[[Path, dict], object], expect: str) -> Case:
    """A copy of a real run folder whose checkpoint.pt is replaced; read by ``eval``."""

    def build(folder: Path, marker: Path, run: Path) -> list[str]:
        target = folder / name
        shutil.copytree(run, target)
        good = torch.load(run / "checkpoint.pt", weights_only=False)  # our own run, made by the test
        torch.save(make(marker, good), target / "checkpoint.pt")
        data = json.loads((run / "recipe.json").read_text())["job"]["data"]
        return ["eval", "--checkpoint", target, "--data", data, "--device", "cpu"]

    return Case(name, build, expect)


def _truncated_zip(folder: Path, marker: Path, run: Path) -> list[str]:
    whole = _save(folder / "whole.pth", _weights()).read_bytes()
    (folder / "whole.pth").unlink()
    (folder / "truncated.pth").write_bytes(whole[: len(whole) // 2])
    return _inspect(folder / "truncated.pth")


def _oversized_storage(folder: Path, marker: Path, run: Path) -> list[str]:
    """A zip .pth whose pickle declares a storage of 2e9 elements over a 16-byte record."""
    buffer = io.BytesIO()
    torch.save({"conv1.weight": torch.zeros(4)}, buffer)
    big = b"J" + struct.pack("<i", 2_000_000_000)
    source = zipfile.ZipFile(io.BytesIO(buffer.getvalue()))
    with zipfile.ZipFile(folder / "oversized.pth", "w", zipfile.ZIP_STORED) as archive:
        for member in source.namelist():
            data = source.read(member)
            if member.endswith("data.pkl"):
                data = data.replace(b"K\x04t", big + b"t").replace(b"K\x04\x85", big + b"\x85")
            archive.writestr(member, data)
    return _inspect(folder / "oversized.pth")


def _lying_safetensors(folder: Path, marker: Path, run: Path) -> list[str]:
    """A safetensors header whose offsets reach far beyond the data that follows it."""
    header = json.dumps({"conv1.weight": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 4_000_000]}})
    payload = header.encode()
    (folder / "lying.safetensors").write_bytes(struct.pack("<Q", len(payload)) + payload + b"\0" * 64)
    return _inspect(folder / "lying.safetensors")


def _huge_header_safetensors(folder: Path, marker: Path, run: Path) -> list[str]:
    (folder / "header.safetensors").write_bytes(struct.pack("<Q", 10**15) + b"{}")
    return _inspect(folder / "header.safetensors")


def _non_finite(folder: Path, marker: Path, run: Path) -> list[str]:
    weights = _weights()
    weights["conv1.weight"][0, 0, 0, 0] = float("nan")
    weights["fc.bias"][3] = float("inf")
    return _inspect(_save(folder / "nan.pth", weights))


def _empty(folder: Path, marker: Path, run: Path) -> list[str]:
    (folder / "empty.pth").touch()
    return _inspect(folder / "empty.pth")


def _directory(folder: Path, marker: Path, run: Path) -> list[str]:
    (folder / "weights.pth").mkdir()
    return _inspect(folder / "weights.pth")


def _link_loop(folder: Path, marker: Path, run: Path) -> list[str]:
    (folder / "a.pth").symlink_to(folder / "b.pth")
    (folder / "b.pth").symlink_to(folder / "a.pth")
    return _inspect(folder / "a.pth")


def _garbage(folder: Path, marker: Path, run: Path) -> list[str]:
    (folder / "garbage.pth").write_bytes(np.random.default_rng(0).bytes(4096))
    return _inspect(folder / "garbage.pth")


def _not_torch_zip(folder: Path, marker: Path, run: Path) -> list[str]:
    with zipfile.ZipFile(folder / "notes.pth", "w") as archive:
        archive.writestr("notes.txt", "not a checkpoint")
    return _inspect(folder / "notes.pth")


def _truncated_pickle(folder: Path, marker: Path, run: Path) -> list[str]:
    content = {"model": {k: v.numpy() for k, v in _weights().items()}, "__author__": "Detectron2 Model Zoo"}
    whole = pickle.dumps(content, protocol=2)
    (folder / "truncated.pkl").write_bytes(whole[: len(whole) // 3])
    return _inspect(folder / "truncated.pkl")


def _yaml_models_file(folder: Path, marker: Path, run: Path) -> list[str]:
    (folder / "models.yaml").write_text(f"- !!python/object/apply:os.system ['touch {marker}']\n")
    data = json.loads((run / "recipe.json").read_text())["job"]["data"]
    return ["rank", "--data", data, "--models-file", folder / "models.yaml", "--out", folder / "ranked"]


def _yaml_bench_config(folder: Path, marker: Path, run: Path) -> list[str]:
    (folder / "bench.yaml").write_text(f"datasets: !!python/object/new:os.system ['touch {marker}']\n")
    return ["bench", folder / "bench.yaml", "--out", folder / "bench-out"]


def _old_run(marker: Path, good: dict) -> dict:
    """A run folder as versions before the data-only format wrote it: NumPy random states."""
    return {**good, "random": [{**good["random"][0], "numpy": np.random.get_state()}]}


def _state(marker: Path) -> dict[str, torch.Tensor]:
    return {"conv1.weight": torch.zeros(64, 3, 7, 7)}


def _non_tensor(marker: Path) -> dict:
    return {"state_dict": {**_weights(), "layer1.0.conv1.weight": "a string"}}


CASES = [
    _torch_case("payload_in_weights.pth", lambda m: {**_state(m), "bn1.weight": System(m)}, "posix.system"),
    _torch_case("payload_in_note.pth", lambda m: {"state_dict": _state(m), "note": Exec(m)}, "exec, which is code"),
    _torch_case("payload_nested.pth", lambda m: {"model": {"module": {"net": Open(m)}}}, "open, which is code"),
    _torch_case("payload_legacy.pth", lambda m: {"state_dict": _state(m), "x": System(m)}, "posix.system", False),
    _pickle_case("payload_detectron2.pkl", lambda m: {"model": {"stem.conv1.weight": System(m)}}, "posix.system"),
    _pickle_case("payload_author.pkl", lambda m: {"model": {}, "__author__": Exec(m)}, "exec, which is code"),
    _pickle_case("payload_caffe2.pkl", lambda m: {"blobs": {"conv1_w": Open(m)}}, "open, which is code"),
    _pickle_case("payload_protocol5.pkl", lambda m: {"model": {"a": np.zeros(3), "b": System(m)}}, "posix.system", 5),
    _pickle_case("object_array.pkl", lambda m: {"model": {"a": np.array([System(m)], dtype=object)}}, "posix.system"),
    _run_case("payload_run", lambda m, good: {**good, "iteration": System(m)}, "posix.system"),
    _run_case("payload_run_model", lambda m, g: {**g, "model": {**g["model"], "x": Exec(m)}}, "exec, which is code"),
    _run_case("old_run", _old_run, "zoo upgrade-run"),
    Case("truncated.pth", _truncated_zip, "truncated"),
    Case("oversized.pth", _oversized_storage, "does not match expected size"),
    Case("lying.safetensors", _lying_safetensors, "not a valid safetensors file"),
    Case("header.safetensors", _huge_header_safetensors, "not a valid safetensors file"),
    _torch_case("non_tensor.pth", _non_tensor, "layer1.0.conv1.weight: a str where a tensor was expected"),
    Case("nan.pth", _non_finite, "NaN or Inf in 2 tensor(s): conv1.weight, fc.bias", code=0),
    Case("empty.pth", _empty, "an empty file"),
    Case("weights.pth", _directory, "a folder, but not a transferdet training run"),
    Case("a.pth", _link_loop, "a symbolic-link loop"),
    Case("garbage.pth", _garbage, "cannot load as a PyTorch checkpoint"),
    Case("notes.pth", _not_torch_zip, "cannot load as a PyTorch checkpoint"),
    Case("truncated.pkl", _truncated_pickle, "not a readable pickle"),
    Case("models.yaml", _yaml_models_file, "refused"),
    Case("bench.yaml", _yaml_bench_config, "refused"),
]
