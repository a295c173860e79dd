"""How many groups and outputs a job declares, for the owners' per-job caps
(``max_groups``, ``max_outputs`` in a dataset's policy; party_node/policy.py).

Counted from the signed job alone — the protocol's declared outputs and the job's
public parameters — never from data, so a refusal says nothing about any owner's rows
(docs/privacy.md, side channels). What the count covers:

- groups: the labels a job lists (a ``labels`` parameter such as ``groups``), or the
  candidate slots a group discovery opens (its ``max_groups`` parameter, per owner);
- outputs: one per declared output name; a ``<group>`` name once per group; a ``<i>``
  name once per bin of the job's ``edges`` (a histogram) where it has them. Other
  ``<i>`` names (a regression's coefficients, a port's fixed vectors) count once: their
  length is fixed by the protocol or the job's columns, not by a parameter that can grow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ensnif_mpc.jobs.protocol import ProtocolDef

# Defaults when a dataset's policy sets no cap: one exact group-sum over 200,000 groups
# took 1.3–2.3 GB per worker and minutes (docs/performance.md); 10,000 stays well below.
DEFAULT_MAX_GROUPS = 10_000
DEFAULT_MAX_OUTPUTS = 50_000
SLOTS = "max_groups"  # group discovery: candidate slots per owner


@dataclass(frozen=True)
class Size:
    groups: int
    outputs: int


def _declared(definition: ProtocolDef, params: Mapping[str, Any], name: str) -> Any:
    if name in params:
        return params[name]
    return next((p.default for p in definition.parameters if p.name == name), None)


def declared(definition: ProtocolDef, params: Mapping[str, Any], owners: int) -> Size:
    """The groups and outputs a job of ``definition`` with ``params`` asks for."""
    labels = [
        len(params[p.name])
        for p in definition.parameters
        if p.type == "labels" and isinstance(params.get(p.name), list | tuple)
    ]
    groups = max(labels, default=0)
    slots = (
        _declared(definition, params, SLOTS) if "<group>" in " ".join(definition.outputs) else None
    )
    if not labels and isinstance(slots, int) and not isinstance(slots, bool):
        groups = slots * max(1, owners)
    edges = params.get("edges")
    bins = max(0, len(edges) - 1) if isinstance(edges, list | tuple) else 0
    outputs = 0
    for name in definition.outputs:
        if "<group>" in name:
            outputs += groups
        elif "<i>" in name and bins:
            outputs += bins
        else:
            outputs += 1
    return Size(groups, outputs)
