"""Dataset schemas as the catalog knows them: column names, types, bounds, row counts."""

from __future__ import annotations

import math
from dataclasses import dataclass

from ensnif_mpc.errors import InvalidConfig

COLUMN_TYPES = ("int", "float", "string")
NUMERIC = frozenset({"int", "float"})


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    lower: float = 0.0
    upper: float = 0.0
    decimals: int = 0

    def __post_init__(self) -> None:
        where = f"column {self.name!r}"
        if self.type not in COLUMN_TYPES:
            raise InvalidConfig(f"{where}: type must be one of {', '.join(COLUMN_TYPES)}")
        if self.type in NUMERIC:
            if not (math.isfinite(self.lower) and math.isfinite(self.upper)):
                raise InvalidConfig(f"{where}: numeric columns need finite lower and upper bounds")
            if self.lower > self.upper:
                raise InvalidConfig(f"{where}: lower ({self.lower}) exceeds upper ({self.upper})")
            if self.type == "int" and self.decimals:
                raise InvalidConfig(f"{where}: int columns have no decimals")
            if not 0 <= self.decimals <= 6:
                raise InvalidConfig(f"{where}: decimals must be between 0 and 6")
            if self.abs_bound * 10**self.decimals >= 2**53:
                raise InvalidConfig(
                    f"{where}: bounds times 10^decimals must stay below 2^53 so every value "
                    "is an exact integer on the secure scale"
                )

    @property
    def numeric(self) -> bool:
        return self.type in NUMERIC

    @property
    def abs_bound(self) -> float:
        return max(abs(self.lower), abs(self.upper))


@dataclass(frozen=True)
class PrivacyPolicy:
    """A data owner's DP policy for one dataset; published in the catalog (read-only there).

    The privacy unit is a person. ``rows_per_person`` is the most rows one person
    has in this dataset; a person may also appear at other owners, so a release's
    sensitivity sums every owner's rows_per_person × value bound.
    """

    budget_rho: float = 1.0  # total zCDP budget of the dataset, enforced by the node's ledger
    default_rho: float = 0.1  # charged per job that has no [privacy] table
    max_rho: float = 0.5  # the most one job may spend
    exact_protocols: tuple[str, ...] = ()  # protocols this owner lets release without noise
    rows_per_person: int = 1
    remaining_rho: float = -1.0  # catalog mirror of the ledger (-1: not reported)
    # A column identifying the person (e.g. a customer id): when set, the node checks
    # before every DP release that no person has more than rows_per_person rows, so the
    # sensitivity the release is calibrated to is a fact, not a hope. Node-only.
    person_column: str = ""
    # The δ all jobs on the dataset may add up to (the node's ledger; the discrete Laplace
    # sampler's δ, group discovery's threshold δ): 1e-5 unless the owner says otherwise.
    max_delta: float = 1e-5

    def __post_init__(self) -> None:
        if not (isinstance(self.max_delta, int | float) and 0 < self.max_delta < 1):
            raise InvalidConfig(
                f"privacy.max_delta: expected a number in (0, 1), got {self.max_delta!r}"
            )
        for name in ("budget_rho", "default_rho", "max_rho"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InvalidConfig(f"privacy.{name}: expected a positive number, got {value!r}")
        if self.default_rho > self.max_rho:
            raise InvalidConfig(
                f"privacy: default_rho ({self.default_rho:g}) exceeds max_rho "
                f"({self.max_rho:g}): a job without [privacy] would always be refused"
            )
        if self.rows_per_person < 1:
            raise InvalidConfig("privacy.rows_per_person: must be at least 1")


APPROVAL_MODES = ("auto", "manual")


@dataclass(frozen=True)
class AccessPolicy:
    """Who may ask what of one dataset; the owner's node enforces it and it is never published.

    Every rule defaults to "no restriction beyond the protocol allow-list", so a
    dataset without a ``[datasets.policy]`` table behaves as before; the rules only
    ever narrow what a job may do.
    """

    # Columns jobs may read (any role); empty: every declared column.
    columns: tuple[str, ...] = ()
    # Analysts (certificate names) results may be sealed to; empty: any consortium analyst.
    recipients: tuple[str, ...] = ()
    # Every released aggregate must draw on at least this many of this dataset's rows
    # (or on none of them); 0: no minimum.
    min_cohort: int = 0
    # The same question (protocol, parameters, inputs, privacy, recipient) at most this
    # many times per period; 0: unlimited.
    max_repeats: int = 0
    repeat_period_s: float = 86400.0
    # "manual": every job waits for `ensnif job approve` by this node's administrator.
    approval: str = "auto"
    # Member programs (their "sha256:…" hashes) jobs may run on this dataset under the
    # approval mode above; any other program waits for the administrator, always.
    programs: tuple[str, ...] = ()
    # Per-job caps, checked from the signed job before anything runs (never from data;
    # ensnif_mpc.jobs.caps): the groups a job lists and the outputs it releases; 0: none.
    max_groups: int = 10_000
    max_outputs: int = 50_000

    def __post_init__(self) -> None:
        if self.approval not in APPROVAL_MODES:
            raise InvalidConfig(
                f"policy.approval: expected one of {', '.join(APPROVAL_MODES)}, "
                f"got {self.approval!r}"
            )
        if self.min_cohort < 0 or self.max_repeats < 0:
            raise InvalidConfig("policy: min_cohort and max_repeats must not be negative")
        if self.max_groups < 0 or self.max_outputs < 0:
            raise InvalidConfig("policy: max_groups and max_outputs must not be negative")
        if not (math.isfinite(self.repeat_period_s) and self.repeat_period_s > 0):
            raise InvalidConfig("policy.repeat_period_seconds: expected a positive number")


@dataclass(frozen=True)
class DatasetSchema:
    party: str
    name: str
    columns: tuple[Column, ...]
    row_count: int
    description: str = ""
    policy: PrivacyPolicy = PrivacyPolicy()
    # An outsourced dataset (docs/homomorphic.md): ``party`` is its owner, a member without
    # a node; ``host`` the helper node that stores the ciphertexts and plays the owner's
    # input in jobs; ``outsourced_sha256`` the signed manifest's hash. Both "" otherwise.
    host: str = ""
    outsourced_sha256: str = ""

    @property
    def node(self) -> str:
        """The node that serves this dataset's input: its host, else its owner."""
        return self.host or self.party

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)
