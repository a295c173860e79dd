"""The outsourcing SDK (ensnif_mpc/sdk/outsource.py) against a real helper node (its
production start(), mTLS; the `helper` fixture of test_outsource_upload.py): keygen,
encrypt from a file and from columns in memory, verify, upload, list, a tampered upload
refused with its reason, and serve's bounded wait. The CLI runs these same functions, so
its tests (test_outsource_upload.py, test_outsourced_jobs.py) and `make demo` exercise
`serve` answering real jobs."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from ensnif_mpc import errors
from ensnif_mpc.config import ClientProfile
from ensnif_mpc.he import bfv
from ensnif_mpc.sdk import OutsourceHelper, outsource
from tests.integration.test_outsource_upload import SCHEMA, _profile, helper  # noqa: F401

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def shop(helper):  # noqa: F811 (the imported fixture)
    """A member without a node ("kiosk"): its profile, key and two encrypted uploads."""
    root, lc, running = helper
    home = root / "kiosk"
    home.mkdir()
    profile = ClientProfile.load(_profile(home, lc, "kiosk"))
    (home / "schema.toml").write_text(SCHEMA)
    amounts = np.random.default_rng(8).integers(0, 100_000, size=1200, endpoint=True) / 100
    (home / "sales.csv").write_text("amount\n" + "\n".join(f"{v:.2f}" for v in amounts) + "\n")
    key = outsource.keygen(home / "key")
    from_file = outsource.encrypt(
        profile, home / "sales.csv", "sales", home / "schema.toml", key.path, home / "up"
    )
    in_memory = outsource.encrypt(
        profile,
        {"amount": amounts[:300]},
        "sales-head",
        outsource.read_schema(home / "schema.toml"),
        key.path,
        home / "up-head",
        helper="helper",
    )
    node = f"127.0.0.1:{running.port}"
    return profile, node, key, from_file, in_memory, lc


def test_keygen_writes_a_bfv_key_the_owner_alone_can_use(shop) -> None:
    _, _, key, *_ = shop

    loaded = bfv.load_key(key.path)

    assert (key.scheme, loaded.context_sha256) == ("bfv", key.context_sha256)
    assert (key.path / "secret.ctx").stat().st_mode & 0o777 == 0o600


def test_encrypt_from_a_file_or_from_columns_and_verify_as_the_helper_would(shop) -> None:
    _, _, _, from_file, in_memory, lc = shop
    ca = (lc.pki_dir / "ca.crt").read_bytes()

    checked = outsource.verify(from_file.out, ca)
    head = outsource.verify(in_memory.out, ca)

    assert (from_file.owner, from_file.rows, from_file.series) == ("kiosk", 1200, 5)  # 2 bins
    assert (checked.rows, checked.ciphertexts) == (1200, from_file.ciphertexts)
    assert checked.manifest_sha256 == from_file.manifest_sha256
    assert (head.dataset, head.rows) == ("sales-head", 300)


def test_upload_then_list_through_the_sdk(shop) -> None:
    profile, node, key, from_file, _, _ = shop

    with OutsourceHelper(profile, node, "helper") as node_helper:
        stored = node_helper.upload(from_file.out)
        listed = node_helper.list()

    assert (stored.owner, stored.dataset, stored.rows) == ("kiosk", "sales", 1200)
    assert stored.context_sha256 == key.context_sha256
    assert stored.policy == {"exact_protocols": ["sum"]}
    assert [c["name"] for c in stored.columns] == ["amount"]
    assert from_file.manifest_sha256 in [d.manifest_sha256 for d in listed]


def test_a_tampered_upload_is_refused_with_its_reason(shop, tmp_path: Path) -> None:
    profile, node, _, from_file, _, _ = shop
    tampered = tmp_path / "tampered"
    shutil.copytree(from_file.out, tampered)
    target = tampered / "ct" / "amount" / "0.bin"
    blob = bytearray(target.read_bytes())
    blob[5000] ^= 1
    target.write_bytes(bytes(blob))

    with (
        OutsourceHelper(profile, node, "helper") as node_helper,
        pytest.raises(errors.EnsnifError) as err,
    ):
        node_helper.upload(tampered)

    assert err.value.reason == "he_ciphertext_tampered"


def test_serve_once_with_nothing_pending_returns_after_its_wait(shop) -> None:
    profile, node, key, *_ = shop

    with OutsourceHelper(profile, node, "helper") as node_helper:
        answers = node_helper.serve(key.path, ("sum",), once=True, wait_s=0.3, interval_s=0.1)

    assert answers == []
