"""The namespace consortium's fixtures: skipped with the reason when namespaces cannot be
created here (not root, no iproute2); stale namespaces of crashed runs swept first."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.netns import harness


@pytest.fixture(scope="session")
def netns_ready() -> None:
    reason = harness.unavailable_reason()
    if reason is not None:
        pytest.skip(f"netns consortium not run: {reason}")
    harness.sweep_stale()


@pytest.fixture(scope="module")
def make_netns(
    netns_ready: None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Callable[..., harness.NetnsConsortium]]:
    """Open namespace consortia (options of NetnsConsortium); all closed with the module."""
    opened: list[harness.NetnsConsortium] = []

    def make(**options: Any) -> harness.NetnsConsortium:
        root: Path = tmp_path_factory.mktemp("netns")
        c = harness.open_consortium(root, **options)
        opened.append(c)
        return c

    try:
        yield make
    finally:
        for c in opened:
            c.close()
