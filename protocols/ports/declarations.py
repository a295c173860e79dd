"""The registry entries of the SCALE-MAMBA ports: roles, parameters, leakage, provenance,
reference and a known-answer example each."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ensnif_mpc.errors import FailedPrecondition
from ensnif_mpc.jobs.protocol import party_destination
from protocols.ports import references as ref
from protocols.registry import Example, Param, ProtocolDef

ORIGIN = "KULeuven-COSIC/SCALE-MAMBA, Programs/"
_ANALYST = (
    "Only the declared outputs, to the analyst (each party's re-randomized share sealed to "
    "the analyst's key). The parties learn each owner's row count (sent in the clear before "
    "the input; the catalog publishes it) and nothing else: no value is opened during the "
    "program."
)
_RANDOM = [68.88, 51.59, -15.89, -48.22, 2.25, -19.01, 56.76, -39.34]  # random.seed(0)
_MATH_X = [-7.5, -6.0, -4.5, -3.0, 3.0, 4.5, 6.0, 7.5]


def _sixteen_bytes_each(spec: Any, rows: Sequence[int]) -> None:
    """aes128 takes one block: 16 key bytes and 16 plaintext bytes (public row counts)."""
    if list(rows) != [16, 16]:
        raise FailedPrecondition(
            f"inputs: aes128 takes 16 rows from each owner (a key, a block), got {list(rows)}",
            reason="wrong_row_count",
        )


def _port(
    name: str, provenance: str, module: str, origin: str | None = None, **fields: Any
) -> ProtocolDef:
    return ProtocolDef(
        name=name,
        family="scale-mamba",
        program=f"protocols.ports.{module}:{name}",
        reference=getattr(ref, name),
        extra={"provenance": provenance, "origin": origin or f"{ORIGIN}{name}/{name}.mpc"},
        **fields,
    )


DEFINITIONS = (
    _port(
        "tutorial",
        "tutorial.mpc: a secret sint(1) and a clear cint(2) through +, −, ·, the six "
        "comparisons, an Array of 100 squares filled by a for_range loop, and if_then on a "
        "clear condition. Here a is the first owner's first value and b the public parameter "
        "b; the squares are one vectorized product of the owner's column (no loop); the "
        "clear if_then becomes an oblivious selection on the secret bit a > b (both branches "
        "computed). The original's test() reveals each value to every player and prints it; "
        "here each is an output to the analyst.",
        module="arithmetic",
        summary="Basic secure arithmetic and comparisons on a secret a and a public b",
        inputs="first owner: an integer `value` column (a is its first row)",
        outputs=(
            "a+b",
            "a+a",
            "a*b",
            "a*a",
            "a-b",
            "a<b",
            "a<=b",
            "a>=b",
            "a>b",
            "a==b",
            "a!=b",
            "last^2",
            "if_a>b",
        ),
        leakage=_ANALYST,
        parameters=(Param("b", "int", "the public operand", default=2),),
        max_data_owners=1,
        examples=(
            Example(
                {"b": 2},
                owners=1,
                lower=0,
                upper=100,
                decimals=0,
                data=({"value": [1, *range(1, 100)]},),
            ),
        ),
    ),
    _port(
        "millionaires",
        "Yao's millionaires' problem. SCALE-MAMBA ships no such program; it is the smallest "
        "two-party comparison, written here as MAMBA would (two private inputs, one revealed "
        "bit). Each owner's wealth is the local sum of its value column (its accounts), "
        "pre-aggregated before sharing.",
        module="arithmetic",
        origin="not a SCALE-MAMBA program: Yao's millionaires' problem (1982)",
        summary="Whether the first owner's total is larger than the second's, nothing else",
        inputs="two data owners, each a numeric `value` column (its wealth is the column's sum)",
        outputs=("first_is_richer",),
        leakage="One bit to the analyst: whether the first owner's total exceeds the "
        "second's; not the totals, not their difference. " + _ANALYST,
        min_data_owners=2,
        max_data_owners=2,
        examples=(
            Example(
                lower=0,
                upper=3e6,
                decimals=0,
                data=({"value": [1_000_000, 2_000_000]}, {"value": [2_500_000]}),
            ),
        ),
    ),
    _port(
        "vectorize",
        "vectorize.mpc: vector instructions (vldms, sint(size=n)) on a public Array A (A[i] "
        "= 2i) and a private input vector b from player 0; c = a·b revealed to player 1, d = "
        "a + b to player 2, then products with the opened d, stack and register tricks "
        "(push/pop/peek/poke, legendre, digest). Here a is public, b the first owner's "
        "column, c = a·b and d = a + b as before, and f = d·b is a secret × secret product "
        "instead of a product with an opened d. As in the original, c goes to MPC party 1 "
        "only and d to party 2 only (Program.reveal_to: each party's share sealed to that "
        "member); f goes to the analyst. The stack and register instructions have no MPyC "
        "counterpart and are left out.",
        module="arithmetic",
        summary="Element-wise secret × public, secret + public and secret × secret on vectors",
        inputs="first owner: an integer `value` column (the vector b)",
        outputs=("c[<i>]", "d[<i>]", "f[<i>]"),
        leakage="c = a·b to the member at MPC party index 1 only, d = a + b to party 2 only "
        "(each party's re-randomized share sealed to that member's certificate), f = d·b to "
        "the analyst only; no one else can open any of them. The parties learn the owner's "
        "row count (public in the catalog) and nothing else: no value is opened in MPC.",
        destinations={"c[<i>]": party_destination(1), "d[<i>]": party_destination(2)},
        max_data_owners=1,
        examples=(
            Example(
                owners=1, lower=0, upper=100, decimals=0, data=({"value": list(range(1, 11))},)
            ),
        ),
    ),
    _port(
        "local_test",
        "Local_test.mpc: local functions LF(0..3) on matrices pushed on the stack: clear × "
        "clear, secret × clear and clear × secret products of A = [[1,2,3],[4,5,6]] and B = "
        "[[7,8],[9,10],[11,12]] (= [[58,64],[139,154]]), and Gaussian elimination on the clear "
        "A. Here A and B are the two owners' columns (row-major), the clear matrices are the "
        "parameters public_a and public_b; the clear × clear product (no secret in it) is "
        "left out, a secret × secret product is added, and the elimination runs on the "
        "secret A in fixed point (Gauss–Jordan to reduced row echelon form, no pivoting).",
        module="linalg",
        origin=f"{ORIGIN}Local_test/Local_test.mpc",
        summary="Secret·public, public·secret, secret·secret matrix products; Gauss–Jordan",
        inputs="first owner: A (n×l, row-major `value` column); second owner: B (l×m)",
        outputs=("SC[<i>,<j>]", "CS[<i>,<j>]", "SS[<i>,<j>]", "GE[<i>,<j>]"),
        leakage=_ANALYST + " A's leading principal minors must not be zero (no pivoting).",
        parameters=(
            Param("n", "int", "rows of A", required=True),
            Param("l", "int", "columns of A, rows of B", required=True),
            Param("m", "int", "columns of B", required=True),
            Param("public_a", "numbers", "the public n×l matrix, row-major", required=True),
            Param("public_b", "numbers", "the public l×m matrix, row-major", required=True),
        ),
        min_data_owners=2,
        max_data_owners=2,
        examples=(
            Example(
                {
                    "n": 2,
                    "l": 3,
                    "m": 2,
                    "public_a": [1, 2, 3, 4, 5, 6],
                    "public_b": [7, 8, 9, 10, 11, 12],
                },
                lower=0,
                upper=20,
                decimals=0,
                abs_error=1e-6,  # GE: 32 fractional bits
                data=({"value": [1, 2, 3, 4, 5, 6]}, {"value": [7, 8, 9, 10, 11, 12]}),
            ),
        ),
    ),
    _port(
        "test_sfix",
        "test_sfix.mpc: sfix/cfix arithmetic (+, −, ·, /) on ±532 and ±342 in all four sign "
        "combinations, secret with secret and secret with clear, at program.bit_length = 80. "
        "Here the four combinations are vectors (the first owner's a, the second owner's b, "
        "the public public_b) computed in one array operation each, at SecFxp(64, 32); the "
        "clear-with-clear cases (no secret) are left out; a < b and a == b are added.",
        module="fixedpoint",
        summary="Fixed-point +, −, ·, / and comparisons with negatives, secret and public",
        inputs="two data owners, each a numeric `value` column (a and b, the same length)",
        outputs=(
            "a+b[<i>]",
            "a-b[<i>]",
            "a*b[<i>]",
            "a/b[<i>]",
            "b/a[<i>]",
            "a+pb[<i>]",
            "a*pb[<i>]",
            "a/pb[<i>]",
            "pb/a[<i>]",
            "a<b[<i>]",
            "a==b[<i>]",
        ),
        leakage=_ANALYST,
        parameters=(Param("public_b", "numbers", "the public operands", required=True),),
        min_data_owners=2,
        max_data_owners=2,
        examples=(
            Example(
                {"public_b": [-342, 342, -342, 342]},
                lower=-600,
                upper=600,
                decimals=0,
                abs_error=1e-6,
                data=({"value": [-532, -532, 532, 532]}, {"value": [-342, 342, -342, 342]}),
            ),
        ),
    ),
    _port(
        "test_math",
        "test_math.mpc: mpc_math's sin, cos, tan on sfix and sfloat at ±3, ±4.5, ±6, ±7.5. "
        "Here sin, cos, tan with MPyC's sincos (Korzilius–Schoenmakers) on SecFxp(64, 32), "
        "plus exp and log (absent from MPyC): exp by range reduction and a Taylor "
        "polynomial, log by Halley's iteration on exp; no sfloat (MPyC has no secure "
        "floating point).",
        module="fixedpoint",
        summary="sin, cos, tan, exp and log|x| of secret fixed-point values",
        inputs="first owner: a numeric `value` column x (exp: |x| <= 8; log: 1/64 <= |x| <= 64)",
        outputs=("sin[<i>]", "cos[<i>]", "tan[<i>]", "exp[<i>]", "log_abs[<i>]"),
        leakage=_ANALYST,
        max_data_owners=1,
        examples=(
            Example(
                owners=1,
                lower=-8,
                upper=8,
                decimals=1,
                abs_error=1e-6,
                rel_error=1e-6,
                data=({"value": _MATH_X},),
            ),
        ),
    ),
    _port(
        "test_sqrt",
        "test_sqrt.mpc: mpc_math's sqrt of sfix 2 and 25 and of sint 36 and 49. Here one "
        "fixed-point column: sqrt(x) = exp(log(x)/2) and one Newton step, on SecFxp(64, 32).",
        module="fixedpoint",
        summary="Square roots of secret fixed-point values",
        inputs="first owner: a numeric `value` column x (1/64 <= x <= 64)",
        outputs=("sqrt[<i>]",),
        leakage=_ANALYST,
        max_data_owners=1,
        examples=(
            Example(
                owners=1,
                lower=0,
                upper=100,
                decimals=0,
                abs_error=1e-6,
                rel_error=1e-6,
                data=({"value": [2, 36, 25, 49]},),
            ),
        ),
    ),
    _port(
        "test_float_sorting",
        "test_float_sorting.mpc: cond_swap and odd_even_merge_sort of sfloat numbers (8-bit "
        "mantissa) — [-0.03, 2], [3, 0] and 8 values random.uniform(-100, 100) after "
        "random.seed(0). Here the owners' values (all owners, concatenated) on the session's "
        "exact decimal grid are sorted by MPyC's np_sort (Batcher's odd-even merge network): "
        "no floating point, no rounding.",
        module="sorting",
        summary="The union of the owners' values, sorted obliviously",
        inputs="one numeric `value` column per data owner",
        outputs=("sorted[<i>]",),
        leakage="The sorted values reach the analyst: the multiset of all owners' values, "
        "not which owner holds which. " + _ANALYST,
        examples=(
            Example(
                lower=-100,
                upper=100,
                decimals=2,
                data=({"value": [-0.03, 2.0, 3.0, 0.0]}, {"value": _RANDOM}),
            ),
        ),
    ),
    _port(
        "test_map_reduce",
        "test_map_reduce.mpc: map_reduce over 999 items (each mapped to cint(1), summed) and "
        "map_sum over 100 items (mapped to (1, 2)), on threads. Here the map runs over the "
        "owners' secret rows (each row x to (1, 2, x)) as one array operation per owner, and "
        "the reduction combines the owners by MPyC's log-depth tree (mpctools.reduce); no "
        "threads (MPyC batches independent operations into the same rounds).",
        module="arithmetic",
        summary="Map every row to (1, 2, x) and reduce by sums: count, twice the count, sum",
        inputs="one numeric `value` column per data owner",
        outputs=("count", "twice", "sum"),
        leakage=_ANALYST,
        examples=(
            Example(
                lower=0,
                upper=1000,
                decimals=0,
                data=({"value": list(range(1, 501))}, {"value": list(range(501, 1000))}),
            ),
        ),
    ),
    _port(
        "keccak_f1600",
        "Keccak_f in SCALE-MAMBA is a Boolean circuit (Circuits/Bristol/Keccak_f.txt, run on "
        "sregint by the GC engine). MPyC has no Boolean circuits: here the 24 rounds are "
        "arithmetic on secret bits (XOR = a + b − 2ab, AND = a·b) over all 1600 bits at once, "
        "ρ and π a fixed gather; the state comes from the first owner as 1600 bits, and the "
        "25 lanes go to the analyst. The reference is the same code on clear numpy bits, "
        "checked against FIPS 202 (SHA3-256 of the empty message).",
        module="keccak",
        origin="KULeuven-COSIC/SCALE-MAMBA, Circuits/Bristol/Keccak_f.txt",
        summary="The Keccak-f[1600] permutation of a secret 1600-bit state",
        inputs="first owner: a `value` column of 1600 bits (0/1), lane by lane, LSB first",
        outputs=("lane[<i>]",),
        leakage=_ANALYST,
        max_data_owners=1,
        examples=(Example(owners=1, lower=0, upper=1, decimals=0, data=({"value": [0] * 1600},)),),
    ),
    _port(
        "rescue_hash",
        "Programs/Rescue implements the Rescue permutation in MAMBA with its own field and "
        "constants. Here a Rescue-style sponge (width 3, rate 2, S-box x^3 and its inverse "
        "x^(1/3), a Cauchy MDS matrix, constants from SHAKE-128, four rounds) over "
        "GF(2^64 − 59), on MPyC secure field arrays; not a standardized instance and no "
        "security level claimed. Checked against the same code on clear integers.",
        module="rescue",
        origin=f"{ORIGIN}Rescue/Rescue.mpc",
        summary="A Rescue-style sponge hash of a secret vector of field elements",
        inputs="first owner: a `value` column of integers in [0, 2^64 − 59)",
        outputs=("digest",),
        leakage=_ANALYST,
        max_data_owners=1,
        examples=(
            Example(
                owners=1, lower=0, upper=10**6, decimals=0, data=({"value": [1, 2, 3, 999_999]},)
            ),
        ),
    ),
    _port(
        "aes128",
        "GC_test.mpc runs AES-128 (and AES-192, AES-256, SHA-3) as garbled circuits on "
        "sregint: key and message pushed as two 64-bit words each, ciphertext popped and "
        "revealed to every player with the answer it should be. MPyC has no garbled "
        "circuits; here AES-128 runs on Shamir shares over GF(2^8) with AES's modulus: "
        "AddRoundKey, ShiftRows and MixColumns are linear (free), the S-box is x^254 (9 "
        "rounds) then the affine map on the inverse's 8 bit-shares, the whole state and the "
        "key schedule's 4 S-boxes in one array per round. The key comes from the first "
        "owner and the message from the second, as 16 bytes each; the 16 ciphertext bytes go "
        "to the analyst only, moved to the prime field by daBits (one opening of the "
        "ciphertext under a random pad). AES-192, AES-256 and GC_test's SHA-3 calls are left "
        "out (keccak_f1600 ports the permutation).",
        module="aes",
        origin=f"{ORIGIN}GC_test/GC_test.mpc",
        summary="AES-128 encryption of a secret block under a secret-shared key",
        inputs="first owner: the key, second owner: the plaintext; each a `value` column of "
        "16 bytes (integers 0..255, FIPS-197 order)",
        outputs=("ct[<i>]",),
        leakage="The 16 ciphertext bytes, to the analyst only. The parties learn the two "
        "row counts (16 each) and one opening of the ciphertext XOR a uniformly random "
        "128-bit pad all parties contribute to (independent of the data); nothing else.",
        min_data_owners=2,
        max_data_owners=2,
        check_rows=_sixteen_bytes_each,
        examples=(
            # GC_test's vector: key (0, -1) and message (-1, 1) as 64-bit words.
            Example(
                lower=0,
                upper=255,
                decimals=0,
                data=(
                    {"value": list(bytes.fromhex("ffffffffffffffff0000000000000000"))},
                    {"value": list(bytes.fromhex("0000000000000001ffffffffffffffff"))},
                ),
            ),
            # FIPS-197 appendix C.1.
            Example(
                lower=0,
                upper=255,
                decimals=0,
                data=(
                    {"value": list(range(16))},
                    {"value": list(bytes.fromhex("00112233445566778899aabbccddeeff"))},
                ),
            ),
        ),
    ),
)
