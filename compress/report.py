"""The run report: one row per model state, search trials, the constraint verdict. JSON schema v1."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

REPORT_SCHEMA = 1
_TIMED = ("latency_ms", "latency_ms_1", "seconds")  # measured timings: they differ run to run, so artifacts leave them out


@dataclass
class LayerStat:
    """One Linear/Conv layer, before compression and now."""

    name: str
    kind: str
    shape_before: list[int]
    shape: list[int]
    params_before: int  # weight elements in the baseline
    nonzero: int  # non-zero weight elements now
    bits: float = 32.0  # bits per stored weight code now (32 = float)

    @property
    def sparsity(self) -> float:
        """Share of the baseline's weights that are gone or zero now."""
        return 1.0 - self.nonzero / self.params_before if self.params_before else 0.0


@dataclass
class Row:
    """One model state (baseline, or after a stage)."""

    stage: str
    accuracy: float  # top-1 %, on ``split``
    loss: float
    split: str
    params: int
    nonzero: int
    size_bytes: int  # bytes of the artifact for this state (the real file for the final row)
    latency_ms: float | None  # median forward time for one batch of ``latency_batch`` on the device
    latency_batch: int
    delta_pp: float = 0.0  # accuracy − baseline accuracy, percentage points
    ratio: float = 1.0  # fp32 state_dict bytes of the baseline / size_bytes
    seconds: float | None = 0.0  # wall time of the stage that produced this state
    state_dict_bytes: int = 0  # torch.save size of this state's state_dict in fp32
    macs: int = 0  # multiply-accumulates of Linear/Conv layers per input sample


@dataclass
class Trial:
    """One evaluated candidate of a budget search."""

    phase: str  # probe | climb | bisect (pruning rate) | scan | bits (bit allocation) | tune | speed (channels)
    rate: float  # % of prunable weights (channels) removed (for bits trials: the sparsity pruning left)
    accuracy: float | None  # None: not evaluated (a speed trial measures only the objective)
    nonzero: int  # non-zero weights (channel trials: parameters)
    met: bool
    seconds: float | None  # wall time spent on this trial (pruning, fine-tuning, evaluation)
    bits: float | None = None  # weighted mean bit width of the quantized weights (bits search)
    cost: float | None = None  # the objective a speed search measured (ms, MACs or parameters)


@dataclass
class ExportRow:
    """An exported model, run in its own runtime on the evaluation split."""

    format: str  # onnx | onnx-int8 | pt2
    runtime: str  # what ran it, with its version
    accuracy: float  # top-1 % on ``split``
    split: str
    max_abs_diff: float  # largest |logit difference| against the PyTorch model on the same inputs
    latency_ms_1: float | None  # median forward time at batch 1
    latency_ms: float | None  # … and at ``latency_batch``
    latency_batch: int
    size_bytes: int
    delta_pp: float = 0.0  # accuracy − the baseline's
    file: str | None = None  # where it was written


@dataclass
class Constraint:
    """The verdict on the recipe's constraints: an accuracy budget and/or a speed target."""

    max_accuracy_drop: float | None
    drop: float
    met: bool
    target_speedup: float | None = None  # a channel search's target (objective below)
    speedup: float | None = None  # baseline / final in that objective
    objective: str | None = None  # latency | macs | params


@dataclass
class Report:
    model: str
    dataset: str
    device: str
    rows: list[Row] = field(default_factory=list)
    baseline: int = 0
    fp32_bytes: int = 0
    output: str | None = None
    constraint: Constraint | None = None
    notes: list[str] = field(default_factory=list)
    layers: list[LayerStat] = field(default_factory=list)  # per layer, baseline vs final (compression runs)
    search: list[Trial] = field(default_factory=list)  # budget-search trials, in order
    exports: list[ExportRow] = field(default_factory=list)  # exported models, verified in their runtimes

    @property
    def final(self) -> Row:
        return self.rows[-1]

    def finalize(self, baseline: int, max_accuracy_drop: float | None,
                 speed_target: tuple[float, str] | None = None) -> None:
        """Fix the baseline row, then derive Δ, ratios and the verdict on the budget and the speed target."""
        self.baseline = baseline
        base = self.rows[baseline]
        self.fp32_bytes = base.state_dict_bytes
        for row in self.rows:
            row.delta_pp = round(row.accuracy - base.accuracy, 4)
            row.ratio = round(self.fp32_bytes / row.size_bytes, 3) if row.size_bytes else 0.0
        for export in self.exports:
            export.delta_pp = round(export.accuracy - base.accuracy, 4)
        drop = round(base.accuracy - self.final.accuracy, 4)
        if max_accuracy_drop is not None or speed_target is not None:
            met = max_accuracy_drop is None or drop <= max_accuracy_drop
            self.constraint = Constraint(max_accuracy_drop, drop, met)
        if speed_target is not None and self.constraint is not None:
            target, objective = speed_target
            speedup = round(_cost(base, objective) / max(_cost(self.final, objective), 1e-12), 4)
            self.constraint.target_speedup, self.constraint.speedup, self.constraint.objective = target, speedup, objective
            self.constraint.met = self.constraint.met and speedup >= target

    def to_dict(self, timings: bool = True) -> dict[str, Any]:
        """The JSON report; without ``timings`` (what an artifact stores) it is the same for the same run."""
        from compress.version import __version__

        data = asdict(self)
        for layer, stat in zip(data["layers"], self.layers, strict=True):
            layer["sparsity"] = round(stat.sparsity, 6)
        if not timings:
            for entry in (*data["rows"], *data["search"], *data["exports"]):
                entry.update({k: None for k in _TIMED if k in entry})
        return {"schema": REPORT_SCHEMA, "modelzip": __version__, **data}

    def stored(self) -> dict[str, Any]:
        """The report as an artifact stores it: no timings, and the final size left to the file itself
        (it is the file's own size, which the stored report cannot contain without changing it)."""
        data = self.to_dict(timings=False)
        if data["rows"]:
            data["rows"][-1].update(size_bytes=0, ratio=0.0)
        return data

    def with_file_size(self, size: int) -> Report:
        """A stored report completed with its file's size (see :meth:`stored`)."""
        if self.rows and not self.final.size_bytes:
            self.final.size_bytes = size
            if self.fp32_bytes:
                self.final.ratio = round(self.fp32_bytes / size, 3)
        return self

    @classmethod
    def from_dict(cls, data: Any) -> Report:
        """Rebuild a stored report; derived fields are recomputed, unknown ones dropped.

        Raises ``ValueError`` when ``data`` is not a report (the caller says whose file it was).
        """
        if not isinstance(data, dict):
            raise ValueError(f"expected a mapping, got {type(data).__name__}")
        try:
            rows = [_build(Row, r) for r in data.get("rows") or []]
            layers = [_build(LayerStat, r) for r in data.get("layers") or []]
            search = [_build(Trial, t) for t in data.get("search") or []]
            exports = [_build(ExportRow, e) for e in data.get("exports") or []]
            report = cls(str(data["model"]), str(data["dataset"]), str(data["device"]), rows=rows,
                         baseline=int(data.get("baseline", 0)), fp32_bytes=int(data.get("fp32_bytes", 0)),
                         output=data.get("output"), notes=[str(n) for n in data.get("notes") or []],
                         layers=layers, search=search, exports=exports)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not a modelzip report ({type(exc).__name__}: {exc})") from None
        if rows and not 0 <= report.baseline < len(rows):
            raise ValueError(f"baseline row {report.baseline} does not exist")
        return report


def _cost(row: Row, objective: str) -> float:
    """A row's value in a speed objective (latency is what its runtime measured)."""
    return float({"macs": row.macs, "params": row.params}.get(objective, row.latency_ms or 0.0))


def _build(cls: type, raw: Any) -> Any:
    if not isinstance(raw, dict):
        raise TypeError(f"{cls.__name__} entry is {type(raw).__name__}, not a mapping")
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in raw.items() if k in names})
