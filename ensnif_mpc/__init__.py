"""Ensnif's core library, grouped by concern, and the tools that sit on top of everything.

The core (imported by the coordinator, the nodes and the protocols, importing none of them):
``security/`` (PKI, TLS, revocation, per-job MPC certificates, sealing), ``data/`` (sources,
schemas), ``privacy/`` (DP calibration and plans), ``jobs/`` (specs, states, manifests,
approvals, the checks both sides run, the node/worker contract), ``results/`` (shares and
their delivery), ``audit/`` (the hash-chained log), ``rpc/`` (what every gRPC server
shares), ``errors``, ``reasons``, ``config``, ``db``, ``procs`` and the generated ``gen/``.

On top (imported by nothing below): ``cli/`` (the ``ensnif`` command), ``sdk/`` (the
analyst's client) and ``demo/`` (a local consortium). The layers are an import-linter
contract in ``pyproject.toml``, run by ``make lint``.

Nothing in the core imports MPyC: importing MPyC parses ``sys.argv`` and builds a global
runtime, so only ``protocols/`` (inside a job's worker process) may do that.
"""

__version__ = "0.1.0"
