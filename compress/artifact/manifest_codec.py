"""How the ``.mzip`` manifest (tensor encodings, recipe, report) is compressed: LZMA, or deflate primed with
a dictionary of the words every manifest repeats — whichever is smaller, named by the blob's first byte.

A manifest is a few kilobytes of JSON whose keys ("stage", "accuracy", "latency_batch", "dtype", …) and
phrases are the same in every file; a general compressor must spell each out once per file, which next to
a 6 KB LeNet-5 costs a sixth of the file. Primed with those words (brotli's and zstd's dictionary idea),
deflate refers to them instead. The dictionary is part of the file format: changing one byte of it makes
every file written before undecodable, so :data:`DICTIONARY_SHA256` pins it and a new dictionary needs a
new tag.
"""
from __future__ import annotations

import hashlib
import json
import lzma
import zlib

LZMA_FILTERS = [{"id": lzma.FILTER_LZMA1, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 20}]
_LZMA, _PRIMED = 0, 1  # the blob's first byte (format 3): how the rest is compressed

_ROW = {"stage": "finetune", "accuracy": 98.5, "loss": 0.05, "split": "val", "params": 100000,
        "nonzero": 10000, "size_bytes": 10000, "latency_ms": None, "latency_batch": 256, "delta_pp": -0.1,
        "ratio": 10.0, "seconds": None, "state_dict_bytes": 400000, "macs": 1000000}
_LAYER = {"name": "conv", "kind": "Conv2d", "shape_before": [64, 32, 3, 3], "shape": [64, 32, 3, 3],
          "params_before": 18432, "nonzero": 1843, "bits": 5.0, "sparsity": 0.9}
_SEARCH = {"phase": "climb", "rate": 50.0, "accuracy": 98.5, "nonzero": 10000, "met": True, "seconds": None,
           "bits": None, "cost": None}
_TEMPLATE = {
    "tensors": {
        "features.0.weight": {"dtype": "float32", "shape": [32, 1, 3, 3], "enc": "dense", "parts": [1152]},
        "bn.running_mean": {"dtype": "float32", "shape": [32], "enc": "half", "parts": [64]},
        "bn.num_batches_tracked": {"dtype": "int64", "shape": [], "enc": "dense", "parts": [8]},
        "classifier.weight": {"dtype": "float32", "shape": [10, 100], "enc": "linear", "bits": 8, "axis": 0,
                              "nnz": 100, "k": 2, "stride": 8, "z": "lzma", "parts": [40, 10, 30, 20, 100]},
        "layers.0.conv1.weight": {"dtype": "float32", "shape": [16, 16, 3, 3], "enc": "codebook", "bits": 5,
                                  "book": 32, "bh": 1, "zero": 16, "z": "ctx", "parts": [64, 900]},
        "fc.bias": {"dtype": "float32", "shape": [100], "enc": "linear", "bits": 8, "axis": None, "parts": [4, 1, 100]},
    },
    "packed": {"fc.weight": 1000, "fc.bias": 100},
    "recipe": {
        "model": {"name": "resnet20", "checkpoint": "runs/baseline/model.mzip", "pretrained": False},
        "data": {"name": "mnist", "root": "./data", "val_fraction": 0.1, "batch_size": 128},
        "pipeline": [
            {"train": {"epochs": 10, "batch_size": 128, "optimizer": "adamw", "lr": 0.001, "weight_decay": 0.0001}},
            {"evaluate": {"split": "val"}},
            {"prune": {"rate": 90, "granularity": "channel", "scope": "global", "schedule": "variational",
                       "kl_weight": 1, "ramp": 0.2, "importance": "magnitude",
                       "finetune": {"epochs": 3, "batch_size": 100, "optimizer": "adam", "lr": 0.001}}},
            {"finetune": {"epochs": 2, "optimizer": "sgd", "lr": 0.0001, "momentum": 0.9, "distill": 0.5}},
            {"quantize": {"bits": 5, "method": "kmeans", "bias_bits": 8, "layer_bits": {"fc": 4},
                          "allocation": "sensitivity", "execute": "int8", "granularity": "channel"}},
            "evaluate"],
        "constraints": {"max_accuracy_drop": 0.5, "target_speedup": 2.0, "objective": "latency"},
        "device": "cpu", "seed": 0, "output": "runs/model"},
    "report": {
        "schema": 1, "modelzip": "0.4.0", "model": "lenet-300-100", "dataset": "mnist", "device": "cpu",
        "rows": [{**_ROW, "stage": "checkpoint"}, {**_ROW, "stage": "prune"}, {**_ROW, "stage": "quantize"}, _ROW],
        "baseline": 0, "fp32_bytes": 1000000, "output": "runs/model/model.mzip",
        "constraint": {"max_accuracy_drop": 0.5, "drop": 0.1, "met": True, "target_speedup": None,
                       "speedup": None, "objective": None},
        "notes": [("variational dropout: 98.00 % of weights removed (log \u03b1 > 3) after learning their noise "
                   "on 4 of 4 layers"),
                  "zeroed the weights and biases of 10 unit(s) no later layer reads (outputs unchanged)",
                  "2 biases onto 8-bit grids", "quantized 3 weight tensors to 4\u20135 bits (kmeans)",
                  "pruned 90.0% of weights (unstructured, global)",
                  "channel pruning removed 50.0% of parameters (100,000 \u2192 50,000)",
                  ("channel search (sensitivity allocation, objective latency): step 9 of 15, 49.5% of channels "
                   "removed")],
        "layers": [{**_LAYER, "kind": "Linear"}, _LAYER],
        "search": [{**_SEARCH, "phase": "probe"}, {**_SEARCH, "phase": "tune"}, _SEARCH], "exports": []},
}
DICTIONARY = json.dumps(_TEMPLATE, separators=(",", ":")).encode()
DICTIONARY_SHA256 = "c636193406fc2adfcfb6c23d8e1dfcae63fad3cba662d19e29c1d8bb84511c65"


def pack(text: bytes) -> bytes:
    """``text`` compressed by whichever coder gives fewer bytes, behind the tag byte that names it."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, zdict=DICTIONARY)
    primed = bytes([_PRIMED]) + deflate.compress(text) + deflate.flush()
    plain = bytes([_LZMA]) + lzma.compress(text, format=lzma.FORMAT_RAW, filters=LZMA_FILTERS)
    return primed if len(primed) < len(plain) else plain


def unpack(blob: bytes, limit: int, tagged: bool = True) -> bytes:
    """Inverse of :func:`pack` (``tagged=False``: a format-2 blob, LZMA without a tag), never more than
    ``limit`` bytes (``ValueError`` past it or on an unknown tag)."""
    tag, data = (blob[0], blob[1:]) if tagged and blob else (_LZMA, blob)
    if tag == _LZMA:
        dec = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=LZMA_FILTERS)
        raw = dec.decompress(data, max_length=limit)
        ended = dec.eof
    elif tag == _PRIMED:
        inflate = zlib.decompressobj(-15, zdict=DICTIONARY)
        raw = inflate.decompress(data, limit)
        ended = inflate.eof
    else:
        raise ValueError(f"unknown manifest compression {tag}")
    if not ended and len(raw) >= limit:
        raise ValueError(f"the compressed manifest decompresses to more than {limit >> 20} MB")
    if tag == _PRIMED and not ended:  # raw LZMA has no end marker here; deflate's last block has one
        raise ValueError("the compressed manifest ends early")
    return raw


def dictionary_digest() -> str:
    """SHA-256 of the dictionary, which a test holds equal to :data:`DICTIONARY_SHA256`."""
    return hashlib.sha256(DICTIONARY).hexdigest()
