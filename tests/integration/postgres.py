"""A throwaway PostgreSQL server for the state tests: ``initdb`` + ``pg_ctl`` in a temp dir.

One server per test session (about a second to start), listening on a free loopback
port and on a Unix socket in its own directory, trusting local connections, fsync
off; each test gets a fresh database. Without PostgreSQL's server programs or the
``psycopg`` driver the tests that need it skip, saying why (``make test`` installs
the Debian package when it runs as root: scripts/ensure_postgres.sh).

``initdb`` refuses to run as root, so as root the server runs as ``nobody``. A small
watchdog stops the server if this process dies without tearing it down.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

START_TIMEOUT_S = 30
INSTALL_HINT = (
    "install PostgreSQL's server (Debian: apt-get install postgresql; `make test` does it "
    "when run as root)"
)


def find_program(name: str) -> str | None:
    """``name`` on PATH, else in Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = shutil.which(name)
    if found:
        return found
    candidates = glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
    candidates.sort(key=lambda p: int(Path(p).parent.parent.name.split(".")[0] or 0))
    return candidates[-1] if candidates else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PostgresServer:
    def __init__(self, initdb: str, pg_ctl: str) -> None:
        self.initdb, self.pg_ctl = initdb, pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="ensnif-pg-"))
        self.data = self.root / "data"
        self.port = 0
        self._prefix: list[str] = []
        self._watchdog: subprocess.Popen[bytes] | None = None
        self._names = itertools.count(1)
        if os.geteuid() == 0:  # initdb will not run as root
            nobody = pwd.getpwnam("nobody")
            os.chown(self.root, nobody.pw_uid, nobody.pw_gid)
            self._prefix = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                            "--clear-groups"]  # fmt: skip

    def _run(self, *args: str, timeout: float = START_TIMEOUT_S) -> None:
        out = subprocess.run(
            [*self._prefix, *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "LC_ALL": "C", "PGTZ": "UTC"},
        )
        if out.returncode:
            raise RuntimeError(f"{Path(args[0]).name} failed: {(out.stderr or out.stdout)[-800:]}")

    def start(self) -> None:
        self._run(
            self.initdb,
            "-D", str(self.data), "-U", "postgres", "-A", "trust", "-E", "UTF8",
            "--locale=C", "--no-sync", "--no-instructions",
        )  # fmt: skip
        for attempt in range(3):  # a port taken between picking and binding: pick another
            self.port = _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=60 -c shared_buffers=16MB"
            )
            try:
                self._run(
                    self.pg_ctl,
                    "-D", str(self.data), "-l", str(self.root / "server.log"),
                    "-o", options, "-w", "-t", str(START_TIMEOUT_S), "start",
                )  # fmt: skip
                break
            except RuntimeError:
                if attempt == 2:
                    raise RuntimeError(
                        "pg_ctl start failed: " + (self.root / "server.log").read_text()[-800:]
                    ) from None
        self._watchdog = subprocess.Popen(
            [
                "sh",
                "-c",
                f"while kill -0 {os.getpid()} 2>/dev/null; do sleep 1; done; "
                f'{" ".join(self._prefix)} "{self.pg_ctl}" -D "{self.data}" '
                f'-m immediate stop; rm -rf "{self.root}"',
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # outlives a kill of pytest's process group
        )

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its SQLAlchemy URL."""
        import psycopg

        name = f"t{next(self._names)}"
        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            # template0 by file copy (PostgreSQL 15+): about 0.1 s, several times faster
            fast = " STRATEGY FILE_COPY" if conn.info.server_version >= 150000 else ""
            conn.execute(f'CREATE DATABASE "{name}" TEMPLATE template0{fast}'.encode())
        return self.url(name)

    def stop(self) -> None:
        try:
            if self.data.exists():
                self._run(self.pg_ctl, "-D", str(self.data), "-m", "immediate",
                          "-w", "stop")  # fmt: skip
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            print(f"postgres test server: {exc}", file=sys.stderr)
        finally:
            if self._watchdog is not None:
                self._watchdog.kill()
                self._watchdog.wait()
            shutil.rmtree(self.root, ignore_errors=True)


def unavailable() -> str | None:
    """Why the PostgreSQL tests cannot run here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "PostgreSQL tests skipped: the psycopg driver is missing (pip install -e '.[dev]')"
    for program in ("initdb", "pg_ctl"):
        if find_program(program) is None:
            return f"PostgreSQL tests skipped: {program} not found; {INSTALL_HINT}"
    if os.geteuid() == 0 and shutil.which("setpriv") is None:
        return "PostgreSQL tests skipped: running as root without setpriv to drop to nobody"
    return None


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    reason = unavailable()
    if reason:
        pytest.skip(reason)
    initdb, pg_ctl = find_program("initdb"), find_program("pg_ctl")
    assert initdb is not None and pg_ctl is not None
    server = PostgresServer(initdb, pg_ctl)
    try:
        server.start()
    except (RuntimeError, subprocess.TimeoutExpired, OSError) as exc:
        server.stop()  # installed but not starting is a failure to look at, not a skip
        pytest.fail(f"the PostgreSQL test server did not start: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty database on the session's server."""
    return postgres_server.create_database()
