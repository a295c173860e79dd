"""TOML configuration loaded into frozen dataclasses that validate themselves.

Precedence: command-line flag > ``ENSNIF_*`` environment > file > default.
Relative paths in a file are resolved against the file's own directory, so a
config can be moved together with its PKI and data.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ensnif_mpc import tomlfile
from ensnif_mpc.data.schema import AccessPolicy, Column, PrivacyPolicy
from ensnif_mpc.errors import InvalidConfig
from ensnif_mpc.security.pki import CertFiles

if TYPE_CHECKING:  # sources pulls in pyarrow and SQLAlchemy: only data owners' nodes need them
    from ensnif_mpc.data.sources import SourceSpec

DEFAULT_PROFILE = Path("~/.config/ensnif/profile.toml")


def _read(path: Path) -> dict[str, Any]:
    return tomlfile.read(path, InvalidConfig, "config")


def _known(raw: Mapping[str, Any], keys: frozenset[str], where: str) -> None:
    """A key the loader does not read is a mistake (a typo would otherwise be ignored)."""
    unknown = sorted(set(raw) - keys)
    if unknown:
        prefix = f"{where}." if where else ""
        raise InvalidConfig(
            f"{prefix}{unknown[0]}: unknown key (allowed: {', '.join(sorted(keys))})"
        )


def _table(raw: Mapping[str, Any], key: str, where: str) -> dict[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise InvalidConfig(f"{where}{key}: expected a table")
    return value


def _seconds(raw: Mapping[str, Any], key: str, default: float, where: str) -> float:
    """A duration in seconds: a positive number (never a string such as "30")."""
    value = raw.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e12:
        raise InvalidConfig(f"{where}{key}: expected a positive number of seconds")
    return float(value)


_COORDINATOR_KEYS = frozenset({"name", "listen", "database", "tls", "timeouts", "cache_seconds"})
_COORDINATOR_TIMEOUTS = frozenset({"propose_seconds", "approval_seconds", "job_seconds"})
_PARTY_KEYS = frozenset(
    {
        "name",
        "listen",
        "advertise",
        "coordinator",
        "coordinator_name",
        "state_dir",
        "tls",
        "mpc_host",
        "mpc_ports",
        "datasets",
        "timeouts",
        "standby_workers",
        "parallel_sessions",
        "tenseal_threads",
        "artifacts",
        "programs",
    }
)
_PARTY_TIMEOUTS = frozenset({"connect_seconds", "job_seconds", "start_seconds", "approval_seconds"})
_TLS_KEYS = frozenset({"ca", "cert", "key", "crl"})
# A dataset's own keys; the keys of its source are SOURCE_KEYS (next to _source).
_DATASET_KEYS = frozenset(
    {"name", "description", "allowed_protocols", "clamp", "columns", "privacy", "policy"}
)
_COLUMN_KEYS = frozenset({"name", "type", "lower", "upper", "decimals"})


def _path(base: Path, value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise InvalidConfig(f"{where}: expected a path")
    p = Path(os.path.expandvars(value)).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _tls(base: Path, raw: Any, where: str) -> CertFiles:
    if not isinstance(raw, dict):
        raise InvalidConfig(f"{where}: missing [tls] table with ca, cert, key")
    _known(raw, _TLS_KEYS, where)
    files = CertFiles(*(_path(base, raw.get(k), f"{where}.{k}") for k in ("ca", "cert", "key")))
    for p in (files.ca, files.cert, files.key):
        if not p.exists():
            raise InvalidConfig(f"{where}: {p} does not exist (run `ensnif pki issue`?)")
    if "crl" in raw:  # the CA's revocation list; it may not exist yet (nothing revoked)
        return CertFiles(files.ca, files.cert, files.key, _path(base, raw["crl"], f"{where}.crl"))
    return files


def _env(name: str, value: Any) -> Any:
    return os.environ.get(f"ENSNIF_{name}", value)


def _merge(
    path: Path, env_keys: tuple[str, ...], overrides: Mapping[str, Any] | None
) -> dict[str, Any]:
    """File values, then ``ENSNIF_<KEY>`` from the environment, then flags (highest)."""
    raw = _read(path)
    for key in env_keys:
        if f"ENSNIF_{key.upper()}" in os.environ:
            raw[key] = os.environ[f"ENSNIF_{key.upper()}"]
    raw.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return raw


def _metrics_listen(value: Any) -> str:
    """``metrics_listen``: "" (off, the default), "host:port", or a port (on 127.0.0.1)."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = f"127.0.0.1:{value}"
    if not isinstance(value, str):
        raise InvalidConfig('metrics_listen: expected "host:port" or a port number')
    value = value.strip()
    if value.isdigit():
        value = f"127.0.0.1:{value}"
    if value:
        host, _, port = value.rpartition(":")
        if not host or not port.isdigit() or int(port) > 65535:
            raise InvalidConfig(f"metrics_listen: expected host:port, got {value!r}")
    return str(value)


def _port_range(text: str) -> tuple[int, int]:
    try:
        lo_s, hi_s = text.split("-")
        lo, hi = int(lo_s), int(hi_s)
    except ValueError:
        raise InvalidConfig(f"mpc_ports: expected 'FIRST-LAST', got {text!r}") from None
    if not 1024 <= lo <= hi <= 65535:
        raise InvalidConfig(f"mpc_ports: {text!r} is not a range within 1024-65535")
    return lo, hi


@dataclass(frozen=True)
class ConsoleConfig:
    """A daemon's web console (docs/operations.md#web-consoles): off unless ``console_listen``
    is set. HTTPS with the daemon's [tls] certificate, or ``console_cert``/``console_key``."""

    listen: str = ""  # "" = off; "host:port" (port 0: any free one)
    cert: Path | None = None
    key: Path | None = None


_CONSOLE_KEYS = ("console_listen", "console_cert", "console_key")


def _console(base: Path, raw: dict[str, Any]) -> ConsoleConfig:
    """Take the console's keys out of ``raw``: ``console_listen`` is "host:port" or a port
    number (on 127.0.0.1)."""
    listen, cert, key = (raw.pop(k, None) for k in _CONSOLE_KEYS)
    if isinstance(listen, int) and not isinstance(listen, bool) or str(listen).isdigit():
        listen = f"127.0.0.1:{listen}"
    if listen is None or listen == "":
        listen = ""
    elif not isinstance(listen, str) or not re.fullmatch(
        r"(\[[0-9a-fA-F:]+\]|[\w.-]+):\d{1,5}", listen
    ):
        raise InvalidConfig(f'console_listen: expected "host:port" or a port, got {listen!r}')
    elif int(listen.rpartition(":")[2]) > 65535:
        raise InvalidConfig(f"console_listen: {listen!r} is not a port")
    if (cert is None) != (key is None):
        raise InvalidConfig("console_cert and console_key go together (or neither: [tls]'s)")
    files = [
        None if v is None else _path(base, v, k)
        for k, v in zip(_CONSOLE_KEYS[1:], (cert, key), strict=True)
    ]
    for f in files:
        if f is not None and not f.exists():
            raise InvalidConfig(f"console: {f} does not exist")
    return ConsoleConfig(listen, files[0], files[1])


@dataclass(frozen=True)
class CoordinatorConfig:
    name: str
    listen: str
    database: str
    tls: CertFiles
    propose_timeout_s: float = 30.0
    approval_timeout_s: float = 7 * 86400.0
    # Repeated DP questions are answered from the earlier result for this long (0: never).
    cache_seconds: float = 86400.0
    job_timeout_s: float = 3600.0
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    # Prometheus /metrics over plain HTTP ("" = off); see docs/operations.md.
    metrics_listen: str = ""

    @staticmethod
    def load(path: Path, overrides: Mapping[str, Any] | None = None) -> CoordinatorConfig:
        raw = _merge(path, ("listen", "database", "metrics_listen"), overrides)
        console = _console(path.parent.resolve(), raw)
        metrics_listen = _metrics_listen(raw.pop("metrics_listen", ""))
        _known(raw, _COORDINATOR_KEYS, "")
        base = path.parent.resolve()
        database = str(raw.get("database", "sqlite:///coordinator.db"))
        if database.startswith("sqlite:///") and not database.startswith("sqlite:////"):
            database = "sqlite:///" + str((base / database.removeprefix("sqlite:///")).resolve())
        timeouts = _table(raw, "timeouts", "")
        _known(timeouts, _COORDINATOR_TIMEOUTS, "timeouts")
        return CoordinatorConfig(
            name=str(raw.get("name", "coordinator")),
            listen=str(raw.get("listen", "127.0.0.1:50051")),
            database=database,
            console=console,
            metrics_listen=metrics_listen,
            tls=_tls(base, raw.get("tls"), "tls"),
            propose_timeout_s=_seconds(timeouts, "propose_seconds", 30, "timeouts."),
            approval_timeout_s=_seconds(timeouts, "approval_seconds", 7 * 86400, "timeouts."),
            cache_seconds=_cache_seconds(raw),
            job_timeout_s=_seconds(timeouts, "job_seconds", 3600, "timeouts."),
        )


def _cache_seconds(raw: Mapping[str, Any]) -> float:
    value = raw.get("cache_seconds", 86400)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e12:
        raise InvalidConfig("cache_seconds: expected a number of seconds (0: never)")
    return float(value)


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    source: SourceSpec
    columns: tuple[Column, ...]
    description: str = ""
    allowed_protocols: tuple[str, ...] = ("count", "sum", "mean")
    clamp: bool = False
    privacy: PrivacyPolicy = PrivacyPolicy()
    policy: AccessPolicy = AccessPolicy()

    @property
    def path(self) -> Path:
        """The file of a CSV or Parquet dataset (SQL and Spark datasets have none)."""
        if self.source.kind in ("sql", "spark"):
            kind = "a SQL" if self.source.kind == "sql" else "a Spark"
            raise InvalidConfig(f"dataset {self.name!r} is {kind} source; it has no path")
        return Path(self.source.path)


FILE_FORMATS = {".csv": "csv", ".parquet": "parquet", ".pq": "parquet"}
# The keys of a dataset that _source reads (a new source kind adds its own here).
SOURCE_KEYS = frozenset({"path", "url", "query", "table", "format", "timeout_seconds"})


def _sqlite_url(base: Path, url: str, where: str) -> str:
    """A SQLAlchemy URL; a relative SQLite file is resolved against the config's directory."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        raise InvalidConfig(f"{where}: not a database URL (dialect://user@host/db)") from None
    db = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or db in ("", ":memory:") or db.startswith("file:"):
        return url
    if Path(db).is_absolute():
        return url
    return parsed.set(database=str((base / db).resolve())).render_as_string(hide_password=False)


def _source(base: Path, d: dict[str, Any], where: str) -> SourceSpec:
    """``path`` (CSV or Parquet, by suffix or ``format``) or ``url`` with ``query`` or ``table``.

    A url is a SQLAlchemy URL (kind sql) or a Spark one, ``local[N]`` or ``sc://host:port``
    (kind spark: the query or table is read through Spark SQL).
    """
    from ensnif_mpc.data.sources import SourceSpec
    from ensnif_mpc.data.spark_source import is_spark_url

    has_path, has_url = "path" in d, "url" in d
    if has_path and has_url:
        raise InvalidConfig(
            f"{where}: give either path (a CSV or Parquet file) or url (a database), not both"
        )
    if not has_path and not has_url:
        raise InvalidConfig(
            f"{where}: needs a path (a CSV or Parquet file) or a url (a database) with a "
            "query or table"
        )
    timeout = d.get("timeout_seconds", 20)  # below the coordinator's 30 s propose timeout
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0:
        raise InvalidConfig(f"{where}.timeout_seconds: expected a positive number of seconds")
    if has_path:
        for key in ("query", "table"):
            if key in d:
                raise InvalidConfig(f"{where}.{key}: only a url (SQL) dataset takes a {key}")
        path = _path(base, d["path"], f"{where}.path")
        fmt = d.get("format", FILE_FORMATS.get(path.suffix.lower()))
        if fmt not in ("csv", "parquet"):
            shown = f"format {fmt!r}" if "format" in d else f"suffix {path.suffix!r}"
            raise InvalidConfig(
                f'{where}: unknown {shown}; set format = "csv" or "parquet" '
                "(or name the file .csv, .parquet or .pq)"
            )
        return SourceSpec(kind=fmt, path=str(path), timeout_s=float(timeout))
    if "format" in d:
        raise InvalidConfig(f"{where}.format: only a path (file) dataset takes a format")
    url, query, table = d["url"], d.get("query", ""), d.get("table", "")
    if not isinstance(url, str) or not url:
        raise InvalidConfig(f"{where}.url: expected a database URL")
    if not isinstance(query, str) or not isinstance(table, str):
        raise InvalidConfig(f"{where}: query and table are strings")
    if bool(query.strip()) == bool(table.strip()):
        raise InvalidConfig(
            f"{where}: a url dataset needs exactly one of query (a SELECT) or table"
        )
    # ${VAR}s (e.g. a password) stay unexpanded here, so the secret is never written to
    # job records or worker sessions; the process that connects expands them from its
    # environment. A SQLite path is expanded now, to resolve it against this file.
    kind = "spark" if is_spark_url(url) else "sql"
    expanded = _sqlite_url(base, os.path.expandvars(url), f"{where}.url") if kind == "sql" else ""
    if expanded.startswith("sqlite"):
        url = expanded
    return SourceSpec(
        kind=kind, url=url, query=query.strip(), table=table.strip(), timeout_s=float(timeout)
    )


def _privacy(raw: Any, where: str, columns: list[Column]) -> PrivacyPolicy:
    if not isinstance(raw, dict):
        raise InvalidConfig(f"{where}: expected a table")
    known = {
        "budget_rho",
        "default_rho",
        "max_rho",
        "exact_protocols",
        "rows_per_person",
        "person_column",
        "max_delta",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidConfig(
            f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(known))})"
        )
    person = raw.get("person_column", "")
    if person and person not in {c.name for c in columns}:
        raise InvalidConfig(f"{where}.person_column: {person!r} is not a declared column")
    exact = raw.get("exact_protocols", [])
    if not isinstance(exact, list) or not all(isinstance(p, str) for p in exact):
        raise InvalidConfig(f"{where}.exact_protocols: expected a list of protocol names")
    try:
        return PrivacyPolicy(
            budget_rho=float(raw.get("budget_rho", 1.0)),
            default_rho=float(raw.get("default_rho", 0.1)),
            max_rho=float(raw.get("max_rho", 0.5)),
            exact_protocols=tuple(exact),
            rows_per_person=int(raw.get("rows_per_person", 1)),
            person_column=str(raw.get("person_column", "")),
            max_delta=float(raw.get("max_delta", 1e-5)),
        )
    except (TypeError, ValueError):
        raise InvalidConfig(
            f"{where}: budget_rho, default_rho, max_rho, max_delta must be numbers"
        ) from None


def _names(raw: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise InvalidConfig(f"{where}.{key}: expected a list of names")
    return tuple(value)


def _program_hashes(raw: dict[str, Any], where: str) -> tuple[str, ...]:
    """``programs = ["sha256:<64 hex>", …]``: the member programs this dataset allows."""
    import re

    hashes = _names(raw, "programs", where)
    bad = [h for h in hashes if not re.fullmatch(r"sha256:[0-9a-f]{64}", h)]
    if bad:
        raise InvalidConfig(
            f"{where}.programs: {bad[0][:80]!r} is not a program hash (sha256:<64 hex "
            "digits>, as `ensnif program check` prints it)"
        )
    return hashes


def _policy(raw: Any, where: str, columns: list[Column]) -> AccessPolicy:
    if not isinstance(raw, dict):
        raise InvalidConfig(f"{where}: expected a table")
    known = {
        "columns",
        "recipients",
        "min_cohort",
        "max_repeats",
        "repeat_period_seconds",
        "approval",
        "programs",
        "max_groups",
        "max_outputs",
    }
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InvalidConfig(
            f"{where}.{unknown[0]}: unknown key (allowed: {', '.join(sorted(known))})"
        )
    allowed = _names(raw, "columns", where)
    declared = {c.name for c in columns}
    stray = [c for c in allowed if c not in declared]
    if stray:
        raise InvalidConfig(f"{where}.columns: {stray[0]!r} is not a declared column")
    for key in ("min_cohort", "max_repeats", "max_groups", "max_outputs"):
        if not isinstance(raw.get(key, 0), int) or isinstance(raw.get(key), bool):
            raise InvalidConfig(f"{where}.{key}: expected a whole number")
    period = raw.get("repeat_period_seconds", 86400)
    if isinstance(period, bool) or not isinstance(period, int | float):
        raise InvalidConfig(f"{where}.repeat_period_seconds: expected a number of seconds")
    approval = raw.get("approval", "auto")
    if not isinstance(approval, str):
        raise InvalidConfig(f'{where}.approval: expected "auto" or "manual"')
    try:
        return AccessPolicy(
            columns=allowed,
            recipients=_names(raw, "recipients", where),
            min_cohort=int(raw.get("min_cohort", 0)),
            max_repeats=int(raw.get("max_repeats", 0)),
            repeat_period_s=float(period),
            approval=approval,
            programs=_program_hashes(raw, where),
            max_groups=int(raw.get("max_groups", AccessPolicy.max_groups)),
            max_outputs=int(raw.get("max_outputs", AccessPolicy.max_outputs)),
        )
    except InvalidConfig as exc:
        raise InvalidConfig(f"{where}: {exc.message}") from None


@dataclass(frozen=True)
class PartyConfig:
    name: str
    listen: str
    advertise: str
    coordinator: str
    coordinator_name: str
    state_dir: Path
    tls: CertFiles
    mpc_host: str
    mpc_ports: tuple[int, int]
    datasets: tuple[DatasetConfig, ...] = ()
    connect_timeout_s: float = 30.0
    job_timeout_s: float = 3600.0
    # An approved job that the coordinator never starts (lost Abort, lost coordinator)
    # is dropped after this long: its port and budget reservation are given back.
    start_timeout_s: float = 600.0
    # A job waiting for the administrator's `ensnif job approve` is dropped after this long.
    approval_timeout_s: float = 7 * 86400.0
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    # Prometheus /metrics over plain HTTP ("" = off); see docs/operations.md.
    metrics_listen: str = ""
    # Pre-started job workers kept idle, imports done (protocols/standby.py); 0: cold starts.
    standby_workers: int = 1
    # Parallel MPC sessions this node offers a partitionable job (0: one per core; each
    # takes one more MPC port per job): protocols/partitions.py, ensnif_mpc/jobs/sessions.py.
    parallel_sessions: int = 1
    # TenSEAL's thread pool per scoring request (its pool has crashed other projects, so it is
    # set explicitly; the node's gRPC threads already serve requests side by side).
    tenseal_threads: int = 1
    # [artifacts] analysts: who may use or open an artifact made from this node's data
    # ("*": any analyst); None (no table): only the analyst who produced it.
    artifact_analysts: tuple[str, ...] | None = None
    # Member programs ("sha256:…") this node runs without asking where it holds no input
    # (a helper); any other program waits for its administrator (datasets list their own).
    programs: tuple[str, ...] = ()

    @property
    def role(self) -> str:
        return "data_owner" if self.datasets else "compute"

    @staticmethod
    def load(path: Path, overrides: Mapping[str, Any] | None = None) -> PartyConfig:
        raw = _merge(path, ("listen", "coordinator", "metrics_listen"), overrides)
        console = _console(path.parent.resolve(), raw)
        metrics_listen = _metrics_listen(raw.pop("metrics_listen", ""))
        _known(raw, _PARTY_KEYS, "")
        base = path.parent.resolve()
        if "name" not in raw:
            raise InvalidConfig(f"{path}: `name` is required (it must match the node certificate)")
        datasets: list[DatasetConfig] = []
        raw_datasets = raw.get("datasets", [])
        if not isinstance(raw_datasets, list) or not all(isinstance(d, dict) for d in raw_datasets):
            raise InvalidConfig("datasets: expected [[datasets]] tables")
        for n, d in enumerate(raw_datasets):
            where = f"datasets[{n}]"
            if "name" not in d:
                raise InvalidConfig(f"{where}: needs a name")
            if not isinstance(d["name"], str) or not d["name"]:
                raise InvalidConfig(f"{where}.name: expected a non-empty string")
            if any(other.name == d["name"] for other in datasets):
                raise InvalidConfig(f"{where}.name: a dataset {d['name']!r} is declared twice")
            _known(d, _DATASET_KEYS | SOURCE_KEYS, where)
            source = _source(base, d, where)
            clamp = d.get("clamp", False)
            if not isinstance(clamp, bool):
                raise InvalidConfig(f"{where}.clamp: expected true or false")
            cols: list[Column] = []
            raw_columns = d.get("columns", [])
            if not isinstance(raw_columns, list) or not all(
                isinstance(c, dict) for c in raw_columns
            ):
                raise InvalidConfig(f"{where}.columns: expected [[datasets.columns]] tables")
            for c in raw_columns:
                _known(c, _COLUMN_KEYS, f"{where}.columns")
                if any(other.name == str(c.get("name")) for other in cols):
                    raise InvalidConfig(
                        f"{where}.columns: a column {c.get('name')!r} is declared twice"
                    )
                try:
                    cols.append(
                        Column(
                            name=str(c["name"]),
                            type=str(c.get("type", "float")),
                            lower=float(c.get("lower", 0.0)),
                            upper=float(c.get("upper", 0.0)),
                            decimals=int(c.get("decimals", 0)),
                        )
                    )
                except KeyError:
                    raise InvalidConfig(f"{where}.columns: every column needs a name") from None
                except (TypeError, ValueError):
                    raise InvalidConfig(
                        f"{where}.columns: {c.get('name')!r} needs numeric lower, upper and "
                        "an integer decimals"
                    ) from None
            if not cols:
                raise InvalidConfig(f"{where}: declare at least one [[datasets.columns]]")
            datasets.append(
                DatasetConfig(
                    name=str(d["name"]),
                    source=source,
                    columns=tuple(cols),
                    description=str(d.get("description", "")),
                    allowed_protocols=_names(
                        {"allowed_protocols": ["count", "sum", "mean"], **d},
                        "allowed_protocols",
                        where,
                    ),
                    clamp=clamp,
                    privacy=_privacy(d.get("privacy", {}), f"{where}.privacy", cols),
                    policy=_policy(d.get("policy", {}), f"{where}.policy", cols),
                )
            )
        listen = str(raw.get("listen", "127.0.0.1:50061"))
        timeouts = _table(raw, "timeouts", "")
        _known(timeouts, _PARTY_TIMEOUTS, "timeouts")
        return PartyConfig(
            name=str(raw["name"]),
            listen=listen,
            advertise=str(raw.get("advertise", listen)),
            coordinator=str(raw.get("coordinator", "127.0.0.1:50051")),
            coordinator_name=str(raw.get("coordinator_name", "coordinator")),
            state_dir=_path(base, raw.get("state_dir", f"state/{raw['name']}"), "state_dir"),
            tls=_tls(base, raw.get("tls"), "tls"),
            mpc_host=str(raw.get("mpc_host", "127.0.0.1")),
            mpc_ports=_port_range(str(raw.get("mpc_ports", "41000-41999"))),
            datasets=tuple(datasets),
            console=console,
            metrics_listen=metrics_listen,
            connect_timeout_s=_seconds(timeouts, "connect_seconds", 30, "timeouts."),
            job_timeout_s=_seconds(timeouts, "job_seconds", 3600, "timeouts."),
            start_timeout_s=_seconds(timeouts, "start_seconds", 600, "timeouts."),
            approval_timeout_s=_seconds(timeouts, "approval_seconds", 7 * 86400, "timeouts."),
            standby_workers=_standby(raw.get("standby_workers", 1)),
            parallel_sessions=_parallel_sessions(raw.get("parallel_sessions", 1)),
            tenseal_threads=_tenseal_threads(raw.get("tenseal_threads", 1)),
            artifact_analysts=_artifact_analysts(raw),
            programs=_program_hashes(raw, "party"),
        )


def _artifact_analysts(raw: Mapping[str, Any]) -> tuple[str, ...] | None:
    if "artifacts" not in raw:
        return None
    table = _table(raw, "artifacts", "")
    _known(table, frozenset({"analysts"}), "artifacts")
    return _names({"analysts": [], **table}, "analysts", "artifacts")


def _tenseal_threads(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 64:
        raise InvalidConfig("tenseal_threads: expected an integer from 1 to 64")
    return value


def _parallel_sessions(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 16:
        raise InvalidConfig("parallel_sessions: expected an integer from 0 (one per core) to 16")
    return value


def _standby(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 16:
        raise InvalidConfig("standby_workers: expected an integer from 0 to 16")
    return value


@dataclass(frozen=True)
class ClientProfile:
    coordinator: str
    coordinator_name: str
    tls: CertFiles
    source: str = field(default="")

    @staticmethod
    def load(path: Path | None = None) -> ClientProfile:
        """Profile from ``path``, else ``$ENSNIF_PROFILE``, else ~/.config/ensnif/profile.toml."""
        chosen = path or Path(os.environ.get("ENSNIF_PROFILE", str(DEFAULT_PROFILE))).expanduser()
        raw: dict[str, Any] = _read(chosen) if chosen.exists() else {}
        if not raw and not os.environ.get("ENSNIF_CERT"):
            raise InvalidConfig(
                f"no client profile at {chosen}; write one (see README, 'Client profile') "
                "or set ENSNIF_PROFILE"
            )
        base = chosen.parent.resolve()
        tls_raw = dict(raw.get("tls", {}))
        for key in ("ca", "cert", "key"):
            if f"ENSNIF_{key.upper()}" in os.environ:
                tls_raw[key] = os.environ[f"ENSNIF_{key.upper()}"]
        return ClientProfile(
            coordinator=str(_env("COORDINATOR", raw.get("coordinator", "127.0.0.1:50051"))),
            coordinator_name=str(
                _env("COORDINATOR_NAME", raw.get("coordinator_name", "coordinator"))
            ),
            tls=_tls(base, tls_raw, "tls"),
            source=str(chosen),
        )
