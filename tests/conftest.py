"""Shared test settings. Nothing here imports MPyC: only worker subprocesses may."""

from __future__ import annotations

import os
import sys

# A guard that fails loudly if any test (or code it imports) pulls MPyC into pytest's process.
assert "mpyc" not in sys.modules, "mpyc must never be imported by the pytest process"
os.environ.pop("ENSNIF_PROFILE", None)
