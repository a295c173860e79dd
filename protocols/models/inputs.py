"""The owners' side of the trained models: read the feature rows and the label, clamp them
into the public box, and secret-share them (or a local pre-aggregate of them).

Every owner maps its rows alike (the box is a signed job parameter), so the rows of all
owners are on one grid before anything is shared. Row counts are announced in the clear:
the catalog publishes them.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ensnif_mpc.errors import DataError
from protocols.io import Context


def is_owner_at(ctx: Context, position: int) -> bool:
    return ctx.local is not None and ctx.index == ctx.owners[position]


def features(ctx: Context) -> np.ndarray:
    """This owner's feature rows as declared (float), rows × features in the job's order."""
    assert ctx.local is not None
    return np.asarray(ctx.local.matrix("features"), dtype=float)


def labels(ctx: Context) -> np.ndarray:
    """This owner's 0/1 labels. The job's checks refuse a label column not declared as an
    integer within [0, 1]; a value outside is refused here without naming it."""
    assert ctx.local is not None
    y = np.asarray(ctx.local.column("label"), dtype=float)
    if y.size and not np.all((y == 0) | (y == 1)):
        raise DataError("the label column holds a value other than 0 or 1")
    return y.astype(np.int64)


async def announce(ctx: Context, position: int, value: int | None) -> int:
    """A public size announced by the owner at ``position`` (every party takes part)."""
    owner = ctx.owners[position]
    got = await ctx.mpc.transfer(value if ctx.index == owner else None, senders=[owner])
    return int(got[0] if isinstance(got, list) else got)


def share(
    ctx: Context, position: int, sectype: Any, data: np.ndarray | None, shape: tuple[int, ...]
) -> Any:
    """The owner at ``position`` secret-shares ``data`` (integers); the others pass zeros."""
    owner = ctx.owners[position]
    values = data if ctx.index == owner and data is not None else np.zeros(shape, dtype=object)
    return ctx.mpc.input(sectype.array(np.asarray(values, dtype=object)), senders=[owner])[0]


def summed(ctx: Context, sectype: Any, local: np.ndarray | None, shape: tuple[int, ...]) -> Any:
    """Σ over owners of each owner's local integer array (``local`` at this owner)."""
    parts = [share(ctx, i, sectype, local, shape) for i in range(len(ctx.owners))]
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total
