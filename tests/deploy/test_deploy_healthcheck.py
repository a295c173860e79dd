"""deploy/healthcheck.py (the image's ensnif-healthcheck, the compose healthchecks and the
Helm exec probes) against a real server built by ensnif_mpc.rpc.serving.build_server, the
function both daemons serve with: mTLS, the standard gRPC health service, on 127.0.0.1."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from grpc_health.v1 import health_pb2
from grpc_health.v1.health import HealthServicer

from ensnif_mpc.rpc.serving import build_server
from ensnif_mpc.security.pki import CertFiles
from tests.deploy.conftest import DEPLOY

PROBE = DEPLOY / "healthcheck.py"


@pytest.fixture
def served(ca_dir: Path) -> Iterator[tuple[int, HealthServicer]]:
    """A coordinator-identity gRPC server with only the health service; (port, servicer)."""
    files = CertFiles(
        ca_dir / "ca.crt",
        ca_dir / "coordinator" / "coordinator.crt",
        ca_dir / "coordinator" / "coordinator.key",
    )
    server, port, health = build_server("127.0.0.1:0", files, lambda _server: None, [])
    try:
        yield port, health
    finally:
        server.stop(grace=None)


def write_config(tmp_path: Path, ca_dir: Path, listen: str) -> Path:
    path = tmp_path / "coordinator.toml"
    path.write_text(
        f'name = "coordinator"\nlisten = "{listen}"\n'
        'database = "sqlite:///coordinator.db"\n\n[tls]\n'
        f'ca = "{ca_dir}/ca.crt"\ncert = "coordinator/coordinator.crt"\n'
        'key = "coordinator/coordinator.key"\n'
    )
    # Relative TLS paths are resolved against the config's directory, as ensnif does.
    (tmp_path / "coordinator").symlink_to(ca_dir / "coordinator")
    return path


def probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(PROBE), *args, "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_serving_daemon_passes(
    served: tuple[int, HealthServicer], ca_dir: Path, tmp_path: Path
) -> None:
    port, _ = served
    config = write_config(tmp_path, ca_dir, f"127.0.0.1:{port}")

    result = probe("--config", str(config))

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"coordinator at 127.0.0.1:{port}: SERVING"


def test_wildcard_listen_address_is_probed_on_loopback(
    served: tuple[int, HealthServicer], ca_dir: Path, tmp_path: Path
) -> None:
    port, _ = served
    config = write_config(tmp_path, ca_dir, f"0.0.0.0:{port}")

    result = probe("--config", str(config))

    assert result.returncode == 0, result.stderr
    assert f"127.0.0.1:{port}: SERVING" in result.stdout


def test_env_listen_override_is_honoured(
    served: tuple[int, HealthServicer], ca_dir: Path, tmp_path: Path
) -> None:
    port, _ = served
    config = write_config(tmp_path, ca_dir, "127.0.0.1:1")

    result = probe(
        "--config", str(config), env={"ENSNIF_LISTEN": f"127.0.0.1:{port}", "PATH": "/usr/bin"}
    )

    assert result.returncode == 0, result.stderr


def test_not_serving_daemon_fails(
    served: tuple[int, HealthServicer], ca_dir: Path, tmp_path: Path
) -> None:
    port, health = served
    health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    config = write_config(tmp_path, ca_dir, f"127.0.0.1:{port}")

    result = probe("--config", str(config))

    assert result.returncode == 1
    assert "NOT_SERVING" in result.stdout


def test_stopped_daemon_fails_as_unreachable(
    served: tuple[int, HealthServicer], ca_dir: Path, tmp_path: Path
) -> None:
    port, _ = served
    config = write_config(tmp_path, ca_dir, f"127.0.0.1:{port}")

    result = probe("--config", str(config), "--address", "127.0.0.1:1")

    assert result.returncode == 1
    assert "unreachable (unavailable)" in result.stdout


def test_certificate_for_another_name_is_refused(
    served: tuple[int, HealthServicer], ca_dir: Path, tmp_path: Path
) -> None:
    port, _ = served
    config = write_config(tmp_path, ca_dir, f"127.0.0.1:{port}")
    config.write_text(config.read_text().replace('name = "coordinator"', 'name = "grocery"'))

    result = probe("--config", str(config))

    assert result.returncode == 1  # the server's certificate does not name "grocery"
    assert "unreachable" in result.stdout


def test_unreadable_config_is_a_config_error(tmp_path: Path) -> None:
    result = probe("--config", str(tmp_path / "missing.toml"))

    assert result.returncode == 2
    assert "cannot read" in result.stderr
