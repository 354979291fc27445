"""The compressed checkpoint format (``.mzip``)."""
from compress.artifact.container import (
    FORMAT_VERSION, Artifact, ModelSpec, assemble, build, describe, encode_state, is_artifact, read, to_bytes, write_atomic,
)
from compress.artifact.encodings import LinearGrid, decode_tensor, encode_tensor

__all__ = ["FORMAT_VERSION", "Artifact", "LinearGrid", "ModelSpec", "assemble", "build", "describe", "encode_state", "decode_tensor",
           "encode_tensor", "is_artifact", "read", "to_bytes", "write_atomic"]
