"""A withheld owner takes the same time class as one whose rows go in.

When a node's noisy rule withholds its rows (the minimum cohort, group discovery's slot
bound), its worker still runs the job: the same reads of the same source, after which it
inputs an empty selection. Checked by recording every read a real CSV source serves —
the calls and what they return in size — for a withheld and a normal owner, over every
way a program reads its data (``LocalData`` and group discovery's local step).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from ensnif_mpc.data.bounding import Bound
from ensnif_mpc.data.schema import Column
from ensnif_mpc.data.sources import SourceSpec, open_source
from protocols import discovery
from protocols.io import LocalData

COLUMNS = (
    Column("person", "string"),
    Column("v", "int", 0, 100),
    Column("x", "float", 0, 10, 1),
    Column("g", "string"),
)


class Recorded:
    """A real source whose every read is written down (name, arguments, rows served)."""

    def __init__(self, source: Any) -> None:
        self._source = source
        self.reads: list[tuple[str, str, int]] = []

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._source, name)
        if name not in ("aggregate", "column", "row_count"):
            return attr

        def read(*args: Any, **kwargs: Any) -> Any:
            out = attr(*args, **kwargs)
            served = getattr(out, "rows", None)
            self.reads.append((name, repr((args, kwargs)), len(out) if served is None else served))
            return out

        return read

    def __setattr__(self, name: str, value: Any) -> None:
        if name in ("_source", "reads"):
            object.__setattr__(self, name, value)
        else:
            setattr(self._source, name, value)


def _owner(tmp_path: Any, withheld: bool, bound: bool = False) -> tuple[LocalData, Recorded]:
    rng = np.random.default_rng(3)
    path = tmp_path / f"rows-{withheld}.csv"
    lines = [
        f"p{rng.integers(0, 30)},{rng.integers(0, 101)},{rng.integers(0, 101) / 10},"
        f"{rng.choice(['a', 'b', 'c'])}\n"
        for _ in range(200)
    ]
    path.write_text("person,v,x,g\n" + "".join(lines))
    recorded = Recorded(open_source(SourceSpec("csv", path=str(path)), COLUMNS, name="t"))
    if bound:
        recorded.bound = Bound("person", 2)
    local = LocalData(recorded, {"value": "v", "filter": "x", "group": "g"}, 1, withheld=withheld)  # type: ignore[arg-type]
    return local, recorded


READS = {
    "sum with a filter": lambda d: d.aggregate(
        measures=(("count", None), ("sum", "value")), where=(("value", ">=", 20),)
    ),
    "per group": lambda d: d.aggregate(by=("group",), measures=(("count", None), ("max", "value"))),
    "a column": lambda d: d.column("value", scaled=True),
    "the filter column": lambda d: d.column("filter"),
    "group discovery": lambda d: discovery.owner_slots(d, {"max_groups": 4}),
}


@pytest.mark.parametrize("read", sorted(READS))
@pytest.mark.parametrize("bound", [False, True], ids=["no_bound", "person_bound"])
def test_a_withheld_owner_reads_what_an_owner_that_inputs_reads(tmp_path, read, bound):
    normal, normal_reads = _owner(tmp_path, withheld=False, bound=bound)
    withheld, withheld_reads = _owner(tmp_path, withheld=True, bound=bound)

    kept = READS[read](normal)
    empty = READS[read](withheld)

    assert withheld_reads.reads == normal_reads.reads and withheld_reads.reads
    assert [r[2] for r in normal_reads.reads] == [r[2] for r in withheld_reads.reads]
    if read == "group discovery":  # the same slots' shape, none filled
        assert empty.shape == kept.shape and not np.any(empty) and np.any(kept)
    elif isinstance(kept, np.ndarray):
        assert empty.size == 0 < kept.size
    else:
        assert int(np.sum(empty.values["count"])) == 0 < int(np.sum(kept.values["count"]))
