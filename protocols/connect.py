"""A worker's MPC links: every higher party dialled at once, mTLS with the job's CA only.

Why not MPyC's ``runtime.start()``: there party i dials the parties above it one after the
other (a TCP and a TLS handshake each, and 0.1 s of sleep after each refusal), so party 0
of a three-party job waits for two handshakes in a row, and it builds a fresh TLS context
per attempt from ``ssl.create_default_context``, which parses the system's whole trust
store each time. Here the same links are made as MPyC makes them, so the rest of MPyC
(its ``MessageExchanger`` protocol, the PRSS keys a client sends first, ``set_protocol``
resolving this party's future once every peer is there, ``shutdown()``) works unchanged:

- party i listens on its own port for the parties below it (only if i > 0) and dials
  every party above it, all at once, each dial retried on refusal after 2 ms, doubling up
  to 20 ms for the first second and to MPyC's 0.1 s after it: the parties of a job start
  within tens of ms of each other, and a refused dial costs a fraction of a ms, while a
  long pause is paid in full by every party waiting for the last listener;
- two TLS contexts per worker, built once: both present this party's per-job certificate
  and trust only the job's CA (``.config/mpyc_ca.crt``), never the system's (DESIGN §3: a
  peer's certificate must chain to the consortium); the server requires a client
  certificate; the client checks the server's name ``MPyC party <j>``. What a client
  claims to be is bound to its certificate by ``protocols.worker.bind_peer_indices``.

What is revealed: nothing beyond MPyC's own start (who connects to whom, when). What it
relies on from MPyC 0.11: ``parties[j].protocol`` (None until linked, this party's entry a
future), ``asyncoro.MessageExchanger(runtime, peer_pid)`` and ``runtime.start_time``;
``tests/unit/protocols/test_connect.py`` runs real parties over TLS through it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time
from typing import Any

log = logging.getLogger("ensnif.worker")

FIRST_RETRY_S = 0.002
EARLY_RETRY_S = 0.02  # the longest pause in the first EARLY_S of dialling
EARLY_S = 1.0
LAST_RETRY_S = 0.1  # MPyC's pause between attempts


def tls_contexts(pid: int, config: str = ".config") -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """(server, client) contexts for party ``pid`` from MPyC's files in ``config``: this
    party's certificate and key, the job's CA as the only trust anchor, TLS 1.2 at least."""
    crt = os.path.join(config, f"party_{pid}.crt")
    key = os.path.join(config, f"party_{pid}.key")
    ca = os.path.join(config, "mpyc_ca.crt")
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # checks the name and the chain
    for ctx in (server, client):
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(crt, keyfile=key)
        ctx.load_verify_locations(cafile=ca)
    server.verify_mode = ssl.CERT_REQUIRED
    return server, client


async def _dial(mpc: Any, peer: Any, context: ssl.SSLContext | None) -> None:
    """Connect to a higher party until it accepts (the node's connect timeout ends a job
    whose peer never does)."""
    from mpyc.asyncoro import MessageExchanger

    loop = asyncio.get_running_loop()
    name = f"MPyC party {peer.pid}" if context is not None else None
    pause = FIRST_RETRY_S
    early_until = loop.time() + EARLY_S
    while True:
        try:
            await loop.create_connection(
                lambda: MessageExchanger(mpc, peer.pid),
                peer.host,
                peer.port,
                ssl=context,
                server_hostname=name,
            )
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # refused, reset, or a handshake the peer dropped
            log.debug("connecting to party %d: %s", peer.pid, exc)
        await asyncio.sleep(pause)
        pause = min(pause * 2, EARLY_RETRY_S if loop.time() < early_until else LAST_RETRY_S)


async def start(mpc: Any) -> None:
    """Link this party with every other, as ``mpc.start()`` would, dialling at once."""
    logging.info(f"Start MPyC runtime v{mpc.version}")  # MPyC's own lines, for the logs
    if len(mpc.parties) == 1:
        mpc.start_time = time.time()
        return
    loop = asyncio.get_running_loop()
    for peer in mpc.parties:
        peer.protocol = loop.create_future() if peer.pid == mpc.pid else None
    server_ctx, client_ctx = tls_contexts(mpc.pid) if mpc.options.ssl else (None, None)
    server = None
    if mpc.pid:
        from mpyc.asyncoro import MessageExchanger

        port = mpc.parties[mpc.pid].port
        server = await loop.create_server(lambda: MessageExchanger(mpc), port=port, ssl=server_ctx)
    try:
        await asyncio.gather(*(_dial(mpc, p, client_ctx) for p in mpc.parties[mpc.pid + 1 :]))
        await mpc.parties[mpc.pid].protocol
    finally:
        if server is not None:
            server.close()
    via = " via SSL" if mpc.options.ssl else ""
    logging.info(f"All {len(mpc.parties)} parties connected{via}.")
    mpc.start_time = time.time()
