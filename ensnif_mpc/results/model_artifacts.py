"""A trained model kept secret-shared (the artifact ``<job>/model``), read from its metadata.

A model protocol run with ``keep = "artifact"`` exports one secure fixed-point vector
``[intercept, w_1, …, w_d]`` (``protocols/models/keep.py``). Everything a listing, a
``predict`` job's admission or ``ensnif model show`` needs follows from the artifact's
metadata alone, never from its shares: the producing protocol names the model's kind, the
vector's length its feature count, the type's fractional bits its precision. The nodes
check a predict job against it at Propose (:func:`check_fits`), before anything runs.

A model trained across a private join (``join_regression``, ``join_logistic``) is kept in
the same layout, its weights A's features then B's, and is listed, shown and deleted like
any other; ``predict`` and ``model_accuracy`` refuse it (``model_vertical``): they score
one owner's whole rows, and a vertical model's rows exist only inside the join.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ensnif_mpc.errors import FailedPrecondition

MODEL_NAME = "model"
# The model protocols that keep a model artifact, and the kind each trains.
KINDS = {
    "linear_regression": "linear",
    "logistic_regression": "logistic",
    "join_regression": "linear",
    "join_logistic": "logistic",
}
# Those trained across a private join (vertically partitioned): their features are split
# between two owners, A's then B's, so no one owner's rows can be scored with them.
VERTICAL = frozenset({"join_regression", "join_logistic"})


@dataclass(frozen=True)
class ModelArtifact:
    artifact_id: str
    kind: str  # "linear" | "logistic"
    features: int
    frac_bits: int  # the weights' fixed-point precision: resolution 2^-frac_bits
    job_id: str  # the training job
    protocol: str
    owners: tuple[str, ...]  # whose rows trained it (their policies decide who uses it)
    parties: tuple[str, ...]  # the session order a predict job must repeat

    @property
    def vertical(self) -> bool:
        """Trained across a private join: its weights are A's features, then B's."""
        return self.protocol in VERTICAL

    @property
    def layout(self) -> str:
        names = ", ".join(f"w_{j + 1}" for j in range(min(self.features, 3)))
        more = ", …" if self.features > 3 else ""
        return f"[intercept, {names}{more}]"


def is_model(meta: Mapping[str, Any]) -> bool:
    """Is this artifact (metadata) a trained model?"""
    shape = tuple(meta.get("shape", ()))
    return (
        meta.get("name") == MODEL_NAME
        and meta.get("protocol") in KINDS
        and len(shape) == 1
        and shape[0] >= 2
    )


def from_metadata(meta: Mapping[str, Any]) -> ModelArtifact:
    """The model an artifact's metadata describes (``artifact_id`` or ``id`` as its key)."""
    if not is_model(meta):
        ident = meta.get("artifact_id", meta.get("id", "?"))
        raise FailedPrecondition(
            f"artifact {ident!r} is not a trained model (a linear or logistic regression, "
            'horizontal or across a join, run with keep = "artifact")',
            reason="model_mismatch",
        )
    return ModelArtifact(
        artifact_id=str(meta.get("artifact_id", meta.get("id", ""))),
        kind=KINDS[str(meta["protocol"])],
        features=int(tuple(meta["shape"])[0]) - 1,
        frac_bits=int(meta.get("frac_bits", 0)),
        job_id=str(meta.get("job_id", "")),
        protocol=str(meta["protocol"]),
        owners=tuple(meta.get("owners", ())),
        parties=tuple(meta.get("parties", ())),
    )


def check_fits(definition: Any, spec: Any, held: Sequence[Mapping[str, Any]]) -> None:
    """At Propose, at every node: a protocol that scores with a model (``extra`` has
    ``"scores_with": "model"``) gets a model artifact, and the row owner lists exactly
    as many feature columns as the model has weights. Only public facts are compared
    (the signed job's column lists, the artifact's shape), so the refusal tells nothing."""
    if definition.extra.get("scores_with") != MODEL_NAME:
        return
    dp = spec.privacy is None or not spec.privacy.exact  # no table: the owners default to DP
    for meta in held:
        model = from_metadata(meta)
        if model.vertical:
            raise FailedPrecondition(
                f"{model.artifact_id!r} was trained across a join ({model.protocol}): its "
                "features are split between two owners, and predict and model_accuracy "
                "score one owner's rows; scoring across the join is not built",
                reason="model_vertical",
            )
        if dp and model.kind != "logistic" and definition.name == "model_accuracy":
            raise FailedPrecondition(
                f"model_accuracy has a DP release for a logistic model only; "
                f"{model.artifact_id!r} is a {model.kind} model (its squared error is not "
                "bounded by the declared columns): ask for an exact release",
                reason="dp_unavailable",
            )
        for n, given in enumerate(spec.inputs):
            columns = len(given.column_lists.get("features", ()))
            if columns != model.features:
                raise FailedPrecondition(
                    f"inputs[{n}].features: {columns} column(s) for the model "
                    f"{model.artifact_id!r}, which has {model.features} feature weight(s)",
                    reason="model_feature_mismatch",
                )
