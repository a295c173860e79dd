"""The δ a DP job spends: what each owner's ledger adds up per dataset (``max_delta``).

zCDP releases with the distributed discrete Gaussian are pure ρ-zCDP: δ = 0. Two parts of
a release are (ρ, δ) or (ε, δ) instead, and their δs compose by adding:

- the discrete Laplace sampler (``mechanism = "laplace"``): its output is within δ (total
  variation) of the exact discrete Laplace, δ the job's ``privacy.delta`` (each block's
  bound is at most δ/blocks, :func:`ensnif_mpc.privacy.dp.laplace_plan`);
- a threshold on noisy counts that opens groups (group discovery's τ): a group only one
  person is in opens with probability at most its ``params.delta``. A protocol declares
  that parameter as ``ProtocolDef.extra["delta_param"]`` (and its default as
  ``extra["delta_default"]``).

Computed from the signed job and the release plan only, never from data, so a node refuses
a job that would exceed its δ cap before anything runs (with the budget's other checks).
"""

from __future__ import annotations

from collections.abc import Mapping
from fractions import Fraction
from typing import Any

from ensnif_mpc.privacy.dp import ReleasePlan


def job_delta(plan: ReleasePlan, extra: Mapping[str, Any], params: Mapping[str, Any]) -> Fraction:
    """The δ of one job, charged to every dataset it reads (0 for an exact or a pure
    zCDP release), exactly (the floats as the fractions they are)."""
    if plan.exact:
        return Fraction(0)
    total = Fraction(plan.delta) if plan.laplace else Fraction(0)
    param = extra.get("delta_param")
    if param:
        stated = params.get(param)
        total += Fraction(float(extra.get("delta_default", 0) if stated is None else stated))
    return total
