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
- :meth:`Program.reveal_to` (a named party) and :meth:`Program.export_shares` /
  :meth:`Program.import_shares` (secret-shared artifacts a later job reads) are not there
  yet: they raise :class:`NotImplementedError` saying what is missing.

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

_NO_ARTIFACTS = (
    "secret-shared artifacts (outputs kept as shares for a later job, DESIGN §7) do not "
    "exist yet: the worker seals every output to the analyst and keeps no shares, and there "
    "is no artifact store to read them from. Reveal the result to the analyst instead."
)
_NO_PARTY_OUTPUT = (
    "revealing an output to a named party needs a worker seam that seals a share to that "
    "member instead of the analyst, which does not exist yet; use reveal_to_analyst"
)


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
        """
        party = self.owner_party(owner)
        mine = self.ctx.index == party and self.ctx.local is not None
        fixed = bool(getattr(sectype, "frac_length", 0))
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

    def reveal_to(self, party: int, name: str, value: Any) -> None:
        raise NotImplementedError(_NO_PARTY_OUTPUT)

    async def export_shares(self, name: str, value: Any) -> None:
        raise NotImplementedError(_NO_ARTIFACTS)

    async def import_shares(self, name: str, sectype: Any) -> Any:
        raise NotImplementedError(_NO_ARTIFACTS)

    # -- the owner's side -----------------------------------------------------------------
    def _scale(self, role: str) -> int:
        assert self.ctx.local is not None
        return int(10 ** self.ctx.local.scale(role))

    def _column(self, role: str) -> np.ndarray:
        assert self.ctx.local is not None
        return np.asarray(self.ctx.local.column(role, scaled=True), dtype=object)

    def _reduced(self, role: str, how: str) -> int:
        assert self.ctx.local is not None
        if how == "count":
            return len(self._column(role))
        if how == "sum":
            return int(sum(int(v) for v in self._column(role)))
        raise ValueError(f"unknown reduction {how!r} (sum or count)")

    async def _public_length(self, party: int, mine: int | None) -> int:
        """The owner's row count, sent in the clear to every party (the catalog publishes it)."""
        (rows,) = await self.mpc.transfer(mine, senders=[party])
        return int(rows)


def program(body: Body) -> Compiled:
    """Make ``async def body(p: Program)`` a protocol program: the worker calls it with its
    Context and gets the outputs the body revealed to the analyst."""

    @functools.wraps(body)
    async def run(ctx: Context) -> list[SecureOutput]:
        p = Program(ctx)
        await body(p)
        if not p.outputs:
            raise ValueError(f"program {body.__name__} revealed nothing to the analyst")
        return p.outputs

    return run
