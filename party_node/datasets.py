"""Data owners' datasets (CSV for now): loaded, checked against the declared schema, never sent.

A value that is not a number, or lies outside the declared bounds, is an error
that names the file, row and column: bounds fix secure-type sizes (and later DP
sensitivity), so a silently wrong value would corrupt every answer.
"""

from __future__ import annotations

import csv
import math
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ensnif_mpc.config import DatasetConfig
from ensnif_mpc.errors import DataError, InvalidConfig, UnknownColumn
from ensnif_mpc.schema import Column, DatasetSchema


@dataclass(frozen=True)
class LoadedColumn:
    column: Column
    values: np.ndarray  # float64 in the declared unit


def _header(path: Path) -> list[str]:
    try:
        with path.open(newline="") as f:
            return next(csv.reader(f), [])
    except OSError as exc:
        raise InvalidConfig(f"dataset file {path}: {exc.strerror}") from exc


def row_count(path: Path) -> int:
    with path.open("rb") as f:
        lines = sum(1 for line in f if line.strip())
    return max(lines - 1, 0)


def schema_of(party: str, cfg: DatasetConfig) -> DatasetSchema:
    header = _header(cfg.path)
    missing = [c.name for c in cfg.columns if c.name not in header]
    if missing:
        raise InvalidConfig(
            f"dataset {cfg.name!r}: {cfg.path} has no column {missing[0]!r} "
            f"(header: {', '.join(header)})"
        )
    return DatasetSchema(party, cfg.name, cfg.columns, row_count(cfg.path), cfg.description)


_CACHE: dict[tuple[str, str, int, int, Column], LoadedColumn] = {}
_CACHE_LOCK = threading.Lock()


def load_column(cfg: DatasetConfig, name: str) -> LoadedColumn:
    """The checked column; parsed again only when the file changed (size or mtime)."""
    try:
        st = cfg.path.stat()
    except OSError as exc:
        raise DataError(f"dataset {cfg.name!r}: cannot read {cfg.path} ({exc.strerror})") from exc
    col = next((c for c in cfg.columns if c.name == name), None)
    key = (str(cfg.path), name, st.st_size, st.st_mtime_ns, col) if col else None
    with _CACHE_LOCK:
        hit = _CACHE.get(key) if key else None
    if hit is not None:
        return hit
    loaded = _parse_column(cfg, name)
    if key:
        with _CACHE_LOCK:
            if len(_CACHE) > 64:
                _CACHE.clear()
            _CACHE[key] = loaded
    return loaded


def _parse_column(cfg: DatasetConfig, name: str) -> LoadedColumn:
    col = next((c for c in cfg.columns if c.name == name), None)
    if col is None:
        raise UnknownColumn(f"dataset {cfg.name!r} declares no column {name!r}")
    if not col.numeric:
        raise DataError(f"column {name!r} of {cfg.name!r} is not numeric")
    header = _header(cfg.path)
    if name not in header:
        raise DataError(
            f"{cfg.path.name} has no column {name!r} any more (header: {', '.join(header)})"
        )
    idx = header.index(name)
    out = []
    with cfg.path.open(newline="") as f:
        reader = csv.reader(f)
        next(reader, None)
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            raw = row[idx].strip() if idx < len(row) else ""
            try:
                value = float(raw)
            except ValueError:
                raise DataError(
                    f"{cfg.path.name} line {lineno}, column {name!r}: {raw!r} is not a number"
                ) from None
            if not math.isfinite(value) or not col.lower <= value <= col.upper:
                raise DataError(
                    f"{cfg.path.name} line {lineno}, column {name!r}: {raw} is outside "
                    f"the declared bounds [{col.lower:g}, {col.upper:g}]"
                )
            if col.type == "int" and not value.is_integer():
                raise DataError(
                    f"{cfg.path.name} line {lineno}, column {name!r}: {raw} is not an integer"
                )
            out.append(value)
    return LoadedColumn(col, np.asarray(out, dtype=np.float64))


def scaled_integers(values: np.ndarray, decimals: int) -> np.ndarray:
    """Values on the session's decimal scale as exact int64 (round half to even)."""
    scaled = np.rint(values * 10**decimals)
    if scaled.size and float(np.abs(scaled).max()) >= 2**53:
        raise DataError(f"values too large for exact integers at {decimals} decimals")
    out: np.ndarray = scaled.astype(np.int64)
    return out
