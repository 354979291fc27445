"""The ``.mzip`` container: one safetensors file, one uint8 buffer per tensor, a JSON manifest.

Nothing in it is unpickled. The manifest (in the safetensors metadata) carries the format
version, the model spec, each tensor's encoding, the recipe and report, and a SHA-256 over
manifest and payload, so truncation and bit flips are caught. Reading is two steps: the
header and checksum (:func:`read_header`, bounded by the file's size), then decoding
(:func:`decode`), bounded by the shapes the caller's architecture allows — a forged manifest
cannot make modelzip allocate more than the model it names.
"""
from __future__ import annotations

import base64
import hashlib
import json
import lzma
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from compress.artifact import gridcode, manifest_codec
from compress.artifact.encodings import LinearGrid, decode_tensor, encode_tensor, payload_limit
from compress.errors import ArtifactError
from compress.version import __version__

FORMAT = "modelzip"
FORMAT_VERSION = 3  # 3: the compressed manifest starts with a byte naming its coder (manifest_codec); 2 (read):
# the manifest beyond format/model is one LZMA payload; 1 (read): all in the header
_META_KEY = "modelzip"
BLOB = "__modelzip__"  # format 2: the payload holding the compressed manifest
PACKED = "__packed__"  # format 2: the payloads of small tensors, one after another in manifest order
PACK_LIMIT = 1 << 14  # bytes: a payload this small shares that buffer (its own safetensors entry costs ~65 B)
_BLOB_KEYS = ("tensors", "packed", "recipe", "report", "execute", "versions")
_INFO_KEY = "info.xz.b85"  # format 1: recipe and report, JSON, LZMA-compressed, base85 text
_MAX_INFO = 16 << 20  # bytes the recipe/report block (format 1) or the manifest (format 2) may decompress to
MAX_UNBOUNDED_ELEMENTS = 1 << 27  # elements decoded when the caller gives no architecture to bound them
_DESCRIBE_DECODE = 1 << 24  # a summary decodes an unindexed tensor only up to this many elements

Encoded = tuple[dict[str, Any], dict[str, bytes]]  # per-tensor metadata, payloads


@dataclass(frozen=True)
class ModelSpec:
    """How to rebuild the architecture: a model name (registry, torchvision:…, pkg.mod:fn) and kwargs."""

    name: str
    kwargs: dict[str, Any] = field(default_factory=dict)


@dataclass
class Header:
    """A verified artifact before decoding: manifest (recipe/report unpacked) and raw payloads."""

    path: Path
    manifest: dict[str, Any]
    payloads: dict[str, bytes]

    @property
    def spec(self) -> ModelSpec:
        model = self.manifest.get("model")
        if not isinstance(model, dict) or not isinstance(model.get("name"), str):
            raise ArtifactError(f"{self.path}: the manifest names no model")
        kwargs = model.get("kwargs", {})
        return ModelSpec(model["name"], kwargs if isinstance(kwargs, dict) else {})


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


def encode_state(state: dict[str, torch.Tensor], grids: dict[str, LinearGrid] | None = None,
                 entropy: bool = True) -> Encoded:
    """Encode a state_dict: per-tensor metadata and payloads."""
    grids, budget = grids or {}, gridcode.Budget()
    metas, payloads = {}, {}
    for name, tensor in state.items():
        enc = encode_tensor(tensor, grids.get(name), entropy=entropy, budget=budget)
        metas[name], payloads[name] = enc.meta, enc.payload
    return metas, payloads


def to_bytes(state: dict[str, torch.Tensor], spec: ModelSpec, *, grids: dict[str, LinearGrid] | None = None,
             recipe: dict[str, Any] | None = None, report: dict[str, Any] | None = None,
             entropy: bool = True, execute: dict[str, Any] | None = None,
             versions: dict[str, int] | None = None) -> bytes:
    """The complete artifact file as bytes."""
    return assemble(encode_state(state, grids, entropy), spec, recipe=recipe, report=report, execute=execute,
                    versions=versions)


def assemble(encoded: Encoded, spec: ModelSpec, *, recipe: dict[str, Any] | None = None,
             report: dict[str, Any] | None = None, execute: dict[str, Any] | None = None,
             versions: dict[str, int] | None = None) -> bytes:
    """Wrap already encoded tensors with a manifest (cheap: no tensor is re-encoded); the file's bytes."""
    return b"".join(assemble_parts(encoded, spec, recipe=recipe, report=report, execute=execute, versions=versions))


def assemble_parts(encoded: Encoded, spec: ModelSpec, **extra: Any) -> list[bytes]:
    """The file as its pieces: header, compressed manifest, then each payload (written in turn: no joined copy)."""
    metas, payloads = encoded
    packed = packing({k: len(v) for k, v in payloads.items()})
    clear, blob = make_manifest(metas, spec, packed=packed, **extra)
    digest = manifest_hash(clear)
    digest.update(blob)
    for name in metas:
        digest.update(payloads[name])
    clear["sha256"] = digest.hexdigest()
    small = b"".join(payloads[k] for k in packed)
    own = {k: v for k, v in payloads.items() if k not in packed}
    lengths = {BLOB: len(blob), **({PACKED: len(small)} if packed else {}), **{k: len(v) for k, v in own.items()}}
    return [file_head(clear, lengths), blob, *([small] if packed else []), *own.values()]


def packing(lengths: dict[str, int]) -> dict[str, int]:
    """The tensors whose payloads go into the shared buffer, in order, with their lengths."""
    return {k: n for k, n in lengths.items() if n <= PACK_LIMIT}


def make_manifest(metas: dict[str, Any], spec: ModelSpec, *, recipe: dict[str, Any] | None = None,
                  report: dict[str, Any] | None = None, execute: dict[str, Any] | None = None,
                  versions: dict[str, int] | None = None,
                  packed: dict[str, int] | None = None) -> tuple[dict[str, Any], bytes]:
    """The manifest, still without its checksum: what stays readable in the safetensors header (format,
    version, model) and the rest as one LZMA-compressed JSON payload — tensor encodings, recipe, report,
    ``execute`` (an optional int8 runtime plan loaders may rebuild) and ``versions`` (the state_dict's
    module versions, ``_metadata``, that some modules' loaders read) and ``packed``, which payloads share one
    buffer. Compressed together (:mod:`compress.artifact.manifest_codec`) they take about a sixth of the bytes
    they took as JSON text in the header (format 1), which matters next to a 10 KB model.
    """
    for name in (BLOB, PACKED):
        if name in metas:
            raise ArtifactError(f"a tensor is named '{name}', which the file format reserves", "rename the parameter")
    clear: dict[str, Any] = {"format": FORMAT, "version": FORMAT_VERSION, "modelzip": __version__,
                             "model": {"name": spec.name, "kwargs": spec.kwargs}}
    inner: dict[str, Any] = {"tensors": metas}
    extra = {"packed": packed or None, "recipe": recipe, "report": report, "execute": execute,
             "versions": versions or None}
    inner.update({k: v for k, v in extra.items() if v is not None})
    return clear, manifest_codec.pack(json.dumps(inner, separators=(",", ":")).encode())


def manifest_hash(manifest: dict[str, Any]) -> Any:
    """The checksum's running hash after the readable manifest; the compressed manifest (format 2) and the
    payloads, in the manifest's tensor order, follow."""
    return hashlib.sha256(json.dumps({k: v for k, v in manifest.items() if k != "sha256"},
                                     sort_keys=True, separators=(",", ":")).encode())


def file_head(manifest: dict[str, Any], lengths: dict[str, int]) -> bytes:
    """The safetensors header (one U8 tensor per payload, in this order) with its size."""
    header: dict[str, Any] = {"__metadata__": {_META_KEY: json.dumps(manifest, separators=(",", ":"))}}
    offset = 0
    for name, length in lengths.items():
        header[name] = {"dtype": "U8", "shape": [length], "data_offsets": [offset, offset + length]}
        offset += length
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * (-len(head) % 8)
    return len(head).to_bytes(8, "little") + head


def _checksum(clear: dict[str, Any], blob: bytes | None, tensors: dict[str, Any], payloads: dict[str, bytes]) -> str:
    digest = manifest_hash(clear)
    if blob is not None:
        digest.update(blob)
    for name in tensors:
        digest.update(payloads[name])
    return digest.hexdigest()


def is_artifact(path: Path) -> bool:
    """True when ``path`` is a regular file that looks like a modelzip file (never opens a FIFO)."""
    try:
        if not path.is_file():
            return False
        with path.open("rb") as fh:
            head = fh.read(8)
            size = int.from_bytes(head, "little") if len(head) == 8 else 0
            return 0 < size < 100_000_000 and f'"{_META_KEY}"'.encode() in fh.read(min(size, 4096))
    except OSError:
        return False


def read(path: Path, limits: dict[str, tuple[int, ...]] | None = None) -> Artifact:
    """Read, verify and decode an artifact; every failure is an :class:`ArtifactError` naming the file."""
    return decode(read_header(Path(path)), limits)


def read_header(path: Path) -> Header:
    """The verified manifest and payloads of ``path`` (no tensor decoded yet)."""
    path = Path(path)
    if path.is_dir():
        raise ArtifactError(f"{path} is a directory, not an artifact")
    if not path.is_file():
        raise ArtifactError(f"{path}: no such file" if not path.exists() else
                            f"{path} is not a regular file (a device, FIFO or socket)")
    try:
        clear, blob, payloads, small = _read_raw(path)
        manifest = {**clear, **(_unpack(blob, clear["version"] >= 3) if blob is not None else {})}
        tensors = manifest.get("tensors")
        if not isinstance(tensors, dict):
            raise ArtifactError(f"{path}: the manifest lists no tensors")
        payloads.update(_unpacked(manifest.pop("packed", None), small, payloads))
        if set(payloads) != set(tensors):
            raise ArtifactError(f"{path}: manifest and payload list different tensors")
        ok = clear.get("sha256") == _checksum(clear, blob, tensors, payloads)
    except ArtifactError:
        raise
    except Exception as exc:  # noqa: BLE001 - any parse failure of untrusted bytes is "corrupt"
        raise ArtifactError(f"{path}: not a readable modelzip artifact ({type(exc).__name__}: {exc})") from None
    if not ok:
        raise ArtifactError(f"{path}: checksum mismatch: the file is corrupt or was modified",
                            "re-create or re-download it")
    if _INFO_KEY in manifest:
        manifest.update(_read_info(path, manifest.pop(_INFO_KEY)))
    return Header(path, manifest, payloads)


def _read_info(path: Path, text: Any) -> dict[str, Any]:
    try:
        dec = lzma.LZMADecompressor()
        raw = dec.decompress(base64.b85decode(text), max_length=_MAX_INFO)
        if not dec.eof:
            raise ValueError(f"the block decompresses to more than {_MAX_INFO >> 20} MB")
        info = json.loads(raw)
        if not isinstance(info, dict):
            raise ValueError("not a mapping")
        return {k: info.get(k) for k in ("recipe", "report")}
    except Exception as exc:  # noqa: BLE001 - checksummed, so only a writer bug or a forger gets here
        raise ArtifactError(f"{path}: recipe/report block cannot be decoded ({exc})") from None


def decode(header: Header, limits: dict[str, tuple[int, ...]] | None = None, consume: bool = False) -> Artifact:
    """Decode every tensor; shapes must fit ``limits`` (the architecture's) or a fixed element budget.
    ``consume`` drops each payload from ``header`` once decoded (a large model's load holds one copy)."""
    metas: dict[str, Any] = header.manifest["tensors"]
    _check_shapes(header.path, metas, limits)
    state, grids, sizes = {}, {}, {k: len(v) for k, v in header.payloads.items()}
    for name, meta in metas.items():
        try:
            found: list[LinearGrid] = []
            payload = header.payloads.pop(name) if consume else header.payloads[name]
            state[name] = decode_tensor(meta, payload, found)
            del payload
            if found:
                grids[name] = found[0]
        except Exception as exc:  # noqa: BLE001
            raise ArtifactError(f"{header.path}: tensor '{name}' cannot be decoded ({exc})") from None
    return Artifact(header.path, header.manifest, state, sizes, grids)


def _check_shapes(path: Path, metas: dict[str, Any], limits: dict[str, tuple[int, ...]] | None) -> None:
    total = context = 0
    for name, meta in metas.items():
        try:
            shape = [int(s) for s in meta["shape"]]
            if any(s < 0 for s in shape) or len(shape) > 8:
                raise ValueError
        except (KeyError, TypeError, ValueError):
            raise ArtifactError(f"{path}: tensor '{name}' has no valid shape") from None
        if limits is not None:
            if name not in limits:
                raise ArtifactError(f"{path}: tensor '{name}' is not part of the model the artifact names")
            bound = limits[name]
            if len(bound) != len(shape) or any(s > b for s, b in zip(shape, bound, strict=True)):
                raise ArtifactError(f"{path}: tensor '{name}' has shape {tuple(shape)}, larger than the "
                                    f"architecture's {tuple(bound)}")
        total += math.prod(shape)
        context += math.prod(shape) if meta.get("z") == "ctx" else 0
        if context > gridcode.LIMIT:
            raise ArtifactError(f"{path}: more than {gridcode.LIMIT:,} values are context-coded (no writer does that)")
        if limits is None and total > MAX_UNBOUNDED_ELEMENTS:
            raise ArtifactError(f"{path}: the tensors declare more than {MAX_UNBOUNDED_ELEMENTS:,} values")


def _read_raw(path: Path) -> tuple[dict[str, Any], bytes | None, dict[str, bytes], bytes]:
    """The readable manifest, the compressed one (format 2; None in format 1), the payloads stored on their
    own and the shared buffer of small ones (format 2; may be empty)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata() or {}
        if _META_KEY not in meta:
            raise ArtifactError(f"{path}: a safetensors file but not a modelzip artifact (no manifest)",
                                "plain .safetensors state_dicts are read with --checkpoint")
        manifest = json.loads(meta[_META_KEY])
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ArtifactError(f"{path}: manifest is not a modelzip manifest")
        if manifest.get("version") not in range(1, FORMAT_VERSION + 1):
            raise ArtifactError(f"{path}: unknown format version {str(manifest.get('version'))[:20]} "
                                f"(this modelzip reads versions 1 to {FORMAT_VERSION})", "upgrade modelzip")
        blob, small, keys = None, b"", set(fh.keys())
        if manifest["version"] >= 2:
            if BLOB not in keys:
                raise ArtifactError(f"{path}: the compressed manifest is missing")
            blob = fh.get_tensor(BLOB).numpy().tobytes()
            small = fh.get_tensor(PACKED).numpy().tobytes() if PACKED in keys else b""
        payloads = {k: fh.get_tensor(k).numpy().tobytes() for k in fh.keys() if k not in (BLOB, PACKED)}
    return manifest, blob, payloads, small


def _unpacked(packed: Any, small: bytes, own: dict[str, bytes]) -> dict[str, bytes]:
    """The small tensors' payloads, cut from the shared buffer by the lengths the manifest lists."""
    if packed is None:
        if small:
            raise ValueError("a shared payload buffer the manifest does not describe")
        return {}
    if not isinstance(packed, dict) or not all(isinstance(n, int) and 0 <= n <= PACK_LIMIT for n in packed.values()):
        raise ValueError("the list of packed payloads is malformed")
    if sum(packed.values()) != len(small) or set(packed) & set(own):
        raise ValueError("packed payload lengths do not match the shared buffer")
    out, start = {}, 0
    for name, n in packed.items():
        out[name], start = small[start:start + n], start + n
    return out


def _unpack(blob: bytes, tagged: bool) -> dict[str, Any]:
    """The compressed manifest's fields (format 2 and on; ``tagged``: format 3, whose first byte names the
    coder), decompressed within :data:`_MAX_INFO` bytes."""
    inner = json.loads(manifest_codec.unpack(blob, _MAX_INFO, tagged))
    if not isinstance(inner, dict):
        raise ValueError("the compressed manifest is not a mapping")
    return {k: inner[k] for k in _BLOB_KEYS if k in inner}


def describe(header: Header | Artifact) -> list[dict[str, Any]]:
    """One summary per tensor: shape, encoding, bits, sparsity, stored bytes — without decoding tensors."""
    rows = []
    sizes = header.sizes if isinstance(header, Artifact) else {k: len(v) for k, v in header.payloads.items()}
    for name, meta in header.manifest["tensors"].items():
        shape = [int(s) for s in meta.get("shape", [])]
        n = math.prod(shape)
        native = torch.empty((), dtype=getattr(torch, str(meta.get("dtype")), torch.float32)).element_size() * 8
        bits = meta.get("bits") or (16 if meta.get("enc") == "half" else native)
        nonzero = int(meta["nnz"]) if "nnz" in meta else _nonzero(header, name, n)
        enc = str(meta.get("enc")) + ("+sparse" if "nnz" in meta and meta.get("enc") != "sparse" else "")
        coder = {"lzma": "+lzma", "ctx": "+context"}.get(str(meta.get("z")), "")
        rows.append({"name": name, "shape": shape, "encoding": enc + coder,
                     "bits": bits, "sparsity": 1.0 - nonzero / n if n else 0.0, "bytes": sizes[name], "numel": n})
    return rows


def _nonzero(header: Header | Artifact, name: str, n: int) -> int:
    """Non-zeros of a tensor stored without an index: counted when it is small enough to decode."""
    if isinstance(header, Artifact):
        return int((header.state[name] != 0).sum())
    if n > _DESCRIBE_DECODE:
        return n
    try:
        return int((decode_tensor(header.manifest["tensors"][name], header.payloads[name]) != 0).sum())
    except Exception:  # noqa: BLE001 - a summary; decoding errors surface when the model is loaded
        return n


__all__ = ["FORMAT_VERSION", "Artifact", "Encoded", "Header", "ModelSpec", "assemble", "decode", "describe",
           "encode_state", "is_artifact", "payload_limit", "read", "read_header", "to_bytes"]
