"""The manifest's coder: exact, bounded, never larger than LZMA alone, and its dictionary pinned."""
import json
import lzma

import pytest

from compress.artifact import manifest_codec as codec


def _manifest(n: int) -> bytes:
    rows = [{"stage": s, "accuracy": 97.0 + i / 7, "loss": 0.05 + i / 1000, "split": "val", "params": 1000 * i,
             "nonzero": 10 * i, "size_bytes": 999 * i} for i, s in enumerate(["checkpoint", "prune", "finetune"] * n)]
    return json.dumps({"tensors": {f"l{i}.weight": {"dtype": "float32", "shape": [i + 1, 3]} for i in range(n)},
                       "report": {"rows": rows}}, separators=(",", ":")).encode()


@pytest.mark.parametrize("n", [1, 5, 400])
def test_round_trip_exact_and_never_larger_than_lzma(n):
    text = _manifest(n)
    blob = codec.pack(text)
    assert codec.unpack(blob, 1 << 24) == text
    lzma_only = 1 + len(lzma.compress(text, format=lzma.FORMAT_RAW, filters=codec.LZMA_FILTERS))
    assert len(blob) <= lzma_only


def test_a_small_manifest_costs_well_under_what_lzma_alone_takes():
    text = _manifest(2)
    lzma_only = len(lzma.compress(text, format=lzma.FORMAT_RAW, filters=codec.LZMA_FILTERS))
    blob = codec.pack(text)
    assert blob[0] == 1  # the primed coder won
    assert len(blob) <= 0.75 * lzma_only, (len(blob), lzma_only)


def test_format_2_blobs_have_no_tag():
    text = _manifest(3)
    old = lzma.compress(text, format=lzma.FORMAT_RAW, filters=codec.LZMA_FILTERS)
    assert codec.unpack(old, 1 << 20, tagged=False) == text


def test_bounded_truncated_and_unknown_blobs_are_refused():
    import zlib

    text = b'{"report":"' + b"y" * 50_000 + b'"}'
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=codec.DICTIONARY)
    primed = b"\x01" + deflate.compress(text) + deflate.flush()
    plain = b"\x00" + lzma.compress(text, format=lzma.FORMAT_RAW, filters=codec.LZMA_FILTERS)
    for blob in (primed, plain):  # a bomb in either coder stops at the limit
        assert codec.unpack(blob, 1 << 20) == text
        with pytest.raises(ValueError, match="more than"):
            codec.unpack(blob, 4096)
    primed = b"\x01" + codec.pack(_manifest(2))[1:]
    with pytest.raises(ValueError, match="ends early"):
        codec.unpack(primed[:-5], 1 << 20)
    with pytest.raises(ValueError, match="unknown manifest compression 7"):
        codec.unpack(b"\x07abc", 1 << 20)


def test_the_dictionary_is_pinned():
    # Files written with it cannot be read without these exact bytes: a change needs a new tag, not an edit.
    assert codec.dictionary_digest() == codec.DICTIONARY_SHA256
