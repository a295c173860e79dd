"""Noisy openings inside one MPC session, for iterative DP protocols (noisy gradient descent,
DP k-means): each round's noisy statistic is opened to every party, and the next round's
local step at each owner depends on it.

A DP release is a list of noise blocks (``ensnif_mpc.privacy.dp.ReleasePlan``); the job's
ρ is split over them and charged in full by every owner's ledger at admission. A one-shot
protocol returns all its outputs and the worker noises them at the end. An iterative one
consumes blocks in order through :meth:`NoisyRounds.open`: the runtime adds that block's
noise inside MPC (the same mechanisms as the worker's), opens value + noise to every party
and records it as an output for the analyst. Nothing else is opened: the program gets
back only the noisy integers, which are the declared DP outputs of that block.
:meth:`NoisyRounds.publish` records post-processing of opened values (e.g. the final
weights), which every party computes alike from public values only.

What is revealed: every opened noisy block, to every party and to the analyst. What leaks:
nothing beyond those blocks (the number of rounds is a public parameter).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from ensnif_mpc.privacy.dp import Block, ReleasePlan
    from protocols.io import SecureOutput


def block_noise(mpc: Any, sectype: Any, plan: ReleasePlan, blocks: Sequence[Block]) -> Any:
    """One secure array of noise for every output of ``blocks`` (blocks of ``plan``).

    Gaussian: each party draws its integer shares with OpenDP's exact sampler and
    secret-shares them; the noise is their sum, which no party sees. Laplace: sampled
    jointly inside MPC from random bits nobody knows (``protocols.dlaplace``).
    """
    from ensnif_mpc.privacy import dp

    if plan.laplace:
        from dataclasses import replace

        from protocols import dlaplace

        return dlaplace.noise(
            mpc, sectype, dlaplace.plan_blocks(replace(plan, blocks=tuple(blocks)))
        )
    draws = [v for b in blocks for v in dp.sample_shares(b.sigma_share, b.dims)]
    mine = sectype.array(np.array(draws, dtype=object))
    everyone = list(range(len(mpc.parties)))
    return mpc.np_sum(mpc.np_stack(mpc.input(mine, senders=everyone)), axis=0)


class NoisyRounds:
    """The blocks of a DP release, consumed in order by an iterative program."""

    def __init__(self, mpc: Any, plan: ReleasePlan) -> None:
        self.mpc = mpc
        self.plan = plan
        self.used = 0  # blocks consumed so far
        self.opened: list[SecureOutput] = []
        self.published: list[SecureOutput] = []

    @property
    def remaining(self) -> tuple[Block, ...]:
        return self.plan.blocks[self.used :]

    async def open(self, name: str, values: Any) -> np.ndarray:
        """Add the next block's noise to the secure integer array ``values`` (one entry per
        output of the block), open the sum to every party, and record it for the analyst as
        ``name[i]``. Returns the noisy integers."""
        from protocols.io import SecureOutput

        if self.plan.exact:
            raise ValueError("a noisy round in an exact release")
        if self.used >= len(self.plan.blocks):
            raise ValueError("the program opened more noisy rounds than the release plans")
        block = self.plan.blocks[self.used]
        if values.size != block.dims:
            raise ValueError(f"round {self.used}: {values.size} values for a block of {block.dims}")
        sectype = type(values).sectype
        noisy = values.reshape(block.dims) + block_noise(self.mpc, sectype, self.plan, [block])
        self.used += 1
        opened = await self.mpc.output(noisy)
        ints = np.array([int(v) for v in opened], dtype=object)
        for i, v in enumerate(ints):
            self.opened.append(SecureOutput(f"{name}[{i}]", sectype(int(v)), False, noisy=False))
        return ints

    def publish(self, name: str, sectype: Any, values: Sequence[float] | np.ndarray) -> None:
        """Record public post-processing of opened rounds (the same at every party) as
        fixed-point outputs of ``sectype``, ``name[i]``."""
        from protocols.io import SecureOutput

        for i, v in enumerate(np.asarray(values, dtype=float).ravel()):
            self.published.append(SecureOutput(f"{name}[{i}]", sectype(float(v)), False, False))

    def finish(self, outputs: list[SecureOutput]) -> tuple[list[SecureOutput], list[float]]:
        """The job's outputs after an iterative program: what the rounds recorded, and
        nothing else — every block must have been opened (a block the program skipped
        would be charged and never released) and the program returns no further output."""
        if self.used != len(self.plan.blocks):
            raise ValueError(
                f"the program opened {self.used} of the release's {len(self.plan.blocks)} blocks"
            )
        if outputs:
            raise ValueError("an iterative DP program returns its outputs through its rounds only")
        return self.recorded(), self.sigmas()

    def sigmas(self) -> list[float]:
        """The noise standard deviation of every recorded output, in the order recorded."""
        consumed = [
            self.plan.block_sd(b) for b in self.plan.blocks[: self.used] for _ in range(b.dims)
        ]
        return consumed + [0.0] * len(self.published)

    def recorded(self) -> list[SecureOutput]:
        return self.opened + self.published
