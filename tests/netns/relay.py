"""A delaying TCP relay: the WAN between the namespaces (this kernel has no ``sch_netem``).

Run inside the switch namespace by the harness (tests/netns/harness.py), standalone (it
imports nothing from the project)::

    python relay.py --links links.json --control wan.json --stats stats.json

``wan.json`` holds ``{"delay_ms": 25, "rate_mbit": 0}`` (one-way delay, rate cap, 0 for
none); the relay reads it at start and again on SIGHUP, for the chunks it receives after.

``links.json`` is a list of ``[listen_host, listen_port, target_host, target_port, label]``.
Every member's public address is a relay address: each TCP connection between two members
crosses exactly one relay (the one in front of the server side), which holds every chunk
for ``delay`` in each direction, so a request and its answer take ``2 * delay``: the
round-trip time. Order is kept per direction; with ``--rate-mbit`` each direction of each
connection is also limited to that rate (a token bucket after the delay).

A closed side closes the other; nothing is ever reset or dropped by the relay itself, so a
link that goes down behind it looks, to the other end, like a path that stopped carrying
data (as on the internet). The relay counts the bytes it forwarded per label and direction
and writes them to ``--stats`` every half second and on exit.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import os
import signal
import socket
import time
from pathlib import Path

CHUNK = 64 * 1024
HIGH_WATER = 4 * 1024 * 1024  # bytes held per direction before the reader pauses


class Stats:
    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.bytes: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
        self.connections: dict[str, int] = collections.defaultdict(int)

    def dump(self) -> None:
        if self.path is None:
            return
        data = {
            label: {"to_server": b[0], "to_client": b[1], "connections": self.connections[label]}
            for label, b in self.bytes.items()
        }
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        os.replace(tmp, self.path)


class Wan:
    """The path's current one-way delay and rate (re-read from the control file on SIGHUP)."""

    def __init__(self, control: Path) -> None:
        self.control = control
        self.delay_s = 0.0
        self.rate_bps = 0.0
        self.reload()

    def reload(self) -> None:
        raw = json.loads(self.control.read_text())
        self.delay_s = float(raw.get("delay_ms", 0.0)) / 1000.0
        self.rate_bps = float(raw.get("rate_mbit", 0.0)) * 1e6


async def _pump(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    wan: Wan,
    count: list[int],
    slot: int,
) -> None:
    """Copy ``reader`` to ``writer``, each chunk ``wan.delay_s`` late, at most its rate."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
    held = 0
    room = asyncio.Event()
    room.set()

    async def deliver() -> None:
        nonlocal held
        allowance_at = time.monotonic()
        while True:
            due, data = await queue.get()
            if not data:
                break
            wait = due - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if wan.rate_bps:
                allowance_at = max(allowance_at, time.monotonic()) + len(data) * 8 / wan.rate_bps
                pause = allowance_at - time.monotonic()
                if pause > 0:
                    await asyncio.sleep(pause)
            writer.write(data)
            await writer.drain()
            count[slot] += len(data)
            held -= len(data)
            if held < HIGH_WATER:
                room.set()
        if writer.can_write_eof():
            writer.write_eof()

    sender = asyncio.ensure_future(deliver())
    try:
        while True:
            await room.wait()
            data = await reader.read(CHUNK)
            queue.put_nowait((time.monotonic() + wan.delay_s, data))
            if not data:
                break
            held += len(data)
            if held >= HIGH_WATER:
                room.clear()
        await sender
    except (ConnectionError, OSError):
        pass
    finally:
        sender.cancel()


async def _serve_link(link: list[object], wan: Wan, stats: Stats) -> asyncio.AbstractServer:
    host, port, target_host, target_port, label = link
    count = stats.bytes[str(label)]

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stats.connections[str(label)] += 1
        try:
            # The connection to the server also takes half a round trip to set up.
            await asyncio.sleep(wan.delay_s)
            up_reader, up_writer = await asyncio.open_connection(
                str(target_host), int(str(target_port))
            )
        except (ConnectionError, OSError):
            writer.close()
            return
        for w in (writer, up_writer):
            sock = w.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        await asyncio.gather(
            _pump(reader, up_writer, wan, count, 0),
            _pump(up_reader, writer, wan, count, 1),
            return_exceptions=True,
        )
        for w in (writer, up_writer):
            w.close()

    return await asyncio.start_server(handle, str(host), int(str(port)), reuse_address=True)


async def main(args: argparse.Namespace) -> None:
    links = json.loads(Path(args.links).read_text())
    stats = Stats(Path(args.stats) if args.stats else None)
    wan = Wan(Path(args.control))
    servers = [await _serve_link(link, wan, stats) for link in links]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, wan.reload)
    if args.ready:
        Path(args.ready).write_text(str(os.getpid()))
    while not stop.is_set():
        stats.dump()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.5)
    for s in servers:
        s.close()
    stats.dump()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--links", required=True)
    parser.add_argument("--control", required=True, help='{"delay_ms": ..., "rate_mbit": ...}')
    parser.add_argument("--stats", default="")
    parser.add_argument("--ready", default="", help="file written once listening")
    asyncio.run(main(parser.parse_args()))
