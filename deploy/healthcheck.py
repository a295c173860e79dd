#!/usr/bin/env python3
"""gRPC health probe for an Ensnif daemon (coordinator or party node), over mutual TLS.

Both daemons serve the standard ``grpc.health.v1.Health`` service, but only over mTLS
with a consortium certificate, so Kubernetes' native ``grpc:`` probe (plaintext) and
plain TCP checks cannot ask it. This probe reads the daemon's own TOML config (its
``listen`` address, honouring ``ENSNIF_LISTEN``, its ``name`` and its ``[tls]`` files),
dials the daemon with the daemon's own certificate and asks ``Check("")``.

Exit codes: 0 SERVING; 1 not serving or unreachable; 2 unusable config.

    ensnif-healthcheck                          # /etc/ensnif/coordinator.toml or party.toml
    ensnif-healthcheck --config /etc/ensnif/party.toml
    ENSNIF_HEALTH_CONFIG=/etc/ensnif/party.toml ensnif-healthcheck

Installed in the image as /usr/local/bin/ensnif-healthcheck (deploy/Dockerfile). It
imports only grpcio and grpcio-health-checking, so a probe every few seconds stays cheap.
"""

from __future__ import annotations

import argparse
import os
import sys
import tomllib
from pathlib import Path

DEFAULT_CONFIGS = (Path("/etc/ensnif/coordinator.toml"), Path("/etc/ensnif/party.toml"))
WILDCARDS = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]", "": "127.0.0.1"}


class ProbeConfigError(Exception):
    pass


def _resolve(base: Path, value: object, where: str) -> Path:
    if not isinstance(value, str) or not value:
        raise ProbeConfigError(f"{where}: expected a path")
    p = Path(os.path.expandvars(value)).expanduser()
    return p if p.is_absolute() else (base / p).resolve()


def dial_address(listen: str) -> str:
    """The address to dial for a ``listen`` address: a wildcard host becomes loopback."""
    host, sep, port = listen.rpartition(":")
    if not sep or not port.isdigit():
        raise ProbeConfigError(f"listen: expected host:port, got {listen!r}")
    return f"{WILDCARDS.get(host, host)}:{port}"


def target(config: Path) -> tuple[str, str, bytes, bytes, bytes]:
    """(address, server name, ca, cert, key) of the daemon described by ``config``."""
    try:
        raw = tomllib.loads(config.read_text())
    except OSError as exc:
        raise ProbeConfigError(f"cannot read {config}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProbeConfigError(f"{config}: not valid TOML ({exc})") from None
    base = config.parent.resolve()
    is_coordinator = "database" in raw or config.name.startswith("coordinator")
    default_listen = "127.0.0.1:50051" if is_coordinator else "127.0.0.1:50061"
    listen = os.environ.get("ENSNIF_LISTEN", str(raw.get("listen", default_listen)))
    name = str(raw.get("name", "coordinator"))
    tls = raw.get("tls")
    if not isinstance(tls, dict):
        raise ProbeConfigError(f"{config}: missing [tls] table with ca, cert, key")
    files = [_resolve(base, tls.get(k), f"tls.{k}") for k in ("ca", "cert", "key")]
    try:
        ca, cert, key = (f.read_bytes() for f in files)
    except OSError as exc:
        raise ProbeConfigError(f"cannot read {exc.filename}: {exc.strerror}") from None
    return dial_address(listen), name, ca, cert, key


def check(address: str, name: str, ca: bytes, cert: bytes, key: bytes, timeout: float) -> str:
    """The serving status of the daemon's whole server (service name "")."""
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    creds = grpc.ssl_channel_credentials(
        root_certificates=ca, private_key=key, certificate_chain=cert
    )
    options = [("grpc.ssl_target_name_override", name)]
    with grpc.secure_channel(address, creds, options=options) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=timeout)
        except grpc.RpcError as err:
            return f"unreachable ({err.code().name.lower()})"
    return str(health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ensnif-healthcheck", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=None, help="the daemon's TOML config")
    parser.add_argument("--address", help="host:port to dial instead of the config's listen")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds (default 5)")
    args = parser.parse_args(argv)
    config = args.config or (
        Path(os.environ["ENSNIF_HEALTH_CONFIG"]) if "ENSNIF_HEALTH_CONFIG" in os.environ else None
    )
    if config is None:
        config = next((p for p in DEFAULT_CONFIGS if p.exists()), None)
    if config is None:
        print("ensnif-healthcheck: no --config and no /etc/ensnif/*.toml", file=sys.stderr)
        return 2
    try:
        address, name, ca, cert, key = target(config)
    except ProbeConfigError as exc:
        print(f"ensnif-healthcheck: {exc}", file=sys.stderr)
        return 2
    status = check(args.address or address, name, ca, cert, key, args.timeout)
    print(f"{name} at {args.address or address}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
