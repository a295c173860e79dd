"""Helm, run in a child process: helm-python-sdk loads Helm's Go runtime (a c-shared
library, with its own threads and signal handlers) into whatever process imports it, so
the tests keep it out of pytest's own process, which goes on to run the whole suite."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any


class HelmRefused(Exception):
    """Helm refused the chart or its values (values schema, `required`, `fail`)."""


def _render(chart: str, values: dict[str, Any]) -> tuple[bool, Any]:
    from helm_python.chart import Chart
    from helm_python.errors import HelmError

    try:
        loaded = Chart.load(chart)
        return True, loaded.render(values, name="acme", namespace="ensnif", is_install=True)
    except HelmError as err:
        return False, str(err)


def _lint(chart: str, values: dict[str, Any]) -> dict[str, Any]:
    from helm_python.chart import lint

    return dict(lint(chart, values, strict=True, kube_version="v1.30.0"))


class Helm:
    """One child process that renders and lints charts."""

    def __init__(self) -> None:
        self._pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))

    def render(self, chart: Path, values: dict[str, Any]) -> dict[str, str]:
        ok, result = self._pool.submit(_render, str(chart), values).result(timeout=120)
        if not ok:
            raise HelmRefused(result)
        return dict(result)

    def lint(self, chart: Path, values: dict[str, Any]) -> dict[str, Any]:
        return self._pool.submit(_lint, str(chart), values).result(timeout=120)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
