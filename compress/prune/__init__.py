"""Pruning methods: unstructured (:func:`prune_unstructured`) and channel (:func:`prune_channels`).

Importance scoring (``importance``), mask selection (``masks``), schedules (``schedules``), the
rate search (``search``), channel surgery (``structured``), channel counts for a rate
(``channel_plan``), channel costs and paths (``channel_cost``) and the channel search
(``channel_search``) are separate modules; the handlers (``unstructured``, ``channel``) wire them. Nothing here imports the quantizers or the pipeline.
"""
from compress.prune.channel import prune_channels
from compress.prune.unstructured import prune_unstructured

__all__ = ["prune_channels", "prune_unstructured"]
