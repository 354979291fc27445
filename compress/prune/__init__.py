"""Pruning methods: unstructured (:func:`prune_unstructured`) and channel (:func:`prune_channels`).

Importance scoring (``importance``), mask selection (``masks``), channel surgery
(``structured``), schedules (``schedules``) and the rate search (``search``) are separate
modules; the handlers wire them. Nothing here imports the quantizers or the pipeline.
"""
from compress.prune.structured import prune_channels
from compress.prune.unstructured import prune_unstructured

__all__ = ["prune_channels", "prune_unstructured"]
