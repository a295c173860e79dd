"""Integration tests run the consortium's servers in this process (tests/consortium.py):
the production ``start()`` functions over mTLS on loopback, real MPyC worker processes."""

from __future__ import annotations

from tests.integration.postgres import postgres_server, postgres_url  # noqa: F401 (fixtures)
