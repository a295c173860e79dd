"""Synthetic data for the canonical scenario: grocery orders and logistics deliveries.

Customers overlap between the two (as they would in one city), so later join
protocols have something to find. Deterministic for a seed.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ORDER_COLUMNS = ("order_id", "customer_id", "zip", "basket_total", "order_date")
DELIVERY_COLUMNS = ("delivery_id", "customer_id", "zip", "delivery_minutes", "distance_km", "fee")
ZIPS = tuple(f"{z:05d}" for z in (10115, 10117, 10119, 10178, 10243, 10245, 10247, 10249))


@dataclass(frozen=True)
class SampleData:
    orders: Path
    deliveries: Path


def generate(directory: Path, rows: int = 3000, seed: int = 7) -> SampleData:
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    universe = max(rows // 2, 10)
    # Customer ids 0..universe-1; grocery sees the lower 70 %, logistics the upper 70 %.
    g_cust = rng.integers(0, int(universe * 0.7), rows)
    l_cust = rng.integers(int(universe * 0.3), universe, rows)
    home_zip = rng.integers(0, len(ZIPS), universe)

    basket = np.clip(rng.gamma(2.0, 30.0, rows), 0, 500).round(2)
    days = rng.integers(0, 365, rows)
    orders = directory / "orders.csv"
    with orders.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(ORDER_COLUMNS)
        for i in range(rows):
            c = int(g_cust[i])
            w.writerow(
                [
                    i + 1,
                    f"C{c:07d}",
                    ZIPS[home_zip[c]],
                    f"{basket[i]:.2f}",
                    str(np.datetime64("2026-01-01") + int(days[i])),
                ]
            )

    distance = np.clip(rng.gamma(2.0, 4.0, rows), 0.1, 80).round(1)
    minutes = np.clip((12 + distance * 2.5 + rng.normal(0, 8, rows)).round(), 5, 240).astype(int)
    fee = np.clip(2.5 + distance * 0.6, 0, 60).round(2)
    deliveries = directory / "deliveries.csv"
    with deliveries.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(DELIVERY_COLUMNS)
        for i in range(rows):
            c = int(l_cust[i])
            w.writerow(
                [
                    i + 1,
                    f"C{c:07d}",
                    ZIPS[home_zip[c]],
                    int(minutes[i]),
                    f"{distance[i]:.1f}",
                    f"{fee[i]:.2f}",
                ]
            )
    return SampleData(orders, deliveries)


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
