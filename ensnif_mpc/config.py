"""TOML configuration loaded into frozen dataclasses that validate themselves.

Precedence: command-line flag > ``ENSNIF_*`` environment > file > default.
Relative paths in a file are resolved against the file's own directory, so a
config can be moved together with its PKI and data.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ensnif_mpc.errors import InvalidConfig
from ensnif_mpc.pki import CertFiles
from ensnif_mpc.schema import Column

DEFAULT_PROFILE = Path("~/.config/ensnif/profile.toml")


def _read(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text())
    except OSError as exc:
        raise InvalidConfig(f"cannot read {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise InvalidConfig(f"{path}: not valid TOML ({exc})") from exc


def _path(base: Path, value: Any, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise InvalidConfig(f"{where}: expected a path")
    p = Path(os.path.expandvars(value)).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def _tls(base: Path, raw: Any, where: str) -> CertFiles:
    if not isinstance(raw, dict):
        raise InvalidConfig(f"{where}: missing [tls] table with ca, cert, key")
    files = CertFiles(*(_path(base, raw.get(k), f"{where}.{k}") for k in ("ca", "cert", "key")))
    for p in (files.ca, files.cert, files.key):
        if not p.exists():
            raise InvalidConfig(f"{where}: {p} does not exist (run `ensnif pki issue`?)")
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
class CoordinatorConfig:
    name: str
    listen: str
    database: str
    tls: CertFiles
    propose_timeout_s: float = 30.0
    job_timeout_s: float = 3600.0

    @staticmethod
    def load(path: Path, overrides: Mapping[str, Any] | None = None) -> CoordinatorConfig:
        raw = _merge(path, ("listen", "database"), overrides)
        base = path.parent.resolve()
        database = str(raw.get("database", "sqlite:///coordinator.db"))
        if database.startswith("sqlite:///") and not database.startswith("sqlite:////"):
            database = "sqlite:///" + str((base / database.removeprefix("sqlite:///")).resolve())
        timeouts = raw.get("timeouts", {})
        return CoordinatorConfig(
            name=str(raw.get("name", "coordinator")),
            listen=str(raw.get("listen", "127.0.0.1:50051")),
            database=database,
            tls=_tls(base, raw.get("tls"), "tls"),
            propose_timeout_s=float(timeouts.get("propose_seconds", 30)),
            job_timeout_s=float(timeouts.get("job_seconds", 3600)),
        )


@dataclass(frozen=True)
class DatasetConfig:
    name: str
    path: Path
    columns: tuple[Column, ...]
    description: str = ""
    allowed_protocols: tuple[str, ...] = ("count", "sum", "mean")


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

    @property
    def role(self) -> str:
        return "data_owner" if self.datasets else "compute"

    @staticmethod
    def load(path: Path, overrides: Mapping[str, Any] | None = None) -> PartyConfig:
        raw = _merge(path, ("listen", "coordinator"), overrides)
        base = path.parent.resolve()
        if "name" not in raw:
            raise InvalidConfig(f"{path}: `name` is required (it must match the node certificate)")
        datasets = []
        for n, d in enumerate(raw.get("datasets", [])):
            where = f"datasets[{n}]"
            if "name" not in d or "path" not in d:
                raise InvalidConfig(f"{where}: needs name and path")
            cols = []
            for c in d.get("columns", []):
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
                    path=_path(base, d["path"], f"{where}.path"),
                    columns=tuple(cols),
                    description=str(d.get("description", "")),
                    allowed_protocols=tuple(d.get("allowed_protocols", ("count", "sum", "mean"))),
                )
            )
        listen = str(raw.get("listen", "127.0.0.1:50061"))
        timeouts = raw.get("timeouts", {})
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
            connect_timeout_s=float(timeouts.get("connect_seconds", 30)),
            job_timeout_s=float(timeouts.get("job_seconds", 3600)),
        )


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
