"""Writing an artifact atomically: from tensors already encoded (a run), or encoding tensor by tensor
through a spill file so that memory holds the model and one tensor's encodings, never the whole payload."""
from __future__ import annotations

import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import torch

from compress.artifact import gridcode
from compress.artifact.container import (
    BLOB,
    PACKED,
    Encoded,
    ModelSpec,
    assemble_parts,
    file_head,
    make_manifest,
    manifest_hash,
    packing,
)
from compress.artifact.encodings import LinearGrid, encode_tensor
from compress.errors import InputError
from compress.files import write_atomic

_CHUNK = 16 << 20  # bytes copied from the spill file at a time


def write(path: Path, encoded: Encoded, spec: ModelSpec, *, recipe: dict[str, Any] | None = None,
          report: dict[str, Any] | None = None, execute: dict[str, Any] | None = None,
          versions: dict[str, int] | None = None) -> int:
    """Assemble and write the artifact once (no tensor re-encoded); return the file's size in bytes."""
    parts = assemble_parts(encoded, spec, recipe=recipe, report=report, execute=execute, versions=versions)
    write_atomic(path, parts)
    return sum(len(p) for p in parts)


def write_state(path: Path, state: dict[str, torch.Tensor], spec: ModelSpec, *,
                grids: dict[str, LinearGrid] | None = None, recipe: dict[str, Any] | None = None,
                report: dict[str, Any] | None = None, versions: dict[str, int] | None = None) -> int:
    """Encode ``state`` tensor by tensor and write the artifact (the same bytes as :func:`write` of
    ``encode_state(state, grids)``); return the file's size in bytes."""
    grids, budget = grids or {}, gridcode.Budget()
    metas: dict[str, Any] = {}
    lengths: dict[str, int] = {}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        spill = tempfile.TemporaryFile(dir=path.parent, prefix=f".{path.name}.spill")  # unnamed: gone on close
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}", "check free space and permissions") from None
    with spill:
        for name, tensor in state.items():
            enc = encode_tensor(tensor, grids.get(name), budget=budget)
            metas[name], lengths[name] = enc.meta, len(enc.payload)
            _spill(spill, enc.payload, path)
            del enc  # the payload lives in the spill file only
        packed = packing(lengths)
        manifest, blob = make_manifest(metas, spec, recipe=recipe, report=report, versions=versions, packed=packed)
        digest = manifest_hash(manifest)
        digest.update(blob)
        for chunk in _chunks(spill, [(0, sum(lengths.values()))]):
            digest.update(chunk)
        manifest["sha256"] = digest.hexdigest()
        offsets = dict(zip(lengths, itertools.accumulate(lengths.values(), initial=0)))
        small = b"".join(b"".join(_chunks(spill, [(offsets[k], n)])) for k, n in packed.items())
        own = {k: n for k, n in lengths.items() if k not in packed}
        head = file_head(manifest, {BLOB: len(blob), **({PACKED: len(small)} if packed else {}), **own})
        rest = _chunks(spill, [(offsets[k], n) for k, n in own.items()])
        write_atomic(path, itertools.chain([head, blob, small], rest))
    return len(head) + len(blob) + sum(lengths.values())


def _spill(fh: IO[bytes], payload: bytes, path: Path) -> None:
    try:
        fh.write(payload)
    except OSError as exc:
        raise InputError(f"cannot write {path} (its spill file beside it): {exc.strerror or exc}",
                         "check free space and permissions") from None


def _chunks(fh: IO[bytes], ranges: list[tuple[int, int]]) -> Iterator[bytes]:
    """The spill file's bytes in ``ranges`` (offset, length), in that order, a chunk at a time."""
    for start, length in ranges:
        fh.seek(start)
        while length > 0:
            chunk = fh.read(min(_CHUNK, length))
            if not chunk:
                raise OSError("the spill file is shorter than what was written to it")
            length -= len(chunk)
            yield chunk
