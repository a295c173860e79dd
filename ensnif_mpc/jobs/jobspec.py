"""Job specifications: the TOML an analyst writes, parsed and checked for shape.

Shape only: whether the parties, datasets and columns exist is the coordinator's
check against its catalog (coordinator/validation.py). Errors name the field.

    name = "mean basket"
    protocol = "mean"
    helpers = ["helper"]

    [[inputs]]
    party = "grocery"
    dataset = "orders"
    column = "basket_total"

    [params]
    min = 10

An input names its columns by the role they play in the protocol: ``value`` (a
number to aggregate; ``column`` is its short form), ``key`` (a join key),
``group`` (a categorical group-by key), ``filter`` (a column the owner
thresholds locally), ``features`` (several numeric columns, a TOML list:
``features = ["x1", "x2"]``; their order is kept and signed), ``label`` (the column a
model predicts) and ``weight`` (a per-row weight). Which roles a protocol takes, and
how many columns each, is in `ensnif protocols describe`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ensnif_mpc import tomlfile
from ensnif_mpc.errors import InvalidJobSpec
from ensnif_mpc.jobs import member_program, program_lint
from ensnif_mpc.jobs.member_program import Bundle

_TOP_KEYS = {"name", "protocol", "inputs", "helpers", "params", "privacy", "nonce", "signature"}
_TOP_KEYS |= {"program"}  # a member-written program (ensnif_mpc.jobs.member_program)
_TOP_KEYS |= {"artifacts"}  # ids of artifacts the job reads (ensnif_mpc.results.artifacts)
MECHANISMS = ("gaussian", "laplace")
ROLES = ("value", "key", "group", "filter", "features", "label", "weight")
_INPUT_KEYS = {"party", "dataset", "column", *ROLES}


@dataclass(frozen=True)
class Input:
    party: str
    dataset: str
    column: str = ""  # the ``value`` role; "" when the input has none
    roles: tuple[tuple[str, str], ...] = ()  # (role, column) for the other roles, sorted
    # (role, columns) for the roles given a list of columns (e.g. features), sorted by
    # role; the columns in the order the job lists them.
    lists: tuple[tuple[str, tuple[str, ...]], ...] = ()

    @property
    def columns(self) -> dict[str, str]:
        """Every role this input fills with one column, ``value`` included."""
        out = dict(self.roles)
        if self.column:
            out["value"] = self.column
        return out

    @property
    def column_lists(self) -> dict[str, list[str]]:
        """The roles given a list of columns, each with its columns in order."""
        return {role: list(cols) for role, cols in self.lists}

    @property
    def role_columns(self) -> dict[str, str | list[str]]:
        """Every role this input fills: one column name, or a list where the job gave one."""
        return {**self.columns, **self.column_lists}

    @property
    def column_names(self) -> tuple[str, ...]:
        """Every column this input reads, whatever its role."""
        return (*self.columns.values(), *(c for _, cols in self.lists for c in cols))

    def to_dict(self) -> dict[str, Any]:
        """The TOML/JSON shape that :func:`from_dict` reads back."""
        out: dict[str, Any] = {"party": self.party, "dataset": self.dataset}
        if self.column:
            out["column"] = self.column
        out.update(self.roles)
        out.update((role, list(cols)) for role, cols in self.lists)
        return out


@dataclass(frozen=True)
class Privacy:
    """The job's ``[privacy]`` table: a zCDP budget ρ, a pure ε, or a request for exact.

    ``mechanism = "gaussian"`` (the default) takes ``rho``; ``mechanism = "laplace"``
    (implied by ``epsilon``) takes ``epsilon`` and optionally ``delta``, the bound on the
    sampler's distance from the exact discrete Laplace (default
    ``ensnif_mpc.privacy.dlaplace.DEFAULT_DELTA``); it costs ρ = ε²/2. Without a table the owners'
    policies decide (their default ρ, Gaussian). Exact release is only possible where
    every owner's policy allows it for the protocol.
    """

    rho: float | None = None
    exact: bool = False
    mechanism: str = "gaussian"
    epsilon: float | None = None
    delta: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"mechanism": self.mechanism}
        if self.exact:
            out["exact"] = True
        if self.rho is not None:
            out["rho"] = self.rho
        if self.epsilon is not None:
            out["epsilon"] = self.epsilon
        if self.delta is not None:
            out["delta"] = self.delta
        return out


@dataclass(frozen=True)
class JobSpec:
    protocol: str
    inputs: tuple[Input, ...]
    helpers: tuple[str, ...] = ()
    params: dict[str, Any] = field(default_factory=dict)
    name: str = ""
    privacy: Privacy | None = None
    # Set by the submitter's client when it signs (see :func:`sign`): a fresh random
    # nonce (a node never runs the same signed job twice) and the ECDSA signature of
    # :func:`canonical` with the submitter's consortium key.
    nonce: str = ""
    signature: bytes = b""
    # protocol = "program": the member program's files; the signature covers their hash.
    program: Bundle | None = None
    # Artifacts the job takes as input, by consortium-wide id ("<job>/<name>"): secret
    # shares every party's node holds from an earlier job (Program.import_shares).
    artifacts: tuple[str, ...] = ()

    @property
    def owners(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for i in self.inputs:
            seen.setdefault(i.party)
        return tuple(seen)

    @property
    def party_order(self) -> tuple[str, ...]:
        """MPC session order: data owners as listed, then helpers."""
        return self.owners + tuple(h for h in self.helpers if h not in self.owners)

    def params_json(self) -> str:
        return json.dumps(self.params, sort_keys=True)

    def privacy_json(self) -> str:
        return json.dumps(self.privacy.to_dict(), sort_keys=True) if self.privacy else ""


CANONICAL_VERSION = 1


def canonical(spec: JobSpec, protocol_version: int) -> bytes:
    """The exact bytes a submitter signs: everything a node acts on, nothing else.

    Protocol and its version, inputs (parties, datasets, columns by role), helpers,
    parameters, privacy settings, the job's name and the nonce; recipients are the
    signer (results are sealed to the submitter's certificate, which the node checks
    is the signing one). JSON with sorted keys and no whitespace.
    """
    body = {
        "v": CANONICAL_VERSION,
        "protocol": spec.protocol,
        "protocol_version": protocol_version,
        "inputs": [i.to_dict() for i in spec.inputs],
        "helpers": list(spec.helpers),
        "params": spec.params,
        "privacy": spec.privacy.to_dict() if spec.privacy else None,
        "name": spec.name,
        "nonce": spec.nonce,
    }
    if spec.program is not None:  # the hash pins every file, manifest included
        body["program"] = spec.program.digest
    if spec.artifacts:  # absent when empty: jobs signed before artifacts verify unchanged
        body["artifacts"] = list(spec.artifacts)
    return json.dumps(body, sort_keys=True, separators=(",", ":"), allow_nan=False).encode()


def sign(spec: JobSpec, key_pem: bytes, protocol_version: int) -> JobSpec:
    """The spec with a fresh nonce and the submitter's signature over :func:`canonical`."""
    import dataclasses
    import secrets

    from ensnif_mpc.security import pki

    fresh = dataclasses.replace(spec, nonce=secrets.token_hex(16), signature=b"")
    return dataclasses.replace(
        fresh, signature=pki.sign(key_pem, canonical(fresh, protocol_version))
    )


def verify(spec: JobSpec, cert_pem: str | bytes, protocol_version: int) -> None:
    """Raise CryptoError unless ``spec`` is exactly what the holder of ``cert_pem`` signed."""
    from ensnif_mpc.errors import CryptoError
    from ensnif_mpc.security import pki

    if not spec.signature or not spec.nonce:
        raise CryptoError("the job is not signed by its submitter", reason="unsigned_job")
    try:
        pki.verify_signature(cert_pem, canonical(spec, protocol_version), spec.signature)
    except CryptoError:
        raise CryptoError(
            "the job's signature does not match its content: it was altered after the "
            "submitter signed it (or signed for another protocol version)",
            reason="bad_job_signature",
        ) from None


def parse_privacy(raw: Any) -> Privacy | None:
    """The ``[privacy]`` table, checked for shape; policies are checked by each owner's node."""
    import math

    from ensnif_mpc.privacy import dlaplace

    if raw is None or raw == {}:
        return None
    if not isinstance(raw, dict):
        raise InvalidJobSpec("privacy: expected a table with rho, epsilon or exact = true")
    unknown = sorted(set(raw) - {"rho", "exact", "mechanism", "epsilon", "delta"})
    if unknown:
        raise InvalidJobSpec(
            f"privacy.{unknown[0]}: unknown key (allowed: rho, exact, mechanism, epsilon, delta)"
        )
    mechanism = raw.get("mechanism", "laplace" if "epsilon" in raw else "gaussian")
    if mechanism not in MECHANISMS:
        raise InvalidJobSpec(
            f"privacy.mechanism: {_show(mechanism)} is not available (use: {', '.join(MECHANISMS)})"
        )
    exact = raw.get("exact", False)
    if not isinstance(exact, bool):
        raise InvalidJobSpec("privacy.exact: expected true or false")
    if mechanism == "laplace":
        return _parse_laplace(raw, exact, dlaplace)
    if "epsilon" in raw or "delta" in raw:
        key = "epsilon" if "epsilon" in raw else "delta"
        raise InvalidJobSpec(
            f'privacy.{key}: only with mechanism = "laplace" (pure ε-DP); the Gaussian takes '
            "a zCDP budget privacy.rho (ε-DP with δ follows from ρ: "
            "ε = ρ + 2·sqrt(ρ·ln(1/δ)))"
        )
    rho = raw.get("rho")
    if rho is not None:
        if isinstance(rho, bool) or not isinstance(rho, int | float) or not math.isfinite(rho):
            raise InvalidJobSpec(
                f"privacy.rho: expected a finite positive number, got {_show(rho)}"
            )
        if rho <= 0:
            raise InvalidJobSpec(f"privacy.rho: must be positive, got {_show(rho)}")
    if exact and rho is not None:
        raise InvalidJobSpec("privacy: give rho or exact = true, not both")
    return Privacy(float(rho) if rho is not None else None, exact, mechanism)


def _parse_laplace(raw: dict[str, Any], exact: bool, dlaplace: Any) -> Privacy:
    if exact:
        raise InvalidJobSpec('privacy.exact: not with mechanism = "laplace" (give one of them)')
    if "rho" in raw:
        raise InvalidJobSpec(
            'privacy.rho: mechanism = "laplace" takes privacy.epsilon (it costs ρ = ε²/2)'
        )
    if "epsilon" not in raw:
        raise InvalidJobSpec('privacy.epsilon: required with mechanism = "laplace"')
    epsilon = dlaplace.check_epsilon(raw["epsilon"])
    delta = dlaplace.check_delta(raw["delta"]) if "delta" in raw else None
    return Privacy(mechanism="laplace", epsilon=epsilon, delta=delta)


MAX_DEPTH = 32  # lists and tables inside params: deeper is refused (no protocol needs it)


def _check_json(where: str, value: Any, depth: int = 0) -> None:
    """Parameters travel as JSON and are signed: only finite numbers, 64-bit integers,
    strings, bools, lists and tables with string keys, nested at most MAX_DEPTH deep."""
    import math

    if depth > MAX_DEPTH:
        raise InvalidJobSpec(f"{where.split('.')[0].split('[')[0]}: nested too deeply")

    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidJobSpec(f"{where}: {_show(value)} is not a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and not _I64[0] <= value <= _I64[1]:
        # Every party compares filters in 64-bit integers (TOML's own limit too).
        raise InvalidJobSpec(f"{where}: {_show(value)} does not fit in a 64-bit integer")
    if isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidJobSpec(f"{where}: keys must be strings, got {_show(k)}")
            _check_json(f"{where}.{k}", v, depth + 1)
    elif isinstance(value, list):
        for n, v in enumerate(value):
            _check_json(f"{where}[{n}]", v, depth + 1)
    elif value is not None and not isinstance(value, bool | int | float | str):
        raise InvalidJobSpec(f"{where}: {type(value).__name__} values are not allowed")


_I64 = (-(2**63), 2**63 - 1)


def _show(value: Any, limit: int = 60) -> str:
    """A value the submitter wrote, quoted in an error: its type and at most ``limit``
    characters of it (a spec may carry anything; an error message stays one short line)."""
    text = repr(value)
    if len(text) > limit:
        text = f"{text[: limit - 5]}…({type(value).__name__})"
    return text


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidJobSpec(f"{where}: expected a non-empty string, got {_show(value)}")
    return value.strip()


MAX_COLUMNS = 64  # columns in one role's list (no protocol takes more)


def _strs(value: list[Any], where: str) -> tuple[str, ...]:
    """A role's list of columns: non-empty names, at most MAX_COLUMNS, order kept."""
    if not value or len(value) > MAX_COLUMNS:
        raise InvalidJobSpec(
            f"{where}: expected a list of 1 to {MAX_COLUMNS} column names",
            reason="role_column_count",
        )
    return tuple(_str(v, f"{where}[{n}]") for n, v in enumerate(value))


def from_dict(raw: dict[str, Any]) -> JobSpec:
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise InvalidJobSpec(
            f"{unknown[0]}: unknown key in job spec (allowed: {', '.join(sorted(_TOP_KEYS))})"
        )
    if "protocol" not in raw:
        raise InvalidJobSpec("protocol: missing; name a protocol from `ensnif protocols list`")
    protocol = _str(raw["protocol"], "protocol")
    raw_inputs = raw.get("inputs")
    if not isinstance(raw_inputs, list) or not raw_inputs:
        raise InvalidJobSpec("inputs: expected at least one [[inputs]] table")
    inputs = []
    for n, item in enumerate(raw_inputs):
        where = f"inputs[{n}]"
        if not isinstance(item, dict):
            raise InvalidJobSpec(f"{where}: expected a table with party, dataset and columns")
        extra = sorted(set(item) - _INPUT_KEYS)
        if extra:
            raise InvalidJobSpec(
                f"{where}.{extra[0]}: unknown key (allowed: party, dataset, column, "
                f"{', '.join(ROLES)})"
            )
        for key in ("party", "dataset"):
            if key not in item:
                raise InvalidJobSpec(f"{where}.{key}: missing")
        if "column" in item and "value" in item:
            raise InvalidJobSpec(f"{where}: give the value column as `column` or `value`, not both")
        value = item.get("value", item.get("column"))
        given = [r for r in ROLES if r != "value" and r in item]
        roles = tuple(
            sorted(
                (r, _str(item[r], f"{where}.{r}")) for r in given if not isinstance(item[r], list)
            )
        )
        lists = tuple(
            sorted((r, _strs(item[r], f"{where}.{r}")) for r in given if isinstance(item[r], list))
        )
        if value is None and not roles and not lists:
            raise InvalidJobSpec(f"{where}.column: missing (name the column the input provides)")
        inputs.append(
            Input(
                _str(item["party"], f"{where}.party"),
                _str(item["dataset"], f"{where}.dataset"),
                _str(value, f"{where}.column") if value is not None else "",
                roles,
                lists,
            )
        )
    if len({i.party for i in inputs}) != len(inputs):
        raise InvalidJobSpec("inputs: each data owner may appear once")
    helpers = raw.get("helpers", [])
    if not isinstance(helpers, list):
        raise InvalidJobSpec("helpers: expected a list of party names")
    helper_names = tuple(_str(h, f"helpers[{n}]") for n, h in enumerate(helpers))
    if len(set(helper_names)) != len(helper_names):
        raise InvalidJobSpec("helpers: a party is listed twice")
    overlap = set(helper_names) & {i.party for i in inputs}
    if overlap:
        raise InvalidJobSpec(f"helpers: {sorted(overlap)[0]!r} is already a data owner in inputs")
    params = raw.get("params", {})
    if not isinstance(params, dict):
        raise InvalidJobSpec("params: expected a table")
    _check_json("params", params)
    _check_sessions(protocol, len(inputs), len(helper_names), params)
    name = raw.get("name", "")
    if not isinstance(name, str):
        raise InvalidJobSpec("name: expected a string")
    privacy = parse_privacy(raw.get("privacy"))
    nonce = raw.get("nonce", "")
    signature = raw.get("signature", "")
    if not isinstance(nonce, str) or not isinstance(signature, str):
        raise InvalidJobSpec("nonce, signature: expected strings (hex)")
    try:
        sig = bytes.fromhex(signature)
    except ValueError:
        raise InvalidJobSpec("signature: expected hex") from None
    program = _program(protocol, raw.get("program"))
    return JobSpec(
        protocol,
        tuple(inputs),
        helper_names,
        dict(params),
        name,
        privacy,
        nonce,
        sig,
        program,
        artifacts=_artifact_ids(raw.get("artifacts", [])),
    )


def _check_sessions(protocol: str, owners: int, helpers: int, params: dict[str, Any]) -> None:
    """``params.sessions`` (k parallel MPC sessions, ``ensnif_mpc.jobs.sessions``): an
    integer from 1, above 1 only for a protocol that splits by key on the job's route."""
    from ensnif_mpc.jobs import sessions

    try:
        sessions.check(protocol, owners + helpers, owners, params)
    except sessions.SessionsNotPartitionable as exc:
        raise InvalidJobSpec(str(exc), reason="sessions_not_partitionable") from None
    except ValueError as exc:
        raise InvalidJobSpec(str(exc)) from None


def _artifact_ids(raw: Any) -> tuple[str, ...]:
    """``artifacts = ["<job>/<name>", ...]``: distinct ids, each a job id and a name."""
    if not isinstance(raw, list):
        raise InvalidJobSpec('artifacts: expected a list of artifact ids ("<job>/<name>")')
    ids = tuple(_str(a, f"artifacts[{n}]") for n, a in enumerate(raw))
    for n, a in enumerate(ids):
        job, _, name = a.partition("/")
        if not job or not name or "/" in name:
            raise InvalidJobSpec(f'artifacts[{n}]: {a!r} is not an artifact id ("<job>/<name>")')
    if len(set(ids)) != len(ids):
        raise InvalidJobSpec("artifacts: an artifact is listed twice")
    return ids


def _program(protocol: str, raw: Any) -> Bundle | None:
    """The ``[program]`` table of ``protocol = "program"``: its files, checked against the
    hash they claim and statically against their manifest (before anything runs)."""
    if (raw is None) != (protocol != member_program.MEMBER_PROTOCOL):
        raise InvalidJobSpec(
            'program: a [program] table goes with protocol = "program", and only with it'
        )
    if raw is None:
        return None
    bundle = member_program.Bundle.from_wire(raw)
    program_lint.check(bundle)
    return bundle


def load(path: Path) -> JobSpec:
    """A job file; its ``[program] path`` (relative to the file) is packed here, and an
    optional ``hash`` beside it pins what the submitter reviewed."""
    raw = tomlfile.read(path, InvalidJobSpec, "job file")
    table = raw.get("program")
    if isinstance(table, dict) and "path" in table:
        if set(table) - {"path", "hash"} or not isinstance(table["path"], str):
            raise InvalidJobSpec('program: expected path = "DIR or FILE.py" (and hash)')
        bundle = member_program.Bundle.from_path(path.parent / table["path"])
        if "hash" in table:
            member_program.check_pin(bundle, table["hash"])
        raw["program"] = bundle.to_wire()
    return from_dict(raw)
