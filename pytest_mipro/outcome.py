"""What happened to a target: a typed, frozen :class:`TargetOutcome`, built once per mode.

The pipeline builds one outcome at the end of each mode (gate, check, optimize); the session
collects them; the report renders them. Outcomes cross process boundaries (pytest-xdist
workers to the controller) and reach files (the JSON report) only as ``to_dict()``, whose
shape is written down in ``pytest_mipro/schema/report.schema.json``; ``from_dict`` reads it
back. Library code, no pytest.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

from . import plain
from .example import Example, Prediction
from .gate import GateStats, Judgement, score_bounds
from .lm import Usage
from .lockfile import Counts, LockEntry
from .optimizer.evaluate import ExampleResult
from .optimizer.search import TrialLog
from .plain import Plain
from .scoring import Evaluation


class Mode(str, enum.Enum):
    """What the run does with a target: gate it (plain ``pytest``), check its entry, or optimize it."""

    GATE = "gate"
    CHECK = "check"
    OPTIMIZE = "optimize"


class Outcome(str, enum.Enum):
    """How a target ended."""

    PASSED = "passed"
    FAILED = "failed"  # the verdict was FAIL (or INCONCLUSIVE under --mipro-strict)
    MISSING = "missing"  # the lockfile has no entry for it
    STALE = "stale"  # its entry was optimized from something that changed since
    ERROR = "error"  # a setup or run-time error (bad declaration, provider failure, ...)


# ---------------------------------------------------------------- how --mipro-optimize chose


@dataclass(frozen=True)
class ShorterPick:
    """The one-standard-error rule: the pick, and the best candidate it was compared with."""

    score: float
    chars: int
    best_score: float
    best_chars: int


@dataclass(frozen=True)
class HoldoutVerdict:
    """The holdout check: the new program against the current one on examples the search never saw."""

    against: str  # "lock" (the current entry) or "unoptimized"
    same_program: bool
    adopted: bool
    n: int
    new_score: float | None
    old_score: float | None
    improvement: float | None
    lower_bound: float | None


@dataclass(frozen=True)
class Selection:
    """How the locked prompt was chosen: the holdout split, the one-SE rule, the holdout check."""

    holdout_source: str  # "fixture", "split" or "none"
    labeled: int
    holdout: int
    validation: int
    min_for_split: int
    one_se: ShorterPick | None = None
    decision: HoldoutVerdict | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Plain) -> Selection:
        return plain.load(cls, data)


# ---------------------------------------------------------------- the outcome


@dataclass(frozen=True)
class TargetOutcome:
    """One target's run in one mode: what was scored, judged, locked and spent, and how it ended.

    ``message`` says why a target did not pass, or, for a passing INCONCLUSIVE verdict, the
    warning. ``evaluation`` holds what was scored: the gate's examples, or in optimize mode
    the locked program on its validation examples; ``entry`` the lock entry gated, checked
    or written; ``counts`` what this target cost (an optimization: every process and resumed
    run of its search, and the selection).
    """

    target: str
    nodeid: str
    mode: Mode
    outcome: Outcome
    message: str | None = None
    threshold: float | None = None
    threshold_source: str | None = None
    entry: LockEntry | None = None
    evaluation: Evaluation | None = None
    judgement: Judgement | None = None
    gate: GateStats | None = None
    selection: Selection | None = None
    trials: tuple[TrialLog, ...] = ()
    counts: Counts = field(default_factory=Counts)
    stale_parts: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED

    @property
    def warning(self) -> str | None:
        """The INCONCLUSIVE warning of a target that passed, if any."""
        return self.message if self.passed else None

    @property
    def verdict(self) -> str | None:
        return None if self.judgement is None else self.judgement.verdict

    @property
    def bounds(self) -> tuple[float, float] | None:
        """The score's one-sided 95% bounds: the judgement's, else the lock entry's."""
        if self.judgement is not None:
            return self.judgement.bounds
        if self.entry is None:
            return None
        if self.entry.bounds is None and self.entry.results.scores:
            return score_bounds(self.entry.results.scores)  # entries locked before bounds were stored
        return self.entry.bounds

    @property
    def score(self) -> float | None:
        """What the target scored here: the evaluation's score, else (check mode) the locked score."""
        if self.evaluation is not None:
            return self.evaluation.score
        return None if self.entry is None else self.entry.score

    @property
    def baseline_score(self) -> float | None:
        return None if self.entry is None else self.entry.baseline_score

    @property
    def skipped(self) -> int:
        """Examples the gate left unscored once its verdict was settled."""
        return 0 if self.judgement is None else self.judgement.total - self.judgement.evaluated

    def to_dict(self) -> dict[str, object]:
        """Plain data (the JSON report's per-target object and the xdist payload)."""
        return {
            "target": self.target,
            "nodeid": self.nodeid,
            "mode": self.mode.value,
            "outcome": self.outcome.value,
            "message": self.message,
            "threshold": self.threshold,
            "threshold_source": self.threshold_source,
            "score": _finite(self.score),
            "baseline_score": _finite(self.baseline_score),
            "counts": counts_to_dict(self.counts),
            "evaluation": None if self.evaluation is None else evaluation_to_dict(self.evaluation),
            "judgement": None if self.judgement is None else self.judgement.to_dict(),
            "gate": None if self.gate is None else self.gate.to_dict(),
            "selection": None if self.selection is None else self.selection.to_dict(),
            "trials": [t.to_dict() for t in self.trials],
            "stale_parts": list(self.stale_parts),
            "entry": None if self.entry is None else {"name": self.entry.name, **self.entry.to_dict()},
        }

    @classmethod
    def from_dict(cls, data: Plain) -> TargetOutcome:
        """Read back what :meth:`to_dict` wrote; raises ValueError naming a malformed key."""
        entry = plain.optional_mapping(data, "entry")
        evaluation = plain.optional_mapping(data, "evaluation")
        judgement = plain.optional_mapping(data, "judgement")
        gate = plain.optional_mapping(data, "gate")
        selection = plain.optional_mapping(data, "selection")
        return cls(
            target=plain.text(data, "target"),
            nodeid=plain.text(data, "nodeid", ""),
            mode=Mode(plain.text(data, "mode")),
            outcome=Outcome(plain.text(data, "outcome")),
            message=plain.optional_text(data, "message"),
            threshold=plain.optional_number(data, "threshold"),
            threshold_source=plain.optional_text(data, "threshold_source"),
            entry=None if entry is None else LockEntry.from_dict(plain.text(entry, "name"), entry, source="report"),
            evaluation=None if evaluation is None else evaluation_from_dict(evaluation),
            judgement=None if judgement is None else Judgement.from_dict(judgement),
            gate=None if gate is None else GateStats.from_dict(gate),
            selection=None if selection is None else Selection.from_dict(selection),
            trials=tuple(TrialLog.from_dict(t) for t in plain.mappings(data, "trials")),
            counts=counts_from_dict(plain.mapping(data, "counts")),
            stale_parts=tuple(str(p) for p in plain.items(data, "stale_parts")),
        )

    def legacy_record(self) -> dict[str, object]:
        """The flat ``record`` dict that ``pytest_mipro_target_finished`` received before 0.2.

        Deprecated: kept for one release so hook implementations that read it keep working.
        """
        evaluation, judgement = self.evaluation, self.judgement
        usage = self.counts.usage
        record: dict[str, object] = {
            "target": self.target,
            "nodeid": self.nodeid,
            "mode": self.mode.value,
            "outcome": self.outcome.value,
            "message": self.message,
            "score": self.score,
            "threshold": self.threshold,
            "n": evaluation.n if evaluation is not None else (self.entry.n if self.entry is not None else 0),
            "calls": usage.calls,
            "cache_hits": usage.cache_hits,
            "tokens": usage.tokens,
            "cost": usage.cost,
            "seconds": self.counts.seconds,
            "examples": [] if evaluation is None else [example_result_to_dict(r) for r in evaluation.results],
            "baseline_score": self.baseline_score,
        }
        if judgement is not None:
            record.update(verdict=judgement.verdict, lower=judgement.lower, upper=judgement.upper)
        if self.mode is Mode.OPTIMIZE:
            record["trials"] = [t.to_dict() for t in self.trials]
        return record


# ---------------------------------------------------------------- evaluations as data


def counts_to_dict(counts: Counts) -> dict[str, object]:
    return {**counts.usage.to_dict(), "seconds": round(counts.seconds, 3)}


def counts_from_dict(data: Plain) -> Counts:
    return Counts(Usage.from_dict(data), plain.number(data, "seconds") if "seconds" in data else 0.0)


def evaluation_to_dict(evaluation: Evaluation) -> dict[str, object]:
    return {
        "score": evaluation.score,
        "n": evaluation.n,
        "counts": counts_to_dict(evaluation.counts),
        "examples": [example_result_to_dict(r) for r in evaluation.results],
    }


def evaluation_from_dict(data: Plain) -> Evaluation:
    results = tuple(example_result_from_dict(r) for r in plain.mappings(data, "examples"))
    return Evaluation(plain.number(data, "score"), results, counts_from_dict(plain.mapping(data, "counts")))


def example_result_to_dict(result: ExampleResult) -> dict[str, object]:
    """One example's result: its id, score, inputs, expected labels, prediction and any error."""
    example = result.example
    inputs = example.inputs() if example.input_keys is not None else example
    return {
        "id": example.uid,
        "score": result.score,
        "inputs": _plain_values(inputs),
        "expected": _plain_values(example.labels()),
        "prediction": None if result.prediction is None else _plain_values(result.prediction),
        "error": result.error,
        "parse_error": result.parse_error,
    }


def example_result_from_dict(data: Plain) -> ExampleResult:
    inputs, expected = plain.mapping(data, "inputs"), plain.mapping(data, "expected")
    example = Example({**inputs, **expected}).with_inputs(*inputs)
    predicted = plain.optional_mapping(data, "prediction")
    prediction = None if predicted is None else Prediction(dict(predicted))
    if prediction is not None:
        prediction.parse_error = plain.optional_text(data, "parse_error")
    return ExampleResult(example, prediction, plain.number(data, "score"), plain.optional_text(data, "error"))


def _finite(value: float | None) -> float | None:
    """JSON has no NaN: a score never measured is null."""
    return None if value is None or math.isnan(value) else value


def _plain_values(data: Mapping[str, object]) -> dict[str, object]:
    return {str(k): v if isinstance(v, (str, int, float, bool, type(None))) else str(v) for k, v in data.items()}
