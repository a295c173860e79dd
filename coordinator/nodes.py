"""Channels from the coordinator to party nodes, over mTLS pinned to each node's identity."""

from __future__ import annotations

import threading

import grpc

from ensnif_mpc.gen.ensnif.v1 import party_pb2_grpc
from ensnif_mpc.pki import CertFiles
from ensnif_mpc.tls import secure_channel


class NodeDialer:
    def __init__(self, tls: CertFiles) -> None:
        self._tls = tls
        self._lock = threading.Lock()
        self._channels: dict[tuple[str, str], grpc.Channel] = {}

    def stub(self, party: str, address: str) -> party_pb2_grpc.PartyServiceStub:
        key = (party, address)
        with self._lock:
            chan = self._channels.get(key)
            if chan is None:
                chan = secure_channel(address, self._tls, server_name=party)
                self._channels[key] = chan
        return party_pb2_grpc.PartyServiceStub(chan)

    def close(self) -> None:
        with self._lock:
            for chan in self._channels.values():
                chan.close()
            self._channels.clear()
