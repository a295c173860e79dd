"""Jobs built in Python, without a TOML file.

    from ensnif_mpc.sdk import dataset_input, job_spec

    spec = job_spec(
        "mean",
        dataset_input("grocery", "orders", column="basket_total"),
        dataset_input("logistics", "deliveries", column="fee"),
        helpers=["helper"],
        rho=0.05,
    )

The arguments are those of a job file (docs/analyst-guide.md); the spec is checked by the
same parser (:func:`ensnif_mpc.jobs.jobspec.from_dict`), so a mistake names the same field
a job file's would.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ensnif_mpc.jobs import jobspec


def dataset_input(party: str, dataset: str, column: str = "", **roles: str) -> dict[str, str]:
    """One data owner's input: its dataset, the value ``column``, and other roles by name
    (``key="customer_id"``, ``group="zip"``, ``filter="basket_total"``)."""
    out = {"party": party, "dataset": dataset, **roles}
    if column:
        out["column"] = column
    return out


def job_spec(
    protocol: str,
    *inputs: Mapping[str, str],
    helpers: Sequence[str] = (),
    params: Mapping[str, Any] | None = None,
    name: str = "",
    rho: float | None = None,
    epsilon: float | None = None,
    delta: float | None = None,
    exact: bool = False,
) -> jobspec.JobSpec:
    """A job spec ready for :meth:`ensnif_mpc.sdk.client.Client.submit`.

    The release: ``rho`` (zCDP, the distributed discrete Gaussian), or ``epsilon`` (and
    optionally ``delta``: pure ε-DP, discrete Laplace), or ``exact=True`` where every
    owner's policy allows it; none of them: the owners' default ρ.
    """
    raw: dict[str, Any] = {
        "protocol": protocol,
        "inputs": [dict(i) for i in inputs],
        "helpers": list(helpers),
        "params": dict(params or {}),
    }
    if name:
        raw["name"] = name
    privacy: dict[str, Any] = {}
    if rho is not None:
        privacy["rho"] = rho
    if epsilon is not None:
        privacy.update(mechanism="laplace", epsilon=epsilon)
    if delta is not None:
        privacy["delta"] = delta
    if exact:
        privacy["exact"] = True
    if privacy:
        raw["privacy"] = privacy
    return jobspec.from_dict(raw)
