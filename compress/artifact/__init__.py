"""The compressed checkpoint format (``.mzip``): pure format, no model building (see compress.models.load)."""
from compress.artifact.container import (
    FORMAT_VERSION, Artifact, Encoded, Header, ModelSpec, assemble, decode, describe, encode_state, is_artifact,
    read, read_header, to_bytes,
)
from compress.artifact.encodings import LinearGrid, decode_tensor, encode_tensor

__all__ = ["FORMAT_VERSION", "Artifact", "Encoded", "Header", "LinearGrid", "ModelSpec", "assemble", "decode",
           "decode_tensor", "describe", "encode_state", "encode_tensor", "is_artifact", "read", "read_header",
           "to_bytes"]
