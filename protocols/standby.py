"""A pre-started fork server for job workers: imports done once, nothing of any job in it.

Why: a worker's fixed cost is mostly imports (numpy, gmpy2, MPyC's modules, the data layer,
the protocol programs), about 0.5–1 s of CPU per party per job. A standby process that
imports them and then *becomes* one job's worker (the first design) takes that time off the
job's path but not off the machine: every job still pays one import per party, which capped
a loaded 2-core machine near 20 small jobs a minute. This server imports once per node and
forks one child per job. A fork copies the imported modules copy-on-write in a few ms; the
child then becomes that job's worker exactly as ``python -m protocols.worker JOB_DIR`` would
(same session file, same log, same exit codes). Even those ms are taken off the job's path:
the server keeps one child forked ahead (idle, detached, nothing of any job in it) that
blocks on a pipe until the next job's directory arrives, and forks the next idle child only
after the job's worker ended and its share was delivered (or half a second after a hand-off
on a busy node), so that fork does not compete for CPU with a job on its path. A job that
finds no idle child gets one forked at once.

What it may hold: code only. The server never reads a session, data or a key: it reads
job directories from its stdin, one per line, and hands each to the idle child (or forks
one), which reads its own job's files. A child serves exactly one job and exits; nothing
flows back from a child to the server but its exit status, so no child's data can reach the
next child. MPyC's runtime module is the one import left for the child, because importing it parses
``sys.argv`` and builds the runtime from the session's options (about 0.06 s). What the
children do share with each other is the server's memory layout (as Android's zygote
children do): the same addresses for the same code. That weakens address randomization
against a memory-corruption exploit inside one job, which the threat model does not rely on
(members are semi-honest; a malicious member program already runs with its worker's rights).
Randomness: MPyC and the protocols draw from ``secrets`` (the OS), which a fork does not
copy; Python's ``random`` reseeds itself in a child, and numpy's legacy global generator is
reseeded here from the OS before the job starts.

The wire, line by line (paths contain no newline: job ids are alphanumeric):

- node → server (stdin): ``JOB_DIR``; closing stdin asks the server to exit once its
  running children have ended;
- server → node (stdout): ``ready`` once the imports are done and the first idle child is
  forked; ``started PID`` for every
  directory in the order received (a directory sent before ``ready`` waits for it); and
  ``exit PID RC`` when that child ends (RC as ``subprocess`` reports it: negative for a
  signal), pushed the moment it is reaped (a pidfd per child), so the node learns a job's end
  without polling. Before it, ``done PID`` when that child's worker wrote its result and its
  last status (``protocols.worker`` writes ``done`` on the pipe named by ``DONE_FD_ENV``):
  the node delivers the share then, without waiting for the process to be torn down and
  reaped (8-18 ms on a loaded machine).

The server dies with its node (``ensnif_mpc.procs.die_with_parent``), and every child with
the server: a node killed with SIGKILL leaves no worker behind. Each child is the leader of
its own session and process group, so the node stops a job's worker with ``killpg``.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import os
import select
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from ensnif_mpc.jobs import worker_session

DONE_FD_ENV = worker_session.DONE_FD_ENV

# MPyC's modules that import without building a runtime (mpyc.runtime parses sys.argv).
_MPYC = (
    "mpyc.numpy",
    "mpyc.finfields",
    "mpyc.thresha",
    "mpyc.asyncoro",
    "mpyc.sectypes",
    "mpyc.mpctools",
    "mpyc.secgroups",
    "mpyc.random",
    "mpyc.statistics",
    "mpyc.seclists",
    "mpyc.secpols",
)


# What a job's worker imports lazily (found by profiling forked workers): pandas and
# Arrow's readers for an owner's bounds checks and files, what mpyc.runtime imports, the
# worker's own late imports, and the standard modules they pull in.
_LATE = (
    "ensnif_mpc.data.file_source",
    "ensnif_mpc.data.sources",
    "ensnif_mpc.results.envelope",
    "protocols.he_outsourced",
    "protocols.transport_stats",
    "protocols.rounds",
    "pandas",
    "pyarrow.csv",
    "pyarrow.dataset",
    "pyarrow.fs",
    "pyarrow.acero",
    "encodings.utf_8_sig",
    "configparser",
    "concurrent.futures.thread",
    "encodings.idna",
    "ssl",
    "_strptime",
    "zoneinfo",
)


def _import_runtime() -> None:
    """Import ``mpyc.runtime`` (about 0.05 s of CPU a worker) with a placeholder runtime.

    The import builds a runtime from ``sys.argv``: here one party and no peers, which no
    job uses (each child builds its session's, ``protocols.worker.session_runtime``). The
    event loop that runtime made is closed and unset, so no child inherits a selector it
    would share with the server and its siblings (an epoll instance survives a fork): each
    child's runtime makes its own loop."""
    import asyncio

    argv, sys.argv = sys.argv, ["ensnif-fork-server", "--no-log"]
    try:
        from mpyc import runtime
    finally:
        sys.argv = argv
    loop = runtime.mpc._loop
    asyncio.set_event_loop(None)
    loop.close()


def _warm_crypto() -> None:
    """Use OpenSSL once the way every job does (an EC key, a certificate parsed, a result
    sealed, TLS contexts made): its first use in a process builds tables and seeds its random
    generator, about 10 ms of each child's CPU per job when left to the children.

    Nothing of it is kept or secret: a throwaway key and per-job certificate for no job.
    Random state is not shared by the children: OpenSSL (1.1.1 and later) reseeds its
    generator in a forked child, and ``secrets`` reads the OS."""
    import ssl

    from cryptography.hazmat.primitives.asymmetric import ec

    from ensnif_mpc.security import mpc_session, pki, sealing

    throwaway = pki.key_pem(ec.generate_private_key(ec.SECP256R1()))
    credential = mpc_session.mint("warmup", 0, throwaway, hours=1)
    sealing.seal(credential.cert_pem, b"warm-up", b"warm-up")
    for protocol in (ssl.PROTOCOL_TLS_SERVER, ssl.PROTOCOL_TLS_CLIENT):
        ssl.SSLContext(protocol)


def prepare() -> None:
    """Import what every job needs: the worker, MPyC's modules, the data layer and every
    registered protocol's program module, and what they import on first use; warm OpenSSL;
    then freeze what exists in the garbage collector's permanent generation, so a child's
    collections never walk (and so copy, page by page) the server's objects."""
    from protocols import worker  # noqa: F401
    from protocols.registry import catalog

    for name in (*_MPYC, *_LATE):
        importlib.import_module(name)
    _import_runtime()
    for definition in catalog().values():
        module = definition.program.split(":")[0]
        if module.startswith("protocols."):
            importlib.import_module(module)
    _warm_crypto()
    gc.collect()
    gc.freeze()


def _detach(server_pid: int, inherited: list[int]) -> None:
    """In a forked child: cut every tie to the server but the exit status (and, for an idle
    child, the pipe its job directory comes on): its own session, death with the server,
    none of the server's pipes or pidfds, and no output to the server's report stream."""
    from ensnif_mpc.procs import PARENT_ENV, die_with_parent

    os.setsid()  # its own process group: the node stops the worker and what it forks
    os.environ[PARENT_ENV] = str(server_pid)
    die_with_parent()  # SIGKILL when the server goes (the server goes with its node)
    for fd in inherited:  # the server's other pipes and pidfds are not the job's
        with contextlib.suppress(OSError):
            os.close(fd)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.close(null)
    import numpy as np

    np.random.seed()  # the legacy global generator, from the OS (a fork copied the server's)


def _run_job(directory: Path) -> int:
    """In a detached child: become ``directory``'s worker."""
    # Its output goes where a cold-started worker's does (worker.out in the job directory).
    out = os.open(directory / "worker.out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    from protocols.worker import main as run_job

    return run_job([str(directory)])


def _await_job(source: int) -> Path | None:
    """In an idle child: block until the server sends the one job directory this child will
    serve (None: the server closed the pipe without one, so the child has nothing to do)."""
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(source, 4096)
        if not chunk:
            return None
        line += chunk
    os.close(source)
    return Path(line.decode().strip())


def _fork(body: Callable[[], int]) -> int:
    """Fork a child that runs ``body`` and exits with its code; the child's pid."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        code = body()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(BaseException):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _fork_job(directory: Path, inherited: list[int]) -> tuple[int, int]:
    """A child forked for ``directory`` now (no idle child was ready): (pid, the read end
    of its ``done`` pipe)."""
    server_pid = os.getpid()
    done, signal_end = os.pipe()

    def body() -> int:
        _detach(server_pid, [*inherited, done])
        os.environ[DONE_FD_ENV] = str(signal_end)
        return _run_job(directory)

    pid = _fork(body)
    os.close(signal_end)
    return pid, done


class _Idle:
    """One pre-forked child, detached and waiting on a pipe for its job directory.

    Why: the fork (copying the server's page tables) and the child's own set-up are done
    before any job arrives, so a job's worker starts the moment its directory is written to
    the pipe. The child holds nothing of any job until then, and serves exactly that one
    job: once handed a directory it is an ordinary job child. An idle child that died is
    never handed a job: its pidfd shows its end and it is replaced."""

    def __init__(self, inherited: list[int]) -> None:
        server_pid = os.getpid()
        source, self.pipe = os.pipe()
        self.done, signal_end = os.pipe()

        def body() -> int:
            _detach(server_pid, [*inherited, self.pipe, self.done])
            os.environ[DONE_FD_ENV] = str(signal_end)
            directory = _await_job(source)
            return 0 if directory is None else _run_job(directory)

        self.pid = _fork(body)
        os.close(source)
        os.close(signal_end)
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except OSError:  # no pidfd (old kernel): its end is noticed at hand-off instead
            self.pidfd = -1

    def fds(self) -> list[int]:
        return [fd for fd in (self.pipe, self.pidfd, self.done) if fd >= 0]

    def alive(self) -> bool:
        try:
            return os.waitpid(self.pid, os.WNOHANG)[0] == 0
        except ChildProcessError:
            return False

    def hand(self, directory: Path) -> bool:
        """Give the child its job; False if it died while idle (it is then reaped). On
        success its ``done`` pipe passes to the job's children table."""
        if not self.alive():
            self.close()
            return False
        try:
            os.write(self.pipe, f"{directory}\n".encode())  # < PIPE_BUF: one atomic write
        except OSError:  # it died between the check and the write
            self.close()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            return False
        os.close(self.pipe)
        if self.pidfd >= 0:
            os.close(self.pidfd)  # the job's children table opens its own
        self.pipe = self.pidfd = -1
        return True

    def close(self) -> None:
        """No job for it (the server stops, or it died): closing its pipe ends it."""
        for fd in self.fds():
            with contextlib.suppress(OSError):
                os.close(fd)
        self.pipe = self.pidfd = self.done = -1


class _Children:
    """The running children, each with a pidfd that becomes readable when it ends."""

    def __init__(self) -> None:
        self.by_fd: dict[int, int] = {}
        self.done: dict[int, int] = {}  # the read end of each child's done pipe -> its pid

    def add(self, pid: int, done: int) -> None:
        self.done[done] = pid
        try:
            self.by_fd[os.pidfd_open(pid)] = pid
        except OSError:  # no pidfd (old kernel): reaped by the periodic check instead
            self.by_fd[-pid] = pid

    def fds(self) -> list[int]:
        return [fd for fd in (*self.by_fd, *self.done) if fd >= 0]

    def signalled(self, ready: list[int]) -> list[int]:
        """The children that said their result is written (``done`` on their pipe); each
        pipe is read once and closed (an end of file without ``done`` says nothing)."""
        said = []
        for fd in [fd for fd in self.done if fd in ready]:
            try:
                got = os.read(fd, 64)
            except OSError:
                got = b""
            if got.startswith(b"done"):
                said.append(self.done[fd])
            del self.done[fd]
            os.close(fd)
        return said

    def reap(self, ready: list[int]) -> list[tuple[int, int]]:
        """The children that ended: (pid, returncode); their pidfds closed."""
        ended = []
        for fd, pid in list(self.by_fd.items()):
            if fd >= 0 and fd not in ready:
                continue
            try:
                done, status = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost, never success
                done, status = pid, -1
            if done == 0:
                continue
            ended.append((pid, os.waitstatus_to_exitcode(status) if status >= 0 else -9))
            del self.by_fd[fd]
            if fd >= 0:
                os.close(fd)
            for done in [d for d, p in self.done.items() if p == pid]:
                del self.done[done]
                os.close(done)
        return ended


# The next idle child is forked this long after the last job child ended (past the node's
# delivery of that job's share), or this long after the last hand-off on a node that is never
# without a job: never at once, so its fork takes no CPU from a job while it starts, connects
# and delivers.
REFILL_AFTER_EXIT_S = 0.05
REFILL_S = 0.5


def serve(stdin: int = 0, stdout: int = 1, prefork: bool = True) -> int:
    """Fork one worker per job directory read from ``stdin``; report on ``stdout``.

    With ``prefork``, one idle child waits for the next job (:class:`_Idle`); a job that
    finds none gets a child forked for it at once."""

    def say(line: str) -> None:
        with contextlib.suppress(OSError):  # the node went: pdeathsig ends us anyway
            os.write(stdout, f"{line}\n".encode())

    children = _Children()

    def inherited() -> list[int]:
        # fds 0-2 are replaced in a child; any other pipe or pidfd of the server is closed.
        return [*(fd for fd in (stdin, stdout) if fd > 2), *children.fds()]

    def fork_idle() -> _Idle | None:
        try:
            return _Idle(inherited())
        except OSError:  # no fork now (memory, process limits): jobs get theirs on demand
            traceback.print_exc()
            return None

    idle = fork_idle() if prefork else None
    refill_at = None if idle is not None or not prefork else time.monotonic() + REFILL_S
    say("ready")
    pending = b""
    reading = True
    while reading or children.by_fd:
        watched = ([stdin] if reading else []) + children.fds()
        if idle is not None and idle.pidfd >= 0:
            watched.append(idle.pidfd)
        # A periodic reap for children without a pidfd; the idle child's refill time.
        waits = [0.2] if any(fd < 0 for fd in children.by_fd) else []
        if refill_at is not None:
            waits.append(max(0.0, refill_at - time.monotonic()))
        ready, _, _ = select.select(watched, [], [], min(waits) if waits else None)
        if idle is not None and idle.pidfd in ready:  # it died while idle: replaced later
            idle.close()
            with contextlib.suppress(ChildProcessError):
                os.waitpid(idle.pid, 0)
            idle, refill_at = None, time.monotonic() + REFILL_S
        if stdin in ready:
            chunk = os.read(stdin, 4096)
            if not chunk:
                reading = False  # the node asks us to go once the running jobs end
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for raw in lines:
                line = raw.decode().strip()
                if not line:
                    continue
                if idle is not None and idle.hand(Path(line)):
                    pid, done = idle.pid, idle.done
                else:
                    if idle is not None:
                        idle.close()
                    pid, done = _fork_job(Path(line), inherited())
                idle = None
                children.add(pid, done)
                say(f"started {pid}")
                if prefork:
                    refill_at = time.monotonic() + REFILL_S
        for pid in children.signalled(ready):
            say(f"done {pid}")
        for pid, code in children.reap(ready):
            say(f"exit {pid} {code}")
            if not children.by_fd and refill_at is not None:
                refill_at = min(refill_at, time.monotonic() + REFILL_AFTER_EXIT_S)
        if not reading:
            if idle is not None:  # no more jobs: the idle child ends
                idle.close()
                idle = None
            refill_at = None
        elif idle is None and refill_at is not None and time.monotonic() >= refill_at:
            idle = fork_idle()
            refill_at = None if idle is not None else time.monotonic() + REFILL_S
    return 0


# Libraries that start threads when imported, told not to: a fork copies only the calling
# thread, so the server must hold no other (OpenBLAS's pool, Arrow's jemalloc background
# thread). The workers inherit these settings: their BLAS runs single-threaded, which the
# MPC programs (object arrays, integer limbs) do not use for their bulk work anyway.
SINGLE_THREADED = {"OPENBLAS_NUM_THREADS": "1", "JE_ARROW_MALLOC_CONF": "background_thread:false"}


def main() -> int:
    from ensnif_mpc.procs import die_with_parent

    die_with_parent()
    os.environ.update(SINGLE_THREADED)
    prepare()
    return serve()


if __name__ == "__main__":
    sys.exit(main())
