"""Private group discovery: which groups exist, without naming any that only a few persons are in.

DP partition selection inside MPC. The analyst lists no groups; each data owner
contributes the labels of its own ``group`` column, and only labels whose joint noisy
row count clears a public threshold τ are opened, with that noisy count.

Who provides what: each data owner (up to ``owners``, default 2, at most 8) feeds its
``group`` column; a compute-only party (the helper) feeds nothing. Public parameters:
``max_groups`` M (the candidate slots per owner), ``owners`` (how many owners' slots the
release has: it fixes the number of noised outputs, owners·M, from the signed job alone,
so every node's check of the plan counts the same), ``label_bytes`` (the longest label,
in UTF-8 bytes) and ``delta`` (δ, the selection's failure probability).

How: each owner counts its rows per label locally (after contribution bounding: at most
k rows per person) and secret-shares M slots, each a label's code and its count, zeros in
the slots it does not use, so the number of labels an owner has does not show. A label
longer than ``label_bytes`` is cut at a character boundary (a per-row map, so the
sensitivity analysis is unchanged). Inside MPC each owner's labels, in turn, are matched
against every slot of the owners before it by an M×(j·M) secure equality (labels an owner
has are distinct, and a label already seen keeps one slot, so a label matches at most one
slot); a matched label's count is added into that earlier slot and its own slot emptied.
An owner fewer than ``owners`` contributes empty slots. The owners·M candidate counts are
then noised by the worker
(the job's release plan) and, after the noise, every slot whose noisy count is not above τ
is zeroed inside MPC: code and count are multiplied by the secret bit (count > τ), so the
analyst opens only selected labels; every other slot opens as zeros. Last, the slots are
shuffled by resharing (``protocols.shuffle``), so a label's slot says nothing about
which owner has it or how many labels sort before it.

The threshold: one person (k rows at each owner, Δ = Σk) changes the counts by at most Δ
in L2 and L1 and can create at most Δ labels, each with a count of at most Δ. A label
that exists only because of that person is released with probability at most
P[N > τ − Δ] per label, where N is the total noise: sub-Gaussian with the sum of the
parties' scales for the distributed discrete Gaussian, P[N ≥ t] ≤ exp(−t²/2σ²); the exact
tail q^t/(1 + q) for the discrete Laplace. τ is the smallest integer with Δ·P[N > τ − Δ] ≤ δ.
The release is then ρ-zCDP (or ε-DP) on labels both neighbours have, except with
probability δ: (ρ, δ)-approximate zCDP. The colluders' own noise shares are part of N in
this bound (passive security: they are drawn as prescribed, and a bound that holds for
every value of their shares holds on average over them).

What is revealed: to the analyst, the selected labels and their noisy counts, and hence
their number. To no party anything: the selection bits and the unselected slots stay
secret-shared; the analyst's zeros say nothing beyond "not selected".

Minimum cohort: under DP each owner inputs its policy's ``min_cohort`` as a secret, and a
slot is kept only if its noisy joint count is also at least the largest of them: the
rule holds for the count summed over owners, as post-processing of the noisy count (no
extra budget); the analyst cannot tell such a group from one below τ. An exact release
keeps the node's exact rule (cohort_too_small before MPC).

What leaks: nothing else. A label below the threshold is indistinguishable from an
absent one except with probability δ. The public M bounds the candidates: an owner with
more than M distinct labels is detected by its node on a noisy count (charged) and its
rows are withheld, silently; with probability at most δ an owner with more than M labels
is not detected and its first M labels (in code order) are the candidates.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import numpy as np

from ensnif_mpc.data.sources import Measure
from ensnif_mpc.errors import InvalidJobSpec
from ensnif_mpc.privacy.dp import ReleasePlan
from protocols.grouped import GROUP
from protocols.io import Context, LocalData, SecureOutput
from protocols.registry import BlockSpec, Example, Param, ProtocolDef, Table, positional

CHUNK_BYTES = 6  # an opened label travels in 48-bit pieces: exact as floats on the client side
DEFAULT_LABEL_BYTES = 17  # with its length byte: three chunks
DEFAULT_MAX_GROUPS = 32
DEFAULT_DELTA = 1e-6
DEFAULT_PER_PERSON = 1
DEFAULT_OWNERS = 2  # params.owners: the candidates are owners·M slots (public, signed)
MAX_OWNERS = 8


def chunks(label_bytes: int) -> int:
    """Pieces per label: a length byte and the label's bytes, in 6-byte chunks."""
    return math.ceil((label_bytes + 1) / CHUNK_BYTES)


def cut(label: str, label_bytes: int) -> bytes:
    """The label's UTF-8 bytes, cut to ``label_bytes`` at a character boundary."""
    raw = label.encode()
    if len(raw) <= label_bytes:
        return raw
    return raw[:label_bytes].decode("utf-8", errors="ignore").encode()


def encode(label: str, label_bytes: int) -> list[int]:
    """A label as its chunks (never all zero: the length byte is len + 1)."""
    raw = cut(label, label_bytes)
    total = chunks(label_bytes) * CHUNK_BYTES
    code = (bytes([len(raw) + 1]) + raw).ljust(total, b"\0")
    return [int.from_bytes(code[i : i + CHUNK_BYTES], "big") for i in range(0, total, 6)]


def decode(pieces: Sequence[int]) -> str | None:
    """The label of a slot's chunks; None for an empty (unselected) slot."""
    if not any(pieces):
        return None
    code = b"".join(int(p).to_bytes(CHUNK_BYTES, "big") for p in pieces)
    return code[1 : code[0]].decode("utf-8", errors="replace")


def local_counts(source: Any, group: str, per_person: int, label_bytes: int) -> dict[bytes, int]:
    """An owner's rows per (cut) label, the step its worker and its node both run.

    With a person bound on the source (a DP release at a dataset that names its person):
    at most k rows per person (the source's contribution bounding), and of each person's
    labels only the first ``per_person`` in label order, so that one person adds at most
    that many labels. Otherwise (an exact release) every row counts."""
    bound = getattr(source, "bound", None)
    by = [group] if bound is None else [group, bound.person]
    agg = source.aggregate(by=by, measures=[Measure("count")])
    labels = np.array([cut(str(k), label_bytes) for k in agg.keys[group].tolist()], dtype=object)
    counts = np.asarray(agg.values["count"], dtype=np.int64)
    if not len(labels):
        return {}
    names, label_id = np.unique(labels, return_inverse=True)
    if bound is None:
        totals = np.bincount(label_id, weights=counts, minlength=len(names))
    else:
        _, person_id = np.unique(agg.keys[bound.person].astype(str), return_inverse=True)
        pair, at = np.unique(person_id * len(names) + label_id, return_inverse=True)
        rows = np.bincount(at, weights=counts)
        person, label = pair // len(names), pair % len(names)  # sorted: person, then label
        starts = np.r_[0, np.flatnonzero(np.diff(person)) + 1]
        rank = np.arange(len(pair)) - np.repeat(starts, np.diff(np.r_[starts, len(pair)]))
        keep = rank < per_person
        totals = np.bincount(label[keep], weights=rows[keep], minlength=len(names))
    return {bytes(n): int(t) for n, t in zip(names.tolist(), totals.tolist(), strict=True) if t}


def slots(totals: Mapping[bytes, int], m: int, label_bytes: int) -> np.ndarray:
    """An owner's per-label counts laid out on M slots: shape (chunks + 1, M), labels in
    code order, counts in the last row, unused slots zero. Beyond M labels only the first
    M are kept (the node withholds such an owner's rows on a noisy count; see the module
    docstring)."""
    codes = sorted((tuple(encode(label.decode(), label_bytes)), n) for label, n in totals.items())
    out = np.zeros((chunks(label_bytes) + 1, m), dtype=object)
    out[:] = 0
    for i, (code, n) in enumerate(codes[:m]):
        out[:-1, i] = code
        out[-1, i] = n
    return out


def owner_slots(local: LocalData, params: Mapping[str, Any]) -> np.ndarray:
    """This owner's MPC input. Withheld (a node rule, on a noisy count): the same scan,
    then the slots of no rows, so a withheld owner takes the same time as one that inputs."""
    m, width = sizes(params)
    totals = local_counts(local.source, local.columns["group"], per_person(params), width)
    return slots({} if local.withheld else totals, m, width)


def sizes(params: Mapping[str, Any]) -> tuple[int, int]:
    return int(params.get("max_groups", DEFAULT_MAX_GROUPS)), int(
        params.get("label_bytes", DEFAULT_LABEL_BYTES)
    )


def per_person(params: Mapping[str, Any]) -> int:
    return int(params.get("groups_per_person", DEFAULT_PER_PERSON))


def owner_count(params: Mapping[str, Any]) -> int:
    """The number of candidate blocks of M slots: ``params.owners`` (default 2), a public
    parameter the job's data owners must match (checked with the spec). It fixes the
    number of noised outputs from the signed job alone, so the coordinator and every
    node, each checking the plan with its own dataset only, count the same."""
    return int(params.get("owners", DEFAULT_OWNERS))


def code_bits(label_bytes: int) -> int:
    return 8 * CHUNK_BYTES * chunks(label_bytes)


async def group_discovery(ctx: Context) -> list[SecureOutput]:
    mpc = ctx.mpc
    m, width = sizes(ctx.params)
    c = chunks(width)
    sectype = mpc.SecInt(max(ctx.bit_length, code_bits(width) + 2))
    if ctx.local is not None:
        local = owner_slots(ctx.local, ctx.params)
    else:  # a placeholder: only its shape is used
        local = np.zeros((c + 1, m), dtype=object)
    ctx.progress("computing", 0.2)
    shared = mpc.input(sectype.array(local), senders=ctx.owners)
    for _ in range(owner_count(ctx.params) - len(shared)):  # fewer owners: empty slots
        shared.append(sectype.array(np.zeros((c + 1, m), dtype=object)))
    weights = sectype.array(np.array([1 << (48 * (c - 1 - i)) for i in range(c)], dtype=object))
    # Owner by owner, its labels are matched against every slot before it (an emptied
    # slot has code 0, which no label has): a label's count goes into the first slot that
    # holds it, and the later owner's slot is emptied.
    first = shared[0]
    counts_so_far = first[-1]
    codes = weights @ first[:-1]  # the whole code of each slot, for matching
    pieces = first[:-1]
    for j, later in enumerate(shared[1:], start=1):
        code = weights @ later[:-1]
        same = code.reshape(m, 1) == codes.reshape(1, j * m)  # M×jM: its slot s is slot r
        # Empty slots match every empty earlier slot, but carry count 0 and code 0: harmless.
        moved = 1 - mpc.np_sum(same, axis=1)  # 0 where the label is already there, 1 if new
        counts_so_far = mpc.np_concatenate((counts_so_far + same.T @ later[-1], later[-1] * moved))
        codes = mpc.np_concatenate((codes, code * moved))
        pieces = mpc.np_concatenate((pieces, later[:-1] * moved.reshape(1, m)), axis=1)
        ctx.progress("computing", 0.2 + 0.3 * j / (len(shared) - 1))
    counts = mpc.np_tolist(counts_so_far)
    out = [SecureOutput(f"count[{i}]", v, False) for i, v in enumerate(counts)]
    for j in range(c):
        row = mpc.np_tolist(pieces[j])
        out += [SecureOutput(f"label{j}[{i}]", v, False, noisy=False) for i, v in enumerate(row)]
    return out


async def select(
    ctx: Context, outputs: list[SecureOutput], plan: ReleasePlan
) -> list[SecureOutput]:
    """After the noise: keep each slot only if its (noisy) count is above τ and at least
    every owner's min_cohort, then shuffle the slots, inside MPC.

    Every output of a slot is multiplied by the secret bit, so an unselected slot opens
    as zeros. The slots are then permuted by a permutation no coalition of t parties knows
    (``protocols.shuffle``): a label's slot would otherwise tell which owner has it and
    how many labels (opened or not) sort before it there. The number and names of the
    outputs do not change."""
    from protocols.shuffle import Shuffler

    mpc = ctx.mpc
    tau = threshold(plan, ctx.params)
    n = owner_count(ctx.params) * sizes(ctx.params)[0]
    counts = mpc.np_fromlist([o.value for o in outputs[:n]])
    floor = type(outputs[0].value)(tau + 1)
    if not plan.exact:  # the owners' min_cohort, on the joint noisy count (secret inputs)
        own = ctx.local.min_cohort if ctx.local is not None else 0
        floor = mpc.max(floor, *mpc.input(type(floor)(own), senders=ctx.owners))
    keep = counts >= floor
    every = mpc.np_fromlist([o.value for o in outputs])
    kept = every * mpc.np_concatenate([keep] * (len(outputs) // n))
    rows = [kept[j * n : (j + 1) * n] for j in range(len(outputs) // n)]
    shuffled = await Shuffler(mpc).apply(rows)
    values = [v for row in shuffled for v in mpc.np_tolist(row)]
    return [dataclasses.replace(o, value=v) for o, v in zip(outputs, values, strict=True)]


def threshold(plan: ReleasePlan, params: Mapping[str, Any]) -> int:
    """τ: the smallest integer such that a label only one person has is released with
    probability at most δ (see the module docstring); 0 for an exact release (every label
    with a row)."""
    if plan.exact:
        return 0
    delta = float(params.get("delta", DEFAULT_DELTA))
    block = plan.blocks[0]
    sensitivity = max(1, math.ceil(block.l2_sensitivity))
    # One person brings at most Δ rows, and at most groups_per_person labels per owner.
    per_label = delta / min(sensitivity, owner_count(params) * per_person(params))
    if plan.laplace:
        q = math.exp(-block.epsilon / block.l1_sensitivity)
        # P[N ≥ t] = q^t / (1 + q): the smallest t with that at most per_label.
        t = math.ceil(math.log(per_label * (1 + q)) / math.log(q) - 1e-12)
    else:
        sigma = block.sigma_share * math.sqrt(plan.parties)
        t = math.ceil(sigma * math.sqrt(2 * math.log(1 / per_label)))
    # Opened iff count + N > τ, i.e. N ≥ τ + 1 − count with count ≤ Δ: τ = Δ + t − 1.
    return int(sensitivity + max(t, 1) - 1)


def finalize(values: dict[str, Fraction]) -> dict[str, Fraction | float]:
    """From slots to ``count[<label>]`` for every selected label, in label order."""
    found: dict[str, Fraction] = {}
    c = sum(1 for name in values if name.startswith("label") and name.endswith("[0]"))
    n = sum(1 for name in values if name.startswith("count["))
    for i in range(n):
        label = decode([int(values[f"label{j}[{i}]"]) for j in range(c)])
        if label is not None:
            found[label] = values[f"count[{i}]"]
    return {f"count[{label}]": found[label] for label in sorted(found)}


# -- plaintext reference and declarations ---------------------------------------------------------


def reference_counts(tables: Sequence[Table], label_bytes: int) -> dict[str, int]:
    """Rows per (cut) label over all owners."""
    out: dict[str, int] = {}
    for t in tables:
        for key in np.asarray(t["group"]).tolist():
            label = cut(str(key), label_bytes).decode()
            out[label] = out.get(label, 0) + 1
    return out


def _reference(tables: Sequence[Table], params: Mapping[str, Any]) -> dict[str, float]:
    """The exact release: every label with a row, and its count."""
    counts = reference_counts(tables, sizes(params)[1])
    return {f"count[{label}]": float(counts[label]) for label in sorted(counts)}


def _blocks(owners: Sequence[tuple[int, int]], params: Mapping[str, Any]) -> list[BlockSpec]:
    """One person's Σk rows change the owners·M candidate counts by at most Σk (L2 and L1)."""
    k = float(sum(rows for rows, _ in owners))
    return [BlockSpec(k, owner_count(params) * sizes(params)[0], k)]


def _check(spec: Any) -> None:
    m, width = sizes(spec.params)
    if not 1 <= m <= 256:
        raise InvalidJobSpec(f"params.max_groups: expected 1 to 256, got {m}")
    if not 1 <= width <= 64:
        raise InvalidJobSpec(f"params.label_bytes: expected 1 to 64, got {width}")
    if not 1 <= per_person(spec.params) <= 64:
        raise InvalidJobSpec(
            f"params.groups_per_person: expected 1 to 64, got {per_person(spec.params)}"
        )
    delta = float(spec.params.get("delta", DEFAULT_DELTA))
    if not 0 < delta < 1e-2:
        raise InvalidJobSpec(f"params.delta: expected a number in (0, 0.01), got {delta:g}")
    owners = spec.params.get("owners", DEFAULT_OWNERS)
    if isinstance(owners, bool) or not isinstance(owners, int) or not 1 <= owners <= MAX_OWNERS:
        raise InvalidJobSpec(f"params.owners: expected 1 to {MAX_OWNERS}, got {owners!r}")
    if len(spec.inputs) > owners:
        raise InvalidJobSpec(
            f"params.owners: the job has {len(spec.inputs)} data owners, more than owners = "
            f"{owners} (the candidate slots are owners × max_groups)"
        )


DEFINITIONS = (
    ProtocolDef(
        name="group_discovery",
        family="group-by",
        summary="Which groups exist and their row counts, opening only groups many rows are in",
        inputs="one categorical `group` column per data owner (up to params.owners, at most 8)",
        outputs=("count[<group>]",),
        leakage=(
            "The analyst learns the selected labels, their noisy counts and how many there "
            "are; no party learns anything. Each owner secret-shares max_groups slots (label "
            "codes and counts, zeros where unused), so how many labels an owner has does not "
            "show; matching the owners' labels, adding their counts, the noise, the threshold "
            "(and the owners' min_cohort, input as secrets) and a shuffle of the slots run "
            "inside MPC, so a slot says nothing about which owner has its label, and unselected "
            "slots open as zeros. DP release: a label "
            "below the threshold τ (from ρ or ε, δ and the rows per person) is "
            "indistinguishable from an absent one except with probability δ. Exact release "
            "(where every owner allows it): every label with a row and its exact count."
        ),
        program="protocols.discovery:group_discovery",
        reference=_reference,
        roles=((GROUP,),),
        parameters=(
            Param("max_groups", "int", "candidate slots per owner (public)", False, 32),
            Param(
                "owners",
                "int",
                "how many owners' slots the release has (public; at least the job's owners)",
                False,
                DEFAULT_OWNERS,
            ),
            Param("label_bytes", "int", "longest label in UTF-8 bytes; longer are cut", False),
            Param("delta", "number", "δ: chance that a group of one person is opened", False),
            Param(
                "groups_per_person",
                "int",
                "under DP, the groups one person counts in at each owner (the first ones)",
                False,
            ),
        ),
        max_data_owners=MAX_OWNERS,
        finalize=finalize,
        check_spec=_check,
        dp_sensitivity=positional(_blocks),
        examples=(
            Example({"max_groups": 8}, groups=("10115", "10117", "20095", "80331", "Zürich")),
        ),
        extra={
            "after_noise": "protocols.discovery:select",
            "candidate_slots": "max_groups",
            "joint_cohort": True,
            # τ opens a one-person group with probability at most δ: the ledger adds it up
            # (ensnif_mpc.privacy.delta).
            "delta_param": "delta",
            "delta_default": DEFAULT_DELTA,
        },
    ),
)
