"""``ensnif demo``: a local consortium runs the canonical jobs end to end.

Everything is real: a consortium CA, a coordinator and three party nodes as
separate processes on free loopback ports, mTLS everywhere, MPyC workers, sealed
results opened with the analyst's key. The table compares each answer with the
same computation done in the clear on the generated data.
"""

from __future__ import annotations

import math
import shutil
import signal
import threading
import time
from pathlib import Path
from types import FrameType
from typing import Any

import click
import numpy as np
from rich.markup import escape
from rich.table import Table

from ensnif_mpc.cli.job_cmd import follow
from ensnif_mpc.cli.render import console, emit_json
from ensnif_mpc.demo import outsourced as demo_outsourced, sample_data, scoring as demo_scoring
from ensnif_mpc.demo.localnet import LocalConsortium
from ensnif_mpc.errors import EnsnifError
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk import intervals, release
from ensnif_mpc.sdk.client import state_name
from ensnif_mpc.sdk.result import Result, format_value
from protocols import registry

DEMO_JOBS = (
    "revenue-sum.toml",
    "ticket-mean.toml",
    "big-tickets-count.toml",
    "shared-customers.toml",
    "shared-basket.toml",
    "minutes-by-zip.toml",
    "ticket-mean-dp.toml",
    "basket-on-minutes.toml",
)
# DP releases, and which of their answers the DP table shows (None: the answers the
# analyst's side derives, e.g. every group's mean). The mean ticket asks again what the
# first table's DP job asked: the coordinator serves it from that job's result (cached,
# no privacy cost).
DP_JOBS: tuple[tuple[str, tuple[str, ...] | None], ...] = (
    ("ticket-mean-dp.toml", ("mean", "sum", "count")),
    ("tickets-by-zip-dp.toml", None),
    ("basket-stdev-dp.toml", ("stdev", "count")),
    ("basket-median-dp.toml", None),
    # minutes-by-zip-dp.toml is not run here: at the sample data's rows per person (a
    # customer has up to about 9 deliveries, each up to 240 minutes) the per-zip DP join
    # of a few dozen customers is drowned by its noise at the owners' max_rho of 1.
    ("zips-discovered-dp.toml", ("*",)),  # every group it found
)
# The DP logistic model across the join, run after the DP table's jobs (its own table).
LOGISTIC_JOB = "late-customers-dp.toml"
EVERY = ("*",)
# The opened statistics a DP answer is made of, answered in the clear by these protocols'
# references (for the plaintext column next to them).
PARTS = {"mean": ("sum", "count"), "variance": ("count",), "stdev": ("count",)}


DEMO_DECIMALS = 2  # the sample columns' largest declared decimals (basket_total's)


def _input_table(path: Path, spec_input: Any) -> dict[str, np.ndarray]:
    """An input's plaintext columns by role; a list role (features) as rows × columns."""
    out = sample_data.read_table(path, spec_input.columns)
    for role, names in spec_input.column_lists.items():
        columns = sample_data.read_table(path, {n: n for n in names})
        out[role] = np.column_stack([columns[n].astype(float) for n in names])
    return out


def _sklearn_line(lc: LocalConsortium, rows: list[dict[str, Any]]) -> str:
    """The vertical regression next to scikit-learn's on the same per-customer join (a dev
    dependency: without it, the table's plaintext column is numpy's least squares)."""
    coef = {r["output"]: r["mpc"] for r in rows if r["protocol"] == "join_regression"}
    if "coef[1]" not in coef:
        return ""
    try:
        from sklearn.linear_model import LinearRegression
    except ImportError:
        return ""
    from protocols.models.vertical_defs import joined_rows

    assert lc.data is not None
    spec = jobspec.load(lc.root / "jobs" / "basket-on-minutes.toml")
    files = {"orders": lc.data.orders, "deliveries": lc.data.deliveries}
    tables = [_input_table(files[i.dataset], i) for i in spec.inputs]
    x, y = joined_rows(tables, spec.params, DEMO_DECIMALS)
    fit = LinearRegression().fit(x, y)
    return (
        f"basket value on delivery minutes across the join ({len(y)} shared customers): "
        f"MPC {coef['coef[0]']:.4f} + {coef['coef[1]']:.4f}·minutes, scikit-learn "
        f"{fit.intercept_:.4f} + {fit.coef_[0]:.4f}·minutes"
    )


def logistic_model(lc: LocalConsortium, client: Any, as_json: bool) -> dict[str, Any]:
    """The DP logistic regression across the join (``join_logistic``), and scikit-learn's
    LogisticRegression on the same per-customer join in the clear: coefficients, accuracy
    and log-loss of each on the joined rows (scikit-learn, a dev dependency, is left out
    when missing)."""
    from protocols.models import logistic, vertical_logistic_defs

    assert lc.data is not None
    spec = jobspec.load(lc.root / "jobs" / LOGISTIC_JOB)
    started = time.monotonic()
    submitted = client.submit(spec)
    if not as_json:
        console.print(f"\n[bold]{spec.name}[/] ({spec.protocol}) → job {submitted.id}")
    final = follow(client, submitted.id, quiet=as_json)
    if state_name(final) != "succeeded":
        raise click.ClickException(f"job {final.id} {state_name(final)}: {final.reason}")
    got = {k: float(v) for k, v in client.result_details(final.id).values.items()}
    elapsed = time.monotonic() - started
    grocery, logistics = lc.data.grocery_customers, lc.data.logistics_customers
    assert grocery is not None and logistics is not None
    files = {"grocery": grocery, "logistics": logistics}
    tables = [_input_table(files[i.party], i) for i in spec.inputs]
    x, y = vertical_logistic_defs.joined(tables, spec.params, DEMO_DECIMALS)
    names = [n for i in spec.inputs for n in i.column_lists.get("features", [])]
    coef = np.array([got[f"coef[{j}]"] for j in range(len(names))])

    def scored(c: np.ndarray, b: float) -> dict[str, Any]:
        p = np.clip(logistic.predict_proba(c, b, x), 1e-12, 1 - 1e-12)
        loss = -float(np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
        accuracy = float(((p > 0.5) == y).mean())
        return {
            "coef": [float(v) for v in c],
            "intercept": b,
            "accuracy": accuracy,
            "log_loss": loss,
        }

    out: dict[str, Any] = {
        "job": final.id,
        "question": spec.name,
        "features": names,
        "rows": int(len(y)),
        "steps": int(spec.params.get("steps", 10)),
        "rho": float(spec.privacy.rho or 0) if spec.privacy is not None else 0.0,
        "seconds": round(elapsed, 2),
        "dp": scored(coef, got["intercept"]),
        "sklearn": None,
    }
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        return out
    fit = LogisticRegression(max_iter=1000).fit(x, y)
    out["sklearn"] = scored(fit.coef_[0], float(fit.intercept_[0]))
    return out


def logistic_table(model: dict[str, Any]) -> Table:
    """The DP logistic model next to scikit-learn's on the same joined rows."""
    t = Table(
        title=f"{model['question']}: join_logistic over {model['rows']} shared customers "
        f"({model['steps']} noisy gradient steps in MPC, {model['seconds']:.1f}s)",
        caption="the same per-customer join in the clear for scikit-learn (C = 1); "
        "accuracy and log-loss of each model on those rows",
    )
    for col in ("model", "intercept", *model["features"], "accuracy", "log-loss"):
        t.add_column(col, justify="left" if col == "model" else "right")
    for label, fit in (
        (f"MPC, DP (ρ = {model['rho']:g})", model["dp"]),
        ("scikit-learn", model["sklearn"]),
    ):
        if fit is None:
            continue
        t.add_row(
            label,
            f"{fit['intercept']:.4f}",
            *(f"{c:.4f}" for c in fit["coef"]),
            f"{fit['accuracy']:.3f}",
            f"{fit['log_loss']:.3f}",
        )
    return t


def plaintext_answer(lc: LocalConsortium, spec: jobspec.JobSpec) -> dict[str, float]:
    """The same question answered in the clear, from the generated CSVs."""
    assert lc.data is not None
    files = {"orders": lc.data.orders, "deliveries": lc.data.deliveries}
    tables = [_input_table(files[i.dataset], i) for i in spec.inputs]
    if spec.protocol == "join_regression":  # per-key means on the session's grid, as run
        from protocols.models.vertical_defs import reference_on_grid

        return reference_on_grid(tables, spec.params, DEMO_DECIMALS)
    out = dict(registry.get(spec.protocol).reference(tables, spec.params))
    if spec.privacy is not None and not spec.privacy.exact:
        for part in PARTS.get(spec.protocol, ()):
            out.update(registry.get(part).reference(tables, spec.params))
    return out


def remaining_budgets(client: Any, wait_s: float = 5.0) -> list[dict[str, Any]]:
    """The owners' remaining ρ as the catalog mirrors it (nodes republish after a charge).
    An outsourced dataset's ledger is the helper's; no DP job reads it, so its budget is
    whole and is not waited for."""
    deadline = time.monotonic() + wait_s
    while True:
        out = [
            {
                "dataset": f"{d.party}/{d.name}"
                + (f" (outsourced at {d.host})" if d.outsourced_sha256 else ""),
                "budget_rho": d.policy.budget_rho,
                "remaining_rho": d.policy.remaining_rho,
                "outsourced": bool(d.outsourced_sha256),
            }
            for d in client.datasets()
        ]
        live = [b for b in out if not b["outsourced"]]
        if all(b["remaining_rho"] < b["budget_rho"] for b in live):
            return out
        if time.monotonic() > deadline:
            return out
        time.sleep(0.2)


def answer_ok(r: dict[str, Any]) -> bool:
    """Exact answers equal the plaintext; a DP answer lies within 3 CI half-widths (~5.9σ)."""
    if r["ci95"]:
        return bool(abs(r["mpc"] - r["plaintext"]) <= 3 * r["ci95"])
    return bool(np.isclose(r["mpc"], r["plaintext"], rtol=1e-6, atol=1e-6, equal_nan=True))


def dp_answer_ok(r: dict[str, Any]) -> bool:
    """A DP answer whose plaintext lies within 3 half-widths of its interval around it (a
    95% interval misses about one answer in twenty; this catches real errors only)."""
    low, high, truth = r["ci95_lower"], r["ci95_upper"], r["plaintext"]
    if low is None or high is None or math.isnan(truth):
        return bool(math.isnan(truth) and (r["mpc"] is None or math.isnan(r["mpc"])))
    slack = 3 * max(high - low, 1e-9)
    return bool(low - slack <= truth <= high + slack)


def dp_rows(
    spec: jobspec.JobSpec,
    details: Result,
    shown: tuple[str, ...] | None,
    expected: dict[str, float],
    job_id: str,
) -> list[dict[str, Any]]:
    """The DP table's rows of one job: each shown answer, its interval and the plaintext."""
    derived = release.DERIVED.get(spec.protocol, ())
    if shown == EVERY:
        shown = tuple(details.values)
    out = []
    for name, value in details.values.items():
        base, label = intervals.base_name(name), intervals.group_label(name)
        pattern = name if label is None else f"{base}[<group>]"
        if (shown is not None and name not in shown) or (shown is None and pattern not in derived):
            continue
        ci = details.ci(name)
        out.append(
            {
                "job": job_id,
                "question": spec.name + (" (cached)" if details.cached_from else ""),
                "output": name,
                "group": label,
                "mpc": None if math.isnan(value) else value,
                "ci95_lower": None if math.isnan(ci.lower) else ci.lower,
                "ci95_upper": None if math.isnan(ci.upper) else ci.upper,
                "method": ci.method,
                "noise_sd": details.noise_sd.get(name, 0.0),
                "decimals": details.decimals.get(name),
                "plaintext": expected.get(name, math.nan),
            }
        )
    return out


@click.command()
@click.option(
    "--dir",
    "directory",
    default=".demo",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where the consortium lives (wiped first).",
)
@click.option("--rows", default=3000, show_default=True, help="Rows per data owner.")
@click.option("--json", "as_json", is_flag=True)
def demo(directory: str, rows: int, as_json: bool) -> None:
    """Run a local consortium (coordinator + grocery, logistics, helper) and its jobs."""
    root = Path(directory).resolve()
    shutil.rmtree(root, ignore_errors=True)
    t0 = time.monotonic()
    lc = LocalConsortium(root, rows=rows, customers=True)
    rows_out: list[dict[str, Any]] = []
    dp_out: list[dict[str, Any]] = []
    found: dict[str, Any] = {}
    budgets: list[dict[str, Any]] = []
    scored: dict[str, Any] = {}
    outsourced: dict[str, Any] = {}
    logistic: dict[str, Any] = {}
    # Ctrl-C reaches the daemons too (same process group); they stop and our calls fail
    # with UNAVAILABLE before Python raises KeyboardInterrupt here. Report the cause.
    interrupted = threading.Event()

    def on_sigint(signum: int, frame: FrameType | None) -> None:
        interrupted.set()
        signal.default_int_handler(signum, frame)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        if not as_json:
            console.print(f"[bold]Ensnif demo[/]: consortium in {root} ({rows} rows per owner)")
        lc.setup()
        model = demo_scoring.register(root)  # before the grocery node starts
        lc.start(timeout_s=180)  # generous: a loaded machine starts daemons slowly
        if not as_json:
            console.print("coordinator and 3 party nodes are up (mTLS, consortium CA)")
        # The corner shop (no node) encrypts and uploads first: the helper publishes it at
        # its next registration, while the canonical jobs run.
        shop = demo_outsourced.prepare(lc)
        if not as_json:
            console.print(
                f"{demo_outsourced.OWNER} (no node) encrypted {shop.amounts.size} sales under "
                f"its own BFV key and uploaded them to the {demo_outsourced.HELPER} node"
            )
        with lc.client() as client:
            for name in DEMO_JOBS:
                spec = jobspec.load(root / "jobs" / name)
                started = time.monotonic()
                submitted = client.submit(spec)
                if not as_json:
                    console.print(f"\n[bold]{spec.name}[/] ({spec.protocol}) → job {submitted.id}")
                final = follow(client, submitted.id, quiet=as_json)
                elapsed = time.monotonic() - started
                expected = plaintext_answer(lc, spec)
                if state_name(final) != "succeeded":
                    raise click.ClickException(
                        f"job {final.id} {state_name(final)}: {final.reason}"
                    )
                details = client.result_details(final.id)
                got = {k: float(v) for k, v in details.values.items()}
                sent = sum(p.progress.bytes_sent for p in final.parties)
                for out, value in got.items():
                    if out.startswith(("sum[", "count[")) or (details.noise_sd and out != "mean"):
                        continue  # per-group sums and counts, a DP mean's parts: show means
                    rows_out.append(
                        {
                            "job": final.id,
                            "question": spec.name if len(got) == 1 else f"{spec.name}: {out}",
                            "protocol": spec.protocol,
                            "output": out,
                            "mpc": value,
                            "plaintext": expected.get(out, math.nan),
                            "ci95": details.interval(out),
                            "seconds": round(elapsed, 2),
                            "bytes_sent": sent,
                        }
                    )
            for name, shown in DP_JOBS:
                spec = jobspec.load(root / "jobs" / name)
                submitted = client.submit(spec)
                if not as_json:
                    console.print(f"\n[bold]{spec.name}[/] ({spec.protocol}) → job {submitted.id}")
                final = follow(client, submitted.id, quiet=as_json)
                if state_name(final) != "succeeded":
                    raise click.ClickException(
                        f"job {final.id} {state_name(final)}: {final.reason}"
                    )
                details = client.result_details(final.id)
                expected = plaintext_answer(lc, spec)
                dp_out += dp_rows(spec, details, shown, expected, final.id)
                if spec.protocol == "group_discovery":
                    found = discovered(client, spec, details, expected)
            logistic = logistic_model(lc, client, as_json)
            budgets = remaining_budgets(client)
            scored = demo_scoring.run(root, client, model)
            outsourced = demo_outsourced.run(lc, client, shop)
    except EnsnifError:
        if interrupted.is_set():
            raise KeyboardInterrupt from None
        raise
    finally:
        killed = lc.stop()
        signal.signal(signal.SIGINT, previous)
    total = time.monotonic() - t0
    if as_json:
        emit_json(
            {
                "results": rows_out,
                "dp_results": dp_out,
                "budgets": budgets,
                "discovery": found,
                "scoring": scored,
                "outsourced": outsourced,
                "logistic": logistic,
                "seconds": round(total, 2),
                "killed": killed,
            }
        )
        return
    table = Table(title="Joint answers (MPC) next to the plaintext computation")
    for col in (
        "question",
        "protocol",
        "MPC result",
        "± 95% (DP)",
        "plaintext",
        "|diff|",
        "time",
        "bytes",
    ):
        table.add_column(col, justify="right" if col not in ("question", "protocol") else "left")
    for r in rows_out:
        table.add_row(
            r["question"],
            r["protocol"],
            f"{r['mpc']:,.4f}",
            f"{r['ci95']:,.4f}" if r["ci95"] else "exact",
            f"{r['plaintext']:,.4f}",
            f"{abs(r['mpc'] - r['plaintext']):.2e}",
            f"{r['seconds']:.1f}s",
            f"{r['bytes_sent']:,}",
        )
    console.print()
    console.print(table)
    console.print(dp_table(dp_out))
    console.print(logistic_table(logistic))
    vertical = _sklearn_line(lc, rows_out)
    if vertical:
        console.print(vertical)
    if found:
        console.print(
            f"group_discovery opened {len(found['opened'])} of the "
            f"{found['groups']} zips without anyone listing them; a zip with fewer than "
            f"τ = {found['tau']} rows would have stayed hidden (δ = {found['delta']:g})"
        )
    spent = Table(title="Privacy budgets (zCDP ρ), as each owner's node reports them")
    for col in ("dataset", "budget", "remaining"):
        spent.add_column(col, justify="left" if col == "dataset" else "right")
    for b in budgets:  # an outsourced dataset's ledger is the helper's (not mirrored: < 0)
        left = f"{b['remaining_rho']:g}" if b["remaining_rho"] >= 0 else "—"
        spent.add_row(b["dataset"], f"{b['budget_rho']:g}", left)
    console.print(spent)
    console.print(scoring_table(scored))
    console.print(outsourced_table(outsourced))
    ok = all(answer_ok(r) for r in rows_out) and all(dp_answer_ok(r) for r in dp_out)
    ok = ok and demo_scoring.ok(scored) and demo_outsourced.ok(outsourced)
    inside = sum(
        r["ci95_lower"] is not None and r["ci95_lower"] <= r["plaintext"] <= r["ci95_upper"]
        for r in dp_out
    )
    console.print(
        f"DP answers whose 95% interval holds the plaintext: {inside} of {len(dp_out)} "
        "(about 19 in 20 expected)"
    )
    console.print(
        f"all answers match the plaintext: {'[green]yes[/]' if ok else '[red]NO[/]'}; "
        f"demo took {total:.1f}s; all processes stopped"
    )
    if not ok:
        raise click.ClickException("an MPC answer differs from the plaintext answer")


def discovered(
    client: Any, spec: jobspec.JobSpec, details: Result, expected: dict[str, float]
) -> dict[str, Any]:
    """What the discovery step found, and its public threshold τ (recomputed here from the
    catalog's rows per person, as every node computes it: ``protocols.discovery``)."""
    from ensnif_mpc.jobs.protocol import OwnerBounds
    from ensnif_mpc.privacy import dp
    from protocols import discovery

    catalog = {(d.party, d.name): d for d in client.datasets()}
    rows = [catalog[(i.party, i.dataset)].policy.rows_per_person for i in spec.inputs]
    owners = [OwnerBounds(k) for k in rows]
    definition = registry.get(spec.protocol)
    assert definition.dp_sensitivity is not None and spec.privacy is not None
    blocks = definition.dp_sensitivity(owners, spec.params)
    plan = dp.plan(float(spec.privacy.rho or 0), blocks, 3, 1)
    return {
        "opened": sorted(intervals.group_label(k) or "" for k in details.values),
        "groups": len(expected),
        "tau": discovery.threshold(plan, spec.params),
        "delta": float(spec.params.get("delta", discovery.DEFAULT_DELTA)),
    }


def dp_table(rows: list[dict[str, Any]]) -> Table:
    """Every DP answer with its 95% interval (and how it was computed) next to the plaintext."""
    table = Table(title="Differentially private answers, each with its 95% interval")
    for col in ("question", "output", "DP answer", "95% interval", "method", "plaintext", "in"):
        table.add_column(
            col, justify="left" if col in ("question", "output", "method") else "right"
        )
    for r in rows:
        d = r["decimals"]
        value = math.nan if r["mpc"] is None else r["mpc"]
        low = math.nan if r["ci95_lower"] is None else r["ci95_lower"]
        high = math.nan if r["ci95_upper"] is None else r["ci95_upper"]
        inside = low <= r["plaintext"] <= high
        table.add_row(
            escape(r["question"]),
            escape(r["output"]),
            format_value(value, d),
            escape(f"[{format_value(low, d)}, {format_value(high, d)}]"),
            r["method"],
            format_value(r["plaintext"], d),
            "[green]yes[/]" if inside else "[yellow]no[/]",
        )
    return table


def scoring_table(scored: dict[str, Any]) -> Table:
    """Encrypted scores (decrypted by the analyst) next to the model in the clear."""
    t = Table(
        title=f"Encrypted scoring: {scored['party']}'s model {scored['model']!r}, the rows "
        "encrypted under the analyst's CKKS key (the weights never left the node)",
        caption=f"sigmoid {escape(scored['sigmoid'])}; CKKS error "
        f"{scored['max_ckks_error']:.1e}; {scored['ciphertext_bytes']:,} B of ciphertext "
        f"for {len(scored['rows'])} rows (one batch: up to 4,096 rows cost the same)",
    )
    for col in (*scored["features"], "encrypted score", "plaintext p(z)", "exact σ(z)"):
        t.add_column(col, justify="right")
    for r in scored["rows"]:
        t.add_row(
            *(f"{v:g}" for v in r["features"]),
            f"{r['encrypted']:.5f}",
            f"{r['polynomial']:.5f}",
            f"{r['sigmoid']:.5f}",
        )
    return t


def outsourced_table(done: dict[str, Any]) -> Table:
    """The job over the outsourced dataset next to the plaintext sum."""
    secs = done["seconds"]
    t = Table(
        title=f"Outsourced dataset: {done['owner']}/{done['dataset']} (no node), BFV-encrypted "
        f"at the {done['helper']} node; the owner's client was online to approve and share",
        caption=f"{done['rows']} outsourced rows in {done['ciphertexts']} ciphertext(s), "
        f"{done['upload_bytes']:,} B uploaded; keygen {secs['keygen']:.1f}s, encrypt "
        f"{secs['encrypt']:.1f}s, upload {secs['upload']:.1f}s",
    )
    for col in ("question", "MPC result", "plaintext", "|diff|", "time"):
        t.add_column(col, justify="left" if col == "question" else "right")
    t.add_row(
        f"grocery's {done['live_rows']} basket totals + {done['owner']}'s sales (sum, exact)",
        f"{done['mpc']:,.2f}",
        f"{done['plaintext']:,.2f}",
        f"{abs(done['mpc'] - done['plaintext']):.2e}",
        f"{secs['job']:.1f}s",
    )
    return t
