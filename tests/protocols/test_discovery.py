"""Private group discovery (`group_discovery`) with real workers, against pandas.

Two owners and a helper (three MPyC worker processes). The exact release opens every
label with a row and its count, as pandas' value_counts over both owners; the DP release
opens only labels whose noisy count clears τ: a label one person is in stays hidden (it
would be opened with probability at most δ = 1e-9 here), large groups are found with
counts within 6σ of pandas', and every slot that is not selected opens as zeros.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from ensnif_mpc.data.schema import Column
from ensnif_mpc.privacy import dp
from ensnif_mpc.results.shares import combine
from protocols import discovery
from protocols.registry import catalog
from tests.protocols.harness import OwnerTable, RunResult, run_parties

pytestmark = pytest.mark.slow

rng = np.random.default_rng(11)
BIG = ["10115", "10117", "Zürich", "a-label-longer-than-seventeen-bytes"]
# Owner A: the big groups, a group only it has, and one row of its own ("solo-a");
# owner B: the big groups (mostly shared) and one row of its own ("solo-b").
A = np.array([*rng.choice(BIG, 600), *["only-a"] * 300, "solo-a"], dtype=object)
B = np.array([*rng.choice(BIG[:3], 500), *["only-b"] * 250, "solo-b"], dtype=object)
PARAMS = {"max_groups": 8, "delta": 1e-9}
# A third owner: a label all three have, one only B and C have, one of its own.
C = np.array([*rng.choice(BIG[:2], 200), *["only-b"] * 30, *["only-c"] * 40], dtype=object)


def _owner(labels: np.ndarray) -> OwnerTable:
    return OwnerTable({"g": labels}, (Column("g", "string"),), {"group": "g"})


def _plan() -> dp.ReleasePlan:
    blocks = catalog()["group_discovery"].dp_sensitivity([(1, 0), (1, 0)], PARAMS)
    return dp.plan(0.5, blocks, 3, 1)


def _pandas() -> pd.Series:
    cut = [discovery.cut(str(g), discovery.DEFAULT_LABEL_BYTES).decode() for g in [*A, *B]]
    return pd.Series(cut).value_counts()


def _cohort_run(tmp_path: Path) -> dict[str, Fraction | float]:
    """Owner A's policy sets min_cohort = 600: its node writes it to its worker's session,
    input there as a secret. Pandas: big 1200, mid 300, b-only 150."""
    from ensnif_mpc.jobs.worker_session import SESSION_FILE
    from protocols.registry import finalize
    from tests.protocols.harness import (
        Workers,
        as_table,
        bit_length_for,
        make_consortium,
        unseal_all,
        write_sessions,
    )

    a = np.array(["big"] * 800 + ["mid"] * 200, dtype=object)
    b = np.array(["big"] * 400 + ["mid"] * 100 + ["b-only"] * 150, dtype=object)
    release = _plan().to_dict()
    consortium = make_consortium(tmp_path, 3)
    tables = [as_table(_owner(a), 0, 0, 0), as_table(_owner(b), 0, 0, 0), None]
    bits = bit_length_for(tables, 0) + dp.ReleasePlan.from_dict(release).headroom_bits()
    dirs = write_sessions(
        tmp_path,
        consortium,
        job_id="cohort1",
        protocol="group_discovery",
        owner_values=tables,
        params=PARAMS,
        decimals=0,
        bit_length=bits,
        release=release,
    )
    session = json.loads((dirs[0] / SESSION_FILE).read_text())
    (dirs[0] / SESSION_FILE).write_text(json.dumps({**session, "min_cohort": 600}))
    with Workers(dirs) as workers:
        workers.start_all()
        assert not any(workers.wait(timeout=240).values())
    return finalize("group_discovery", combine(unseal_all(dirs, consortium, "cohort1")))


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    def run(kind: str) -> RunResult:
        return run_parties(
            tmp_path_factory.mktemp(kind),
            "group_discovery",
            [_owner(A), _owner(B), None],
            PARAMS,
            job_id=f"discover{kind}",
            timeout=240,
            release=None if kind == "exact" else _plan().to_dict(),
        )

    def three() -> RunResult:  # three owners and a helper: four workers
        return run_parties(
            tmp_path_factory.mktemp("three"),
            "group_discovery",
            [_owner(A), _owner(B), _owner(C), None],
            {**PARAMS, "owners": 3},
            job_id="discoverthree",
            timeout=240,
        )

    with ThreadPoolExecutor(3) as pool:  # the jobs at once, once per module
        cohort = pool.submit(_cohort_run, tmp_path_factory.mktemp("cohort"))
        owners3 = pool.submit(three)
        out: dict[str, Any] = dict(
            zip(("exact", "dp"), pool.map(run, ("exact", "dp")), strict=True)
        )
        out["cohort"] = cohort.result()
        out["three"] = owners3.result()
        return out


def test_exact_discovery_opens_every_label_with_its_count_as_pandas(runs):
    want = {f"count[{label}]": Fraction(int(n)) for label, n in _pandas().items()}

    assert runs["exact"].outputs == want


def test_three_owners_labels_are_matched_across_all_of_them_as_pandas(runs):
    """params.owners = 3: 3·M candidate slots; a label at all three owners, at two of them
    (B and C, not A) and at one comes out once, with its count over all three."""
    cut = [discovery.cut(str(g), discovery.DEFAULT_LABEL_BYTES).decode() for g in [*A, *B, *C]]
    want = {f"count[{k}]": Fraction(int(n)) for k, n in pd.Series(cut).value_counts().items()}
    raw = combine(runs["three"].parts)

    assert runs["three"].outputs == want
    assert sum(1 for k in raw if k.startswith("count[")) == 3 * PARAMS["max_groups"]
    assert (
        catalog()["group_discovery"].dp_sensitivity([(1, 0)], {**PARAMS, "owners": 3})[0][1]
        == 3 * PARAMS["max_groups"]
    )  # what every node's check counts, from the job alone


def test_dp_discovery_hides_one_person_groups_and_finds_the_large_ones(runs):
    plan, counts = _plan(), _pandas()
    sd = plan.output_sigmas()[0]
    tau = discovery.threshold(plan, PARAMS)
    got = runs["dp"].outputs

    assert tau > 6 * sd  # a one-row label is far below it
    assert "count[solo-a]" not in got and "count[solo-b]" not in got
    large = [label for label, n in counts.items() if n > tau + 6 * sd]
    assert sorted(large) == sorted(set(counts.index) - {"solo-a", "solo-b"})
    for label in large:
        assert abs(float(got[f"count[{label}]"]) - counts[label]) <= 6 * sd
    assert {k[len("count[") : -1] for k in got} <= set(counts.index)


def test_dp_discovery_opens_zeros_in_every_unselected_slot_and_noise_only_on_counts(runs):
    raw = combine(runs["dp"].parts)
    plan = _plan()
    slots = 2 * PARAMS["max_groups"]
    pieces = discovery.chunks(discovery.DEFAULT_LABEL_BYTES)

    selected = [i for i in range(slots) if raw[f"count[{i}]"] != 0]
    assert len(selected) == len(runs["dp"].outputs)
    for i in set(range(slots)) - set(selected):
        assert all(raw[f"label{j}[{i}]"] == 0 for j in range(pieces))
    sds = {o.name: o.noise_sd for o in runs["dp"].parts[0].outputs}
    assert all(sds[f"count[{i}]"] == pytest.approx(plan.output_sigmas()[i]) for i in range(slots))
    assert all(sds[f"label{j}[{i}]"] == 0 for j in range(pieces) for i in range(slots))


def test_the_slots_are_shuffled_so_a_slot_says_nothing_about_its_owner(runs):
    """Unshuffled, the first owner's labels would sit in its slots in code order and the
    second owner's own labels in the second half; after the shuffle that exact layout
    comes back with probability about 16!/8!⁻¹ (2e-9)."""
    raw = combine(runs["exact"].parts)
    m, pieces = PARAMS["max_groups"], discovery.chunks(discovery.DEFAULT_LABEL_BYTES)

    def laid(labels: np.ndarray) -> list[str | None]:
        cut = [discovery.cut(str(g), discovery.DEFAULT_LABEL_BYTES) for g in labels]
        totals = {label: int(n) for label, n in pd.Series(cut).value_counts().items()}
        out = discovery.slots(totals, m, discovery.DEFAULT_LABEL_BYTES)
        return [discovery.decode(out[:-1, i].tolist()) for i in range(m)]

    first, second = laid(A), laid(B)
    unshuffled = first + [None if label in first else label for label in second]
    opened = [
        discovery.decode([int(raw[f"label{j}[{i}]"]) for j in range(pieces)]) for i in range(2 * m)
    ]

    assert sorted(filter(None, opened)) == sorted(filter(None, unshuffled))
    assert opened != unshuffled


# -- the local steps, without MPC ----------------------------------------------------------------


def test_labels_round_trip_and_are_cut_at_a_character_boundary():
    for label in ("10115", "", "Zürich", "ü" * 20, "x" * 17):
        code = discovery.encode(label, 17)
        assert len(code) == 3 and all(0 <= c < 2**48 for c in code) and any(code)
        assert discovery.decode(code) == discovery.cut(label, 17).decode()
    assert discovery.cut("ü" * 20, 17) == ("ü" * 8).encode()  # 16 bytes, not a broken 17th
    assert discovery.decode([0, 0, 0]) is None


def test_an_owner_lays_its_labels_on_the_public_slots_in_code_order():
    out = discovery.slots({b"b": 5, b"a": 7, b"c": 1}, 4, 17)

    assert out.shape == (4, 4)
    assert [discovery.decode(out[:-1, i].tolist()) for i in range(4)] == ["a", "b", "c", None]
    assert out[-1].tolist() == [7, 5, 1, 0]


def test_the_threshold_grows_with_the_noise_the_rows_per_person_and_a_smaller_delta():
    def tau(rho: float, k: int, delta: float) -> int:
        blocks = catalog()["group_discovery"].dp_sensitivity([(k, 0), (k, 0)], PARAMS)
        return discovery.threshold(dp.plan(rho, blocks, 3, 1), {**PARAMS, "delta": delta})

    assert tau(0.1, 1, 1e-6) > tau(1.0, 1, 1e-6)
    assert tau(0.5, 3, 1e-6) > tau(0.5, 1, 1e-6)
    assert tau(0.5, 1, 1e-9) > tau(0.5, 1, 1e-6)
    assert discovery.threshold(dp.EXACT, PARAMS) == 0


def test_under_a_person_bound_each_person_counts_in_their_first_groups_only(tmp_path):
    """The owner's local step (its worker and its node run it): at most k rows per person
    (contribution bounding), then only the person's first ``groups_per_person`` labels in
    label order; pandas computes the same from the file."""
    from ensnif_mpc.data.bounding import Bound
    from ensnif_mpc.data.sources import SourceSpec, open_source

    frame = pd.DataFrame(
        {
            "person": rng.choice([f"p{i}" for i in range(40)], 400),
            "g": rng.choice(["x", "y", "z", "w"], 400),
        }
    )
    path = tmp_path / "rows.csv"
    frame.to_csv(path, index=False)
    columns = (Column("person", "string"), Column("g", "string"))
    source = open_source(SourceSpec("csv", path=str(path)), columns)
    source.bound = Bound("person", 3)

    got = discovery.local_counts(source, "g", 2, 17)

    kept = frame[frame.groupby("person").cumcount() < 3]  # the first 3 rows of each person
    per_pair = kept.groupby(["person", "g"]).size().reset_index(name="n")
    firsts = per_pair[per_pair.groupby("person").cumcount() < 2]  # sorted: first 2 labels
    want = firsts.groupby("g")["n"].sum()
    assert got == {g.encode(): int(n) for g, n in want.items()}
    source.bound = None  # an exact release: every row
    assert discovery.local_counts(source, "g", 2, 17) == {
        g.encode(): int(n) for g, n in frame["g"].value_counts().items()
    }


def test_an_owner_s_min_cohort_holds_for_the_joint_noisy_count_inside_mpc(runs):
    """A group whose joint noisy count is below the owner's min_cohort stays closed, though
    far above τ; the one above it opens."""
    got = runs["cohort"]
    sd = _plan().output_sigmas()[0]

    assert discovery.threshold(_plan(), PARAMS) + 6 * sd < 150  # all three clear τ
    assert list(got) == ["count[big]"]
    assert abs(float(got["count[big]"]) - 1200) <= 6 * sd
