"""The owners' split read in a partitioned job (ensnif_mpc.data.split through
protocols.partitions.owner_input), with real workers (three parties, TLS over loopback):
an owner whose source reads whole (SQL) and one whose file is read as row slices put every
key in the same partition (the answer equals pandas), and a bad row in a sibling's slice
fails the job with the data error an unpartitioned job gives, nothing released."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from ensnif_mpc.jobs.worker_session import WorkerStatus
from tests.protocols.test_join import deliveries, orders, reference
from tests.protocols.test_join_tagged import exact_sum
from tests.protocols.test_partitions import _run


@pytest.mark.slow
@pytest.mark.parametrize("k", [2, 4])
def test_a_whole_read_and_a_split_read_partition_string_keys_alike(tmp_path, k) -> None:
    rng = np.random.default_rng(40 + k)
    a = orders(rng, 4000, customers=1800, key_type="string")
    a = dataclasses.replace(a, fmt="sqlite")  # read whole in session 0, split by P
    b = deliveries(rng, 3000, offset=700, customers=1800, key_type="string")
    b = dataclasses.replace(b, fmt="csv")  # read as k row slices, routed by P
    params = {"min": 30.0, "sessions": k}
    got, _, codes, _ = _run(tmp_path, "intersection_sum", [a, b, None], params, k)
    assert got is not None, codes
    want = reference("intersection_sum", [a, b], params)
    assert got["keys"] == want["keys"] and got["rows"] == want["rows"]
    assert got["sum"] == exact_sum(a, b, 30.0)


@pytest.mark.slow
def test_a_bad_row_in_a_siblings_slice_fails_the_job_with_its_data_error(tmp_path) -> None:
    rng = np.random.default_rng(9)
    a = orders(rng, 3000, customers=1500)
    basket = np.array(a.data["basket"], dtype=float)
    basket[2900] = 900.0  # outside the declared [0, 500], in the second half of the file
    a = dataclasses.replace(a, data={**a.data, "basket": basket})
    b = deliveries(rng, 2500, offset=600, customers=1500)
    got, dirs, codes, _ = _run(tmp_path, "intersection_sum", [a, b, None], {"sessions": 2}, 2)
    assert got is None and all(codes.values()), codes
    for d in dirs:
        assert not (d / "result.sealed").exists()
    status = WorkerStatus.read(dirs[0])
    assert status is not None
    assert status.reason_code == "data_out_of_schema"
    assert "line 2902" in status.message and "basket" in status.message
    assert "900" not in status.message  # never the value
