"""What the benchmark measures: per protocol family, one job spec on the sample data (grocery
orders, logistics deliveries), the raw MPyC script that computes the same thing, and the
sizes to run it at."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from coordinator.validation import sizing_for
from ensnif_mpc.demo.localnet import DATASETS
from ensnif_mpc.demo.sample_data import ZIPS, SampleData

FAMILIES = ("aggregates", "statistics", "group-by", "private-join")


@dataclass(frozen=True)
class Plan:
    family: str
    protocol: str
    script: str  # the raw MPyC baseline in bench/
    inputs: tuple[dict[str, str], ...]  # job-spec inputs (party, dataset, roles)
    params: dict[str, Any]
    sizes: tuple[int, ...]  # rows per owner, full run
    quick: tuple[int, ...]  # rows per owner, --quick


GROCERY_VALUE = {"party": "grocery", "dataset": "orders", "column": "basket_total"}
LOGISTICS_VALUE = {"party": "logistics", "dataset": "deliveries", "column": "fee"}

PLANS = (
    Plan(
        "aggregates",
        "sum",
        "raw_aggregate.py",
        (GROCERY_VALUE, LOGISTICS_VALUE),
        {},
        (1_000_000,),
        (20_000,),
    ),
    Plan(
        "aggregates",
        "mean",
        "raw_aggregate.py",
        (GROCERY_VALUE, LOGISTICS_VALUE),
        {},
        (1_000_000,),
        (20_000,),
    ),
    Plan(
        "statistics",
        "variance",
        "raw_aggregate.py",
        (GROCERY_VALUE, LOGISTICS_VALUE),
        {},
        (1_000_000,),
        (20_000,),
    ),
    Plan(
        "group-by",
        "group_by",
        "raw_groupby.py",
        ({**GROCERY_VALUE, "group": "zip"}, {**LOGISTICS_VALUE, "group": "zip"}),
        {"groups": list(ZIPS)},
        (1_000_000,),
        (20_000,),
    ),
    Plan(
        "private-join",
        "intersection_sum",
        "raw_join.py",
        (
            {
                "party": "grocery",
                "dataset": "orders",
                "key": "customer_id",
                "value": "basket_total",
            },
            {"party": "logistics", "dataset": "deliveries", "key": "customer_id"},
        ),
        {},
        (10_000, 100_000),
        (2_000,),
    ),
    Plan(
        "private-join",
        "join_group_by",
        "raw_join.py",
        (
            {
                "party": "grocery",
                "dataset": "orders",
                "key": "customer_id",
                "filter": "basket_total",
            },
            {
                "party": "logistics",
                "dataset": "deliveries",
                "key": "customer_id",
                "group": "zip",
                "value": "delivery_minutes",
            },
        ),
        {"groups": list(ZIPS), "threshold": 150},
        (10_000,),
        (2_000,),
    ),
)


@dataclass(frozen=True)
class Case:
    plan: Plan
    rows: int

    @property
    def spec(self) -> dict[str, Any]:
        return {
            "name": f"bench {self.plan.protocol} {self.rows}",
            "protocol": self.plan.protocol,
            "helpers": ["helper"],
            "inputs": [dict(i) for i in self.plan.inputs],
            "params": dict(self.plan.params),
            "privacy": {"exact": True},  # compared with the plaintext answer: no DP noise
        }

    def roles(self, position: int) -> dict[str, str]:
        """role -> column of one input (``column`` is the value role)."""
        raw = self.plan.inputs[position]
        out = {r: c for r, c in raw.items() if r not in ("party", "dataset", "column")}
        if "column" in raw:
            out["value"] = raw["column"]
        return out

    def files(self, data: SampleData) -> list[str]:
        by_dataset = {"orders": data.orders, "deliveries": data.deliveries}
        return [str(by_dataset[i["dataset"]]) for i in self.plan.inputs]

    def raw_job(self, data: SampleData) -> dict[str, Any]:
        """The raw script's job file: each owner's file and columns, and the session sizes the
        coordinator would fix (from the published bounds and row counts)."""
        numeric = {
            ds: {c: (max(abs(lo), abs(hi)), d) for c, _, lo, hi, d in cols}
            for ds, _, _, cols in DATASETS.values()
        }
        owners, values, filter_decimals = [], [], 0
        for n, (inp, path) in enumerate(zip(self.plan.inputs, self.files(data), strict=True)):
            roles = self.roles(n)
            owners.append({"file": path, **roles})
            if "value" in roles:
                bound, decimals = numeric[inp["dataset"]][roles["value"]]
                values.append((self.rows, float(bound), decimals))
            if "filter" in roles:
                filter_decimals = numeric[inp["dataset"]][roles["filter"]][1]
        if values:
            sizing = sizing_for(values, max(d for _, _, d in values))
        else:
            sizing = sizing_for([(self.rows, 1.0, 0)] * len(owners), 0)
        return {
            "protocol": self.plan.protocol,
            "owners": owners,
            "params": self.plan.params,
            "bit_length": sizing.bit_length,
            "decimals": sizing.decimals,
            "filter_decimals": filter_decimals,
        }


def select(
    families: list[str] | None,
    protocols: list[str] | None,
    rows: list[int] | None,
    quick: bool,
) -> list[Case]:
    out = []
    for plan in PLANS:
        if families and plan.family not in families:
            continue
        if protocols and plan.protocol not in protocols:
            continue
        sizes = rows or (plan.quick if quick else plan.sizes)
        out.extend(Case(plan, r) for r in sizes)
    return out
