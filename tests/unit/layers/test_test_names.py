"""Test modules have distinct file names: the test directories are not packages, so pytest
imports each module by its base name, and a second ``test_x.py`` anywhere under tests/ is an
"import file mismatch" error that stops its whole directory from running."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parents[2]


def test_no_two_test_modules_share_a_file_name():
    seen: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("test_*.py"):
        seen[path.name].append(str(path.relative_to(TESTS)))
    assert {n: p for n, p in seen.items() if len(p) > 1} == {}
    assert len(seen) > 100  # the walk found the suite
