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

Which jobs: the protocols whose input the HE → shares conversion supports (totals of a
column: its sum and count), narrowed by the owner's ``protocols``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from fractions import Fraction
from typing import Any

from ensnif_mpc.data.schema import PrivacyPolicy
from ensnif_mpc.errors import InvalidArgument, InvalidConfig, PolicyViolation
from ensnif_mpc.jobs import checks
from ensnif_mpc.privacy.dp import ReleasePlan

# The protocols whose owner input is a column's (sum, count) (what the conversion gives
# exactly; per-bin totals for histogram are converted but no program reads them yet).
CONVERTIBLE = ("sum", "count", "mean")
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
        return OwnerPolicy(owner, dataset, privacy, tuple(p for p in allowed if p in CONVERTIBLE))

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


def budget_caps(policies: Sequence[OwnerPolicy]) -> dict[str, Fraction]:
    """The ledger's caps for the outsourced datasets a node holds: each owner's signed
    ``budget_rho`` (added to the node's own datasets' caps)."""
    return {p.key: Fraction(p.privacy.budget_rho) for p in policies}
