"""Synthetic data for the canonical scenario: grocery orders and logistics deliveries.

Customers overlap between the two (as they would in one city), so later join
protocols have something to find. Deterministic for a seed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

ORDER_COLUMNS = ("order_id", "customer_id", "zip", "basket_total", "order_date")
DELIVERY_COLUMNS = ("delivery_id", "customer_id", "zip", "delivery_minutes", "distance_km", "fee")
# One row per customer, at each owner (a customer file: the privacy unit has one row).
GROCERY_CUSTOMER_COLUMNS = ("customer_id", "zip", "orders", "mean_basket")
LOGISTICS_CUSTOMER_COLUMNS = ("customer_id", "zip", "deliveries", "mean_distance", "late")
LATE_MINUTES = 40  # a delivery later than this is late
ZIPS = tuple(f"{z:05d}" for z in (10115, 10117, 10119, 10178, 10243, 10245, 10247, 10249))


@dataclass(frozen=True)
class SampleData:
    orders: Path
    deliveries: Path
    grocery_customers: Path | None = None
    logistics_customers: Path | None = None


def generate(directory: Path, rows: int = 3000, seed: int = 7) -> SampleData:
    """Write orders.csv and deliveries.csv (CRLF lines, as Python's csv module writes).

    Vectorized (a million rows per file in about a second): a seed gives byte-identical
    files. Basket value depends on delivery minutes through each customer's delivery habit
    (below), so the demo's regression across the join finds a real slope.
    """
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    universe = max(rows // 2, 10)
    # Customer ids 0..universe-1; grocery sees the lower 70 %, logistics the upper 70 %.
    g_cust = rng.integers(0, int(universe * 0.7), rows)
    l_cust = rng.integers(int(universe * 0.3), universe, rows)
    home_zip = rng.integers(0, len(ZIPS), universe)
    zips = pa.array(ZIPS)

    basket = np.clip(rng.gamma(2.0, 30.0, rows), 0, 500).round(2)
    days = rng.integers(0, 365, rows)
    distance = np.clip(rng.gamma(2.0, 4.0, rows), 0.1, 80).round(1)
    noise = rng.normal(0, 8, rows)
    # A documented dependence across the join (the demo's vertical regression finds it):
    # each customer has a delivery "habit" (far-off slot choices, stairs), drawn after every
    # other draw so the rest of the data is as before; it adds minutes to each of the
    # customer's deliveries and 1.5 € per minute to each of its baskets (bigger, rarer
    # orders), so a customer's mean basket rises with its mean delivery minutes.
    habit = rng.normal(0, 15, universe)
    minutes = np.clip((12 + distance * 2.5 + noise + habit[l_cust]).round(), 5, 240).astype(int)
    basket = np.clip(basket + 1.5 * habit[g_cust], 0, 500).round(2)
    orders = directory / "orders.csv"
    _write_csv(
        orders,
        ORDER_COLUMNS,
        [
            _text(np.arange(1, rows + 1)),
            _customer(g_cust),
            zips.take(pa.array(home_zip[g_cust])),
            _fixed(basket, 2),
            pc.cast(pa.array(np.datetime64("2026-01-01") + days), pa.string()),
        ],
    )

    fee = np.clip(2.5 + distance * 0.6, 0, 60).round(2)
    deliveries = directory / "deliveries.csv"
    _write_csv(
        deliveries,
        DELIVERY_COLUMNS,
        [
            _text(np.arange(1, rows + 1)),
            _customer(l_cust),
            zips.take(pa.array(home_zip[l_cust])),
            _text(minutes),
            _fixed(distance, 1),
            _fixed(fee, 2),
        ],
    )
    # Each owner's customer file, derived from its own rows (no further draws): the grocery's
    # orders and mean basket per customer; the logistics firm's deliveries, mean distance
    # and whether most of them were late (the demo's DP logistic model across the join).
    g_ids, g_orders, g_basket = _per_customer(g_cust, basket)
    grocery_customers = directory / "grocery_customers.csv"
    _write_csv(
        grocery_customers,
        GROCERY_CUSTOMER_COLUMNS,
        [
            _customer(g_ids),
            zips.take(pa.array(home_zip[g_ids])),
            _text(g_orders),
            _fixed(np.round(g_basket, 2), 2),
        ],
    )
    l_ids, l_count, l_distance = _per_customer(l_cust, distance)
    _, _, late_share = _per_customer(l_cust, (minutes > LATE_MINUTES).astype(float))
    logistics_customers = directory / "logistics_customers.csv"
    _write_csv(
        logistics_customers,
        LOGISTICS_CUSTOMER_COLUMNS,
        [
            _customer(l_ids),
            zips.take(pa.array(home_zip[l_ids])),
            _text(l_count),
            _fixed(np.round(l_distance, 1), 1),
            _text((late_share >= 0.5).astype(np.int64)),
        ],
    )
    return SampleData(orders, deliveries, grocery_customers, logistics_customers)


def _per_customer(ids: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, ...]:
    """The distinct customers, their row counts and the mean of ``values`` per customer."""
    unique, inverse, counts = np.unique(ids, return_inverse=True, return_counts=True)
    return unique, counts, np.bincount(inverse, weights=values) / counts


def _text(integers: np.ndarray) -> pa.Array:
    return pc.cast(pa.array(np.asarray(integers, dtype=np.int64)), pa.string())


def _customer(ids: np.ndarray) -> pa.Array:
    """ "C0000123": at least 7 digits, as f"C{c:07d}"."""
    return pc.binary_join_element_wise("C", pc.utf8_lpad(_text(ids), 7, "0"), "")


def _fixed(values: np.ndarray, decimals: int) -> pa.Array:
    """Non-negative numbers already rounded to ``decimals``, as f"{v:.{decimals}f}" writes them."""
    scaled = np.rint(values * 10**decimals).astype(np.int64)
    if scaled.size and scaled.min() < 0:
        raise ValueError("only non-negative numbers are formatted here")
    whole = _text(scaled // 10**decimals)
    fraction = pc.utf8_lpad(_text(scaled % 10**decimals), decimals, "0")
    return pc.binary_join_element_wise(whole, fraction, ".")


def _write_csv(path: Path, header: tuple[str, ...], columns: list[pa.Array]) -> None:
    """Unquoted fields (none holds a comma or a quote) and CRLF line ends."""
    with path.open("wb") as f:
        f.write((",".join(header) + "\r\n").encode())
        if len(columns[0]):
            lines = pc.binary_join_element_wise(*columns, ",")
            f.write(("\r\n".join(lines.to_pylist()) + "\r\n").encode())


def most_rows_per_customer(path: Path) -> int:
    """The most rows one customer (the privacy unit) has in a sample file: what its
    dataset's ``rows_per_person`` must be for the declared DP sensitivity to hold."""
    import pyarrow.csv as pacsv

    table = pacsv.read_csv(
        path, convert_options=pacsv.ConvertOptions(include_columns=["customer_id"])
    )
    counts = table.group_by("customer_id").aggregate([([], "count_all")]).column("count_all")
    return max(1, int(pc.max(counts).as_py() or 0)) if len(counts) else 1


def read_table(path: Path, roles: dict[str, str]) -> dict[str, np.ndarray]:
    """Plaintext columns by role for a protocol's reference: numbers as float, keys as str."""
    import pyarrow.csv as pacsv

    wanted = sorted(set(roles.values()))
    table = pacsv.read_csv(
        path,
        convert_options=pacsv.ConvertOptions(
            include_columns=wanted, column_types={c: "string" for c in wanted}
        ),
    )
    out = {}
    for role, column in roles.items():
        raw = np.asarray(table.column(column).to_pylist(), dtype=object)
        out[role] = raw.astype(np.float64) if role in ("value", "filter") else raw
    return out


def read_column(path: Path, column: str) -> np.ndarray:
    """Plaintext read for references and the demo's comparison table."""
    with path.open(newline="") as f:
        reader = csv.DictReader(f)
        return np.array([float(r[column]) for r in reader], dtype=np.float64)
