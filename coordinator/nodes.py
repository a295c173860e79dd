"""Channels from the coordinator to party nodes, over mTLS pinned to each node's identity."""

from __future__ import annotations

import threading

import grpc

from ensnif_mpc.gen.ensnif.v1 import party_pb2_grpc
from ensnif_mpc.security.pki import CertFiles
from ensnif_mpc.security.tls import ClientIdentity


class NodeDialer:
    """One channel per node, dialed with the coordinator's own certificate.

    When the coordinator's certificate files change (``ensnif pki rotate``), the next
    ``stub()`` opens new channels with the new certificate; calls already running on
    the old channels (a job's Watch stream) finish there, and those channels are closed
    with the dialer.
    """

    def __init__(self, tls: CertFiles) -> None:
        self._identity = ClientIdentity(tls)
        self._lock = threading.Lock()
        self._channels: dict[tuple[str, str], grpc.Channel] = {}
        self._retired: list[grpc.Channel] = []

    def stub(self, party: str, address: str) -> party_pb2_grpc.PartyServiceStub:
        key = (party, address)
        with self._lock:
            if self._identity.refresh():
                self._retired.extend(self._channels.values())
                self._channels.clear()
            chan = self._channels.get(key)
            if chan is None:
                chan = self._identity.channel(address, server_name=party)
                self._channels[key] = chan
        return party_pb2_grpc.PartyServiceStub(chan)

    def close(self) -> None:
        with self._lock:
            for chan in [*self._channels.values(), *self._retired]:
                chan.close()
            self._channels.clear()
            self._retired.clear()
