"""What ``ensnif doctor`` checks at a member: one function per check, each returns a Check.

A node (``party.toml``) gets: configuration, certificate, revocation list, coordinator
over mutual TLS, clock, every other member's MPC port range, each dataset, its own MPC
port range. An analyst (``profile.toml``) gets the first five. Nothing here prints;
:mod:`ensnif_mpc.cli.doctor_cmd` does.

One ``ListParties`` call serves the clock and the peers: its answer carries the
coordinator's time (``server_time_unix_ms``) and every member's registered MPC host and
port range.
"""

from __future__ import annotations

import datetime as dt
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from ensnif_mpc.config import ClientProfile, DatasetConfig, PartyConfig
from ensnif_mpc.errors import EnsnifError
from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb, coordinator_pb2 as cpb, coordinator_pb2_grpc
from ensnif_mpc.security import pki, revocation
from ensnif_mpc.security.tls import load_material, secure_channel

EXPIRY_WARNING = dt.timedelta(days=14)  # as the servers warn at start
# A host on NTP is within milliseconds; 30 s off means its time service is not working
# (audit records, job times and logs then disagree between members). Beyond 5 minutes
# things break: every certificate (member, per-job MPC, CRL) is back-dated 5 minutes, so
# a member behind by more refuses certificates just issued, and one ahead by more
# issues certificates its peers do not accept yet.
CLOCK_WARNING = dt.timedelta(seconds=30)
CLOCK_FAILURE = dt.timedelta(minutes=5)
DEFAULT_TIMEOUT_S = 5.0
PEER_PROBE_TIMEOUT_S = 3.0  # a port that does not answer within this is reported dropped


class Status(StrEnum):
    OK = "ok"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"  # not applicable here, or not measured


@dataclass(frozen=True)
class Check:
    name: str
    status: Status
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"check": self.name, "status": str(self.status), "message": self.message}


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _days(delta: dt.timedelta) -> str:
    days = delta.total_seconds() / 86400
    return f"{days:.1f} days" if days < 2 else f"{int(days)} days"


# -- configuration ----------------------------------------------------------------------


def check_party_config(path: Path) -> tuple[Check, PartyConfig | None]:
    try:
        cfg = PartyConfig.load(path)
    except EnsnifError as exc:
        return Check("config", Status.FAIL, exc.message), None
    what = f"{len(cfg.datasets)} dataset(s)" if cfg.datasets else "compute only, no datasets"
    return Check("config", Status.OK, f"{path}: node {cfg.name!r}, {what}"), cfg


def check_profile(path: Path | None) -> tuple[Check, ClientProfile | None]:
    try:
        profile = ClientProfile.load(path)
    except EnsnifError as exc:
        return Check("config", Status.FAIL, exc.message), None
    return Check(
        "config", Status.OK, f"client profile {profile.source or '(environment)'}"
    ), profile


# -- certificates -----------------------------------------------------------------------


def check_certificate(
    tls: pki.CertFiles,
    name: str | None = None,
    role: str | None = None,
    now: dt.datetime | None = None,
) -> Check:
    """Key and certificate match, the CA issued it, it is valid now and for 14 more days,
    the CA itself is valid, and (when given) it carries ``name`` and ``role``."""
    now = now or _now()
    try:
        material = load_material(tls)
    except EnsnifError as exc:
        return Check("certificate", Status.FAIL, exc.message)
    cert = pki.parse_cert(material.cert)
    ca = pki.parse_cert(material.ca)
    ident = material.identity
    who = f"{ident.name} ({ident.role}), serial {cert.serial_number:x}"
    if name is not None and ident.name != name:
        return Check(
            "certificate",
            Status.FAIL,
            f"{tls.cert} is the certificate of {ident.name!r}, but the configuration names "
            f"{name!r}",
        )
    if role is not None and ident.role != role:
        return Check(
            "certificate", Status.FAIL, f"{tls.cert} has role {ident.role!r}, not {role!r}"
        )
    for label, c in (("the CA certificate", ca), (f"{tls.cert}", cert)):
        if now < c.not_valid_before_utc:
            return Check(
                "certificate",
                Status.FAIL,
                f"{label} is not valid before {c.not_valid_before_utc:%Y-%m-%d %H:%M} UTC "
                "(is this host's clock right?)",
            )
        if now > c.not_valid_after_utc:
            return Check(
                "certificate",
                Status.FAIL,
                f"{label} ({who if c is cert else ca.subject.rfc4514_string()}) expired on "
                f"{c.not_valid_after_utc:%Y-%m-%d}: ask the consortium lead for a new one",
            )
    left = cert.not_valid_after_utc - now
    until = f"valid until {cert.not_valid_after_utc:%Y-%m-%d} ({_days(left)} left)"
    if left < EXPIRY_WARNING:
        return Check(
            "certificate",
            Status.WARN,
            f"{who}: expires soon, {until}; rotate it (`ensnif pki rotate`, or a new "
            "`ensnif pki request` signed by the lead)",
        )
    if ca.not_valid_after_utc - now < EXPIRY_WARNING:
        return Check(
            "certificate",
            Status.WARN,
            f"{who}, {until}; but the CA certificate expires on {ca.not_valid_after_utc:%Y-%m-%d}",
        )
    return Check("certificate", Status.OK, f"{who}, {until}")


def check_crl(tls: pki.CertFiles, now: dt.datetime | None = None) -> Check:
    """The CA's revocation list: signed by the CA, not past its next update, and not
    listing this member's own certificate. A missing list means nothing is revoked."""
    now = now or _now()
    path = tls.crl_path
    if not path.exists():
        if tls.crl is None:
            return Check(
                "crl",
                Status.SKIP,
                f"no revocation list configured and none at {path} (nothing known revoked)",
            )
        return Check(
            "crl",
            Status.WARN,
            f"{path} (configured) does not exist: nothing is known revoked here; copy the "
            "CA's ca.crl from the consortium lead if it has one",
        )
    try:
        ca = pki.load_cert(tls.ca)
        crl = revocation.load_crl(path.read_bytes(), ca)
    except (OSError, ValueError, EnsnifError) as exc:
        detail = exc.message if isinstance(exc, EnsnifError) else str(exc)
        return Check("crl", Status.FAIL, f"{path}: {detail}")
    revoked = {e.serial for e in revocation.entries(crl)}
    try:
        own = pki.load_cert(tls.cert).serial_number
    except (OSError, ValueError):
        own = None
    if own in revoked:
        return Check(
            "crl", Status.FAIL, f"{path} revokes this member's own certificate (serial {own:x})"
        )
    number = revocation.crl_number(crl)
    listed = f"{path}: number {number}, {len(revoked)} revoked"
    due = crl.next_update_utc
    if due is not None and now > due:
        return Check(
            "crl",
            Status.WARN,
            f"{listed}; stale: its next update was due {due:%Y-%m-%d}; get the current "
            "ca.crl from the consortium lead",
        )
    return Check(
        "crl", Status.OK, listed + (f", next update {due:%Y-%m-%d}" if due is not None else "")
    )


# -- the coordinator --------------------------------------------------------------------


def check_coordinator(
    address: str, server_name: str, tls: pki.CertFiles, timeout_s: float = DEFAULT_TIMEOUT_S
) -> Check:
    """A standard gRPC health check over mutual TLS with this member's certificate; the
    server must prove the identity ``server_name``."""
    where = f"{server_name} at {address}"
    start = time.monotonic()
    try:
        with secure_channel(address, tls, server_name) as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=timeout_s
            )
    except grpc.RpcError as err:
        code = err.code()
        details = err.details() or ""
        if code == grpc.StatusCode.DEADLINE_EXCEEDED:
            text = f"no answer from {where} within {timeout_s:g} s"
        elif code == grpc.StatusCode.PERMISSION_DENIED:
            text = f"{where} refused this member's certificate: {details}"
        else:
            text = f"cannot reach {where} over mutual TLS ({code.name.lower()}: {details})"
        return Check("coordinator", Status.FAIL, text)
    except (OSError, EnsnifError) as exc:
        detail = exc.message if isinstance(exc, EnsnifError) else str(exc)
        return Check("coordinator", Status.FAIL, f"cannot use the TLS files: {detail}")
    ms = (time.monotonic() - start) * 1000
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
        return Check("coordinator", Status.FAIL, f"{where} answers but is {status}")
    return Check("coordinator", Status.OK, f"{where} is serving over mutual TLS ({ms:.0f} ms)")


@dataclass(frozen=True)
class CoordinatorView:
    """One ``ListParties`` answer: the members, and the clock measured by the call."""

    parties: list[pb.Party]
    skew: dt.timedelta  # the coordinator's clock minus this host's, at the call's midpoint
    rtt: dt.timedelta  # the call's round trip: the skew is known to within half of it


def query_coordinator(
    address: str,
    server_name: str,
    tls: pki.CertFiles,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    wall_clock: Callable[[], float] = time.time,
) -> CoordinatorView | str:
    """``ListParties`` over mutual TLS; a sentence saying why not on failure.

    The coordinator stamps its answer somewhere between the moment this host sent the
    call and the moment the answer arrived, so skew = its stamp - the local midpoint,
    wrong by at most half the round trip (measured on the monotonic clock)."""
    try:
        with secure_channel(address, tls, server_name) as channel:
            stub = coordinator_pb2_grpc.CoordinatorServiceStub(channel)
            stub.ListParties(cpb.ListPartiesRequest(), timeout=timeout_s)  # connect first
            sent, start = wall_clock(), time.monotonic()
            reply = stub.ListParties(cpb.ListPartiesRequest(), timeout=timeout_s)
            rtt = time.monotonic() - start
    except grpc.RpcError as err:
        return f"ListParties failed ({err.code().name.lower()}: {err.details() or ''})"
    except (OSError, EnsnifError) as exc:
        return exc.message if isinstance(exc, EnsnifError) else str(exc)
    if not reply.server_time_unix_ms:
        return "the coordinator does not report its time (older than this ensnif)"
    skew = reply.server_time_unix_ms / 1000 - (sent + rtt / 2)
    return CoordinatorView(
        list(reply.parties), dt.timedelta(seconds=skew), dt.timedelta(seconds=rtt)
    )


def check_clock(skew: dt.timedelta | None, rtt: dt.timedelta = dt.timedelta(0)) -> Check:
    """``skew`` = the coordinator's clock minus this host's (``None``: not measured),
    ``rtt`` the round trip of the measurement. Judged by what the skew is at least
    (``|skew| - rtt/2``): warn above 30 s, fail above 5 minutes."""
    if skew is None:
        return Check("clock", Status.SKIP, "skew against the coordinator not measured")
    off = abs(skew.total_seconds())
    bound = rtt.total_seconds() / 2
    side = "ahead of" if skew.total_seconds() > 0 else "behind"
    text = (
        f"the coordinator's clock is {off:.1f} s {side} this host's "
        f"(\u00b1{bound * 1000:.0f} ms, round trip {rtt.total_seconds() * 1000:.0f} ms)"
    )
    least = dt.timedelta(seconds=max(off - bound, 0.0))
    if least > CLOCK_FAILURE:
        return Check(
            "clock",
            Status.FAIL,
            f"{text}: more than {CLOCK_FAILURE.total_seconds() / 60:.0f} minutes, certificates "
            "and signed approvals will be refused; fix this host's clock (NTP)",
        )
    if least > CLOCK_WARNING:
        return Check(
            "clock",
            Status.WARN,
            f"{text}: more than {CLOCK_WARNING.total_seconds():.0f} s; check NTP on both hosts",
        )
    return Check("clock", Status.OK, text)


# -- a node's own resources -------------------------------------------------------------


def check_dataset(cfg: DatasetConfig, party: str) -> Check:
    """The node's own start-up check: columns exist, every value of every numeric column
    is a number within its declared bounds (or the dataset clamps)."""
    from party_node import datasets  # pandas/pyarrow/SQLAlchemy: only for a data owner

    name = f"dataset {cfg.name}"
    try:
        schema = datasets.schema_of(party, cfg)
        rows = datasets.check(cfg)
    except EnsnifError as exc:
        return Check(name, Status.FAIL, exc.message)
    except Exception as exc:  # a source's driver may raise anything; doctor reports it
        return Check(name, Status.FAIL, f"cannot read the source ({type(exc).__name__}: {exc})")
    numeric = [c.name for c in schema.columns if c.numeric]
    within = (
        f"{', '.join(numeric)} within the declared bounds" + (" (clamped)" if cfg.clamp else "")
        if numeric
        else "no numeric columns"
    )
    return Check(name, Status.OK, f"{rows} rows readable; {within}")


def check_mpc_ports(lo: int, hi: int) -> Check:
    """Every port of the range bindable on all interfaces, as the node's workers bind them."""
    busy = []
    for port in range(lo, hi + 1):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("", port))
            except OSError:
                busy.append(port)
    total = hi - lo + 1
    free = total - len(busy)
    span = f"MPC ports {lo}-{hi}"
    if not busy:
        return Check("mpc ports", Status.OK, f"{span}: all {total} bindable")
    shown = ", ".join(map(str, busy[:5])) + (", ..." if len(busy) > 5 else "")
    if free == 0:
        return Check(
            "mpc ports",
            Status.FAIL,
            f"{span}: none bindable on this host (in use: {shown}); no job could run",
        )
    return Check(
        "mpc ports",
        Status.WARN,
        f"{span}: {free} of {total} bindable; in use: {shown} (a running node's jobs hold "
        "some; otherwise another program does)",
    )


# -- the whole diagnosis ----------------------------------------------------------------


def _skipped(names: list[str], why: str) -> list[Check]:
    return [Check(n, Status.SKIP, why) for n in names]


def diagnose_party(path: Path, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Check]:
    first, cfg = check_party_config(path)
    if cfg is None:
        return [
            first,
            *_skipped(
                ["certificate", "crl", "coordinator", "clock", "peers", "datasets", "mpc ports"],
                "not checked: the configuration did not load",
            ),
        ]
    coordinator = check_coordinator(cfg.coordinator, cfg.coordinator_name, cfg.tls, timeout_s)
    checks = [
        first,
        check_certificate(cfg.tls, name=cfg.name, role="party"),
        check_crl(cfg.tls),
        coordinator,
    ]
    view = _view(coordinator, cfg.coordinator, cfg.coordinator_name, cfg.tls, timeout_s)
    if isinstance(view, CoordinatorView):
        checks.append(check_clock(view.skew, view.rtt))
        from ensnif_mpc.cli import doctor_peers  # it builds on this module's Check

        checks += doctor_peers.check_peers(
            view.parties, cfg.name, min(timeout_s, PEER_PROBE_TIMEOUT_S)
        )
    else:
        checks += _skipped(["clock", "peers"], view)
    checks += [check_dataset(d, cfg.name) for d in cfg.datasets]
    checks.append(check_mpc_ports(*cfg.mpc_ports))
    return checks


def diagnose_profile(path: Path | None, timeout_s: float = DEFAULT_TIMEOUT_S) -> list[Check]:
    first, profile = check_profile(path)
    if profile is None:
        return [
            first,
            *_skipped(
                ["certificate", "crl", "coordinator", "clock"],
                "not checked: the profile did not load",
            ),
        ]
    coordinator = check_coordinator(
        profile.coordinator, profile.coordinator_name, profile.tls, timeout_s
    )
    view = _view(coordinator, profile.coordinator, profile.coordinator_name, profile.tls, timeout_s)
    clock = (
        check_clock(view.skew, view.rtt)
        if isinstance(view, CoordinatorView)
        else Check("clock", Status.SKIP, view)
    )
    return [first, check_certificate(profile.tls), check_crl(profile.tls), coordinator, clock]


def _view(
    coordinator: Check, address: str, server_name: str, tls: pki.CertFiles, timeout_s: float
) -> CoordinatorView | str:
    """The coordinator's answer, or why the checks that need it are not run."""
    if coordinator.status is Status.FAIL:
        return "not checked: the coordinator cannot be reached"
    got = query_coordinator(address, server_name, tls, timeout_s)
    return got if isinstance(got, CoordinatorView) else f"not measured: {got}"


def failed(checks: list[Check]) -> bool:
    return any(c.status is Status.FAIL for c in checks)


def summary(checks: list[Check]) -> dict[str, int]:
    return {str(s): sum(c.status is s for c in checks) for s in Status}
