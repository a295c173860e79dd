"""Worker processes forked from one pre-imported process, so the tests pay the imports once.

A worker's start is mostly imports (numpy, gmpy2, MPyC's modules, the data layer, every
protocol program): about 0.45 s of CPU per worker on the project machine, three workers per
MPC run, several hundred runs in ``make test``. The nodes avoid the cost on their critical
path with pre-started workers (``protocols/standby.py``); the tests here avoid it by forking.

One *zygote* per test process runs ``protocols.standby.prepare()`` (the very imports a
node's standby does, MPyC's runtime excepted) and then forks a child per worker the harness
starts. The child becomes ``python -m protocols.worker JOB_DIR`` as a standby does when it is
handed a job: its own working directory, environment, stdout/stderr file and ``sys.argv``,
then ``protocols.worker.main``. It is a separate process with its own MPyC runtime, sockets
and keys, talking TLS to its peers exactly as before; what it shares with its siblings is
the zygote's copy-on-write memory of code that was imported before any job existed (the
standby's rule: nothing of a job in it before the job is assigned). Python reseeds
``random`` in a forked child, OpenSSL notices the fork, and the child reseeds numpy's legacy
global generator from the OS. The nodes fork their workers the same way
(``protocols/standby.py``, whose imports and thread settings this reuses); the harness keeps
its own server because a test may give one run's workers an environment of its own (traces,
silence limits), which the node's server, serving one node, does not take per job.

The exec path (``python -m protocols.worker``) stays covered where a node starts cold
workers (``standby_workers = 0``), and any other command the harness is given (a stalled
worker, say) is started with ``subprocess`` as before. ``ENSNIF_TEST_FORK=0``
turns the zygote off.

Protocol on the zygote's pipes, one JSON object per line: the harness writes
``{"id", "dir", "cwd", "out", "env"}``; the zygote answers ``{"id", "pid"}`` and, for each
child that ends, ``{"exit": id, "code"}``, the code negative for a signal as ``subprocess``
reports it. The two may come in either order.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO, Any

ENABLED = os.environ.get("ENSNIF_TEST_FORK", "1") != "0"


# -- the zygote (runs in its own process) --------------------------------------------------
def _child(request: dict[str, Any], pipes: tuple[int, ...], added: dict[str, str]) -> None:
    """In the forked child: become the job's worker, then leave without the zygote's exits."""
    code = 1
    try:
        for fd in pipes:  # the zygote's answers; 0 and 1 are replaced below
            os.close(fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        env = {**added, **request["env"]}  # what the imports set (MPyC's MPYC_*), then the job's
        env["ENSNIF_PARENT_PID"] = str(os.getppid())  # die with the zygote (procs.py)
        os.environ.clear()
        os.environ.update(env)
        os.chdir(request["cwd"])
        null = os.open(os.devnull, os.O_RDONLY)
        if null != 0:
            os.dup2(null, 0)
            os.close(null)
        out = os.open(request["out"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.dup2(out, 1)
        os.dup2(out, 2)
        if out > 2:
            os.close(out)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own fds
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.argv = ["-m", request["dir"]]
        import numpy as np

        np.random.seed()  # the legacy global generator, from the OS (the fork copied ours)
        from protocols.worker import main as run_job

        try:
            code = int(run_job([request["dir"]]) or 0)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - reported as a cold worker's crash would be
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        import logging

        with contextlib.suppress(Exception):
            logging.shutdown()
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def zygote() -> int:
    from ensnif_mpc.procs import die_with_parent
    from protocols import standby

    die_with_parent()
    os.environ.update(standby.SINGLE_THREADED)  # no thread of a library to lose in a fork
    before = dict(os.environ)
    standby.prepare()
    added = {k: v for k, v in os.environ.items() if before.get(k) != v}
    answers = os.fdopen(os.dup(1), "w", buffering=1)
    lock = threading.Lock()

    def say(obj: dict[str, Any]) -> None:
        with lock:
            answers.write(json.dumps(obj) + "\n")

    ids: dict[int, int] = {}  # pid -> request id, of the children not yet reaped

    def reap() -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                time.sleep(0.05)
                continue
            with lock:  # a child is forked and recorded under the lock: its id is known
                ident = ids.pop(pid)
            say({"exit": ident, "code": os.waitstatus_to_exitcode(status)})

    # The reaper thread starts after every fork-sensitive import; a child forks from the
    # main thread and runs only its own code, never the reaper's.
    threading.Thread(target=reap, daemon=True).start()
    pipes = (answers.fileno(),)
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("ping"):  # warm(): the imports are done, nothing is forked
            say({"ready": request["id"]})
            continue
        with lock:  # no answer is half-written when a child is forked
            pid = os.fork()
            if pid == 0:
                _child(request, pipes, added)
            ids[pid] = int(request["id"])
        say({"id": request["id"], "pid": pid})
    return 0


# -- the harness's side --------------------------------------------------------------------
class ForkedWorker:
    """A worker forked by the zygote, with the part of ``subprocess.Popen`` the harness uses."""

    def __init__(self, server: Zygote, ident: int, pid: int) -> None:
        self._server = server
        self._ident = ident
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            self.returncode = self._server.exit_code(self._ident)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.poll() is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0)
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """The test process's zygote: started on first use, stopped with the process."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[str] | None = None
        self._exits: dict[int, int] = {}  # request id -> exit code
        self._pids: dict[int, int] = {}  # request id -> the forked worker's pid
        self._next = 0
        self._ready: set[int] = set()  # the pings answered
        self._cv = threading.Condition()

    def _ensure(self) -> subprocess.Popen[str]:
        if self._proc is None or self._proc.poll() is not None:
            from ensnif_mpc.procs import child_env

            env = child_env({k: v for k, v in os.environ.items() if not k.startswith("PYTEST")})
            self._proc = subprocess.Popen(
                [sys.executable, "-m", "tests.protocols.forkserver"],
                cwd=Path(__file__).resolve().parents[2],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                env=env,
            )
            threading.Thread(target=self._listen, args=(self._proc.stdout,), daemon=True).start()
        return self._proc

    def _listen(self, stream: IO[str]) -> None:
        for line in stream:
            message = json.loads(line)
            with self._cv:
                if "ready" in message:
                    self._ready.add(int(message["ready"]))
                elif "pid" in message:
                    self._pids[int(message["id"])] = int(message["pid"])
                else:
                    self._exits[int(message["exit"])] = int(message["code"])
                self._cv.notify_all()

    def spawn(self, directory: Path, cwd: Path, out: Path, env: dict[str, str]) -> ForkedWorker:
        with self._cv:
            proc = self._ensure()
            assert proc.stdin is not None
            self._next += 1
            ident = self._next
            request = {"id": ident, "dir": str(directory), "cwd": str(cwd), "out": str(out)}
            proc.stdin.write(json.dumps({**request, "env": env}) + "\n")
            proc.stdin.flush()
            if not self._cv.wait_for(lambda: ident in self._pids, timeout=30):
                raise RuntimeError("the test zygote did not fork a worker within 30 s")
            return ForkedWorker(self, ident, self._pids.pop(ident))

    def warm(self, timeout_s: float = 60.0) -> None:
        """Start the zygote if it is not running and wait until its imports are done (a
        ping it answers from its request loop), so that a timed job does not pay them."""
        with self._cv:
            proc = self._ensure()
            assert proc.stdin is not None
            self._next += 1
            ident = self._next
            proc.stdin.write(json.dumps({"id": ident, "ping": True}) + "\n")
            proc.stdin.flush()
            if not self._cv.wait_for(lambda: ident in self._ready, timeout=timeout_s):
                raise RuntimeError(f"the test zygote was not ready within {timeout_s:.0f} s")
            self._ready.discard(ident)

    def exit_code(self, ident: int) -> int | None:
        with self._cv:
            return self._exits.get(ident)


_ZYGOTE = Zygote()


def spawn(directory: Path, cwd: Path, out: Path, env: dict[str, str]) -> ForkedWorker:
    return _ZYGOTE.spawn(directory, cwd, out, env)


def warm() -> None:
    """The zygote started and its imports paid (benchmarks call it before their timers, as
    a node's standby is started before its jobs); nothing when forking is off."""
    if ENABLED:
        _ZYGOTE.warm()


if __name__ == "__main__":
    sys.exit(zygote())
