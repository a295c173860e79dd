"""The Ensnif hook: an analyst's client profile from an Airflow connection.

A connection of type ``ensnif`` says where the coordinator is and which consortium
certificate the analyst uses, in one of two ways (docs/airflow.md):

- ``extra = {"profile": "/path/to/profile.toml"}``: the analyst's profile file, as
  ``ensnif`` reads it (its relative TLS paths are relative to the file);
- or the profile's fields: the coordinator as the connection's host and port (or
  ``extra.coordinator = "host:port"``), ``extra.coordinator_name`` (default
  ``coordinator``), and the TLS material either as paths (``ca_path``, ``cert_path``,
  ``key_path``) or as PEM contents (``ca_pem``, ``cert_pem``, and the key in the
  connection's password or ``extra.private_key``). Contents are written to a private
  temporary directory (mode 0700, files 0600) that lives as long as the hook's client.

Airflow masks the password and every extra whose name contains ``private_key`` in its
logs and UI; this module never logs key material or paths' contents.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ensnif_mpc.airflow._compat import AirflowException, BaseHook
from ensnif_mpc.config import ClientProfile
from ensnif_mpc.errors import EnsnifError
from ensnif_mpc.sdk.client import Client
from ensnif_mpc.security.pki import CertFiles

log = logging.getLogger(__name__)

CONN_TYPE = "ensnif"
DEFAULT_CONN_ID = "ensnif_default"
# The extras a connection may carry; anything else is refused by name (a typo is not ignored).
EXTRAS = frozenset(
    {
        "profile",
        "coordinator",
        "coordinator_name",
        "ca_path",
        "cert_path",
        "key_path",
        "crl_path",
        "ca_pem",
        "cert_pem",
        "private_key",
        "timeout_seconds",
    }
)


def _extras(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):
        raw = json.loads(raw) if raw.strip() else {}
    if not isinstance(raw, Mapping):
        raise AirflowException("the connection's extra must be a JSON object")
    unknown = sorted(set(raw) - EXTRAS)
    if unknown:
        raise AirflowException(
            f"unknown extra field(s) {', '.join(unknown)} in the Ensnif connection "
            f"(known: {', '.join(sorted(EXTRAS))})"
        )
    return dict(raw)


class EnsnifHook(BaseHook):  # type: ignore[misc]
    """The analyst's Ensnif client, configured from an Airflow connection."""

    conn_name_attr = "ensnif_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = CONN_TYPE
    hook_name = "Ensnif"

    def __init__(self, ensnif_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.ensnif_conn_id = ensnif_conn_id
        self._tmp: Path | None = None

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        return {
            "hidden_fields": ["schema", "login"],
            "relabeling": {"host": "Coordinator host", "password": "Analyst key (PEM)"},
            "placeholders": {
                "extra": json.dumps(
                    {
                        "profile": "/home/analyst/.config/ensnif/profile.toml",
                        "coordinator_name": "coordinator",
                    }
                ),
                "port": "50051",
            },
        }

    # -- profile -------------------------------------------------------------
    def get_profile(self) -> ClientProfile:
        """The client profile this connection describes (PEM contents are written to files
        that :meth:`close` removes; :meth:`client` closes them itself)."""
        conn = self.get_connection(self.ensnif_conn_id)
        extra = _extras(conn.extra_dejson if hasattr(conn, "extra_dejson") else conn.extra)
        address = extra.get("coordinator") or (
            f"{conn.host}:{conn.port or 50051}" if conn.host else ""
        )
        if extra.get("profile"):
            try:
                profile = ClientProfile.load(Path(str(extra["profile"])).expanduser())
            except EnsnifError as exc:
                raise AirflowException(f"connection {self.ensnif_conn_id!r}: {exc}") from None
            overrides: dict[str, Any] = {}
            if address:
                overrides["coordinator"] = address
            if extra.get("coordinator_name"):
                overrides["coordinator_name"] = str(extra["coordinator_name"])
            if not overrides:
                return profile
            return ClientProfile(
                coordinator=overrides.get("coordinator", profile.coordinator),
                coordinator_name=overrides.get("coordinator_name", profile.coordinator_name),
                tls=profile.tls,
                source=profile.source,
            )
        if not address:
            raise AirflowException(
                f"connection {self.ensnif_conn_id!r} names no coordinator: set its host "
                "and port, extra.coordinator, or extra.profile"
            )
        return ClientProfile(
            coordinator=str(address),
            coordinator_name=str(extra.get("coordinator_name") or "coordinator"),
            tls=self._tls(extra, conn.password or ""),
            source=f"airflow connection {self.ensnif_conn_id}",
        )

    def _tls(self, extra: dict[str, Any], password: str) -> CertFiles:
        key_pem = str(extra.get("private_key") or password)
        paths: dict[str, Path] = {}
        for name, path_key, pem in (
            ("ca", "ca_path", str(extra.get("ca_pem") or "")),
            ("cert", "cert_path", str(extra.get("cert_pem") or "")),
            ("key", "key_path", key_pem),
        ):
            if extra.get(path_key):
                paths[name] = Path(str(extra[path_key])).expanduser()
            elif pem.strip():
                paths[name] = self._write_private(f"{name}.pem", pem)
            else:
                field = {"ca": "ca_pem", "cert": "cert_pem", "key": "private_key or password"}
                raise AirflowException(
                    f"connection {self.ensnif_conn_id!r}: no {name} — set extra.{path_key} "
                    f"(a path) or {field[name]} (PEM contents)"
                )
            if not paths[name].exists():
                raise AirflowException(
                    f"connection {self.ensnif_conn_id!r}: {path_key} {paths[name]} does not exist"
                )
        crl = Path(str(extra["crl_path"])).expanduser() if extra.get("crl_path") else None
        return CertFiles(paths["ca"], paths["cert"], paths["key"], crl)

    def _write_private(self, name: str, text: str) -> Path:
        if self._tmp is None:
            self._tmp = Path(tempfile.mkdtemp(prefix="ensnif-airflow-"))  # mode 0700
        path = self._tmp / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(text if text.endswith("\n") else text + "\n")
        return path

    def timeout_s(self) -> float:
        """The per-call gRPC timeout (extra.timeout_seconds, default 30 s)."""
        conn = self.get_connection(self.ensnif_conn_id)
        extra = _extras(conn.extra_dejson if hasattr(conn, "extra_dejson") else conn.extra)
        return float(extra.get("timeout_seconds") or 30.0)

    # -- client --------------------------------------------------------------
    @contextmanager
    def client(self) -> Iterator[Client]:
        """An open SDK client; its channel and any written PEM files are gone afterwards."""
        profile = self.get_profile()
        log.info(
            "Ensnif: coordinator %s (%s) from connection %s",
            profile.coordinator,
            profile.coordinator_name,
            self.ensnif_conn_id,
        )
        c = Client(profile, timeout_s=self.timeout_s())
        try:
            yield c
        finally:
            c.close()
            self.close()

    def close(self) -> None:
        if self._tmp is not None:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def test_connection(self) -> tuple[bool, str]:
        """Airflow's "Test" button: list the consortium's parties over mTLS."""
        try:
            with self.client() as c:
                parties = c.parties()
        except (EnsnifError, AirflowException) as exc:
            return False, str(exc)
        return True, f"connected: {len(parties)} parties"
