"""Messages and rounds per party, counted on MPyC's transport.

MPyC counts bytes per peer (``MessageExchanger.nbytes_sent``) and nothing else. Latency,
not bandwidth, dominates a job over a wide-area network, so the worker also counts:

- **messages**: every payload this party sends to a peer (one per exchange per peer; a
  batched array operation is one message however long the array);
- **rounds**: the number of send bursts, where a burst starts with a send that follows a
  wait — a ``receive`` whose payload had not arrived yet. That is the number of times this
  party had to wait for a peer before it could go on: over a link with round-trip time r,
  about the time a job spends waiting is rounds × r/2, whatever the bandwidth. It is at
  most the protocol's round depth from this party's side, and equals it when messages take
  longer than the local work between them (as over a wide-area link); on loopback some
  payloads arrive before they are awaited, so the count is lower and varies from run to
  run.

Messages are fixed by the protocol, the session's sizes and public parameters, not by
values (MPyC's control flow does not branch on secrets), so reporting them to the node and
the coordinator, like bytes, reveals nothing about the data. Rounds also depend on timing,
which the coordinator already sees in every job's progress (DESIGN §11: a job's timing
class must not depend on data; the rule covers this count as it covers wall time).

:func:`install` patches the class once per worker process (``MessageExchanger`` has
``__slots__``; a worker runs one job and then exits). Importing this module does not import
MPyC; :func:`install` does, so only the worker calls it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Counts:
    messages: int = 0
    rounds: int = 0
    waited: bool = True  # the first send opens the first round

    def on_send(self) -> None:
        self.messages += 1
        if self.waited:
            self.rounds += 1
            self.waited = False

    def on_receive(self, arrived: bool) -> None:
        if not arrived:
            self.waited = True


COUNTS = Counts()
_installed = False


def install() -> Counts:
    """Count this process's MPyC messages and rounds from now on; returns the counters."""
    global _installed
    if _installed:
        return COUNTS
    from asyncio import Future

    from mpyc.asyncoro import MessageExchanger

    send, receive = MessageExchanger.send, MessageExchanger.receive

    def counting_send(self: Any, pc: int, payload: bytes) -> None:
        COUNTS.on_send()
        send(self, pc, payload)

    def counting_receive(self: Any, pc: int) -> Any:
        payload = receive(self, pc)
        COUNTS.on_receive(not isinstance(payload, Future))
        return payload

    MessageExchanger.send = counting_send
    MessageExchanger.receive = counting_receive
    _installed = True
    return COUNTS
