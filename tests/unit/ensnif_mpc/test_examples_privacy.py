"""The example owners declare the DP protection their data has.

Noise is calibrated to ``rows_per_person`` rows per person: a dataset whose people have
more rows than declared gets less protection than it claims. The examples name the
person (``person_column``, which the node checks against the data) and declare the most
rows one customer has in their sample data (examples/data).
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from ensnif_mpc.demo.sample_data import most_rows_per_customer

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


@pytest.mark.parametrize("party", ["grocery", "logistics"])
def test_an_example_owner_declares_the_rows_per_person_of_its_sample_data(party: str) -> None:
    raw = tomllib.loads((EXAMPLES / f"party-{party}.toml").read_text())

    for dataset in raw["datasets"]:
        privacy = dataset["privacy"]
        most = most_rows_per_customer(EXAMPLES / dataset["path"])
        assert privacy.get("person_column") == "customer_id"
        assert privacy.get("rows_per_person", 1) >= most > 1
