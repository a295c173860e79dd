"""TCP reachability of many ports at once, for ``ensnif doctor``'s peer check.

A connect attempt tells three things apart: ``open`` (something listens: a running job's
worker), ``refused`` (the host answered with a reset: reachable, nobody listens, which
is normal for an MPC port when no job runs) and ``timeout`` (no answer at all: a
firewall drops the packets, or the host is down). Nothing is sent on an open
connection; it is closed at once.
"""

from __future__ import annotations

import errno
import selectors
import socket
import time
from collections.abc import Iterable, Sequence
from enum import StrEnum

MAX_PORTS = 32  # per peer: the whole range when it is this small, else a spread sample


class Outcome(StrEnum):
    OPEN = "open"
    REFUSED = "refused"
    TIMEOUT = "timeout"  # dropped: no answer within the timeout
    UNREACHABLE = "unreachable"  # no route, or the address does not resolve

    @property
    def reachable(self) -> bool:
        return self in (Outcome.OPEN, Outcome.REFUSED)


def sample(first: int, last: int, limit: int = MAX_PORTS) -> list[int]:
    """The ports of ``first..last`` to probe: all of them, or ``limit`` evenly spread
    ones including both ends."""
    count = last - first + 1
    if count <= limit:
        return list(range(first, last + 1))
    step = (count - 1) / (limit - 1)
    return sorted({first + round(i * step) for i in range(limit)})


def _resolve(host: str, port: int) -> tuple[int, tuple[str, int]] | None:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError:
        return None
    family, _, _, _, addr = infos[0]
    return family, (str(addr[0]), int(addr[1]))


def probe(targets: Iterable[tuple[str, int]], timeout_s: float) -> dict[tuple[str, int], Outcome]:
    """Connect to every (host, port) concurrently; each gets ``timeout_s`` at most."""
    out: dict[tuple[str, int], Outcome] = {}
    sel = selectors.DefaultSelector()
    pending: dict[socket.socket, tuple[str, int]] = {}
    try:
        for target in targets:
            resolved = _resolve(*target)
            if resolved is None:
                out[target] = Outcome.UNREACHABLE
                continue
            family, addr = resolved
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setblocking(False)
            code = s.connect_ex(addr)
            if code in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
                pending[s] = target
                sel.register(s, selectors.EVENT_WRITE, s)
            else:
                out[target] = _outcome(code)
                s.close()
        deadline = time.monotonic() + timeout_s
        while pending and (left := deadline - time.monotonic()) > 0:
            for key, _ in sel.select(left):
                done = key.data
                assert isinstance(done, socket.socket)
                out[pending.pop(done)] = _outcome(
                    done.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                )
                sel.unregister(done)
                done.close()
        for s, target in pending.items():
            out[target] = Outcome.TIMEOUT
            s.close()
    finally:
        sel.close()
    return out


def _outcome(code: int) -> Outcome:
    if code == 0:
        return Outcome.OPEN
    if code == errno.ECONNREFUSED:
        return Outcome.REFUSED
    if code == errno.ETIMEDOUT:
        return Outcome.TIMEOUT
    return Outcome.UNREACHABLE  # EHOSTUNREACH, ENETUNREACH, ...


def describe(ports: Sequence[int]) -> str:
    """``41000-41003, 41007``: consecutive ports as ranges."""
    runs: list[list[int]] = []
    for p in sorted(ports):
        if runs and p == runs[-1][-1] + 1:
            runs[-1].append(p)
        else:
            runs.append([p])
    return ", ".join(f"{r[0]}-{r[-1]}" if len(r) > 1 else str(r[0]) for r in runs)
