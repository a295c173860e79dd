"""Member programs end to end with real processes and the real CLI: once every party lists
its hash (the owners per dataset, the helper in its party.toml: it runs the code too) a
member's program runs without asking and gives the plaintext answer; the same program with
one byte changed waits at every party, whose administrators see its code in `ensnif job
pending` and approve it; a program that opens a value itself is stopped with its reason and
releases nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from pathlib import Path

import pandas as pd
import pytest

from ensnif_mpc.demo.localnet import LocalConsortium
from ensnif_mpc.jobs.member_program import Bundle
from tests.e2e.conftest import run_cli
from tests.helpers import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.consortium(rows=300)]

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "programs" / "big_baskets"
OWNERS = ("grocery", "logistics")
PARTIES = (*OWNERS, "helper")  # the helper runs the code too: it approves it as well
THRESHOLD = 40


def _reload(lc: LocalConsortium, party: str, programs: list[str]) -> None:
    """Rewrite ``party``'s policy (its datasets': exact release of programs and the listed
    hashes; a helper's: its own list) and have the running node reload it (SIGHUP)."""
    path = lc.root / f"party-{party}.toml"
    lines = [] if party in OWNERS else [f"programs = {json.dumps(programs)}"]
    for line in path.read_text().splitlines():
        if line.startswith("exact_protocols = ") and '"program"' not in line:
            names = json.loads(line.split("=", 1)[1])
            line = f"exact_protocols = {json.dumps([*names, 'program'])}"
        if line == "[datasets.privacy]":
            lines += ["[datasets.policy]", f"programs = {json.dumps(programs)}", ""]
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    log = lc.root / "logs" / f"{party}.log"
    before = log.read_text().count("reloaded its policies")
    proc = lc.members[party].proc
    assert proc is not None
    proc.send_signal(signal.SIGHUP)
    wait_for(
        lambda: log.read_text().count("reloaded its policies") > before,
        15,
        lambda: f"{party} reloading its policies; its log ends:\n{log.read_text()[-2000:]}",
    )


def _job_file(lc: LocalConsortium, program: Path, name: str) -> Path:
    path = lc.root / "jobs" / f"{name}.toml"
    path.write_text(
        f'name = "{name}"\nprotocol = "program"\nhelpers = ["helper"]\n\n'
        '[[inputs]]\nparty = "grocery"\ndataset = "orders"\ncolumn = "basket_total"\n\n'
        '[[inputs]]\nparty = "logistics"\ndataset = "deliveries"\ncolumn = "fee"\n\n'
        f"[params]\nthreshold = {THRESHOLD}\n\n[privacy]\nexact = true\n\n"
        f'[program]\npath = "{os.path.relpath(program, path.parent)}"\n'
    )
    return path


def _copy(lc: LocalConsortium, name: str) -> Path:
    target = lc.root / "programs" / name
    shutil.copytree(EXAMPLE, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def _submit(lc: LocalConsortium, job_file: Path) -> str:
    r = run_cli(lc, "job", "submit", str(job_file), "--json")
    assert r.code == 0, r.stderr
    return str(r.json()["job"]["id"])


def _status(lc: LocalConsortium, job_id: str) -> dict[str, object]:
    r = run_cli(lc, "job", "status", job_id, "--json")
    assert r.code == 0, r.stderr
    return dict(r.json())


def _party_states(lc: LocalConsortium, job_id: str) -> dict[str, str]:
    parties = _status(lc, job_id).get("parties", [])
    return {str(p["party"]): str(p["state"]) for p in parties}  # type: ignore[attr-defined]


def _waits_at_every_party(lc: LocalConsortium, job_id: str) -> None:
    wait_for(
        lambda: all(_party_states(lc, job_id).get(o) == "awaiting_approval" for o in PARTIES),
        30,
        lambda: f"job {job_id} awaiting approval at every party: {_party_states(lc, job_id)}",
    )


def _final(lc: LocalConsortium, job_id: str) -> dict[str, object]:
    final = {"succeeded", "failed", "rejected", "cancelled"}
    wait_for(lambda: _status(lc, job_id)["state"] in final, 90, f"job {job_id} ending")
    return _status(lc, job_id)


def _plaintext(lc: LocalConsortium) -> dict[str, float]:
    values = pd.concat(
        [
            pd.read_csv(lc.root / "data" / "orders.csv")["basket_total"],
            pd.read_csv(lc.root / "data" / "deliveries.csv")["fee"],
        ]
    )
    big = values[values >= THRESHOLD]
    return {"count_above": float(len(big)), "sum_above": float(big.sum())}


def _result(lc: LocalConsortium, job_id: str) -> dict[str, float]:
    r = run_cli(lc, "job", "result", job_id, "--json")
    assert r.code == 0, r.stderr
    return {name: float(out["value"]) for name, out in r.json()["outputs"].items()}


@pytest.fixture(scope="module")
def programs(lc: LocalConsortium) -> dict[str, Path]:
    """The example as the owners reviewed it, a copy with one changed byte, and a copy that
    opens its rows itself; the owners list the first and the last (and allow programs to
    release exactly), once for the module."""
    reviewed = _copy(lc, "reviewed")
    changed = _copy(lc, "changed")
    entry = changed / "big_baskets.py"
    entry.write_text(entry.read_text().replace("sint = p.sint()", "sint = p.sint() "))
    leaky = _copy(lc, "leaky")
    entry = leaky / "big_baskets.py"
    entry.write_text(
        entry.read_text().replace(
            "        big = values >= threshold\n",
            "        await mpc.output(values)  # opens every row: must be stopped\n"
            "        big = values >= threshold\n",
        )
    )
    listed = [Bundle.from_path(reviewed).digest, Bundle.from_path(leaky).digest]
    for party in PARTIES:
        _reload(lc, party, listed)
    return {"reviewed": reviewed, "changed": changed, "leaky": leaky}


def test_a_listed_program_runs_unasked_and_gives_the_plaintext_answer(
    lc: LocalConsortium, programs: dict[str, Path]
) -> None:
    job_id = _submit(lc, _job_file(lc, programs["reviewed"], "reviewed"))
    status = _final(lc, job_id)
    assert status["state"] == "succeeded", status
    shown = status["spec"]["program"]  # type: ignore[index]
    assert shown["hash"] == Bundle.from_path(programs["reviewed"]).digest
    got, expected = _result(lc, job_id), _plaintext(lc)
    assert got["count_above"] == expected["count_above"]
    assert got["sum_above"] == pytest.approx(expected["sum_above"], abs=1e-6)


def test_one_changed_byte_waits_for_every_party_which_then_reviews_the_code(
    lc: LocalConsortium, programs: dict[str, Path]
) -> None:
    digest = Bundle.from_path(programs["changed"]).digest
    job_id = _submit(lc, _job_file(lc, programs["changed"], "changed"))
    _waits_at_every_party(lc, job_id)

    grocery = str(lc.root / "party-grocery.toml")
    shown = run_cli(lc, "job", "pending", "--config", grocery, "--job", job_id)
    assert shown.code == 0, shown.stderr
    assert digest in shown.stdout  # the hash the owner approves ...
    assert "sint = p.sint() " in shown.stdout  # ... the code as it will run ...
    assert "[[release.blocks]]" in shown.stdout  # ... and its manifest
    for party in PARTIES:
        config = str(lc.root / f"party-{party}.toml")
        r = run_cli(lc, "job", "approve", job_id, "--config", config, "--as", "reviewer")
        assert r.code == 0, r.stderr

    status = _final(lc, job_id)
    assert status["state"] == "succeeded", status
    assert _result(lc, job_id)["count_above"] == _plaintext(lc)["count_above"]


def test_a_program_that_opens_a_value_itself_is_stopped_and_releases_nothing(
    lc: LocalConsortium, programs: dict[str, Path]
) -> None:
    job_id = _submit(lc, _job_file(lc, programs["leaky"], "leaky"))
    status = _final(lc, job_id)
    assert status["state"] == "failed", status
    assert status["reason_code"] == "undeclared_opening", status
    r = run_cli(lc, "job", "result", job_id, "--json")
    assert r.code != 0  # no party delivered a share: there is nothing to open
