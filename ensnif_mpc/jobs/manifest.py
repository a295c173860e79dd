"""A job's threat-model manifest: what an approver needs to know before saying yes.

Built from the signed spec, the protocol's registry entry and the release plan,
never from anything the data owner has not seen: who computes, how many of them
must collude to learn anything, what is revealed to whom, what leaks beyond the
output, and what it costs in privacy budget.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ensnif_mpc.jobs import join_path, sessions
from ensnif_mpc.jobs.checks import honest_majority_threshold
from ensnif_mpc.jobs.jobspec import JobSpec
from ensnif_mpc.jobs.protocol import ProtocolDef
from ensnif_mpc.privacy.dp import ReleasePlan


def build(
    spec: JobSpec,
    definition: ProtocolDef,
    party_order: Sequence[str],
    release: ReleasePlan,
    analyst: str,
) -> dict[str, Any]:
    n = len(party_order)
    t = honest_majority_threshold(n)
    if release.exact:
        privacy: dict[str, Any] = {
            "release": "exact",
            "cost": "no privacy budget is charged; the outputs are released without noise",
        }
    elif release.laplace:
        charge = float(release.charge())
        privacy = {
            "release": f"pure ε-DP: discrete Laplace noise sampled inside MPC (ε = "
            f"{release.epsilon:g}, sampler δ ≤ {release.delta:g}; private against "
            "parties that follow the protocol)",
            "epsilon": release.epsilon,
            "rho_per_dataset": charge,
            "noise_sd": release.output_sigmas(),
            "cost": f"ρ = ε²/2 = {charge:g} from each input dataset's budget",
        }
    else:
        privacy = {
            "release": "zCDP: distributed discrete Gaussian noise, each party's share "
            "secret-shared into the MPC (calibrated to the honest parties' shares alone)",
            "rho_per_dataset": release.rho,
            "noise_sd": release.output_sigmas(),
            "cost": f"ρ = {release.rho:g} from each input dataset's budget",
        }
    try:  # a private join's route, chosen from the session as the workers will choose it
        path = join_path.choose(definition.name, n, t, len(spec.owners), spec.params)
    except ValueError:
        path = None
    leakage = definition.leakage
    if path is not None:
        leakage += f" This job's route: {join_path.describe(path, definition.name)}."
        limit = join_path.bit_limit(definition.name)
        if path == join_path.TAGGED and limit is not None:
            leakage += (
                f" (The {join_path.PRF} route is taken instead if the session's integers "
                f"need more than {limit} bits.)"
            )
        if path == join_path.DEALER:  # only the helper node knows, at Start, that it is one
            leakage += (
                " (If an owner's rows are outsourced, the helper plays that owner and cannot "
                f"also deal: the {join_path.MPC_ONLY} route is taken instead.)"
            )
    try:
        parallel = sessions.requested(spec.params)
    except ValueError:
        parallel = 1
    if parallel > 1:
        leakage += (
            f" Parallel sessions: up to {parallel} per party (the smallest of this and every "
            "node's parallel_sessions), each on a keyed-hash partition of the keys under a "
            "per-job key only the two owners hold: the helper learns the second owner's "
            "keys and the matches per partition (a split of the totals it could draw "
            "itself); the first owner's vector is padded to one public length in every "
            "session, so its split shows to no one; the partial results stay "
            "secret-shared and are added before the one release."
        )
    return {
        "protocol": definition.name,
        "version": definition.version,
        "summary": definition.summary,
        "inputs": [
            {"party": i.party, "dataset": i.dataset, "columns": i.role_columns} for i in spec.inputs
        ],
        "parties": list(party_order),
        "helpers": [p for p in party_order if p not in spec.owners],
        "threshold": t,
        "security": (
            f"Shamir secret sharing among {n} parties, threshold t = {t}: "
            + (
                "a single party learns nothing beyond the outputs; "
                if t == 1
                else f"any {t} colluding parties learn nothing beyond the outputs; "
            )
            + f"{t + 1} colluding parties could reconstruct every shared value, inputs "
            "included. Parties are assumed to follow the protocol (semi-honest)."
        ),
        "revealed": {
            analyst: list(definition.outputs),
            "parties": "nothing beyond what the leakage below says",
            "coordinator": "job state and progress only (results are sealed to the analyst)",
        },
        "leakage": leakage,
        "join_path": path,
        "sessions": parallel,
        "privacy": privacy,
        "params": dict(spec.params),
    }


def render(m: dict[str, Any]) -> str:
    """The manifest as a person reads it (``ensnif job pending --job ID``)."""

    def one(i: dict[str, Any]) -> str:
        columns = ", ".join(
            f"{role}={col if isinstance(col, str) else '[' + ', '.join(col) + ']'}"
            for role, col in i["columns"].items()
        )
        return f"{i['party']}:{i['dataset']} ({columns})"

    lines = [
        f"protocol   {m['protocol']} (v{m['version']}): {m['summary']}",
        "inputs     " + "; ".join(one(i) for i in m["inputs"]),
        f"parties    {', '.join(m['parties'])} (helpers: {', '.join(m['helpers']) or 'none'})",
        f"security   {m['security']}",
    ]
    for who, what in m["revealed"].items():
        shown = ", ".join(what) if isinstance(what, list) else what
        lines.append(f"reveals    to {who}: {shown}")
    if m.get("join_path"):
        lines.append(f"route      {m['join_path']}")
    if m.get("sessions", 1) > 1:
        lines.append(f"sessions   up to {m['sessions']} parallel MPC sessions per party")
    lines.append(f"leakage    {m['leakage']}")
    lines.append(f"privacy    {m['privacy']['release']}; {m['privacy']['cost']}")
    if m.get("params"):
        lines.append(f"params     {m['params']}")
    return "\n".join(lines)
