"""Ports of SCALE-MAMBA programs (KULeuven-COSIC/SCALE-MAMBA, Programs/) to MPyC, written
against the program API of :mod:`protocols.program`.

Each port is a registry protocol with a provenance note (``extra["provenance"]``: the
original program and what changed), a plaintext reference, and a known-answer example
the contract suite runs with three real parties. Ports reveal to the analyst only; the
programs that reveal to a named party (``restart``, ``restart_1``, ``restart_2``) wait
for the worker seam that seals an output to a member (see ``Program.reveal_to``).

Declarations only at import time: the programs import MPyC through the runtime the
worker passes in.
"""

from protocols.ports.declarations import DEFINITIONS as _PORTS
from protocols.ports.throughput import DEFINITION as _THROUGHPUT

DEFINITIONS = (*_PORTS, _THROUGHPUT)
