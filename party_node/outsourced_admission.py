"""The owner's signed policy and ledger for an outsourced dataset, kept by the helper node
that holds it (docs/homomorphic.md, "Jobs over outsourced datasets").

The owner runs no node, so the helper's admission stands in for the owner's: it enforces
the policy the owner signed in the manifest (``[policy]`` of the schema file, never a
setting of the helper's: a helper cannot loosen it unseen, since the coordinator and the
helper both verify the signature) and charges the owner's budget in the helper's ledger
(party_node/ledger.py) under ``<owner>/<dataset>``, so it can never be confused with a
dataset of the helper's own: reserved at approval, committed when something is opened,
released when nothing was (``owner_offline``, ``owner_refused``, any failure before
opening). The owner's ``ensnif outsource serve`` refuses what its own allow-lists do not
approve as a second line: no job reads the dataset without the owner's decryption, so a
helper cannot spend the budget behind the owner's back either.

Which jobs: the protocols whose input the HE → shares conversion supports, narrowed by the
owner's ``protocols``: a column's totals (``sum``, ``count``, ``mean``), its per-bin counts
(``histogram`` over the bins the owner declared), and the rows themselves
(``linear_regression``, ``logistic_regression``: features and label converted row by
row, ``outsource_rows.py``; ``kmeans``: the features, exact or DP, ``protocols/he_kmeans.py``),
and a side of a private join (``intersection_sum``: the key column the owner encrypted as
a key, and on the first side the value column, row by row, on the PRF route only:
``protocols/he_join.py`` says why; ``intersection_size``: the key; ``join_regression``: the
key and the side's features and label, likewise; ``join_group_by``: the key, and on the
second side its int group code, unscaled, and value, on the first its filter with a
threshold; ``join_correlation``, ``join_moments``: the key and the value, either side).
Every check here reads the signed schema and the job, never a value (the node holds
ciphertexts only), so whether and why a job is refused does not depend on the data.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

from ensnif_mpc.data.schema import Column, PrivacyPolicy
from ensnif_mpc.errors import InvalidArgument, InvalidConfig, PolicyViolation
from ensnif_mpc.jobs import checks, join_path
from ensnif_mpc.privacy.dp import ReleasePlan
from party_node.policy import Verdict

# The protocols whose owner input the conversion gives exactly: a column's (sum, count),
# its per-bin counts (histogram), its rows (the horizontal regression).
TOTALS = ("sum", "count", "mean")
BINNED = ("histogram",)
ROWS = ("linear_regression", "logistic_regression", "kmeans")
UNLABELLED = ("kmeans",)  # rows of features only
# A private join with an outsourced side (protocols/he_join.py): the key column's hash limbs
# and, on the first side, the value column, converted row by row, on the PRF route only.
JOINS = tuple(sorted(join_path.OUTSOURCED_JOINS))
CONVERTIBLE = (*TOTALS, *BINNED, *ROWS, *JOINS)
PRF_ROUTE = join_path.PRF
KEY_LIMBS, KEY_LIMB_BOUND = 8, 2**16 - 1  # ensnif_mpc.he.outsource_keys (no TenSEAL here)
# The 2^-40 row hiding of ``ensnif_mpc/he/outsource_rows.py`` needs every converted
# column's bound below this on its grid (2^(57 − 40); the same constant, no TenSEAL here).
MAX_ROW_BOUND = 2**17
_PRIVACY_KEYS = frozenset(f.name for f in fields(PrivacyPolicy)) - {"remaining_rho"}


def ledger_key(owner: str, dataset: str) -> str:
    """The ledger's name for an outsourced dataset: never a name of the node's own."""
    return f"{owner}/{dataset}"


@dataclass(frozen=True)
class OwnerPolicy:
    """What the owner signed: its DP policy and the protocols it lets jobs run."""

    owner: str
    dataset: str
    privacy: PrivacyPolicy
    protocols: tuple[str, ...]
    # Every released aggregate draws on at least this many of the owner's rows (or none),
    # as a live owner's ``[datasets.policy] min_cohort``; 0: no minimum.
    min_cohort: int = 0

    @staticmethod
    def from_manifest(owner: str, dataset: str, raw: Mapping[str, Any]) -> OwnerPolicy:
        signed = dict(raw)
        allowed = tuple(str(p) for p in signed.get("protocols", CONVERTIBLE))
        known = {k: v for k, v in signed.items() if k in _PRIVACY_KEYS}
        if "exact_protocols" in known:
            known["exact_protocols"] = tuple(known["exact_protocols"])
        try:
            privacy = PrivacyPolicy(**known)
        except (TypeError, InvalidConfig) as exc:
            raise InvalidArgument(f"the signed policy of {owner}/{dataset}: {exc}") from None
        k = signed.get("min_cohort", 0)
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise InvalidArgument(
                f"the signed policy of {owner}/{dataset}: min_cohort must be a non-negative integer"
            )
        kept = tuple(p for p in allowed if p in CONVERTIBLE)
        return OwnerPolicy(owner, dataset, privacy, kept, k)

    @property
    def key(self) -> str:
        return ledger_key(self.owner, self.dataset)

    def check(self, protocol: str, release: ReleasePlan) -> dict[str, Fraction]:
        """Refuse a job the signed policy does not allow (before anything is reserved or
        read); otherwise what it costs the owner's budget (nothing for an exact release)."""
        where = f"the signed policy of {self.owner}/{self.dataset}"
        if protocol not in self.protocols:
            raise PolicyViolation(
                f"{where} allows only {', '.join(self.protocols) or 'no protocols'}; "
                f"not {protocol!r}",
                reason="protocol_not_allowed",
            )
        owners = [(self.owner, self.privacy)]
        if release.exact:
            refusing = protocol not in self.privacy.exact_protocols
            if refusing:
                raise PolicyViolation(
                    f"privacy.exact: {where} does not allow exact release of {protocol!r}",
                    reason="exact_not_allowed",
                )
            return {}
        if release.laplace:
            checks.check_epsilon_ceiling(release.epsilon, owners)
        else:
            checks.check_rho_ceiling(release.rho, owners)
        return {self.key: release.charge()}


def _check_row_bounds(cols: Sequence[Column], where: str) -> None:
    for col in cols:
        if math.ceil(col.abs_bound * 10**col.decimals) >= MAX_ROW_BOUND:
            raise InvalidArgument(
                f"{where}.{col.name}: its bound on the grid is too wide to convert rows "
                f"with 2^-40 hiding (below {MAX_ROW_BOUND}); declare narrower bounds or "
                "fewer decimals",
                reason="he_sum_out_of_range",
            )


def budget_caps(policies: Sequence[OwnerPolicy]) -> dict[str, Fraction]:
    """The ledger's caps for the outsourced datasets a node holds: each owner's signed
    ``budget_rho`` (added to the node's own datasets' caps)."""
    return {p.key: Fraction(p.privacy.budget_rho) for p in policies}


def check_input(
    p: Any, definition: Any, held: Any, budget: Callable[[dict[str, Fraction]], None] | None
) -> tuple[dict[str, Any], Verdict]:
    """An input this node serves for an outsourced dataset's owner (``p`` a
    ``party_node.admission.Proposal``, ``held`` = (position, input, HostedDataset)): the
    owner's signed policy, the roles the conversion serves for the protocol, the columns
    against the signed schema, the release's calibration, then the owner's budget. Returns
    the worker's ``outsourced`` session input and the verdict."""
    position, inp, dataset = held
    where = f"{inp.party}/{inp.dataset}"
    protocol = p.spec.protocol
    charge = dataset.policy.check(protocol, p.release)
    if protocol not in JOINS:
        read_keys = [c for c in _columns_of(inp) if c in dataset.keys]
        if read_keys:
            raise InvalidArgument(
                f"{where}.{read_keys[0]} is a join key (encrypted as the limbs of its hash): "
                f"it has no values for {protocol}; use it as a join's key"
            )
    if protocol in ROWS:
        roles = {**inp.columns, **inp.column_lists}
        wanted = {"features"} if protocol in UNLABELLED else {"features", "label"}
        if set(roles) != wanted or isinstance(roles["features"], str):
            raise InvalidArgument(
                f"{where} is outsourced: {protocol} reads its rows as features = [columns…]"
                + ("" if protocol in UNLABELLED else " and one label column")
            )
    elif protocol in JOINS:
        _check_join(p, inp, dataset, position, where)
    elif inp.column_lists or set(inp.columns) != {"value"}:
        raise InvalidArgument(
            f"{where} is outsourced: it gives one value column (role value) to "
            f"{', '.join(dataset.policy.protocols)}"
        )
    if any(p.spec.params.get(k) is not None for k in ("min", "max")):
        raise InvalidArgument(f"{where} is outsourced: its totals take no row filter (min, max)")
    read = checks.check_input_columns(
        definition, position, inp.role_columns, dataset.columns, where
    )
    for col in [c for cols in checks.grid_columns(read).values() for c in cols]:
        if p.decimals < col.decimals:
            raise InvalidArgument(
                f"session keeps {p.decimals} decimals; column {col.name!r} declares {col.decimals}"
            )
    if protocol in ("logistic_regression", "kmeans"):
        _check_box(p.spec.params, read, where)
    out = _conversion(p, inp, dataset, read, where)
    out["min_cohort"] = _min_cohort(dataset.policy, definition, dataset.rows, where)
    if not p.release.exact:
        checks.check_calibration(p.release, len(p.party_order))
    if budget is not None:
        budget(charge)
    column = out["columns"][0]
    out |= {
        "directory": str(dataset.directory),
        "owner": inp.party,
        "dataset": inp.dataset,
        "manifest_sha256": dataset.manifest_sha256,
        "column": column,
        "rows": dataset.rows,
        "decimals": next(c.decimals for c in dataset.columns if c.name == column),
        "charges": {k: [v.numerator, v.denominator] for k, v in charge.items()},
    }
    return {"outsourced": out}, Verdict(False, f"the signed policy of {where} (outsourced)")


def _columns_of(inp: Any) -> list[str]:
    return [*inp.columns.values(), *(c for cols in inp.column_lists.values() for c in cols)]


def _min_cohort(policy: OwnerPolicy, definition: Any, rows: int, where: str) -> int:
    """The owner's signed ``min_cohort``, applied as a live owner's would be. A protocol that
    holds the joint minimum cohort inside MPC (``extra["joint_cohort"]``: the histogram,
    the joins) gets it for the holder to input (``protocols.joint_cohort.floor``), exact or
    DP. Every other protocol the conversion serves releases an aggregate over all the
    owner's rows, whose number is public (the catalog's): fewer than min_cohort is refused
    here, exact or DP alike, which tells nothing the catalog does not."""
    k = policy.min_cohort
    if "joint_cohort" in getattr(definition, "extra", {}):
        return k
    if k and 0 < rows < k:
        raise PolicyViolation(
            f"{where} requires every released aggregate to draw on at least {k} of its "
            f"rows; it has {rows} (its catalog row count)",
            reason="cohort_too_small",
        )
    return 0


def _check_box(
    params: Mapping[str, Any], read: Mapping[str, tuple[Column, ...]], where: str
) -> None:
    """The logistic fit's or k-means' box (params.lower/upper) must contain every outsourced
    feature's declared bounds, and a label be declared an integer in [0, 1]: the helper
    cannot clamp or check ciphertexts, the live owners clamp and check in the clear."""
    lower, upper = params.get("lower") or [], params.get("upper") or []
    features = read.get("features", ())
    if len(lower) != len(features) or len(upper) != len(features):
        raise InvalidArgument(f"params.lower/params.upper: one bound per feature of {where}")
    for col, low, high in zip(features, lower, upper, strict=True):
        if col.lower < float(low) or col.upper > float(high):
            raise InvalidArgument(
                f"{where}.{col.name} is outsourced with declared bounds [{col.lower:g}, "
                f"{col.upper:g}]: the job's box must contain them (params.lower/upper), "
                "since the helper cannot clamp ciphertexts"
            )
    for col in read.get("label", ()):
        if col.type != "int" or col.lower < 0 or col.upper > 1:
            raise InvalidArgument(f"{where}.{col.name}: a 0/1 label is declared int in [0, 1]")


def _check_join(p: Any, inp: Any, dataset: Any, position: int, where: str) -> None:
    """A join side: the PRF route (asked for in the signed spec, so the manifest names it),
    the key column encrypted as a key, and a value column only on the first side."""
    if p.spec.params.get("join_path") != PRF_ROUTE:
        raise InvalidArgument(
            f"{where} is outsourced: a private join with an outsourced side runs on the PRF "
            f'route only; set params.join_path = "{PRF_ROUTE}"',
            reason="outsourced_join_path",
        )
    protocol = p.spec.protocol
    lists: list[set[str]] = [set()]
    if protocol == "intersection_size":
        wanted = {"key"}
    elif protocol == "intersection_sum":
        wanted = {"key", "value"} if position == 0 else {"key"}
    elif protocol == "join_group_by":  # A key (and filter with a threshold); B key, group, value
        wanted = {"key", "group", "value"}
        if position == 0:
            wanted = {"key"} if p.spec.params.get("threshold") is None else {"key", "filter"}
    elif protocol in ("join_correlation", "join_moments"):
        wanted = {"key", "value"}
    else:  # join_regression: A key and features, B key, label and optional features
        wanted = {"key"} if position == 0 else {"key", "label"}
        lists = [{"features"}] if position == 0 else [set(), {"features"}]
    if set(inp.columns) != wanted or set(inp.column_lists) not in lists:
        gives = sorted(wanted | set().union(*lists))
        raise InvalidArgument(
            f"{where} is outsourced: as side {position + 1} of {protocol} it gives "
            f"{' and '.join(gives)}"
        )
    key = inp.columns["key"]
    if key not in dataset.keys:
        raise InvalidArgument(
            f"{where}.{key} was not encrypted as a join key (key = true in the owner's "
            "schema file); the helper holds no key hash to convert",
            reason="outsourced_key_not_encrypted",
        )
    used = [c for r, c in inp.columns.items() if r != "key"]
    used += [c for cols in inp.column_lists.values() for c in cols]
    if any(c in dataset.keys for c in used):
        raise InvalidArgument(f"{where}: a key column cannot be a value, feature or label")
    if not {"group", "filter"} & set(inp.columns):
        return
    declared = {c.name: c for c in dataset.columns}
    group = declared.get(inp.columns.get("group", ""))
    if group is not None and (group.type != "int" or group.decimals):
        raise InvalidArgument(
            f"{where}.{group.name} is outsourced as a {group.type} column: a join_group_by "
            "group converted from BFV is an int column (a label, compared in MPC with the "
            "listed groups); the owner encrypts an int code for each group"
        )
    scaled = declared.get(inp.columns.get("filter", ""))
    if scaled is not None and scaled.decimals > p.decimals:
        raise InvalidArgument(
            f"session keeps {p.decimals} decimals; column {scaled.name!r} declares "
            f"{scaled.decimals}"
        )


def _conversion(
    p: Any, inp: Any, dataset: Any, read: Mapping[str, tuple[Column, ...]], where: str
) -> dict[str, Any]:
    """What the holder's worker converts: the series (``outputs``), whether as rows, and
    for rows each column's scale to the session's grid and its bound there."""
    protocol = p.spec.protocol
    if protocol in JOINS:
        key = inp.columns["key"]
        limbs = [f"{key}@key{j}" for j in range(KEY_LIMBS)]
        # in the join's order of the side's columns: the group (a label: never scaled),
        # the filter, the value, or features then label
        groups = list(read.get("group", ()))
        values = [*read.get("filter", ()), *read.get("value", ())]
        values += [*read.get("features", ()), *read.get("label", ())]
        _check_row_bounds([*groups, *values], where)
        return {
            "mode": "rows",
            "columns": [key, *(c.name for c in [*groups, *values])],
            "outputs": [*limbs, *(c.name for c in [*groups, *values])],
            "scales": [1] * (KEY_LIMBS + len(groups))
            + [10 ** (p.decimals - c.decimals) for c in values],
            "bounds": [KEY_LIMB_BOUND] * KEY_LIMBS
            + [math.ceil(c.abs_bound) for c in groups]
            + [math.ceil(c.abs_bound * 10**p.decimals) for c in values],
        }
    if protocol in ROWS:
        cols = [*read["features"], *read.get("label", ())]
        _check_row_bounds(cols, where)
        return {
            "mode": "rows",
            "columns": [c.name for c in cols],
            "outputs": [c.name for c in cols],
            "scales": [10 ** (p.decimals - c.decimals) for c in cols],
            "bounds": [math.ceil(c.abs_bound * 10**p.decimals) for c in cols],
        }
    column = inp.columns["value"]
    if protocol in BINNED:
        declared = tuple(float(e) for e in dataset.bins.get(column, ()))
        asked = tuple(float(e) for e in p.spec.params.get("edges") or ())
        if not declared or asked != declared:
            raise InvalidArgument(
                f"{where}.{column} is outsourced with bin edges {list(declared) or 'none'}: "
                "a histogram of it takes exactly those edges (params.edges); its owner "
                "encrypted one count series per declared bin"
            )
        bins = range(len(declared) - 1)
        return {"columns": [column], "outputs": [f"{column}@bin{b}" for b in bins]}
    return {"columns": [column], "outputs": [column]}
