"""aes128's catalog checks: one block, so exactly 16 rows from each owner, refused with
wrong_row_count before anything runs (the row counts are the catalog's, public)."""

from __future__ import annotations

import pytest

from ensnif_mpc.data.schema import Column, DatasetSchema, PrivacyPolicy
from ensnif_mpc.errors import FailedPrecondition
from ensnif_mpc.jobs import checks, jobspec
from protocols.registry import catalog

AES = catalog()["aes128"]


def _spec():
    inputs = [{"party": f"p{i}", "dataset": "d", "value": "byte"} for i in range(2)]
    raw = {"protocol": "aes128", "inputs": inputs, "helpers": ["h"], "privacy": {"exact": True}}
    return jobspec.from_dict(raw)


def _catalog(rows):
    def dataset(party, name):
        n = rows[int(party[1:])]
        return DatasetSchema(
            party,
            name,
            (Column("byte", "int", 0, 255, 0),),
            n,
            policy=PrivacyPolicy(exact_protocols=("aes128",)),
        )

    return (lambda party: "member"), dataset


def test_sixteen_rows_each_are_accepted():
    checks.check_job(AES, _spec(), *_catalog([16, 16]))


@pytest.mark.parametrize("rows", [[15, 16], [16, 32], [1600, 16]])
def test_other_row_counts_are_refused_with_wrong_row_count(rows):
    with pytest.raises(FailedPrecondition) as info:
        checks.check_job(AES, _spec(), *_catalog(rows))

    assert info.value.reason == "wrong_row_count"
    assert "16 rows" in str(info.value)
