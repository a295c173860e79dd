"""The ports' references on their examples give the published answers.

The contract suite checks each port's three-party MPC result against its reference on
the same example; here the reference itself is checked against the answers the original
programs state (their ``test(actual, expected)`` lines and comments) and FIPS/textbook
values, so the chain MPC = reference = known answer holds.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest

from protocols.registry import catalog
from tests.contract import generate

PORTS = sorted(n for n, d in catalog().items() if d.family == "scale-mamba")

KNOWN = {
    "tutorial": {
        "a+b": 3,
        "a+a": 2,
        "a*b": 2,
        "a*a": 1,
        "a-b": -1,
        "a<b": 1,
        "a<=b": 1,
        "a>=b": 0,
        "a>b": 0,
        "a==b": 0,
        "a!=b": 1,
        "last^2": 99**2,
        "if_a>b": 789,
    },
    "millionaires": {"first_is_richer": 1},
    # a = 2 + 4 and b = 3 + 4; the vector the original writes with output_shares.
    "restart": {"product": 42} | {f"inp[{i}]": i + 1 for i in range(4)},
    "restart_1": {"sum": 13} | {f"inp[{i}]": i + 1 for i in range(4)},
    "restart_2": {"product": 42} | {f"inp[{i}]": i + 1 for i in range(4)},
    # 1..37 cycled to 500 products a_i·a_(i+1): the sum, worked out by hand from the cycle
    # (13 full cycles of Σ_{i=1..36} i(i+1) + 37·1, then the first 19 pairs).
    "throughput": {"result": 222477},
    "local_test": {
        **{
            f"{m}[{i},{j}]": v
            for m in ("SC", "CS", "SS")
            for (i, j), v in {(0, 0): 58, (0, 1): 64, (1, 0): 139, (1, 1): 154}.items()
        },
        **{
            f"GE[{i},{j}]": v
            for i, row in enumerate([[1, 0, -1], [0, 1, 2]])
            for j, v in enumerate(row)
        },
    },
    "test_sqrt": {"sqrt[0]": math.sqrt(2), "sqrt[1]": 6, "sqrt[2]": 5, "sqrt[3]": 7},
    "test_map_reduce": {"count": 999, "twice": 1998, "sum": 999 * 1000 // 2},
    "vectorize": {f"c[{i}]": 2 * i * (i + 1) for i in range(10)}
    | {f"d[{i}]": 3 * i + 1 for i in range(10)}
    | {f"f[{i}]": (3 * i + 1) * (i + 1) for i in range(10)},
    "test_sfix": {
        "a*b[0]": 532 * 342,
        "a/b[1]": -532 / 342,
        "pb/a[2]": -342 / 532,
        "a+b[3]": 874,
        "a<b[0]": 1,
        "a==b[1]": 0,
    },
    "test_math": {
        "sin[4]": math.sin(3),
        "tan[7]": math.tan(7.5),
        "exp[0]": math.exp(-7.5),
        "log_abs[2]": math.log(4.5),
    },
    # FIPS 202 / the Keccak team's intermediate values: Keccak-f[1600] of the zero state.
    "keccak_f1600": {
        "lane[0]": 0xF1258F7940E1DDE7,
        "lane[1]": 0x84D5CCF933C0478A,
        "lane[2]": 0xD598261EA65AA9EE,
    },
    # SCALE-MAMBA's GC_test: the ciphertext it says the AES-128 circuit should give.
    "aes128": {
        f"ct[{i}]": b for i, b in enumerate(bytes.fromhex("406bab6335ce415f4f943dc8966682aa"))
    },
    "test_float_sorting": {
        "sorted[0]": -48.22,
        "sorted[1]": -39.34,
        "sorted[2]": -19.01,
        "sorted[3]": -15.89,
        "sorted[4]": -0.03,
        "sorted[11]": 68.88,
    },
}


# No published vector for this instance: its reference is the same code in the clear.
CLEAR_CODE_ONLY = {"rescue_hash"}


def test_every_port_has_a_known_answer():
    assert set(PORTS) == set(KNOWN) | CLEAR_CODE_ONLY


def test_the_rescue_style_sbox_and_mds_are_invertible():
    from protocols.ports import rescue

    for x in (0, 1, 2, 12345, rescue.P - 1):
        assert pow(pow(x, rescue.ALPHA, rescue.P), rescue.ALPHA_INV, rescue.P) == x
    m = [[int(v) for v in row] for row in rescue.MDS]
    det = (
        m[0][0] * (m[1][1] * m[2][2] - m[1][2] * m[2][1])
        - m[0][1] * (m[1][0] * m[2][2] - m[1][2] * m[2][0])
        + m[0][2] * (m[1][0] * m[2][1] - m[1][1] * m[2][0])
    ) % rescue.P
    assert det != 0


@pytest.mark.parametrize("port", sorted(KNOWN))
def test_reference_on_the_example_gives_the_known_answer(port):
    definition = catalog()[port]
    example = definition.examples[0]
    tables = generate.owners(definition, example, seed=0)

    got = generate.reference(definition, tables, example)

    for name, want in KNOWN[port].items():
        if isinstance(got[name], int):
            assert got[name] == want, name
        else:
            assert got[name] == pytest.approx(want, rel=1e-12, abs=1e-12), name


@pytest.mark.parametrize("port", PORTS)
def test_port_states_its_provenance(port):
    extra = catalog()[port].extra
    assert len(extra["provenance"].split()) > 15 and extra["origin"]


def test_the_clear_keccak_gives_sha3_256_of_the_empty_message():
    """The port's reference permutation, in a SHA3-256 sponge, against hashlib."""
    from protocols.ports.keccak import permute

    block = bytearray(136)  # the rate of SHA3-256; padding 0x06 ... 0x80
    block[0], block[-1] = 0x06, 0x80
    bits = np.zeros(1600, dtype=np.int64)
    bits[: 136 * 8] = np.unpackbits(np.frombuffer(bytes(block), np.uint8), bitorder="little")

    out = permute(bits)

    digest = np.packbits(out[:256].astype(np.uint8), bitorder="little").tobytes()
    assert digest == hashlib.sha3_256(b"").digest()


def _clear_aes(key: bytes, plaintext: bytes) -> bytes:
    from protocols.ports.aes import encrypt

    return bytes(int(v) for v in encrypt(list(key), list(plaintext)))


def test_the_clear_aes_gives_fips_197_and_the_fips_example():
    """FIPS-197 appendix C.1, on the function and on the port's second example."""
    want = bytes.fromhex("69c4e0d86a7b0430d8cdb78070b4c55a")
    assert _clear_aes(bytes(range(16)), bytes.fromhex("00112233445566778899aabbccddeeff")) == want
    definition = catalog()["aes128"]
    example = definition.examples[1]
    got = generate.reference(definition, generate.owners(definition, example, seed=0), example)
    assert bytes(got[f"ct[{i}]"] for i in range(16)) == want


def test_the_clear_aes_matches_the_cryptography_package_on_random_keys():
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    rng = np.random.default_rng(197)
    for _ in range(3):
        key, plaintext = (bytes(rng.integers(0, 256, 16, dtype=np.uint8)) for _ in range(2))
        encryptor = Cipher(algorithms.AES(key), modes.ECB()).encryptor()
        want = encryptor.update(plaintext) + encryptor.finalize()
        assert _clear_aes(key, plaintext) == want


def test_the_aes_sbox_is_fips_197s():
    """The table built from the field inverse and the affine map, at FIPS-197's Figure 7
    corners, and a permutation of the 256 bytes."""
    from protocols.ports.aes import SBOX

    assert [int(SBOX[x]) for x in (0x00, 0x01, 0x53, 0xFF, 0x10)] == [0x63, 0x7C, 0xED, 0x16, 0xCA]
    assert sorted(SBOX.tolist()) == list(range(256))


def test_the_secure_round_matrices_equal_the_clear_steps():
    """The public GF(2^8) matrices the program applies to shares (ShiftRows·MixColumns,
    the key schedule's prefix XOR) equal the reference's step-by-step code, over the field."""
    from protocols.ports import aes

    rng = np.random.default_rng(3)
    state = rng.integers(0, 256, 16)
    by_matrix = np.bitwise_xor.reduce(
        aes._clear_mul(state[:, None], aes.ROUND_MATRIX.astype(np.int64)), axis=0
    )
    assert by_matrix.tolist() == aes._clear_mix(state[aes.SHIFT]).tolist()
    round_keys = aes.expand_key(state)
    t = aes.SBOX[round_keys[0][aes.ROT_WORD]] ^ np.array([aes.RCON[0], 0, 0, 0])
    prefix = np.bitwise_xor.reduce(state[:, None] * aes.KEY_PREFIX.astype(np.int64), axis=0)
    tiled = np.bitwise_xor.reduce(t[:, None] * aes.KEY_TILE.astype(np.int64), axis=0)
    assert (prefix ^ tiled).tolist() == round_keys[1].tolist()
