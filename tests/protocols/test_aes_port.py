"""The aes128 port on keys and blocks the test draws (the contract suite runs GC_test's
vector): three real worker processes against AES-128 from the ``cryptography`` package,
and the same number of messages whatever the key."""

from __future__ import annotations

import numpy as np
import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from tests.protocols.harness import run_parties

pytestmark = pytest.mark.slow


def _aes_ecb(key: bytes, block: bytes) -> bytes:
    encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
    return encryptor.update(block) + encryptor.finalize()


def test_three_parties_encrypt_random_blocks_as_the_cryptography_package(tmp_path):
    rng = np.random.default_rng(128)
    messages = []
    for run_index in range(2):
        key, block = (rng.integers(0, 256, 16) for _ in range(2))

        run = run_parties(
            tmp_path / f"run{run_index}",
            "aes128",
            [key, block, None],
            lower=0,
            upper=255,
            timeout=240,
        )

        got = bytes(int(run.outputs[f"ct[{i}]"]) for i in range(16))
        assert got == _aes_ecb(bytes(key.tolist()), bytes(block.tolist()))
        messages.append([s.messages_sent for s in run.statuses])
    assert all(m > 0 for m in messages[0])
    assert messages[0] == messages[1]  # what the parties exchange depends on sizes only
