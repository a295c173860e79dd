"""Data owners' datasets on the node: published schemas and checks, on top of :mod:`sources`.

A value that is not a number, or lies outside the declared bounds (unless the
dataset clamps), is an error that names the dataset, the file or database, the
row and the column: bounds fix secure-type sizes (and DP sensitivity), so a
silently wrong value would corrupt every answer. The node checks at startup and
again at each Propose; an unchanged file is not scanned twice.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ensnif_mpc.config import DatasetConfig
from ensnif_mpc.data.schema import Column, DatasetSchema
from ensnif_mpc.data.sources import Measure, Source, open_source
from ensnif_mpc.errors import DataError, InvalidConfig, SourceFailed, UnknownColumn
from ensnif_mpc.jobs.member_program import MEMBER_PROTOCOL


@dataclass(frozen=True)
class LoadedColumn:
    column: Column
    values: np.ndarray  # float64 in the declared unit


def check_protocols(datasets: Iterable[DatasetConfig]) -> None:
    """Every protocol a dataset's policy names exists (a misspelt name would silently
    allow nothing). The registry lives above the core, so the node checks this, not the
    config's parser."""
    from protocols import registry

    # "program": member programs, allowed per hash by the policy's `programs`; listed in
    # exact_protocols, an owner lets the programs it approves release exactly.
    known = {*registry.catalog(), MEMBER_PROTOCOL}
    for d in datasets:
        for key, names in (
            ("allowed_protocols", d.allowed_protocols),
            ("privacy.exact_protocols", d.privacy.exact_protocols),
        ):
            unknown = sorted(set(names) - known)
            if unknown:
                raise InvalidConfig(
                    f"dataset {d.name!r}: {key} names an unknown protocol {unknown[0]!r} "
                    "(`ensnif protocols list` shows them)"
                )


def open_dataset(cfg: DatasetConfig) -> Source:
    return open_source(cfg.source, cfg.columns, clamp=cfg.clamp, name=cfg.name)


def schema_of(party: str, cfg: DatasetConfig) -> DatasetSchema:
    """What the catalog publishes: declared columns (checked to exist) and the row count."""
    source = open_dataset(cfg)
    header = source.header()
    missing = [c.name for c in cfg.columns if c.name not in header]
    if missing:
        # Never the header itself: a file without its header line has a data row there.
        raise InvalidConfig(f"{source.label} has no column {missing[0]!r}")
    return DatasetSchema(
        party, cfg.name, cfg.columns, source.row_count(), cfg.description, cfg.privacy
    )


_CHECKED: dict[tuple[object, ...], int] = {}
_CHECKED_LOCK = threading.Lock()


def check(cfg: DatasetConfig) -> int:
    """Every declared numeric column checked; the row count.

    For a file the result is remembered by (path, size, mtime), so repeated proposals
    do not re-scan an unchanged file; a SQL source is checked every time.
    """
    numeric = [c.name for c in cfg.columns if c.numeric]
    key: tuple[object, ...] | None = None
    if cfg.source.kind in ("csv", "parquet"):  # a database or Spark is checked every time
        try:
            st = os.stat(cfg.source.path)
        except OSError as exc:
            raise SourceFailed(
                f"{open_dataset(cfg).label}: cannot read the file ({exc.strerror})"
            ) from exc
        key = (cfg.source, st.st_size, st.st_mtime_ns, cfg.columns, cfg.clamp)
        with _CHECKED_LOCK:
            hit = _CHECKED.get(key)
        if hit is not None:
            return hit
    rows = open_dataset(cfg).check(numeric)
    if key is not None:
        with _CHECKED_LOCK:
            if len(_CHECKED) > 256:
                _CHECKED.clear()
            _CHECKED[key] = rows
    return rows


def load_column(cfg: DatasetConfig, name: str) -> LoadedColumn:
    """A checked numeric column in its declared unit (clamped when the dataset clamps)."""
    col = next((c for c in cfg.columns if c.name == name), None)
    if col is None:
        raise UnknownColumn(f"dataset {cfg.name!r} declares no column {name!r}")
    if not col.numeric:
        raise DataError(f"column {name!r} of {cfg.name!r} is not numeric")
    return LoadedColumn(col, open_dataset(cfg).column(name).astype(np.float64))


def scaled_integers(values: np.ndarray, decimals: int) -> np.ndarray:
    """Values on the session's decimal scale as exact int64 (round half to even)."""
    scaled = np.rint(values * 10**decimals)
    if scaled.size and float(np.abs(scaled).max()) >= 2**53:
        raise DataError(f"values too large for exact integers at {decimals} decimals")
    out: np.ndarray = scaled.astype(np.int64)
    return out


_PERSONS: dict[tuple[object, ...], int] = {}


def max_rows_per_person(cfg: DatasetConfig) -> int:
    """The most rows any one person has (by ``privacy.person_column``); 0 if unset.

    One GROUP BY pushed down to the source; remembered per file stamp like :func:`check`.
    """
    column = cfg.privacy.person_column
    if not column:
        return 0
    key: tuple[object, ...] | None = None
    if cfg.source.kind in ("csv", "parquet"):  # a database or Spark is checked every time
        st = os.stat(cfg.source.path)
        key = (cfg.source, st.st_size, st.st_mtime_ns, column)
        with _CHECKED_LOCK:
            if key in _PERSONS:
                return _PERSONS[key]
    agg = open_dataset(cfg).aggregate(by=[column], measures=[Measure("count")])
    counts = np.asarray(agg.values["count"], dtype=np.int64)
    most = int(counts.max()) if counts.size else 0
    if key is not None:
        with _CHECKED_LOCK:
            if len(_PERSONS) > 256:
                _PERSONS.clear()
            _PERSONS[key] = most
    return most
