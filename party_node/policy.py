"""A data owner's access policy, evaluated: may this job touch this dataset, and how.

Pure decisions over plain values (no store, no data source, no gRPC): the node
gathers the facts a rule needs (the columns a job reads, its recipient, how often
the same question was asked, the smallest cohort the job would release) and this
module says allow, wait for a person, or refuse, naming the rule. Keeping it pure
is what lets it be tested exhaustively (tests/unit/party_node/test_policy.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ensnif_mpc.data.schema import AccessPolicy
from ensnif_mpc.errors import PolicyViolation, RateLimited


@dataclass(frozen=True)
class Request:
    """The facts about one job that the policy of one dataset judges."""

    dataset: str
    protocol: str
    columns: Mapping[str, str]  # role -> column this job reads
    recipient: str  # the analyst the results are sealed to
    repeats: int = 0  # times the same question was admitted here within the period
    cohort: int | None = None  # smallest non-empty cohort released (None: not computed)
    program: str = ""  # a member program's hash ("sha256:…"); "" for a registry protocol
    groups: int = 0  # groups the job lists (ensnif_mpc.jobs.caps: from the job, not data)
    outputs: int = 0  # outputs the job releases (likewise)


@dataclass(frozen=True)
class Verdict:
    manual: bool  # wait for this node's administrator before reserving anything
    rule: str  # the rule that decided (for the audit log and `ensnif job pending`)


def evaluate(allowed_protocols: tuple[str, ...], policy: AccessPolicy, req: Request) -> Verdict:
    """Allow (maybe after a person approves) or raise the refusal that names its rule.

    Refusals come first: a job no rule would allow never waits for a person.
    """
    where = f"policy of dataset {req.dataset!r}"
    if not req.program and req.protocol not in allowed_protocols:
        raise PolicyViolation(
            f"{where} allows only {', '.join(allowed_protocols) or 'no protocols'}; "
            f"not {req.protocol!r}",
            reason="protocol_not_allowed",
        )
    if policy.columns:
        outside = sorted(set(req.columns.values()) - set(policy.columns))
        if outside:
            raise PolicyViolation(
                f"{where} lets jobs read only {', '.join(policy.columns)}; "
                f"this job reads {', '.join(outside)}",
                reason="column_not_allowed",
            )
    if policy.recipients and req.recipient not in policy.recipients:
        raise PolicyViolation(
            f"{where} releases results only to {', '.join(policy.recipients)}; "
            f"not to {req.recipient!r}",
            reason="recipient_not_allowed",
        )
    if policy.max_groups and req.groups > policy.max_groups:
        raise PolicyViolation(
            f"{where} allows at most {policy.max_groups} groups per job (max_groups); "
            f"this job lists {req.groups}",
            reason="group_cap_exceeded",
        )
    if policy.max_outputs and req.outputs > policy.max_outputs:
        raise PolicyViolation(
            f"{where} allows at most {policy.max_outputs} outputs per job (max_outputs); "
            f"this job asks for {req.outputs}",
            reason="output_cap_exceeded",
        )
    if policy.min_cohort and req.cohort is not None and 0 < req.cohort < policy.min_cohort:
        raise PolicyViolation(
            f"{where} requires every released aggregate to draw on at least "
            f"{policy.min_cohort} of its rows; this job would release one drawing on fewer",
            reason="cohort_too_small",
        )
    if policy.max_repeats and req.repeats >= policy.max_repeats:
        raise RateLimited(
            f"{where} answers the same question at most {policy.max_repeats} times per "
            f"{_period(policy.repeat_period_s)}; it was asked {req.repeats} times already",
        )
    if req.program and req.program not in policy.programs:
        # An owner approves the exact code: a program it has not listed (one changed byte
        # is another hash) waits for a person, whatever the approval mode.
        return Verdict(True, f"program {req.program} is not in the dataset's programs")
    if policy.approval == "manual":
        return Verdict(True, "approval = manual")
    return Verdict(False, "approval = auto")


def _period(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = int(seconds // size)
            return unit if n == 1 else f"{n} {unit}s"
    return f"{seconds:g} s"
