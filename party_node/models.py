"""The models a member registered at its own node, and who may score against them.

A model lives in the node's state directory (``models/NAME.json``, mode 0600): kind,
weights, bias, the declared logit range, optional feature bounds, the analysts allowed
to score and each one's row quota. The weights never leave the node; what the catalog
shows (:meth:`ModelRecord.public`) is the name, kind, feature count, ranges and the
sigmoid's stated error.

The row quota is the owner's answer to model extraction: d+1 scores of a linear model
with d features determine it, so a quota of rows per analyst bounds what scoring
reveals. Rows are charged when a request is accepted, from its declared row count (a
partial batch's spare slots are masked, so an analyst cannot get more scores than it
is charged for); usage is kept in ``models/NAME.usage.json``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ensnif_mpc.errors import BudgetExhausted, InvalidArgument, NotFound, PermissionDenied
from ensnif_mpc.he.scoring import Model
from ensnif_mpc.he.sigmoid import logit_range
from ensnif_mpc.security.pki import write_private

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ANY = "*"


@dataclass(frozen=True)
class ModelRecord:
    model: Model
    allow: tuple[str, ...] = (ANY,)
    row_quota: int = 0  # rows per analyst; 0 = no quota
    feature_low: tuple[float, ...] = ()
    feature_high: tuple[float, ...] = ()
    feature_names: tuple[str, ...] = ()
    registered_at: str = field(default="")

    def public(self, party: str) -> dict[str, Any]:
        """What the catalog shows: never a weight or the bias."""
        poly = self.model.sigmoid()
        return {
            "party": party,
            "name": self.model.name,
            "kind": self.model.kind,
            "features": self.model.features,
            "feature_names": list(self.feature_names),
            "params": self.model.params.name,
            "input_low": self.model.input_range[0],
            "input_high": self.model.input_range[1],
            "feature_low": list(self.feature_low),
            "feature_high": list(self.feature_high),
            "sigmoid": poly.describe() if poly else self._analyst_sigmoid(),
            "sigmoid_max_error": poly.max_error if poly else 0.0,
            "sigmoid_at": self.model.sigmoid_at if self.model.kind == "logistic" else "",
            "row_quota": self.row_quota,
            "registered_at": self.registered_at,
        }

    def _analyst_sigmoid(self) -> str:
        return "exact σ(z), by the analyst's client" if self.model.kind == "logistic" else ""

    def to_json(self) -> dict[str, Any]:
        m = self.model
        return {
            "name": m.name,
            "kind": m.kind,
            "weights": list(m.weights),
            "bias": m.bias,
            "input_range": list(m.input_range),
            "sigmoid_at": m.sigmoid_at,
            "allow": list(self.allow),
            "row_quota": self.row_quota,
            "feature_low": list(self.feature_low),
            "feature_high": list(self.feature_high),
            "feature_names": list(self.feature_names),
            "registered_at": self.registered_at,
        }

    @staticmethod
    def from_json(raw: dict[str, Any]) -> ModelRecord:
        model = Model(
            str(raw["name"]),
            str(raw["kind"]),
            tuple(float(w) for w in raw["weights"]),
            float(raw["bias"]),
            (float(raw["input_range"][0]), float(raw["input_range"][1])),
            str(raw.get("sigmoid_at", "node")),
        )
        return ModelRecord(
            model,
            tuple(str(a) for a in raw.get("allow", [ANY])),
            int(raw.get("row_quota", 0)),
            tuple(float(v) for v in raw.get("feature_low", [])),
            tuple(float(v) for v in raw.get("feature_high", [])),
            tuple(str(v) for v in raw.get("feature_names", [])),
            str(raw.get("registered_at", "")),
        )


def build(
    name: str,
    kind: str,
    weights: list[float],
    bias: float,
    input_range: tuple[float, float] | None = None,
    feature_bounds: tuple[list[float], list[float]] | None = None,
    allow: tuple[str, ...] = (ANY,),
    row_quota: int = 0,
    feature_names: tuple[str, ...] = (),
    sigmoid_at: str = "node",
) -> ModelRecord:
    """A model to register. A logistic model's logit range is the one declared, or else the
    range w·x + b takes over the feature bounds (the safer way: then no admissible row
    falls outside the sigmoid's fit)."""
    if not _NAME.match(name):
        raise InvalidArgument(f"model name {name!r}: letters, digits, '_' and '-' (<= 64)")
    if row_quota < 0:
        raise InvalidArgument("row quota must be >= 0 (0 = none)")
    low: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    if feature_bounds is not None:
        low, high = tuple(feature_bounds[0]), tuple(feature_bounds[1])
        if len(low) != len(weights) or len(high) != len(weights):
            raise InvalidArgument(
                f"feature bounds give {len(low)} lows and {len(high)} highs for "
                f"{len(weights)} weights",
                reason="he_feature_count",
            )
        if any(lo > hi for lo, hi in zip(low, high, strict=True)):
            raise InvalidArgument("a feature's lower bound is above its upper bound")
    if feature_names and len(feature_names) != len(weights):
        raise InvalidArgument(
            f"{len(feature_names)} feature names for {len(weights)} weights",
            reason="he_feature_count",
        )
    if input_range is None:
        if kind == "logistic" and sigmoid_at == "node" and feature_bounds is None:
            raise InvalidArgument(
                "a logistic model needs --input-range LOW,HIGH or --feature-bounds "
                "(the sigmoid polynomial is fitted on that range)"
            )
        input_range = logit_range(weights, bias, low, high) if low else (-1.0, 1.0)
    if not input_range[0] < input_range[1]:
        raise InvalidArgument("the input range needs LOW < HIGH")
    model = Model(name, kind, tuple(weights), bias, input_range, sigmoid_at)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return ModelRecord(model, allow, row_quota, low, high, feature_names, now)


class ModelRegistry:
    """``models/`` in a node's state directory. The admin CLI writes it; the node reads
    it at each request (a model registered while the node runs is served at once)."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = state_dir / "models"
        self._lock = threading.Lock()

    def _path(self, name: str, suffix: str = ".json") -> Path:
        if not _NAME.match(name):
            raise NotFound(f"no model {name!r}", reason="unknown_model")
        return self.directory / f"{name}{suffix}"

    def register(self, record: ModelRecord, replace: bool = False) -> None:
        path = self._path(record.model.name)
        if path.exists() and not replace:
            raise InvalidArgument(
                f"a model {record.model.name!r} is already registered (--replace to overwrite)"
            )
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_private(path, (json.dumps(record.to_json(), indent=2) + "\n").encode())

    def remove(self, name: str) -> None:
        path = self._path(name)
        if not path.exists():
            raise NotFound(f"no model {name!r} at this node", reason="unknown_model")
        path.unlink()

    def get(self, name: str) -> ModelRecord:
        try:
            raw = json.loads(self._path(name).read_text())
        except (OSError, ValueError):
            raise NotFound(f"no model {name!r} at this node", reason="unknown_model") from None
        return ModelRecord.from_json(raw)

    def all(self) -> list[ModelRecord]:
        if not self.directory.is_dir():
            return []
        names = sorted(
            p.stem for p in self.directory.glob("*.json") if not p.stem.endswith(".usage")
        )
        return [self.get(n) for n in names]

    def admit(self, record: ModelRecord, analyst: str, rows: int) -> int:
        """Check the analyst may score ``rows`` rows and charge them; the rows it has used."""
        if ANY not in record.allow and analyst not in record.allow:
            raise PermissionDenied(
                f"analyst {analyst!r} may not score against model {record.model.name!r}",
                reason="model_not_allowed",
            )
        with self._lock:
            usage_path = self._path(record.model.name, ".usage.json")
            usage: dict[str, int] = (
                json.loads(usage_path.read_text()) if usage_path.exists() else {}
            )
            used = int(usage.get(analyst, 0))
            if record.row_quota and used + rows > record.row_quota:
                raise BudgetExhausted(
                    f"scoring {rows} rows would pass analyst {analyst!r}'s quota of "
                    f"{record.row_quota} rows for model {record.model.name!r} "
                    f"({used} used)",
                    reason="model_row_quota",
                )
            usage[analyst] = used + rows
            write_private(usage_path, json.dumps(usage).encode())
            return used + rows
