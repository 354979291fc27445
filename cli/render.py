"""Rich rendering of reports, inspections and progress."""
from __future__ import annotations

import os
import sys
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                           TimeRemainingColumn)
from rich.table import Table

from compress.progress import Progress as ProgressSink
from compress.report import Report


def out_console() -> Console:
    """Stdout console: the terminal's width (or ``COLUMNS``); piped, wide enough that tables are never cut."""
    probe = Console()
    return Console(highlight=False, width=None if probe.is_terminal or os.environ.get("COLUMNS") else 160)


def _scaled(n: float, units: tuple[str, ...], sep: str) -> str:
    """``n`` in steps of 1000 with the first unit that keeps it below 1000 (whole numbers unscaled)."""
    for i, unit in enumerate(units):
        if abs(n) < 1000 or i == len(units) - 1:
            return f"{n:,.0f}{sep}{unit}".rstrip() if i == 0 else f"{n:,.1f}{sep}{unit}"
        n /= 1000
    raise AssertionError("unreachable")


def human_bytes(n: float) -> str:
    return _scaled(n, ("B", "KB", "MB", "GB"), " ")


def report_table(report: Report) -> Table:
    """One row per model state. Columns that say nothing are left out (``params`` when no row changes
    the parameter count, ``non-zero`` when nothing is zero), so the table fits 80 columns."""
    rows = report.rows
    show_params = len({r.params for r in rows}) > 1 or all(r.nonzero == r.params for r in rows)
    show_nonzero = any(r.nonzero != r.params for r in rows)
    cols = ["state", "top-1 %", "Δ pp", *(["params"] if show_params else []), *(["non-zero"] if show_nonzero
                                                                               else []),
            "MACs", "size", "ratio", "latency"]
    table = Table(title=f"{report.model} on {report.dataset} ({report.device}); * = baseline", box=box.SIMPLE_HEAD,
                  caption=f"latency: median forward time per batch of {report.final.latency_batch}", pad_edge=False)
    for col in cols:
        table.add_column(col, justify="left" if col == "state" else "right", no_wrap=True)
    for i, row in enumerate(rows):
        cells = {"state": f"{row.stage}*" if i == report.baseline else row.stage, "top-1 %": f"{row.accuracy:.2f}",
                 "Δ pp": f"{row.delta_pp:+.2f}", "params": f"{row.params:,}", "non-zero": f"{row.nonzero:,}",
                 "MACs": human_count(row.macs), "size": human_bytes(row.size_bytes), "ratio": f"{row.ratio:.1f}×",
                 "latency": _ms(row.latency_ms)}
        table.add_row(*(cells[c] for c in cols))
    return table


def _ms(value: float | None) -> str:
    """Milliseconds to three significant figures (what a median of a few runs can claim)."""
    if value is None:
        return "—"
    return f"{value:.1f} ms" if value < 100 else f"{value:.0f} ms"


def human_count(n: float) -> str:
    return _scaled(n, ("", "K", "M", "G"), "")


def layer_table(report: Report) -> Table:
    """Per-layer shapes, sparsity and bits: what compression did where."""
    table = Table(title="per layer (weights): baseline → final", box=box.SIMPLE_HEAD)
    for col in ("layer", "type", "shape", "weights", "non-zero", "sparsity", "bits"):
        table.add_column(col, justify="left" if col in ("layer", "type", "shape") else "right", no_wrap=True)
    for s in report.layers:
        shape = "×".join(map(str, s.shape_before))
        if s.shape != s.shape_before:
            shape += " → " + "×".join(map(str, s.shape))
        table.add_row(s.name, s.kind, shape, f"{s.params_before:,}", f"{s.nonzero:,}", f"{100 * s.sparsity:.1f}%",
                      f"{s.bits:g}")
    return table


def search_table(report: Report) -> Table:
    """The budget search's trials: what was tried, what it scored, what it cost."""
    trials = report.search
    total = sum(t.seconds or 0.0 for t in trials)
    with_bits = any(t.bits is not None for t in trials)
    with_rate = any(t.bits is None for t in trials) or any(t.rate for t in trials)  # bits search: sparsity, if any
    with_cost = any(t.cost is not None for t in trials)
    table = Table(title=f"budget search: {len(trials)} trials, {total:.1f} s", box=box.SIMPLE_HEAD)
    cols = ["#", "phase", *(["rate %"] if with_rate else []), *(["mean bits"] if with_bits else []), "top-1 %",
            *(["cost"] if with_cost else []), "non-zero", "in budget", "seconds"]
    for col in cols:
        table.add_column(col, justify="left" if col == "phase" else "right", no_wrap=True)
    for i, t in enumerate(trials, 1):
        bits = [("fp32" if t.bits == 32 else f"{t.bits:.2f}") if t.bits is not None else "—"]
        verdict = "—" if t.phase == "scan" else "yes" if t.met else "no"
        table.add_row(str(i), t.phase, *([f"{t.rate:.2f}"] if with_rate else []), *(bits if with_bits else []),
                      "—" if t.accuracy is None else f"{t.accuracy:.2f}",
                      *([("—" if t.cost is None else f"{t.cost:,.4g}")] if with_cost else []),
                      f"{t.nonzero:,}", verdict, _seconds(t.seconds))
    return table


def _seconds(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def export_table(report: Report) -> Table:
    """Each export, run in its own runtime: what it scored, how far its logits are from PyTorch's, speed, size."""
    batch = report.exports[0].latency_batch
    table = Table(title="exports, each run in its runtime", box=box.SIMPLE_HEAD, pad_edge=False)
    for col in ("export", "runtime", "top-1 %", "Δ pp", "max |Δlogit|", "batch 1", f"batch {batch}", "size"):
        table.add_column(col, justify="left" if col in ("export", "runtime") else "right", no_wrap=True)
    for e in report.exports:
        table.add_row(e.format, e.runtime, f"{e.accuracy:.2f}", f"{e.delta_pp:+.2f}", f"{e.max_abs_diff:.2g}",
                      _ms(e.latency_ms_1), _ms(e.latency_ms), human_bytes(e.size_bytes))
    return table


def report_view(report: Report) -> Group:
    """Everything printed after a run: search trace, states, layers, exports, output, notes, verdict."""
    parts: list[Any] = [search_table(report)] if report.search else []
    parts.append(report_table(report))
    if report.layers:
        parts.append(layer_table(report))
    if report.exports:
        parts.append(export_table(report))
        parts.extend(f"wrote {e.file}" for e in report.exports if e.file)
    if report.output:
        parts.append(f"wrote {report.output} ({human_bytes(report.final.size_bytes)}, "
                     f"ratio {report.final.ratio:.1f}× vs the baseline fp32 state_dict)")
        parts.append(f"[dim]continue from it: modelzip prune|quantize -c {report.output}; "
                     f"check it: modelzip eval {report.output}[/dim]")
    parts.extend(f"note: {note}" for note in report.notes)
    c = report.constraint
    if c is not None:
        if c.max_accuracy_drop is not None:
            ok = c.drop <= c.max_accuracy_drop
            parts.append(f"accuracy constraint: drop {c.drop:.2f} pp ≤ {c.max_accuracy_drop:.2f} pp: {_verdict(ok)}")
        if c.target_speedup is not None and c.speedup is not None:
            parts.append(f"speed target: {c.speedup:.2f}× ≥ {c.target_speedup:.2f}× ({c.objective}): "
                         f"{_verdict(c.speedup >= c.target_speedup)}")
    return Group(*parts)


def _verdict(ok: bool) -> str:
    return "[green]met[/green]" if ok else "[red]VIOLATED[/red]"


def inspect_table(rows: list[dict[str, Any]], title: str) -> Table:
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for col in ("tensor", "shape", "encoding", "bits", "sparsity", "bytes"):
        table.add_column(col, justify="left" if col in ("tensor", "encoding") else "right")
    for r in rows:
        table.add_row(r["name"], "×".join(map(str, r["shape"])) or "scalar", r["encoding"],
                      str(r["bits"]), f"{100 * r['sparsity']:.1f}%", f"{r['bytes']:,}")
    return table


class RichProgress(ProgressSink):
    """Renders training progress on stderr; silent when quiet or not a terminal."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self.console = console
        self.enabled = enabled
        self._bar: Progress | None = None
        self._task: Any = None

    @classmethod
    def for_cli(cls, quiet: bool) -> RichProgress:
        console = Console(stderr=True, highlight=False)
        return cls(console, enabled=not quiet and sys.stderr.isatty())

    def start(self, label: str, total: int) -> None:
        if not self.enabled:
            return
        self._bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("{task.fields[metrics]}"), TimeElapsedColumn(), TextColumn("eta"),
                             TimeRemainingColumn(compact=True), console=self.console)
        self._bar.start()
        self._task = self._bar.add_task(label, total=total, metrics="")

    def update(self, advance: int, **metrics: float) -> None:
        if self._bar is not None:
            parts = [f"loss {metrics['loss']:.4f}" if "loss" in metrics else "",
                     f"acc {metrics['acc']:.2f}%" if "acc" in metrics else "",
                     f"{metrics['samples_per_s']:,.0f} samples/s" if "samples_per_s" in metrics else ""]
            text = "  ".join(p for p in parts if p)
            self._bar.update(self._task, advance=advance, metrics=text)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None

    def note(self, message: str) -> None:
        if self.enabled:
            self.console.print(f"[dim]{message}[/dim]")
