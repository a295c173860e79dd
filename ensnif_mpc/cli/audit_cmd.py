"""`ensnif audit verify|show`: a daemon's audit log, read on its own host.

Runs beside the coordinator or a node, against its state database, like `ensnif
budget show`: ``--config`` takes the daemon's own ``coordinator.toml`` or
``party.toml`` (which one is told by its certificate's role) and checks the anchor's
signature with that certificate; ``--db URL`` (with ``--cert``) reads any state
database. Read-only: SQLite is opened with ``mode=ro``, PostgreSQL in a read-only
transaction. How the chain and its anchor work: ``ensnif_mpc.audit.chain``.
"""

from __future__ import annotations

import collections
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from ensnif_mpc.cli.render import console, emit_json


@dataclass(frozen=True)
class Target:
    label: str  # who: "coordinator", "party grocery", or the URL
    url: str
    cert: Path | None


def _target(config_path: str | None, db_url: str | None, cert_path: str | None) -> Target:
    from ensnif_mpc.config import CoordinatorConfig, PartyConfig
    from ensnif_mpc.errors import InvalidConfig
    from ensnif_mpc.security.pki import identity_of, load_cert

    if bool(config_path) == bool(db_url):
        raise InvalidConfig("give the daemon's --config, or --db URL (with --cert to check it)")
    if db_url:
        return Target(db_url, db_url, Path(cert_path) if cert_path else None)
    assert config_path is not None
    from ensnif_mpc import tomlfile

    # A node's party.toml and the coordinator's coordinator.toml are told apart by their
    # keys (each loader refuses the other's), then the certificate must agree.
    raw = tomlfile.read(Path(config_path), InvalidConfig, "configuration")
    if set(raw) & {"state_dir", "coordinator", "coordinator_name", "datasets", "mpc_ports"}:
        node = PartyConfig.load(Path(config_path))
        role = identity_of(load_cert(node.tls.cert)).role
        if role == "party":
            cert = Path(cert_path) if cert_path else node.tls.cert
            return Target(f"party {node.name}", f"sqlite:///{node.state_dir / 'node.db'}", cert)
    else:
        coordinator = CoordinatorConfig.load(Path(config_path))  # reads [tls] and `database`
        role = identity_of(load_cert(coordinator.tls.cert)).role
        if role == "coordinator":
            cert = Path(cert_path) if cert_path else coordinator.tls.cert
            return Target("coordinator", coordinator.database, cert)
    raise InvalidConfig(f"{config_path}: its certificate has role {role!r}, not a daemon's")


@contextmanager
def _read_only(url: str) -> Iterator[Any]:
    """A connection that cannot write; never creates a database."""
    import sqlite3
    from urllib.parse import quote

    from sqlalchemy import create_engine, make_url, text
    from sqlalchemy.exc import SQLAlchemyError

    from ensnif_mpc.db import cannot_open
    from ensnif_mpc.errors import InvalidConfig

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = Path(parsed.database or "")
        if not path.is_file():
            raise InvalidConfig(f"no state database at {path}: nothing was created")
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        engine = create_engine("sqlite://", creator=lambda: sqlite3.connect(uri, uri=True))
    else:
        engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SET TRANSACTION READ ONLY"))
            yield conn
            conn.rollback()
    except SQLAlchemyError as exc:
        raise cannot_open(engine, exc) from exc
    finally:
        engine.dispose()


_where = [
    click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False, exists=True),
        help="The daemon's coordinator.toml or party.toml.",
    ),
    click.option("--db", "db_url", help="A state database URL instead of --config."),
    click.option(
        "--cert",
        "cert_path",
        type=click.Path(dir_okay=False, exists=True),
        help="Certificate whose key signs the anchor (default: the config's own).",
    ),
]


def _with_target(f: Any) -> Any:
    for option in reversed(_where):
        f = option(f)
    return f


@click.group()
def audit() -> None:
    """The hash-chained audit log of this coordinator or node (run on its host)."""


@audit.command("verify")
@_with_target
@click.option("--json", "as_json", is_flag=True)
def verify(
    config_path: str | None, db_url: str | None, cert_path: str | None, as_json: bool
) -> None:
    """Check every record and the signed anchor; exit 5 naming the first bad record.

    Detects an edited, deleted (also the last), inserted or reordered record and a
    rebuilt chain. Note the head it prints elsewhere: it must only grow.
    """
    from ensnif_mpc.audit import chain
    from ensnif_mpc.errors import FailedPrecondition
    from ensnif_mpc.security.pki import load_cert

    target = _target(config_path, db_url, cert_path)
    public_key = load_cert(target.cert).public_key() if target.cert else None
    try:
        with _read_only(target.url) as conn:
            rows, anchor, has_anchor_table = chain.read(conn)
            if not has_anchor_table:
                raise chain.AuditBroken(None, chain.NO_ANCHOR_TABLE)
            report = chain.verify(rows, anchor, public_key)
    except chain.AuditBroken as exc:
        raise FailedPrecondition(str(exc), reason="audit_broken") from None
    signed = (
        f"signature verified with {target.cert}"
        if report.signature_checked
        else "signature not checked (give --config or --cert)"
    )
    if as_json:
        emit_json(
            {
                "ok": True,
                "of": target.label,
                "records": report.records,
                "head": {"seq": report.head_seq, "hash": report.head_hash},
                "anchor": None
                if report.anchor is None
                else {
                    "seq": report.anchor.seq,
                    "at": report.anchor.at,
                    "key_id": report.anchor.key_id,
                    "signature_checked": report.signature_checked,
                },
                "notes": report.notes,
            }
        )
        return
    click.echo(f"audit log of {target.label}: OK, {report.records} records")
    if report.anchor is not None:
        click.echo(f"  head    record {report.head_seq}, hash {report.head_hash}")
        click.echo(f"  anchor  written {report.anchor.at}, {signed}")
    for note in report.notes:
        click.echo(f"  note    {note}")


@audit.command("show")
@_with_target
@click.option("--limit", default=50, show_default=True, help="The last N records (0: all).")
@click.option("--job", "job_id", default="", help="Only the records about this job.")
@click.option("--json", "as_json", is_flag=True)
def show(
    config_path: str | None,
    db_url: str | None,
    cert_path: str | None,
    limit: int,
    job_id: str,
    as_json: bool,
) -> None:
    """The last records, oldest first (not verified: `ensnif audit verify` does that)."""
    from ensnif_mpc.audit import chain
    from ensnif_mpc.errors import FailedPrecondition

    target = _target(config_path, db_url, cert_path)
    try:
        with _read_only(target.url) as conn:
            rows, _, _ = chain.read(conn)
            kept: collections.deque[chain.Row] = collections.deque(maxlen=limit or None)
            kept.extend(r for r in rows if not job_id or r[3].get("job") == job_id)
    except chain.AuditBroken as exc:
        raise FailedPrecondition(str(exc), reason="audit_broken") from None
    records: list[dict[str, Any]] = [
        {"seq": seq, "at": at, "event": event, "details": details, "hash": digest}
        for seq, at, event, details, _, digest in kept
    ]
    if as_json:
        emit_json({"of": target.label, "records": records})
        return
    title = f"Audit log of {target.label}" + (f", job {job_id}" if job_id else "")
    t = Table(title=escape(title))
    for col in ("seq", "at (UTC)", "event", "details"):
        t.add_column(col, justify="right" if col == "seq" else "left")
    for r in records:
        details = ", ".join(
            f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in r["details"].items()
        )
        t.add_row(str(r["seq"]), r["at"][:19].replace("T", " "), r["event"], escape(details))
    console.print(t)
    if not records:
        console.print("no audit records" + (f" about job {job_id}" if job_id else ""))
