"""``ensnif pki``: the consortium CA, member certificates (issued, or signed from a member's
request), rotation and revocation."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click
from rich.table import Table

from ensnif_mpc.cli.render import console, emit_json
from ensnif_mpc.errors import InvalidArgument
from ensnif_mpc.security import csr as csr_lib, pki as pki_lib, revocation

_DIR = click.option(
    "--dir", "directory", default="pki", show_default=True, type=click.Path(file_okay=False)
)
_MEMBER_DAYS = click.option(
    "--days",
    default=pki_lib.MEMBER_DAYS,
    show_default=True,
    type=click.IntRange(min=1),
    help="Validity of the certificate, in days.",
)


@click.group("pki")
def pki() -> None:
    """Consortium PKI: a CA and certificates for coordinator, nodes and analysts."""


@pki.command("init")
@_DIR
@click.option("--name", default="Ensnif consortium CA", show_default=True)
@click.option("--days", default=pki_lib.CA_DAYS, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
def init(directory: str, name: str, days: int, as_json: bool) -> None:
    """Create the consortium CA (ca.crt, ca.key). Keep ca.key offline."""
    path = pki_lib.init_ca(Path(directory), name, days=days)
    if as_json:
        emit_json({"ca": str(path)})
    else:
        click.echo(
            f"CA certificate: {path}\n"
            f"CA key:         {Path(directory) / 'ca.key'} (keep it offline)"
        )


@pki.command("issue")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(list(pki_lib.ROLES)))
@_DIR
@click.option(
    "--out", "out_dir", type=click.Path(file_okay=False), help="Where to write NAME.crt/key."
)
@click.option(
    "--host", "hosts", multiple=True, help="Extra DNS name or IP for a server (repeatable)."
)
@_MEMBER_DAYS
@click.option("--json", "as_json", is_flag=True)
def issue(
    name: str,
    role: str,
    directory: str,
    out_dir: str | None,
    hosts: tuple[str, ...],
    days: int,
    as_json: bool,
) -> None:
    """Issue NAME.crt/NAME.key signed by the CA; NAME becomes the member's identity."""
    files = pki_lib.issue(
        Path(directory),
        name,
        role,
        hosts=("localhost", "127.0.0.1", *hosts),
        days=days,
        out_dir=Path(out_dir) if out_dir else None,
    )
    not_after = pki_lib.load_cert(files.cert).not_valid_after_utc
    if as_json:
        emit_json(
            {
                "name": name,
                "role": role,
                "cert": str(files.cert),
                "key": str(files.key),
                "ca": str(files.ca),
                "not_after": not_after.isoformat(),
            }
        )
    else:
        click.echo(f"{role} {name}: {files.cert}, {files.key} (valid until {not_after:%Y-%m-%d})")


@pki.command("request")
@click.argument("name")
@click.option("--role", required=True, type=click.Choice(list(pki_lib.ROLES)))
@click.option(
    "--host", "hosts", multiple=True, help="Extra DNS name or IP for a server (repeatable)."
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False),
    help="Where to write NAME.key (stays here) and NAME.csr (sent to the lead).",
)
@click.option("--json", "as_json", is_flag=True)
def request(name: str, role: str, hosts: tuple[str, ...], out_dir: str, as_json: bool) -> None:
    """At the member: make a private key and a certificate signing request for NAME.

    Send only NAME.csr to the consortium lead (with the fingerprint, by another channel
    if you can); NAME.key never leaves this machine. The lead's `ensnif pki sign`
    returns NAME.crt: put it next to the key.
    """
    r = csr_lib.request(name, role, Path(out_dir), hosts=("localhost", "127.0.0.1", *hosts))
    if as_json:
        emit_json(
            {
                "name": name,
                "role": role,
                "key": str(r.key),
                "csr": str(r.csr),
                "fingerprint": r.fingerprint,
            }
        )
    else:
        click.echo(
            f"{role} {name}: private key {r.key} (mode 0600; it never leaves this machine)\n"
            f"request {r.csr}: send it to the consortium lead for `ensnif pki sign`\n"
            f"key fingerprint (SHA-256): {r.fingerprint}"
        )


@pki.command("sign")
@click.argument("csr", type=click.Path(dir_okay=False, exists=True))
@click.option(
    "--ca",
    "directory",
    default="pki",
    show_default=True,
    type=click.Path(file_okay=False),
    help="The CA directory (ca.crt, ca.key, issued.jsonl).",
)
@click.option("--name", help="The identity you expect the request to carry (asked if omitted).")
@click.option(
    "--role",
    type=click.Choice(list(pki_lib.ROLES)),
    help="The role you expect the request to carry (asked if omitted).",
)
@_MEMBER_DAYS
@click.option(
    "--out",
    "out_file",
    type=click.Path(dir_okay=False),
    help="Where to write the certificate (default: the CSR's path with .crt).",
)
@click.option("--json", "as_json", is_flag=True)
def sign(
    csr: str,
    directory: str,
    name: str | None,
    role: str | None,
    days: int,
    out_file: str | None,
    as_json: bool,
) -> None:
    """At the consortium lead: issue the certificate a member's CSR asks for.

    The request's signature is verified and what it asks for is shown; it is signed only
    for the name and role you confirm (--name and --role, or at the prompt). A request
    for CA powers, for another member's name as a host, or for anything but a member
    certificate is refused. Send the certificate and ca.crt back to the member.
    """
    _, info = csr_lib.read_request(Path(csr).read_bytes())
    if name is None or role is None:
        if as_json or not sys.stdin.isatty():
            raise InvalidArgument(
                f"the request is for {info.role} {info.name!r} (hosts "
                f"{', '.join(info.hosts) or 'none'}; key {info.fingerprint}): confirm "
                "with --name and --role"
            )
        click.echo(
            f"request {csr}\n  name: {info.name}\n  role: {info.role}\n"
            f"  hosts: {', '.join(info.hosts) or '(none)'}\n  key fingerprint: {info.fingerprint}"
        )
        click.confirm("sign it for this name and role?", abort=True)
        name, role = name or info.name, role or info.role
    s = csr_lib.sign_request(
        Path(directory),
        Path(csr),
        name=name,
        role=role,
        days=days,
        out=Path(out_file) if out_file else None,
    )
    if as_json:
        emit_json(
            {
                "name": s.name,
                "role": s.role,
                "hosts": list(s.hosts),
                "cert": str(s.cert),
                "serial": format(s.serial, "x"),
                "not_after": s.not_after.isoformat(),
                "fingerprint": s.fingerprint,
            }
        )
    else:
        click.echo(
            f"signed {s.role} {s.name} (hosts {', '.join(s.hosts) or 'none'}; key "
            f"{s.fingerprint})\n"
            f"certificate {s.cert}: serial {s.serial:x}, valid until {s.not_after:%Y-%m-%d}\n"
            f"send it with {Path(directory) / pki_lib.CA_CERT} to {s.name}"
        )


@pki.command("rotate")
@click.argument("name")
@_DIR
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    help="Where NAME.crt/key are (default: the CA directory).",
)
@click.option(
    "--host",
    "hosts",
    multiple=True,
    help="Replace the host names (repeatable; default: those of the current certificate).",
)
@_MEMBER_DAYS
@click.option("--json", "as_json", is_flag=True)
def rotate(
    name: str,
    directory: str,
    out_dir: str | None,
    hosts: tuple[str, ...],
    days: int,
    as_json: bool,
) -> None:
    """Re-issue NAME with a new key (same role and host names), keeping the old pair.

    A running coordinator or node whose [tls] files these are uses the new certificate
    for new connections at once, without a restart. The old certificate stays valid
    until it expires; revoke it with `ensnif pki revoke --serial OLD` if its key leaked.
    """
    r = pki_lib.rotate(
        Path(directory),
        name,
        days=days,
        out_dir=Path(out_dir) if out_dir else None,
        hosts=("localhost", "127.0.0.1", *hosts) if hosts else None,
    )
    if as_json:
        emit_json(
            {
                "name": name,
                "cert": str(r.files.cert),
                "key": str(r.files.key),
                "serial": format(r.new_serial, "x"),
                "old_serial": format(r.old_serial, "x"),
                "not_after": r.not_after.isoformat(),
                "backup_cert": str(r.backup_cert),
                "backup_key": str(r.backup_key) if r.backup_key else None,
            }
        )
    else:
        click.echo(
            f"{name}: new key and certificate {r.files.cert} (serial {r.new_serial:x}, "
            f"valid until {r.not_after:%Y-%m-%d})\n"
            f"old pair kept as {r.backup_cert}"
            + (f" and {r.backup_key}" if r.backup_key else "")
            + f" (serial {r.old_serial:x}, still valid until it expires or is revoked)"
        )


@pki.command("revoke")
@click.argument("name", required=False)
@_DIR
@click.option("--serial", "serials", multiple=True, help="Revoke this serial (hex, repeatable).")
@click.option(
    "--cert",
    "cert_path",
    type=click.Path(dir_okay=False, exists=True),
    help="Revoke the certificate in this file (with NAME: where NAME's certificate is).",
)
@click.option(
    "--reason",
    default="unspecified",
    show_default=True,
    type=click.Choice(list(revocation.REASONS)),
)
@click.option(
    "--crl",
    "crl_path",
    type=click.Path(dir_okay=False),
    help="The CRL to update (default: ca.crl in the CA directory).",
)
@click.option("--json", "as_json", is_flag=True)
def revoke(
    name: str | None,
    directory: str,
    serials: tuple[str, ...],
    cert_path: str | None,
    reason: str,
    crl_path: str | None,
    as_json: bool,
) -> None:
    """Revoke NAME (every unexpired certificate issued to it), --serial or --cert.

    Writes the CA-signed revocation list (ca.crl). Copy it to every coordinator and
    node host (to the [tls] crl path, by default ca.crl next to their ca.crt): they
    re-read it when it changes and refuse the revoked certificates from then on.
    """
    path, revoked = pki_lib.revoke(
        Path(directory),
        name=name,
        serials=tuple(pki_lib.parse_serial(s) for s in serials),
        cert_path=Path(cert_path) if cert_path else None,
        reason=reason,
        crl_path=Path(crl_path) if crl_path else None,
    )
    if as_json:
        emit_json({"crl": str(path), "revoked": [format(s, "x") for s in revoked]})
    else:
        click.echo(
            f"revoked {', '.join(format(s, 'x') for s in revoked)}; revocation list: {path}\n"
            "copy it to every coordinator and node host (they reload it when it changes)"
        )


@pki.command("list")
@_DIR
@click.option("--json", "as_json", is_flag=True)
def list_(directory: str, as_json: bool) -> None:
    """Every certificate this CA issued, with its expiry and whether it is revoked."""
    d = Path(directory)
    crl = d / revocation.CRL_FILE
    revoked: set[int] = set()
    if crl.exists():
        ca = pki_lib.load_cert(d / pki_lib.CA_CERT)
        revoked = {e.serial for e in revocation.entries(revocation.load_crl(crl.read_bytes(), ca))}
    now = dt.datetime.now(dt.UTC)
    rows = []
    for i in pki_lib.issued(d):
        status = "revoked" if i.serial in revoked else "expired" if i.not_after < now else "valid"
        rows.append(
            {
                "name": i.name,
                "role": i.role,
                "serial": format(i.serial, "x"),
                "not_after": i.not_after.isoformat(),
                "status": status,
            }
        )
    if as_json:
        emit_json(rows)
        return
    table = Table("name", "role", "serial", "valid until", "status")
    for r in rows:
        table.add_row(r["name"], r["role"], r["serial"][:16], r["not_after"][:10], r["status"])
    console.print(table)
