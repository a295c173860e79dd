"""The demo's outsourced dataset: a corner shop that runs no node puts its sales at the
consortium's disposal, encrypted under its own BFV key, at the helper node
(docs/homomorphic.md, "Outsourced datasets").

The shop holds an analyst certificate from the consortium CA and a key directory, nothing
else. Through the SDK (ensnif_mpc/sdk/outsource.py, what ``ensnif outsource`` runs) it
generates its key, encrypts its sales column by column, signs the directory for the helper
and uploads it; the helper node publishes the schema under the shop's name. A job then adds
the grocery's live basket totals to the shop's outsourced sales (``sum``, exact: both
policies allow it): the helper masks the encrypted total, the shop's online client
(``serve``, run here on a thread for the job's duration) decrypts only the masked value and
seals one share per MPC party, and the answer is printed next to the plaintext sum. The
shop's files (profile, sales.csv, key, upload) stay under ``cornershop/`` in the demo's
directory; the secret key never leaves ``cornershop/key``.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from ensnif_mpc.config import ClientProfile
from ensnif_mpc.data.schema import Column
from ensnif_mpc.demo import sample_data
from ensnif_mpc.demo.localnet import LocalConsortium
from ensnif_mpc.errors import Unavailable
from ensnif_mpc.he.outsource_table import OutsourcedColumn
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk import outsource
from ensnif_mpc.sdk.client import Client, state_name
from ensnif_mpc.security import pki

OWNER = "cornershop"
DATASET = "sales"
HELPER = "helper"
THIRD = "logistics"  # the MPC's third party (the helper plays the shop's position)
ROWS = 1500
SCHEMA = outsource.Schema(
    (OutsourcedColumn(Column("amount", "float", 0.0, 500.0, 2)),),
    {"protocols": ["sum", "mean"], "exact_protocols": ["sum"], "budget_rho": 1.0, "max_rho": 0.5},
)
PUBLISH_WAIT_S = 30.0  # the helper publishes what it holds at its next registration


@dataclass(frozen=True)
class Prepared:
    """What the shop did before any job: its key, its encrypted upload, and its sales."""

    profile: ClientProfile
    key_dir: Path
    amounts: np.ndarray  # the shop's sales, in the clear, on the shop's machine only
    ciphertexts: int
    upload_bytes: int
    seconds: dict[str, float]


def sales(rows: int = ROWS, seed: int = 11) -> np.ndarray:
    """The shop's sales amounts (deterministic for a seed), in [0, 500] with cents."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.gamma(2.0, 9.0, rows), 0, 500).round(2)


def prepare(lc: LocalConsortium) -> Prepared:
    """The shop's certificate and profile, then keygen, encrypt and upload to the helper."""
    home = lc.root / OWNER
    home.mkdir(parents=True, exist_ok=True)
    files = pki.issue(lc.pki_dir, OWNER, "analyst")
    coordinator = ClientProfile.load(lc.profile)
    profile = ClientProfile(coordinator.coordinator, coordinator.coordinator_name, files)
    amounts = sales()
    csv = home / "sales.csv"
    csv.write_text("amount\n" + "\n".join(f"{v:.2f}" for v in amounts) + "\n")
    seconds: dict[str, float] = {}
    t = time.perf_counter()
    key_dir = outsource.keygen(home / "key").path
    seconds["keygen"] = time.perf_counter() - t
    t = time.perf_counter()
    done = outsource.encrypt(profile, csv, DATASET, SCHEMA, key_dir, home / "upload", HELPER)
    seconds["encrypt"] = time.perf_counter() - t
    t = time.perf_counter()
    with outsource.Helper(profile, f"127.0.0.1:{lc.members[HELPER].port}", HELPER) as helper:
        helper.upload(done.out)
    seconds["upload"] = time.perf_counter() - t
    size = sum(p.stat().st_size for p in done.out.rglob("*") if p.is_file())
    return Prepared(profile, key_dir, amounts, done.ciphertexts, size, seconds)


def _published(client: Client) -> bool:
    return any(d.party == OWNER and d.name == DATASET for d in client.datasets())


def spec() -> jobspec.JobSpec:
    return jobspec.from_dict(
        {
            "protocol": "sum",
            "name": "sales of the grocery and the corner shop (outsourced)",
            "helpers": [THIRD],
            "inputs": [
                {"party": "grocery", "dataset": "orders", "column": "basket_total"},
                {"party": OWNER, "dataset": DATASET, "column": "amount"},
            ],
            "privacy": {"exact": True},
        }
    )


def run(lc: LocalConsortium, client: Client, prepared: Prepared) -> dict[str, Any]:
    """The sum over the grocery's live rows and the shop's outsourced ones, with the shop's
    client online for it, next to the plaintext sum (in cents, exactly)."""
    deadline = time.monotonic() + PUBLISH_WAIT_S
    while not _published(client):
        if time.monotonic() > deadline:
            raise Unavailable(f"the helper did not publish {OWNER}/{DATASET} in time")
        time.sleep(0.3)
    stop = threading.Event()
    answers: list[outsource.Answer] = []
    failure: list[BaseException] = []

    def online() -> None:
        node = f"127.0.0.1:{lc.members[HELPER].port}"
        try:
            with outsource.Helper(prepared.profile, node, HELPER) as helper:
                helper.serve(
                    prepared.key_dir, ("sum",), (), 0.2, stop=stop, on_answer=answers.append
                )
        except BaseException as exc:  # reported below, with the job's state
            failure.append(exc)

    serving = threading.Thread(target=online, name="cornershop-serve", daemon=True)
    started = time.monotonic()
    serving.start()
    try:
        final = client.wait(client.submit(spec()).id)
    finally:
        stop.set()
        serving.join(timeout=30)
    elapsed = time.monotonic() - started
    if state_name(final) != "succeeded":
        cause = f"; the shop's client: {failure[0]}" if failure else ""
        raise Unavailable(f"job {final.id} {state_name(final)}: {final.reason}{cause}")
    got = Fraction(client.result(final.id, exact=True)["sum"])
    assert lc.data is not None
    grocery = sample_data.read_table(lc.data.orders, {"value": "basket_total"})["value"]
    cents = int(np.round(grocery * 100).astype(np.int64).sum())
    cents += int(np.round(prepared.amounts * 100).astype(np.int64).sum())
    want = Fraction(cents, 100)
    return {
        "job": final.id,
        "owner": OWNER,
        "dataset": DATASET,
        "helper": HELPER,
        "rows": int(prepared.amounts.size),
        "live_rows": int(grocery.size),
        "mpc": float(got),
        "plaintext": float(want),
        "exact_match": got == want,
        "approved": [a.job_id for a in answers if a.approved],
        "ciphertexts": prepared.ciphertexts,
        "upload_bytes": prepared.upload_bytes,
        "seconds": {k: round(v, 2) for k, v in prepared.seconds.items()}
        | {"job": round(elapsed, 2)},
    }


def ok(result: dict[str, Any]) -> bool:
    return bool(result["exact_match"]) and result["job"] in result["approved"]
