"""Program.input_from for a role given a list of columns, with three real MPyC processes
over TLS: the owner's listed columns arrive as a secure rows × columns array in the job's
order (integers on the session's grid, or fixed point), or as per-column sums, equal to
numpy's on the owners' CSV files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.raw import run as run_raw

pytestmark = pytest.mark.slow

FEATURES = ["b", "a", "c"]  # not the file's order: the job's order is kept
DECIMALS = 2


def test_a_many_column_role_comes_in_as_a_matrix_and_as_column_sums(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    frames = [
        pd.DataFrame(
            np.round(rng.uniform(-5, 5, size=(rows, 3)), DECIMALS), columns=["a", "b", "c"]
        )
        for rows in (7, 5)
    ]
    files = []
    for i, frame in enumerate(frames):
        path = tmp_path / f"owner{i}.csv"
        frame.to_csv(path, index=False)
        files.append(str(path))
    columns = [
        {"name": n, "type": "float", "lower": -5.0, "upper": 5.0, "decimals": DECIMALS}
        for n in ("a", "b", "c")
    ]
    job = {"files": files, "columns": columns, "features": FEATURES, "decimals": DECIMALS}
    program = Path(__file__).with_name("matrix_input_program.py")

    out = run_raw(tmp_path / "run", str(program), job, 180).outputs

    first, second = (f[FEATURES].to_numpy() for f in frames)
    grid = np.rint(first * 10**DECIMALS).astype(np.int64)
    assert out["shape"] == [7, 3]
    assert out["grid"] == grid.ravel().tolist()
    assert out["sums"] == np.rint(second * 10**DECIMALS).astype(np.int64).sum(axis=0).tolist()
    np.testing.assert_allclose(out["real"], first.ravel(), atol=2**-20)
    np.testing.assert_allclose(out["real_sums"], second.sum(axis=0), atol=2**-20)
    assert out["count"] == 5
