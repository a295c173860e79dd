"""Contribution bounding: at most k rows per person enter an owner's pre-aggregation.

A DP release is calibrated to ``rows_per_person`` rows per person (the privacy unit).
Rather than refuse a dataset in which some person has more rows (a refusal that would
tell the analyst the exact maximum), the owner keeps at most k rows of each person in
its own local pre-aggregation, after the job's row filter: the first k in the
source's order. This is the standard contribution bounding of DP systems; the declared
sensitivity then holds whatever the data. How many rows were dropped is written to the
node's own log only.

Files: Arrow and numpy here; SQL: ``ROW_NUMBER() OVER (PARTITION BY person)`` pushed
down to the database (``ensnif_mpc.data.sql_source``); Spark: the same window in Spark
SQL over Spark's read order (``ensnif_mpc.data.spark_source``).
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa

log = logging.getLogger(__name__)


class Bound(NamedTuple):
    person: str  # the dataset's person_column
    rows: int  # rows_per_person: at most this many rows of one person are kept


def keep_first(table: Any, bound: Bound | None, label: str = "") -> Any:
    """``table`` with at most ``bound.rows`` rows per value of ``bound.person`` (the first
    ones, in table order); unchanged without a bound."""
    if bound is None or table.num_rows == 0:
        return table
    persons = table.column(bound.person).combine_chunks()
    codes = np.asarray(persons.dictionary_encode().indices.to_numpy(zero_copy_only=False))
    order = np.argsort(codes, kind="stable")
    sorted_codes = codes[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_codes)) + 1]
    first_of = np.repeat(starts, np.diff(np.r_[starts, len(codes)]))
    rank = np.empty(len(codes), dtype=np.int64)
    rank[order] = np.arange(len(codes)) - first_of
    keep = rank < bound.rows
    dropped = int((~keep).sum())
    if dropped:
        log.info("%s: contribution bounding dropped %d rows", label or "source", dropped)
    return table.filter(pa.array(keep))
