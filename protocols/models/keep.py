"""Where a trained model goes: released to the analyst (its coefficients opened, as every
output is), released to a named member of the job instead (``keep = "to:<member>"``, one
of the job's data owners: every output the analyst would open is opened by that member
only, e.g. to register the model for encrypted scoring at its node), or kept secret-shared
at the parties as the artifact ``model`` for later ``predict`` and ``model_accuracy`` jobs.
Every model protocol calls :func:`keep_model` at its output step when the job asks
``keep = "artifact"``, so a model artifact has one layout whatever trained it.

The layout (what :mod:`ensnif_mpc.results.model_artifacts` reads back from the metadata):
one secure fixed-point vector ``[intercept, w_1, …, w_d]`` in the weights' own units (the
features as the owners declare them), of the secure type the training solved in; the
producing protocol names the model's kind, the vector's length its feature count and the
type's fractional bits its precision. Nothing is opened: no coefficient, no standard
error, no R² (each would tell something of the weights).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ensnif_mpc.errors import InvalidJobSpec
from ensnif_mpc.jobs.protocol import ARTIFACT, Param, member_recipient
from protocols.io import SecureOutput

MODEL = "model"
RELEASE, KEEP = "release", "artifact"

KEEP_PARAM = Param(
    "keep",
    "string",
    '"release" opens the model to the analyst; "to:<member>" opens it to that data owner '
    "of the job only (exact or DP, as the owners allow; the analyst opens nothing); "
    '"artifact" (exact release only) keeps it secret-shared at the parties as the artifact '
    "`model` (nothing opened) for predict and model_accuracy jobs",
    default=RELEASE,
)
# The declaration every model protocol adds to its destinations.
DESTINATIONS = {MODEL: ARTIFACT}


def kept(params: Mapping[str, Any]) -> bool:
    return bool(params.get("keep", RELEASE) == KEEP)


def check_keep(spec: Any) -> None:
    """``check_spec`` helper: ``keep`` is one of its values, a member it releases to is one
    of the job's data owners, and a model is kept only from an exact fit (a DP release is
    public by construction: there is nothing to keep)."""
    keep = spec.params.get("keep", RELEASE)
    to = member_recipient(spec.params)
    if to is not None:
        if to not in spec.owners:
            raise InvalidJobSpec(
                f"params.keep: {to!r} is not a data owner of this job "
                f"({', '.join(spec.owners)}); a model is released to the analyst or to one "
                "of its data owners"
            )
        return
    if keep not in (RELEASE, KEEP):
        raise InvalidJobSpec(f'params.keep: "release", "to:<member>" or "artifact", got {keep!r}')
    if keep == KEEP and not (spec.privacy is not None and spec.privacy.exact):
        raise InvalidJobSpec(
            'params.keep = "artifact" needs an exact release ([privacy] exact = true): a DP '
            "model is released to the analyst"
        )


def keep_model(mpc: Any, intercept_first: Any) -> list[SecureOutput]:
    """The job's only output: ``[intercept, w_1..w_d]`` (a secure fixed-point array or a
    list of secure fixed-point numbers of one type) kept as the artifact ``model``."""
    value = intercept_first
    if isinstance(value, list):
        value = mpc.np_fromlist(value)
    return [SecureOutput(MODEL, value, on_value_scale=False, noisy=False, to=ARTIFACT)]
