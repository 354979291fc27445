"""The ``.mzip`` container: one safetensors file, one uint8 buffer per tensor, a JSON manifest.

Nothing in it is unpickled. The manifest (in the safetensors metadata) carries the
format version, the model spec, each tensor's encoding, the recipe and report, and
a SHA-256 over manifest and payload, so truncation and bit flips are caught.
"""
from __future__ import annotations

import base64
import hashlib
import json
import lzma
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from compress import __version__
from compress.artifact.encodings import LinearGrid, decode_tensor, encode_tensor
from compress.errors import ArtifactError, CheckpointError

FORMAT = "modelzip"
FORMAT_VERSION = 1
_META_KEY = "modelzip"
_INFO_KEY = "info.xz.b85"  # recipe and report: JSON, LZMA-compressed, base85 text


@dataclass(frozen=True)
class ModelSpec:
    """How to rebuild the architecture: a model name (registry, torchvision:…, pkg.mod:fn) and kwargs."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Artifact:
    path: Path
    manifest: dict[str, Any]
    state: dict[str, torch.Tensor]
    sizes: dict[str, int]  # stored payload bytes per tensor
    grids: dict[str, LinearGrid] = field(default_factory=dict)  # tensors stored as linear codes

    @property
    def spec(self) -> ModelSpec:
        return ModelSpec(self.manifest["model"]["name"], self.manifest["model"].get("kwargs", {}))


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def encode_state(state: dict[str, torch.Tensor], grids: dict[str, LinearGrid] | None = None,
                 entropy: bool = True) -> tuple[dict[str, Any], dict[str, bytes]]:
    """Encode a state_dict: per-tensor metadata and payloads."""
    grids = grids or {}
    metas, payloads = {}, {}
    for name, tensor in state.items():
        enc = encode_tensor(tensor, grids.get(name), entropy=entropy)
        metas[name], payloads[name] = enc.meta, enc.payload
    return metas, payloads


def to_bytes(state: dict[str, torch.Tensor], spec: ModelSpec, *, grids: dict[str, LinearGrid] | None = None,
             recipe: dict[str, Any] | None = None, report: dict[str, Any] | None = None,
             entropy: bool = True, execute: dict[str, Any] | None = None) -> bytes:
    """The complete artifact file as bytes."""
    return assemble(encode_state(state, grids, entropy), spec, recipe=recipe, report=report, execute=execute)


def assemble(encoded: tuple[dict[str, Any], dict[str, bytes]], spec: ModelSpec, *,
             recipe: dict[str, Any] | None = None, report: dict[str, Any] | None = None,
             execute: dict[str, Any] | None = None) -> bytes:
    """Wrap already encoded tensors with a manifest (cheap: no tensor is re-encoded).

    ``execute`` is an optional runtime plan (int8 execution) that loaders may rebuild.

    The bytes are a standard safetensors file (one U8 tensor per state_dict entry), laid
    out here in a single join so that writing costs one copy of the payload.
    """
    metas, payloads = encoded
    manifest: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION, "modelzip": __version__,
                                "model": {"name": spec.name, "kwargs": spec.kwargs}, "tensors": metas}
    if recipe is not None or report is not None:  # compressed: a few KB matter next to a 20 KB model
        info = json.dumps({"recipe": recipe, "report": report}, separators=(",", ":")).encode()
        manifest[_INFO_KEY] = base64.b85encode(lzma.compress(info, preset=9 | lzma.PRESET_EXTREME)).decode()
    if execute is not None:
        manifest["execute"] = execute
    manifest["sha256"] = _checksum(manifest, payloads)
    header: dict[str, Any] = {"__metadata__": {_META_KEY: json.dumps(manifest, separators=(",", ":"))}}
    offset = 0
    for name, data in payloads.items():
        header[name] = {"dtype": "U8", "shape": [len(data)], "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return b"".join([len(head).to_bytes(8, "little"), head, *payloads.values()])


def _checksum(manifest: dict[str, Any], payloads: dict[str, bytes]) -> str:
    h = hashlib.sha256(json.dumps({k: v for k, v in manifest.items() if k != "sha256"},
                                  sort_keys=True, separators=(",", ":")).encode())
    for name in manifest["tensors"]:
        h.update(payloads[name])
    return h.hexdigest()


def is_artifact(path: Path) -> bool:
    """True when ``path`` looks like a modelzip file (safetensors with a modelzip manifest)."""
    try:
        with path.open("rb") as fh:
            head = fh.read(8)
            size = int.from_bytes(head, "little") if len(head) == 8 else 0
            return 0 < size < 100_000_000 and f'"{_META_KEY}"'.encode() in fh.read(min(size, 4096))
    except OSError:
        return False


def read(path: Path) -> Artifact:
    """Read and verify an artifact; every failure is an :class:`ArtifactError` naming the file."""
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file")
    try:
        manifest, payloads = _read_raw(path)
    except ArtifactError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure of untrusted bytes is "corrupt"
        raise ArtifactError(f"{path}: not a readable modelzip artifact ({type(exc).__name__}: {exc})") from None
    if manifest.get("sha256") != _checksum(manifest, payloads):
        raise ArtifactError(f"{path}: checksum mismatch: the file is corrupt or was modified",
                            "re-create or re-download it")
    if _INFO_KEY in manifest:
        try:
            manifest.update(json.loads(lzma.decompress(base64.b85decode(manifest.pop(_INFO_KEY)))))
        except Exception as exc:  # noqa: BLE001 - checksummed, so only a writer bug gets here
            raise ArtifactError(f"{path}: recipe/report block cannot be decoded ({exc})") from None
    state, grids = {}, {}
    for name, meta in manifest["tensors"].items():
        try:
            found: list[LinearGrid] = []
            state[name] = decode_tensor(meta, payloads[name], found)
            if found:
                grids[name] = found[0]
        except Exception as exc:  # noqa: BLE001
            raise ArtifactError(f"{path}: tensor '{name}' cannot be decoded ({exc})") from None
    return Artifact(path, manifest, state, {k: len(v) for k, v in payloads.items()}, grids)


def _read_raw(path: Path) -> tuple[dict[str, Any], dict[str, bytes]]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        if _META_KEY not in meta:
            raise ArtifactError(f"{path}: a safetensors file but not a modelzip artifact (no manifest)",
                                "plain .safetensors state_dicts are read with --checkpoint")
        manifest = json.loads(meta[_META_KEY])
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ArtifactError(f"{path}: manifest is not a modelzip manifest")
        if manifest.get("version") != FORMAT_VERSION:
            raise ArtifactError(f"{path}: unknown format version {manifest.get('version')!r} "
                                f"(this modelzip reads version {FORMAT_VERSION})", "upgrade modelzip")
        names = set(fh.keys())
        if names != set(manifest["tensors"]):
            raise ArtifactError(f"{path}: manifest and payload list different tensors")
        payloads = {k: fh.get_tensor(k).numpy().tobytes() for k in manifest["tensors"]}
    return manifest, payloads


def build(artifact: Artifact, device: str | torch.device = "cpu", trust_model_code: bool = False) -> nn.Module:
    """Rebuild the model stored in ``artifact`` (eval mode, on ``device``)."""
    from compress.models import build_model, fit_to_shapes, load_state

    spec = artifact.spec
    if ":" in spec.name and not spec.name.startswith("torchvision:") and not trust_model_code:
        raise ArtifactError(f"{artifact.path}: the model is built by importing '{spec.name}'",
                            "importing code named by a file runs that code; pass --trust-checkpoint "
                            "(trust_model_code=True) if you trust its source")
    try:
        model = build_model(spec.name, dict(spec.kwargs))
        fit_to_shapes(model, {k: tuple(v.shape) for k, v in artifact.state.items()})
        load_state(model, artifact.state, str(artifact.path))
    except CheckpointError as exc:
        raise ArtifactError(exc.message, exc.hint) from None
    return model.to(device).eval()


def describe(art: Artifact) -> list[dict[str, Any]]:
    """One summary per tensor: shape, encoding, bits, sparsity, stored bytes."""
    rows = []
    for name, meta in art.manifest["tensors"].items():
        tensor = art.state[name]
        native = torch.empty((), dtype=tensor.dtype).element_size() * 8
        bits = meta.get("bits") or (16 if meta["enc"] == "half" else native)
        sparsity = float((tensor == 0).sum()) / tensor.numel() if tensor.numel() else 0.0
        enc = meta["enc"] + ("+sparse" if "nnz" in meta and meta["enc"] != "sparse" else "")
        rows.append({"name": name, "shape": meta["shape"], "encoding": enc + ("+lzma" if meta.get("z") else ""),
                     "bits": bits, "sparsity": sparsity, "bytes": art.sizes[name], "numel": tensor.numel()})
    return rows
