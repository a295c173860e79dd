"""Encrypted scoring through real servers (coordinator and nodes over mTLS, in process):
scores against numpy, the refusals with their reasons, the audit, and the secret key
found nowhere but in the analyst's key directory."""

from __future__ import annotations

import dataclasses
import json
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import numpy as np
import pandas as pd
import pytest

from ensnif_mpc import errors
from ensnif_mpc.gen.ensnif.v1 import scoring_pb2 as spb
from ensnif_mpc.he import ckks, keys, scoring
from ensnif_mpc.he.sigmoid import sigmoid
from ensnif_mpc.sdk.client import Client
from ensnif_mpc.security import pki
from party_node import models
from party_node.store import NodeStore
from tests.consortium import Consortium

pytestmark = pytest.mark.slow

OWNER = "grocery"
RNG = np.random.default_rng(20261202)
W_LIN = RNG.normal(0, 2.0, 5)
W_LOG = RNG.normal(0, 0.25, 20)


@pytest.fixture(scope="module")
def registry(consortium: Consortium) -> models.ModelRegistry:
    reg = models.ModelRegistry(consortium.party_config(OWNER).state_dir)
    reg.register(models.build("lin", "linear", W_LIN.tolist(), 0.75))
    reg.register(
        models.build(
            "logit",
            "logistic",
            W_LOG.tolist(),
            -0.3,
            feature_bounds=([-1.0] * 20, [1.0] * 20),
        )
    )
    reg.register(
        models.build("logit-exact", "logistic", W_LOG.tolist(), -0.3, sigmoid_at="analyst")
    )
    reg.register(models.build("private", "linear", [1.0, 2.0], 0.0, allow=("someone-else",)))
    reg.register(models.build("quota", "linear", [1.0, 2.0], 0.0, row_quota=10))
    return reg


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "analyst-keys"


def test_the_catalog_shows_models_without_their_weights(
    client: Client, registry: models.ModelRegistry
) -> None:
    found = {m.name: m for m in client.models()}

    assert {"lin", "logit", "private", "quota"} <= set(found)
    logit = found["logit"]
    assert (logit.party, logit.kind, logit.features) == (OWNER, "logistic", 20)
    lo, hi = scoring_range = (logit.input_low, logit.input_high)
    assert scoring_range == pytest.approx((-0.3 - np.abs(W_LOG).sum(), -0.3 + np.abs(W_LOG).sum()))
    assert 0 < logit.sigmoid_max_error < 0.05 and lo < 0 < hi
    assert "weights" not in str(logit) and str(W_LOG[0]) not in str(logit)


def test_linear_scores_match_numpy(
    client: Client, registry: models.ModelRegistry, key_dir: Path
) -> None:
    rows = RNG.uniform(-10, 10, (300, 5))

    out = client.score("lin", rows, key_dir=key_dir)

    np.testing.assert_allclose(out.values, rows @ W_LIN + 0.75, atol=1e-3, rtol=0)
    assert out.stats.rows == 300 and out.stats.batches == 1


def test_logistic_scores_match_numpy_within_the_stated_error(
    client: Client, registry: models.ModelRegistry, key_dir: Path
) -> None:
    rows = RNG.uniform(-1, 1, (4096 + 37, 20))  # a full batch and a partial one
    poly = registry.get("logit").model.sigmoid()
    assert poly is not None
    z = rows @ W_LOG - 0.3

    out = client.score("logit", rows, key_dir=key_dir, n_threads=2)

    assert out.stats.batches == 2
    np.testing.assert_allclose(out.values, poly(z), atol=1e-3, rtol=0)  # CKKS error
    assert np.max(np.abs(out.values - sigmoid(z))) <= poly.max_error + 1e-3
    # a batch's ciphertexts cost the same whatever its rows: < 2 kB per row when full
    assert out.stats.ciphertext_bytes / (out.stats.batches * ckks.LOGISTIC.slots) < 2048


def test_a_logistic_model_with_the_sigmoid_at_the_analyst_scores_exactly(
    client: Client, registry: models.ModelRegistry, key_dir: Path
) -> None:
    rows = RNG.uniform(-4, 4, (500, 20))  # no range to respect: no polynomial

    out = client.score("logit-exact", rows, key_dir=key_dir)

    assert out.model.sigmoid_at == "analyst" and out.model.params == ckks.LINEAR.name
    np.testing.assert_allclose(out.values, sigmoid(rows @ W_LOG - 0.3), atol=1e-6, rtol=0)


def test_the_request_is_in_the_owners_audit_chain(
    consortium: Consortium, client: Client, registry: models.ModelRegistry, key_dir: Path
) -> None:
    client.score("lin", RNG.uniform(-1, 1, (7, 5)), key_dir=key_dir)
    node = consortium.nodes[OWNER].node

    events = [(e, d) for _, _, e, d, _, _ in node.store.audit_rows() if e == "score_accepted"]

    assert events[-1][1]["analyst"] == "analyst"
    assert events[-1][1]["model"] == "lin" and events[-1][1]["rows"] == 7


@pytest.mark.parametrize(
    ("model", "rows", "reason"),
    [
        ("private", np.ones((3, 2)), "model_not_allowed"),
        ("quota", np.ones((11, 2)), "model_row_quota"),
        ("nonexistent", np.ones((3, 2)), "unknown_model"),
        ("lin", np.ones((3, 4)), "he_feature_count"),
        ("logit", np.full((3, 20), 1.5), "he_input_out_of_range"),
        ("lin", np.array([[1.0, 2.0, np.nan, 0.0, 0.0]]), "he_input_out_of_range"),
    ],
)
def test_bad_requests_are_refused_with_their_reason(
    client: Client,
    registry: models.ModelRegistry,
    key_dir: Path,
    model: str,
    rows: np.ndarray,
    reason: str,
) -> None:
    with pytest.raises(errors.EnsnifError) as err:
        client.score(model, rows, key_dir=key_dir)

    assert err.value.reason == reason
    assert "1.5" not in err.value.message and "nan" not in err.value.message.lower()


# -- hand-built streams: what a faulty or hostile client (or relay) sends ------------------


def _stream(
    client: Client,
    key: keys.KeyDir,
    rows: np.ndarray,
    *,
    model: str = "lin",
    features: int | None = None,
    cipher_key: keys.KeyDir | None = None,
    tamper: bool = False,
    nonce: str | None = None,
) -> Iterator[spb.ScoreRequest]:
    signing = client.profile.tls.key.read_bytes()
    nonce = nonce or secrets.token_hex(16)
    n, f = rows.shape
    msg = scoring.header_message(
        OWNER, model, key.params, key.context_hash, n, features or f, nonce
    )
    yield spb.ScoreRequest(
        header=spb.ScoreHeader(
            party=OWNER,
            model=model,
            params=key.params,
            context_sha256=key.context_hash,
            rows=n,
            features=features or f,
            nonce=nonce,
            analyst_certificate_pem=client.profile.tls.cert.read_text(),
            signature=pki.sign(signing, msg),
        )
    )
    yield spb.ScoreRequest(context_chunk=key.public)
    enc = cipher_key or key
    blobs = ckks.encrypt_columns(enc.context, enc.context_hash, rows.T)
    digest = scoring.batch_digest(blobs)
    seal = pki.sign(signing, scoring.seal_message(nonce, key.context_hash, 0, n, digest))
    if tamper:
        b = bytearray(blobs[1])
        b[len(b) // 2] ^= 0x01
        blobs[1] = bytes(b)
    for j, blob in enumerate(blobs):
        yield spb.ScoreRequest(ciphertext=spb.CiphertextChunk(batch=0, feature=j, data=blob))
    yield spb.ScoreRequest(seal=spb.BatchSeal(batch=0, rows=n, digest=digest, signature=seal))


def _refusal(client: Client, requests: Iterator[spb.ScoreRequest]) -> str:
    with pytest.raises(errors.EnsnifError) as err:
        list(client.score_stream(requests))
    return err.value.reason


def test_ciphertexts_from_another_context_are_refused(
    client: Client, registry: models.ModelRegistry, tmp_path: Path
) -> None:
    mine = keys.load_or_create_ckks(tmp_path / "a", ckks.LINEAR)
    other = keys.load_or_create_ckks(tmp_path / "b", ckks.LINEAR)

    reason = _refusal(client, _stream(client, mine, np.ones((4, 5)), cipher_key=other))

    assert reason == "he_context_mismatch"


def test_a_context_of_other_parameters_than_it_claims_is_refused(
    client: Client, registry: models.ModelRegistry, tmp_path: Path
) -> None:
    """The header names the linear set; the context sent (and signed) is a logistic one."""
    logistic = keys.load_or_create_ckks(tmp_path / "a", ckks.LOGISTIC)
    claimed = dataclasses.replace(logistic, params=ckks.LINEAR.name)

    assert _refusal(client, _stream(client, claimed, np.ones((4, 5)))) == "he_context_invalid"


def test_a_tampered_ciphertext_is_refused(
    client: Client, registry: models.ModelRegistry, tmp_path: Path
) -> None:
    key = keys.load_or_create_ckks(tmp_path / "a", ckks.LINEAR)

    assert _refusal(client, _stream(client, key, np.ones((4, 5)), tamper=True)) == (
        "he_ciphertext_tampered"
    )


def test_the_node_refuses_a_feature_count_the_model_does_not_take(
    client: Client, registry: models.ModelRegistry, tmp_path: Path
) -> None:
    key = keys.load_or_create_ckks(tmp_path / "a", ckks.LINEAR)

    assert _refusal(client, _stream(client, key, np.ones((4, 3)))) == "he_feature_count"


def test_a_replayed_request_is_refused(
    client: Client, registry: models.ModelRegistry, tmp_path: Path
) -> None:
    key = keys.load_or_create_ckks(tmp_path / "a", ckks.LINEAR)
    nonce = secrets.token_hex(16)
    first = list(client.score_stream(_stream(client, key, np.ones((4, 5)), nonce=nonce)))
    assert len(first) == 2  # accepted, one result

    assert _refusal(client, _stream(client, key, np.ones((4, 5)), nonce=nonce)) == (
        "crypto_verification_failed"
    )


def test_the_secret_key_is_nowhere_but_in_the_analysts_directory(
    consortium: Consortium, client: Client, registry: models.ModelRegistry, tmp_path: Path
) -> None:
    key_dir = tmp_path / "keys"
    client.score("logit", RNG.uniform(-1, 1, (50, 20)), key_dir=key_dir)
    key = keys.load(key_dir)
    raw_path = key_dir / "sk.raw"  # SEAL's own serialization of the secret key alone
    key.context.secret_key().data.save(str(raw_path))
    secret_key = raw_path.read_bytes()
    raw_path.unlink()
    n = len(secret_key)
    needles = [secret_key[s : s + 64] for s in (n // 5, n // 2, n - 64)]
    assert all(needle in (key_dir / keys.SECRET).read_bytes() for needle in needles)
    assert not any(needle in key.public for needle in needles)

    found = []
    for path in consortium.lc.root.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            found += [str(path) for needle in needles if needle in data]

    assert found == []
    assert (key_dir / keys.SECRET).stat().st_mode & 0o777 == 0o600


def test_the_node_state_keeps_no_ciphertext(consortium: Consortium, client: Client) -> None:
    store_path = consortium.party_config(OWNER).state_dir / "node.db"
    store = NodeStore(store_path)
    try:
        details = [d for _, _, e, d, _, _ in store.audit_rows() if e.startswith("score")]
    finally:
        store.close()
    assert details and all(len(str(d)) < 1000 for d in details)


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


def _ensnif(capsys: pytest.CaptureFixture[str], *args: str) -> Ran:
    """The `ensnif` command's entry point, in this process (its exit code and output)."""
    from ensnif_mpc.cli.main import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as ended:
        main(list(args))
    out = capsys.readouterr()
    return Ran(int(ended.value.code or 0), out.out, out.err)


def test_the_cli_registers_a_model_and_scores_a_csv(
    consortium: Consortium,
    registry: models.ModelRegistry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    weights = tmp_path / "w.csv"
    weights.write_text("age,income,visits\n0.5,-0.25,1.5\n")
    x = RNG.uniform(-2, 2, (40, 3))
    rows = tmp_path / "rows.csv"
    pd.DataFrame(x, columns=["visits", "age", "income"]).to_csv(rows, index=False)
    config = str(consortium.lc.root / f"party-{OWNER}.toml")
    profile = str(consortium.lc.profile)

    reg = _ensnif(
        capsys,
        "model",
        "register",
        "--config",
        config,
        "--name",
        "cli-logit",
        "--weights",
        str(weights),
        "--bias",
        "0.1",
        "--kind",
        "logistic",
        "--input-range",
        "-8,8",
        "--json",
    )
    listed = _ensnif(capsys, "--profile", profile, "model", "list", "--json")
    out = tmp_path / "scores.csv"
    scored = _ensnif(
        capsys,
        "--profile",
        profile,
        "score",
        "--model",
        "cli-logit",
        "--input",
        str(rows),
        "--output",
        str(out),
        "--key",
        str(tmp_path / "k"),
        "--json",
    )

    assert reg.returncode == 0, reg.stderr
    assert "cli-logit" in {m["name"] for m in json.loads(listed.stdout)["models"]}
    table = _ensnif(capsys, "--profile", profile, "model", "list")
    stated = registry.get("cli-logit").model.sigmoid()
    assert stated is not None
    assert table.returncode == 0 and "cli-logit" in table.stdout
    assert f"{stated.max_error:.3g}" in table.stdout  # the sigmoid's error, as stated
    assert scored.returncode == 0, scored.stderr
    summary = json.loads(scored.stdout)
    assert summary["rows"] == 40 and summary["kind"] == "logistic"
    poly = registry.get("cli-logit").model.sigmoid()
    assert poly is not None
    z = x[:, [1, 2, 0]] @ np.array([0.5, -0.25, 1.5]) + 0.1  # columns matched by name
    np.testing.assert_allclose(pd.read_csv(out)["score"], poly(z), atol=1e-3, rtol=0)


def test_the_cli_names_a_refusal_by_its_reason(
    consortium: Consortium,
    registry: models.ModelRegistry,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    rows = tmp_path / "rows.csv"
    pd.DataFrame(np.ones((3, 2)), columns=["a", "b"]).to_csv(rows, index=False)

    run = _ensnif(
        capsys,
        "--profile",
        str(consortium.lc.profile),
        "score",
        "--model",
        "private",
        "--input",
        str(rows),
        "--key",
        str(tmp_path / "k"),
        "--json",
    )

    assert run.returncode == 4  # PERMISSION_DENIED
    assert json.loads(run.stderr)["error"]["reason"] == "model_not_allowed"


def test_only_an_analyst_may_score(
    consortium: Consortium, registry: models.ModelRegistry, tmp_path: Path
) -> None:
    """A node's certificate (role party) cannot score through the coordinator, even with a
    header signed by its own key."""
    profile = tmp_path / "grocery-profile.toml"
    text = consortium.lc.profile.read_text()
    profile.write_text(
        text.replace("pki/analyst.crt", f"{consortium.lc.root}/pki/{OWNER}.crt")
        .replace("pki/analyst.key", f"{consortium.lc.root}/pki/{OWNER}.key")
        .replace("pki/ca.crt", f"{consortium.lc.root}/pki/ca.crt")
    )
    key = keys.load_or_create_ckks(tmp_path / "k", ckks.LINEAR)
    with consortium.client(profile) as member:
        assert "lin" in {m.name for m in member.models()}  # the catalog is for every member

        with pytest.raises(errors.PermissionDenied):
            list(member.score_stream(_stream(member, key, np.ones((2, 5)))))


def test_the_node_takes_scoring_only_from_its_coordinator(
    consortium: Consortium, client: Client, registry: models.ModelRegistry, tmp_path: Path
) -> None:
    from ensnif_mpc.gen.ensnif.v1 import party_pb2_grpc
    from ensnif_mpc.security.tls import secure_channel

    key = keys.load_or_create_ckks(tmp_path / "k", ckks.LINEAR)
    address = f"127.0.0.1:{consortium.nodes[OWNER].port}"
    channel = secure_channel(address, client.profile.tls, OWNER)  # the analyst's own cert
    try:
        stub = party_pb2_grpc.PartyServiceStub(channel)
        with pytest.raises(grpc.RpcError) as err:
            list(stub.Score(_stream(client, key, np.ones((2, 5))), timeout=20))
    finally:
        channel.close()

    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_released_model_is_registered_from_its_job_result(
    consortium: Consortium,
    registry: models.ModelRegistry,
    tmp_path: Path,
    client: Client,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`ensnif job result JOB --json` of a logistic regression (coef[j], intercept), as
    ensnif_mpc/cli/render.py:result_dict writes it, registered as it is."""
    coef, intercept = [0.8, -1.1, 0.3], 0.25
    outputs = {f"coef[{j}]": {"value": c, "exact": str(c)} for j, c in enumerate(coef)}
    outputs["intercept"] = {"value": intercept, "exact": str(intercept)}
    released = tmp_path / "result.json"
    released.write_text(json.dumps({"job_id": "j", "outputs": outputs, "release": "exact"}))
    config = str(consortium.lc.root / f"party-{OWNER}.toml")

    reg = _ensnif(
        capsys,
        "model",
        "register",
        "--config",
        config,
        "--name",
        "released",
        "--from-result",
        str(released),
        "--features",
        "a,b,c",
        "--feature-bounds",
        "-1,1",
    )
    rows = RNG.uniform(-1, 1, (64, 3))
    out = client.score("released", rows, key_dir=tmp_path / "k")

    assert reg.returncode == 0, reg.stderr
    assert out.model.kind == "logistic" and list(out.model.feature_names) == ["a", "b", "c"]
    poly = registry.get("released").model.sigmoid()
    assert poly is not None
    np.testing.assert_allclose(out.values, poly(rows @ coef + intercept), atol=1e-3, rtol=0)
