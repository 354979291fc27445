"""Quantization methods: linear grids (:func:`quantize_linear`) and k-means sharing (:func:`quantize_kmeans`).

Every method leaves float weights that sit exactly on their grid (so the artifact stores
integer codes) and a training hook that keeps them there during a later ``finetune`` stage.
Shared parts: bit widths per layer (``bits``), fp16 and the int8 request (``common``), QAT
(``qat``), int8 execution (``int8``). Nothing here imports the pruners or the pipeline.
"""
from compress.quantize.kmeans import quantize_kmeans
from compress.quantize.linear import quantize_linear

__all__ = ["quantize_kmeans", "quantize_linear"]
