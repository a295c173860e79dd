"""Shared test settings and the one consortium fixture. Nothing here imports MPyC: only
worker subprocesses may."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

# A guard that fails loudly if any test (or code it imports) pulls MPyC into pytest's process.
assert "mpyc" not in sys.modules, "mpyc must never be imported by the pytest process"
os.environ.pop("ENSNIF_PROFILE", None)

if TYPE_CHECKING:  # the servers are imported only by the tests that start a consortium
    from ensnif_mpc.sdk.client import Client
    from tests.consortium import Consortium


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "consortium(**options): how this module's `consortium` is built "
        "(the options of tests/consortium.py:make_consortium)",
    )


@pytest.fixture(scope="module")
def consortium_defaults() -> dict[str, Any]:
    """Options every module of a folder shares (tests/e2e/ runs daemons as processes)."""
    return {}


@pytest.fixture(scope="module")
def consortium(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    consortium_defaults: dict[str, Any],
) -> Iterator[Consortium]:
    """One consortium per module: the folder's defaults, then the module's
    ``pytestmark = pytest.mark.consortium(...)`` options."""
    from tests.consortium import running_consortium

    marker = request.node.get_closest_marker("consortium")
    options = {**consortium_defaults, **(marker.kwargs if marker else {})}
    with running_consortium(tmp_path_factory.mktemp("consortium"), **options) as env:
        yield env


@pytest.fixture
def client(consortium: Consortium) -> Iterator[Client]:
    with consortium.client() as c:
        yield c
