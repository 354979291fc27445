"""The run report: one row per model state, plus the constraint verdict. JSON schema v1."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from compress.layers import LayerStat

REPORT_SCHEMA = 1


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
    latency_ms: float  # median forward time for one batch of ``latency_batch`` on the device
    latency_batch: int
    delta_pp: float = 0.0  # accuracy − baseline accuracy, percentage points
    ratio: float = 1.0  # fp32 state_dict bytes of the baseline / size_bytes
    seconds: float = 0.0  # wall time of the stage that produced this state
    state_dict_bytes: int = 0  # torch.save size of this state's state_dict in fp32
    macs: int = 0  # multiply-accumulates of Linear/Conv layers per input sample


@dataclass
class Trial:
    """One evaluated candidate of a budget search."""

    phase: str  # probe | climb | bisect (pruning rate) | bits (bit allocation)
    rate: float  # % of prunable weights removed
    accuracy: float
    nonzero: int
    met: bool
    seconds: float  # wall time spent on this trial (pruning, fine-tuning, evaluation)
    bits: float | None = None  # weighted mean bit width of the quantized weights (bits search)


@dataclass
class Constraint:
    max_accuracy_drop: float
    drop: float
    met: bool


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
    search: list[dict[str, Any]] = field(default_factory=list)  # budget-search trials, in order

    @property
    def final(self) -> Row:
        return self.rows[-1]

    def finalize(self, baseline: int, max_accuracy_drop: float | None) -> None:
        """Fix the baseline row, then derive Δ, ratios and the constraint verdict."""
        self.baseline = baseline
        base = self.rows[baseline]
        self.fp32_bytes = base.state_dict_bytes
        for row in self.rows:
            row.delta_pp = round(row.accuracy - base.accuracy, 4)
            row.ratio = round(self.fp32_bytes / row.size_bytes, 3) if row.size_bytes else 0.0
        if max_accuracy_drop is not None:
            drop = round(base.accuracy - self.final.accuracy, 4)
            self.constraint = Constraint(max_accuracy_drop, drop, drop <= max_accuracy_drop)

    def to_dict(self) -> dict[str, Any]:
        from compress import __version__

        data = asdict(self)
        for layer, stat in zip(data["layers"], self.layers):
            layer["sparsity"] = round(stat.sparsity, 6)
        return {"schema": REPORT_SCHEMA, "modelzip": __version__, **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        """Rebuild a report stored in an artifact (derived fields are recomputed, unknown ones dropped)."""
        row_keys = set(Row.__dataclass_fields__)
        layer_keys = set(LayerStat.__dataclass_fields__)
        rows = [Row(**{k: v for k, v in r.items() if k in row_keys}) for r in data.get("rows", [])]
        layers = [LayerStat(**{k: v for k, v in r.items() if k in layer_keys}) for r in data.get("layers", [])]
        return cls(data["model"], data["dataset"], data["device"], rows=rows, baseline=data.get("baseline", 0),
                   fp32_bytes=data.get("fp32_bytes", 0), output=data.get("output"), notes=data.get("notes", []),
                   layers=layers, search=data.get("search", []))
