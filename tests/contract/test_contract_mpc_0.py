"""Contract MPC run, shard 0 of the registry (see tests/contract/mpc_run.py)."""

import pytest

from tests.contract import mpc_run

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("protocol", mpc_run.shard(0))
def test_three_parties_match_the_plaintext_reference_on_the_example(tmp_path, protocol):
    mpc_run.check(tmp_path, protocol)
