"""A small program API for consortium programs, after SCALE-MAMBA's I/O model.

A MAMBA program reads a private input from a named player
(``sint.get_private_input_from(p)``), public input that every player reads alike, and
opens values with ``reveal()``/``reveal_to(p)``; the runtime owns the channels. Here the
same model on MPyC, inside Ensnif's worker::

    from protocols.program import Program, program

    @program
    async def richer(p: Program) -> None:
        a, b = (await p.input_from(i, p.sint(), reduce="sum") for i in (0, 1))
        p.reveal_to_analyst("first_is_richer", a > b)

- :meth:`Program.input_from` — a private input from a data owner (by input position):
  its declared column for a role, or a local pre-aggregate of it (sum, count). Only the
  owner holds the values; the other parties learn the length (row counts are public in
  the catalog) and input placeholders of that shape.
- :meth:`Program.public` — a public input: a job parameter, the same at every party (the
  job spec is signed and every node checks it).
- :meth:`Program.reveal_to_analyst` — an output opened only by the analyst, through the
  runtime: the program returns :class:`~protocols.io.SecureOutput` values and never calls
  ``mpc.output``; the worker adds noise where the release says so, re-randomizes every
  output, and seals each party's share to the analyst.
- :meth:`Program.fixed` / :meth:`Program.sint` — secure types with declared sizes:
  fixed point with a stated number of fractional bits, integers of a stated bit length
  (by default the session's, which the coordinator derived from the declared bounds).
- :meth:`Program.reveal_to` — an output opened only by one named party (SCALE-MAMBA's
  ``reveal_to(p)``, ``p`` the MPC party index: data owners in input order, then helpers):
  the worker seals every party's share of it to that member's consortium certificate; the
  analyst and the other parties get nothing of it.
- :meth:`Program.export_shares` / :meth:`Program.import_shares` — MAMBA's
  ``output_shares``/``input_shares``: a value kept secret-shared at the parties as a named
  artifact (nothing is opened; each party's node stores its own shares), and read back by a
  later job that lists the artifact. The program never sees the store.

Nothing here imports MPyC: the runtime comes in through the :class:`~protocols.io.Context`.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from protocols.io import Context, SecureOutput

Body = Callable[["Program"], Awaitable[None]]
Compiled = Callable[[Context], Awaitable[list[SecureOutput]]]


class Program:
    """One party's view of a running consortium program (see the module docstring)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.mpc = ctx.mpc
        self.outputs: list[SecureOutput] = []

    # -- secure types ---------------------------------------------------------------------
    def sint(self, bit_length: int | None = None) -> Any:
        """Secure integers of ``bit_length`` bits (default: the session's)."""
        return self.mpc.SecInt(bit_length or self.ctx.bit_length)

    def fixed(self, frac_bits: int = 32, bit_length: int | None = None) -> Any:
        """Secure fixed point with ``frac_bits`` fractional bits (absolute resolution
        2^-frac_bits) in ``bit_length`` bits (default 2·frac_bits, as MPyC's division needs)."""
        return self.mpc.SecFxp(bit_length or 2 * frac_bits, frac_bits)

    # -- input ----------------------------------------------------------------------------
    def owner_party(self, owner: int) -> int:
        """The MPC party index of the data owner at input position ``owner``."""
        if not 0 <= owner < len(self.ctx.owners):
            raise ValueError(f"no data owner at input position {owner}")
        return int(self.ctx.owners[owner])

    async def input_from(
        self, owner: int, sectype: Any, role: str = "value", reduce: str | None = None
    ) -> Any:
        """A private input from the data owner at input position ``owner``.

        ``reduce=None``: its whole column for ``role`` as a secure 1-D array (integers on
        the session's decimal grid for a secure integer type; the values as declared for
        fixed point). ``reduce="sum"`` or ``"count"``: the owner's local pre-aggregate, one
        secure number. Every party calls this alike; only the owner's values go in.

        A role the owner fills with a list of columns (e.g. ``features``; the list's length
        is public, in the signed job) comes in as a secure 2-D array, rows × columns in the
        job's order; ``reduce="sum"`` gives its per-column sums (a 1-D array), ``"count"``
        its row count.
        """
        party = self.owner_party(owner)
        mine = self.ctx.index == party and self.ctx.local is not None
        fixed = bool(getattr(sectype, "frac_length", 0))
        width = self.role_width(owner, role)
        if width is not None and reduce != "count":
            return await self._matrix_from(party, mine, sectype, role, width, reduce)
        if reduce is not None:
            local = self._reduced(role, reduce) if mine else 0
            if fixed:
                value = float(local) / self._scale(role) if mine else 0.0
                return self.mpc.input(sectype(value, integral=False), senders=party)
            return self.mpc.input(sectype(int(local)), senders=party)
        column = self._column(role) if mine else None
        rows = await self._public_length(party, None if column is None else len(column))
        if fixed:
            values = (
                column.astype(float) / self._scale(role) if column is not None else np.zeros(rows)
            )
            # Both sides pass integral=False: a placeholder of zeros would otherwise be marked
            # integral and the parties would run different multiplication code (and hang).
            return self.mpc.input(sectype.array(values, integral=False), senders=party)
        held = column if column is not None else np.zeros(rows, dtype=object)
        return self.mpc.input(sectype.array(np.array(held, dtype=object)), senders=party)

    def role_width(self, owner: int, role: str) -> int | None:
        """How many columns the owner at input position ``owner`` gives ``role`` where it
        gives a list (public: the signed job lists them); None for a single column."""
        lists = self.ctx.input_role_lists
        if owner < len(lists) and role in lists[owner]:
            return len(lists[owner][role])
        return None

    async def _matrix_from(
        self, party: int, mine: bool, sectype: Any, role: str, width: int, reduce: str | None
    ) -> Any:
        """A many-column role's input (see :meth:`input_from`)."""
        fixed = bool(getattr(sectype, "frac_length", 0))
        held = self._matrix(role) if mine else None
        if reduce == "sum":
            sums = exact_column_sums(held) if held is not None else [0] * width
            if fixed:
                scale = self._scale(role) if mine else 1
                values = np.array([float(v) / scale for v in sums])
                return self.mpc.input(sectype.array(values, integral=False), senders=party)
            return self.mpc.input(sectype.array(np.array(sums, dtype=object)), senders=party)
        if reduce is not None:
            raise ValueError(f"unknown reduction {reduce!r} (sum or count)")
        rows = await self._public_length(party, None if held is None else held.shape[0])
        if fixed:
            values = (
                held.astype(float) / self._scale(role)
                if held is not None
                else np.zeros((rows, width))
            )
            return self.mpc.input(sectype.array(values, integral=False), senders=party)
        grid = held.astype(object) if held is not None else np.zeros((rows, width), dtype=object)
        return self.mpc.input(sectype.array(grid), senders=party)

    async def input_from_all(self, sectype: Any, role: str = "value", reduce: str = "sum") -> Any:
        """Every owner's local pre-aggregate of ``role`` (as :meth:`input_from`), summed."""
        owners = range(len(self.ctx.owners))
        parts = [await self.input_from(i, sectype, role, reduce) for i in owners]
        return self.mpc.sum(parts)

    def public(self, name: str, default: Any = None) -> Any:
        """A public input: the job's parameter ``name`` (the same at every party)."""
        if name in self.ctx.params:
            return self.ctx.params[name]
        if default is None:
            raise ValueError(f"the program needs the public parameter {name!r}")
        return default

    # -- output ---------------------------------------------------------------------------
    def reveal_to_analyst(self, name: str, value: Any, scaled: bool = False) -> None:
        """Open ``value`` (a secure number or array) to the analyst only, through the runtime.

        An array becomes one output per element, named ``name[i]`` (``name[i,j]`` for a
        matrix). ``scaled``: the value is on the session's decimal grid (a sum of a value
        column), so the analyst divides by 10**decimals.
        """
        shape = getattr(value, "shape", None)
        if not shape:
            self.outputs.append(SecureOutput(name, value, on_value_scale=scaled, noisy=False))
            return
        for index in np.ndindex(*shape):
            label = ",".join(str(i) for i in index)
            self.outputs.append(
                SecureOutput(f"{name}[{label}]", value[index], on_value_scale=scaled, noisy=False)
            )

    def reveal_to(self, party: int, name: str, value: Any, scaled: bool | int = False) -> None:
        """Open ``value`` to the member at MPC party index ``party`` only, through the
        runtime (as :meth:`reveal_to_analyst`, arrays element by element; ``scaled`` an
        integer k: the value is on the grid 10**(k·decimals), e.g. 2 for a product)."""
        from ensnif_mpc.jobs.protocol import party_destination

        if not 0 <= party < len(self.mpc.parties):
            raise ValueError(f"no party {party} in a session of {len(self.mpc.parties)}")
        self._reveal(name, value, scaled, party_destination(party))

    async def export_shares(self, name: str, value: Any) -> None:
        """Keep ``value`` (a secure number or array) secret-shared as the artifact ``name``:
        each party's node stores its own shares; nothing is opened, not even to the analyst."""
        from ensnif_mpc.jobs.protocol import ARTIFACT

        if any(o.name == name and o.to == ARTIFACT for o in self.outputs):
            raise ValueError(f"artifact {name!r} exported twice")
        kept = SecureOutput(name, value, on_value_scale=False, noisy=False, to=ARTIFACT)
        self.outputs.append(kept)

    async def import_shares(self, name: str, sectype: Any = None) -> Any:
        """The artifact ``name`` (its id, or the name it was exported under) as this party's
        shares of a secure array (a secure number for a scalar), of the secure type it was
        exported with. ``sectype``, when given, must be that type."""
        from ensnif_mpc.results.artifacts import ArtifactShare

        held = [ArtifactShare.from_dict(a) for a in self.ctx.artifacts]
        found = [a for a in held if name in (a.artifact_id, a.name)]
        if len(found) != 1:
            given = ", ".join(a.artifact_id for a in held) or "none"
            raise ValueError(f"the job holds no single artifact {name!r} (it lists: {given})")
        art = found[0]
        if art.threshold != self.mpc.threshold:
            raise ValueError(f"artifact {art.artifact_id!r} was shared for another session")
        if art.kind == "fixed":
            stype = self.mpc.SecFxp(art.bit_length, art.frac_bits)
        else:
            stype = self.mpc.SecInt(art.bit_length)
        if int(stype.field.modulus) != art.modulus:
            raise ValueError(f"artifact {art.artifact_id!r} lives in another field")
        if sectype is not None and (
            sectype.bit_length != art.bit_length
            or getattr(sectype, "frac_length", 0) != art.frac_bits
        ):
            raise ValueError(f"artifact {art.artifact_id!r} is not of the requested type")
        # A scalar travels as a one-element array: MPyC's secure arrays have no 0-d form.
        held_shape = art.shape or (1,)
        shares = stype.field.array(np.array(art.shares, dtype=object).reshape(held_shape))
        fixed = {"integral": False} if art.kind == "fixed" else {}
        array = await self._at_this_session(stype, shares, fixed, art.x)
        return array[0] if art.shape == () else array

    async def _at_this_session(
        self, stype: Any, shares: Any, fixed: dict[str, bool], x: int
    ) -> Any:
        """``shares``, this party's Shamir shares at point ``x`` of the session that made the
        artifact, as shares of this session. The same parties in the same order: as is.
        In another order (every node checks the parties are the same): each party inputs
        its share times its Lagrange coefficient at 0 over the old points, and the sum of
        those inputs is a fresh sharing of the same value at this session's points — one
        input round, nothing opened (each input is secret-shared; the old points are the
        artifact's public party order, announced by every party)."""
        mpc = self.mpc
        points = [int(v) for v in await mpc.transfer(x)]  # every party's old point, public
        if points == [i + 1 for i in range(len(points))]:
            return stype.array(shares, **fixed)
        if sorted(points) != list(range(1, len(points) + 1)):
            raise ValueError("the artifact's shares are not held by this session's parties")
        order = int(stype.field.order)
        coefficient = 1  # Lagrange at 0 over the old points
        for other in points:
            if other != x:
                coefficient = coefficient * other * pow(other - x, -1, order) % order
        mine = np.asarray(shares.value, dtype=object) * coefficient % order
        parts = mpc.input(
            stype.array(stype.field.array(mine), **fixed), senders=list(range(len(points)))
        )
        total = parts[0]
        for more in parts[1:]:
            total = total + more
        return total

    def _reveal(self, name: str, value: Any, scaled: bool | int, to: str) -> None:
        shape = getattr(value, "shape", None)
        if not shape:
            self.outputs.append(SecureOutput(name, value, scaled, noisy=False, to=to))
            return
        for index in np.ndindex(*shape):
            label = ",".join(str(i) for i in index)
            self.outputs.append(
                SecureOutput(f"{name}[{label}]", value[index], scaled, noisy=False, to=to)
            )

    # -- the owner's side -----------------------------------------------------------------
    def _scale(self, role: str) -> int:
        assert self.ctx.local is not None
        return int(10 ** self.ctx.local.scale(role))

    def _matrix(self, role: str) -> np.ndarray:
        assert self.ctx.local is not None
        return np.asarray(self.ctx.local.matrix(role, scaled=True), dtype=np.int64)

    def _column(self, role: str) -> np.ndarray:
        assert self.ctx.local is not None
        return np.asarray(self.ctx.local.column(role, scaled=True), dtype=object)

    def _reduced(self, role: str, how: str) -> int:
        assert self.ctx.local is not None
        if how == "count":  # rows: of the matrix where the owner lists the role's columns
            listed = role in self.ctx.local.lists
            return len(self._matrix(role)) if listed else len(self._column(role))
        if how == "sum":
            return int(sum(int(v) for v in self._column(role)))
        raise ValueError(f"unknown reduction {how!r} (sum or count)")

    async def _public_length(self, party: int, mine: int | None) -> int:
        """The owner's row count, sent in the clear to every party (the catalog publishes it)."""
        (rows,) = await self.mpc.transfer(mine, senders=[party])
        return int(rows)


def exact_column_sums(matrix: np.ndarray) -> list[int]:
    """Per-column sums of an int64 matrix on the grid (|values| < 2^53), exactly: int64
    partial sums over blocks of 512 rows cannot overflow, and the blocks add as Python ints."""
    rows, width = matrix.shape
    if rows == 0:
        return [0] * width
    starts = np.arange(0, rows, 512)
    partial = np.add.reduceat(matrix, starts, axis=0)
    return [int(v) for v in partial.astype(object).sum(axis=0)]


def program(body: Body) -> Compiled:
    """Make ``async def body(p: Program)`` a protocol program: the worker calls it with its
    Context and gets the outputs the body revealed to the analyst."""

    @functools.wraps(body)
    async def run(ctx: Context) -> list[SecureOutput]:
        p = Program(ctx)
        await body(p)
        if not p.outputs:
            raise ValueError(f"program {body.__name__} revealed and exported nothing")
        return p.outputs

    return run
