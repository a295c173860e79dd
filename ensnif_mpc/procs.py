"""Child processes that die with their parent.

A worker must not outlive the node that launched it, and a local consortium's
daemons must not outlive the demo or test that started them, even after SIGKILL.
The parent passes its pid in ``ENSNIF_PARENT_PID``; the child, first thing,
asks Linux for SIGKILL when its parent goes (PR_SET_PDEATHSIG) and exits if the
parent is already gone. (Doing this in ``preexec_fn`` is unsafe in a process
with threads, as every gRPC server is.)
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

PARENT_ENV = "ENSNIF_PARENT_PID"
_PR_SET_PDEATHSIG = 1


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    out = dict(os.environ if env is None else env)
    out[PARENT_ENV] = str(os.getpid())
    return out


def die_with_parent() -> None:
    parent = os.environ.pop(PARENT_ENV, None)
    if parent is None:
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(parent):
        os._exit(1)  # the parent died before we could ask to follow it
