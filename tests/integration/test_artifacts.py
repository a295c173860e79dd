"""Outputs to a named party and artifacts across jobs, through a real consortium.

A coordinator and three nodes over mTLS, real MPyC workers: a result opened to one
member only (the analyst and the other member open nothing of it), an artifact made by
one job and read by a later one (the result equals the plaintext over both steps),
`ensnif artifacts list|delete`, a deleted artifact refused with `artifact_not_found`, an
owner's policy refusing with `artifact_forbidden`, and the node audit chains.
"""

from __future__ import annotations

import dataclasses
import json
from fractions import Fraction
from typing import Any

import pytest
from click.testing import CliRunner

from ensnif_mpc.cli.main import cli
from ensnif_mpc.config import ClientProfile
from ensnif_mpc.demo import sample_data
from ensnif_mpc.errors import CryptoError, InvalidJobSpec
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk.client import Client, state_name
from tests.consortium import Consortium

pytestmark = [pytest.mark.slow, pytest.mark.consortium(rows=120)]

PARTIES = ("grocery", "logistics", "helper")


def spec(protocol: str, artifacts: list[str] | None = None) -> jobspec.JobSpec:
    raw: dict[str, Any] = {
        "protocol": protocol,
        "helpers": ["helper"],
        "inputs": [
            {"party": "grocery", "dataset": "orders", "column": "basket_total"},
            {"party": "logistics", "dataset": "deliveries", "column": "fee"},
        ],
        "privacy": {"exact": True},
    }
    if artifacts:
        raw["artifacts"] = artifacts
    return jobspec.from_dict(raw)


def sums(consortium: Consortium) -> tuple[Fraction, Fraction]:
    """Each owner's column sum in the clear, exactly (two decimals)."""
    data = consortium.lc.data
    assert data is not None
    a = sample_data.read_table(data.orders, {"value": "basket_total"})["value"]
    b = sample_data.read_table(data.deliveries, {"value": "fee"})["value"]
    exact = [sum((Fraction(str(round(float(v), 2))) for v in col), Fraction(0)) for col in (a, b)]
    return exact[0], exact[1]


def member(consortium: Consortium, name: str) -> Client:
    """A member's client: its node's consortium certificate and key."""
    analyst = ClientProfile.load(consortium.lc.profile)
    tls = consortium.party_config(name).tls
    return Client(dataclasses.replace(analyst, tls=tls), timeout_s=20)


def run(client: Client, s: jobspec.JobSpec) -> Any:
    job = client.submit(s)
    return client.wait(job.id, timeout_s=120)


def cli_json(consortium: Consortium, *args: str) -> Any:
    out = CliRunner().invoke(cli, ["--profile", str(consortium.lc.profile), *args])
    assert out.exit_code == 0, out.output
    return json.loads(out.output)


def test_a_result_opened_to_one_member_opens_for_it_alone(
    consortium: Consortium, client: Client
) -> None:
    final = run(client, spec("restart"))

    assert state_name(final) == "succeeded", final.reason
    a, b = sums(consortium)
    with member(consortium, "logistics") as logistics:
        assert logistics.result(final.id, exact=True) == {"product": a * b}
    assert client.result(final.id) == {}  # the analyst's part carries no output
    with member(consortium, "grocery") as grocery, pytest.raises(CryptoError):
        grocery.result(final.id)  # no part for grocery in any share


def test_an_artifact_feeds_a_later_job_and_is_listed_deleted_and_then_refused(
    consortium: Consortium, client: Client
) -> None:
    first = run(client, spec("stash_sum"))
    assert state_name(first) == "succeeded", first.reason
    artifact = f"{first.id}/totals"
    assert client.result(first.id) == {}  # nothing opened

    listed = {a["id"]: a for a in cli_json(consortium, "artifacts", "list", "--json")}
    assert sorted(listed[artifact]["holders"]) == sorted(PARTIES)
    assert listed[artifact]["owners"] == ["grocery", "logistics"]
    assert (listed[artifact]["kind"], listed[artifact]["shape"]) == ("fixed", [2])

    second = run(client, spec("stash_add", [artifact]))
    assert state_name(second) == "succeeded", second.reason
    a, b = sums(consortium)
    got = client.result(second.id)
    # Fixed point, 32 fractional bits: each sum rounded once per job.
    assert got["total[0]"] == pytest.approx(float(2 * a), abs=1e-6)
    assert got["total[1]"] == pytest.approx(float(2 * b), abs=1e-6)
    assert got["grand_total"] == pytest.approx(float(2 * (a + b)), abs=1e-6)

    deleted = cli_json(consortium, "artifacts", "delete", artifact, "--json")
    assert sorted(deleted["deleted_at"]) == sorted(PARTIES)
    assert artifact not in {a["id"] for a in cli_json(consortium, "artifacts", "list", "--json")}
    for name in PARTIES:  # no share left at any node, and the chain says who did what
        node = consortium.nodes[name].node
        assert node.artifacts.get(artifact) is None
        events = [(e, d.get("artifact")) for _, _, e, d, _, _ in node.store.audit_rows()]
        for event in ("artifact_created", "artifact_used", "artifact_deleted"):
            assert (event, artifact) in events, (name, event)

    refused = run(client, spec("stash_add", [artifact]))
    assert (state_name(refused), refused.reason_code) == ("rejected", "artifact_not_found")


def test_an_owner_whose_data_made_an_artifact_may_refuse_an_analyst(
    consortium: Consortium, client: Client
) -> None:
    first = run(client, spec("stash_sum"))
    assert state_name(first) == "succeeded", first.reason
    node = consortium.nodes["grocery"]
    before = node.node.cfg
    node.node.reload(dataclasses.replace(before, artifact_analysts=("someone-else",)))
    try:
        refused = run(client, spec("stash_add", [f"{first.id}/totals"]))
    finally:
        node.node.reload(before)

    assert (state_name(refused), refused.reason_code) == ("rejected", "artifact_forbidden")
    assert "grocery" in refused.reason


def test_a_job_must_list_the_artifacts_its_protocol_reads(client: Client) -> None:
    with pytest.raises(InvalidJobSpec, match="reads 1 artifact"):
        client.submit(spec("stash_add"))  # refused at submission: no job is created
    with pytest.raises(InvalidJobSpec, match="reads 0 artifact"):
        client.submit(spec("stash_sum", ["abc/totals"]))


def test_a_local_protocol_runs_at_its_one_owner_through_the_consortium(
    consortium: Consortium, client: Client
) -> None:
    """Backend local through the coordinator and a node: one party, no MPC session."""
    s = jobspec.from_dict(
        {
            "protocol": "local_sum",
            "inputs": [{"party": "grocery", "dataset": "orders", "column": "basket_total"}],
            "privacy": {"exact": True},
        }
    )

    final = run(client, s)

    assert state_name(final) == "succeeded", final.reason
    a, _ = sums(consortium)
    data = consortium.lc.data
    assert data is not None
    rows = len(sample_data.read_table(data.orders, {"value": "basket_total"})["value"])
    assert client.result(final.id, exact=True) == {"count": rows, "sum": a}
    assert [p.party for p in final.parties] == ["grocery"]
