"""``ensnif job``: submit, follow, cancel and open jobs."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

from ensnif_mpc.cli.context import client_from
from ensnif_mpc.cli.mpc_stats import mpc_stats, mpc_stats_table
from ensnif_mpc.cli.render import (
    cached_note,
    console,
    emit_json,
    job_changes,
    job_dict,
    job_panel,
    jobs_table,
    result_dict,
    result_lines,
    result_table,
    to_dict,
)
from ensnif_mpc.gen.ensnif.v1 import common_pb2 as pb
from ensnif_mpc.jobs import jobspec
from ensnif_mpc.sdk import release
from ensnif_mpc.sdk.client import Client, is_final, state_name
from ensnif_mpc.sdk.result import Result

_json = click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")


class JobDidNotSucceed(Exception):
    """The followed job ended in FAILED, REJECTED or CANCELLED (exit code 9)."""


@click.group()
def job() -> None:
    """Submit and follow consortium jobs."""


def follow(client: Client, job_id: str, quiet: bool = False) -> pb.Job:
    """Watch a job to its end with a progress bar per party (nothing printed if quiet)."""
    if quiet:
        return client.wait(job_id)
    columns = (
        TextColumn("{task.description:<12}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        overall = progress.add_task("job", total=1.0, info="submitted")
        bars: dict[str, TaskID] = {}

        def update(j: pb.Job) -> None:
            progress.update(
                overall,
                info=state_name(j),
                completed=1.0 if is_final(j) else 0.05 + 0.9 * _mean_fraction(j),
            )
            for p in j.parties:
                if p.party not in bars:
                    bars[p.party] = progress.add_task(p.party, total=1.0, info="")
                info = p.progress.phase or p.state
                if p.progress.bytes_sent:
                    info += f" · {p.progress.bytes_sent:,} B sent · {p.progress.rounds} rounds"
                progress.update(bars[p.party], completed=p.progress.fraction, info=info)

        return client.wait(job_id, on_update=update)


def _mean_fraction(j: pb.Job) -> float:
    fr = [p.progress.fraction for p in j.parties]
    return sum(fr) / len(fr) if fr else 0.0


def _outcome(client: Client, final: pb.Job, as_json: bool) -> None:
    state = state_name(final)
    if state != "succeeded":
        if as_json:
            emit_json({"job": job_dict(final)})
        else:
            console.print(escape(f"job {final.id} {state}: {final.reason} [{final.reason_code}]"))
        raise JobDidNotSucceed(state)
    details = client.result_details(final.id)
    if as_json:
        emit_json({"job": job_dict(final), "result": result_dict(final.id, details)})
    else:
        _print_result(details)


def _print_result(details: Result) -> None:
    note = cached_note(details)
    if note:
        console.print(escape(note))
    for line in result_lines(details):
        console.print(line)


FORMATS = ("table", "json", "csv", "parquet")


def write_result(details: Result, job_id: str, fmt: str, output: str | None) -> None:
    """The result in ``fmt``: a table or JSON on stdout, CSV or Parquet (one row per output,
    see ``Result.to_pandas``) to ``output`` or stdout."""
    if fmt == "json":
        emit_json(result_dict(job_id, details))
        return
    if fmt == "table":
        note = cached_note(details)
        if note:
            console.print(escape(note))
        console.print(result_table(details))
        return
    frame = details.to_pandas()
    if fmt == "csv":
        if output:
            frame.to_csv(output, index=False)
        else:
            click.echo(frame.to_csv(index=False), nl=False)
        return
    if output:
        frame.to_parquet(output, index=False)
        return
    if sys.stdout.isatty():
        raise click.UsageError("--format parquet writes binary: give --output FILE or redirect")
    data: bytes = frame.to_parquet(index=False)
    sys.stdout.buffer.write(data)
    sys.stdout.flush()


@job.command("submit")
@click.argument("job_file", type=click.Path(dir_okay=False))
@click.option("--wait", is_flag=True, help="Follow the job and print its result.")
@click.option(
    "--dry-run",
    is_flag=True,
    help="Validate against the catalog and print the privacy cost and noise; submit nothing.",
)
@click.option(
    "--fresh",
    is_flag=True,
    help="Compute again even if the same DP question was answered recently (spends budget).",
)
@_json
@click.pass_context
def submit(
    ctx: click.Context, job_file: str, wait: bool, dry_run: bool, fresh: bool, as_json: bool
) -> None:
    """Submit the job described by JOB_FILE (TOML)."""
    spec = jobspec.load(Path(job_file))
    with client_from(ctx) as c:
        if dry_run:
            _dry_run(c, spec, as_json)
            return
        submitted = c.submit(spec, fresh=fresh)
        if submitted.cached_from and not as_json:
            console.print(
                f"job [bold]{submitted.id}[/] asks what job {submitted.cached_from} answered: "
                "its result is served again at no privacy cost (--fresh computes anew)"
            )
        if not wait:
            if as_json:
                emit_json({"job": job_dict(submitted)})
            else:
                console.print(
                    f"submitted job [bold]{submitted.id}[/] ({state_name(submitted)}); "
                    f"follow it with `ensnif job watch {submitted.id}`"
                )
            return
        if not as_json:
            console.print(f"submitted job [bold]{submitted.id}[/]")
        final = follow(c, submitted.id, quiet=as_json)
        _outcome(c, final, as_json)


def _dry_run(c: Any, spec: jobspec.JobSpec, as_json: bool) -> None:
    """The coordinator's own validation and release plan, computed here from the catalog."""
    from coordinator.validation import validate
    from ensnif_mpc.rpc import convert

    parties = {p.name: p.role for p in c.parties()}
    catalog = {(d.party, d.name): convert.dataset_from_pb(d) for d in c.datasets()}
    sizing = validate(spec, parties.get, lambda p, n: catalog.get((p, n)))
    plan = sizing.release
    charges: list[dict[str, Any]] = [
        {
            "dataset": f"{i.party}/{i.dataset}",
            "rho": float(plan.charge()),
            "remaining_rho": catalog[(i.party, i.dataset)].policy.remaining_rho,
        }
        for i in spec.inputs
    ]
    blocks: list[dict[str, Any]] = []
    names = release.block_outputs(spec.protocol, spec.params, [b.dims for b in plan.blocks])
    for b, opened in zip(plan.blocks, names, strict=True):
        block: dict[str, Any] = {
            "outputs": b.dims,
            "names": opened,
            "l2_sensitivity": b.l2_sensitivity,
            "rho": b.rho,
            "noise_sd": plan.block_sd(b),
            "ci95_half_width": plan.block_interval(b, 0.95),
        }
        if plan.laplace:
            block.update(
                l1_sensitivity=b.l1_sensitivity,
                epsilon=b.epsilon,
                digits=b.digits,
                bits=b.bits,
                delta_bound=b.delta,
            )
        blocks.append(block)
    if as_json:
        out: dict[str, Any] = {
            "exact": plan.exact,
            "mechanism": None if plan.exact else plan.mechanism,
            "charges": charges,
            "noise_blocks": blocks,
            "decimals": sizing.decimals,
            "bit_length": sizing.bit_length,
        }
        if plan.laplace:
            out.update(epsilon=plan.epsilon, delta=plan.delta)
        if not plan.exact:
            out["derived"] = list(release.DERIVED.get(spec.protocol, ()))
        emit_json(out)
        return
    if plan.exact:
        console.print(
            "release: [bold]exact[/] (every owner's policy allows it); no budget is spent"
        )
    elif plan.laplace:
        console.print(
            f"release: DP, pure ε = {plan.epsilon:g} (discrete Laplace sampled in MPC, "
            f"sampler δ ≤ {plan.delta:g}), charged as ρ = ε²/2 = {float(plan.charge()):g} "
            "(zCDP) to every input dataset"
        )
    else:
        console.print(f"release: DP, ρ = {plan.rho:g} (zCDP) charged to every input dataset")
    for ch in charges:
        left = ch["remaining_rho"]
        console.print(
            f"  {ch['dataset']}: cost ρ = {ch['rho']:g}"
            + (f", remaining before the job {left:g}" if left >= 0 else "")
        )
    for row in blocks:
        detail = (
            f"; ε {row['epsilon']:g} at L1 sensitivity {row['l1_sensitivity']:g}, "
            f"{row['digits']} digits × {row['bits']} bits, δ ≤ {row['delta_bound']:.2g}"
            if plan.laplace
            else ""
        )
        console.print(
            escape(f"  noise on {release.short_list(row['names'])}: ")
            + f"sd {row['noise_sd']:.4g}, 95% ± "
            f"{row['ci95_half_width']:.4g} (units of 10^-{sizing.decimals} for sums, "
            "1 for counts)" + detail
        )
    derived = release.DERIVED.get(spec.protocol, ())
    if blocks and derived:
        console.print(
            escape(
                f"  derived on your side from those: {', '.join(derived)} "
                "(an interval by simulation from the noise above)"
            )
        )


@job.command("list")
@click.option("--limit", default=50, show_default=True)
@_json
@click.pass_context
def list_(ctx: click.Context, limit: int, as_json: bool) -> None:
    """Your jobs, newest first."""
    with client_from(ctx) as c:
        jobs = c.jobs(limit)
    if as_json:
        emit_json([job_dict(j) for j in jobs])
    else:
        console.print(jobs_table(jobs))


@job.command("status")
@click.argument("job_id")
@_json
@click.pass_context
def status(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """State, reason and per-party progress of one job."""
    with client_from(ctx) as c:
        j = c.job(job_id)
        checked = c.check_approvals(j)
    if as_json:
        d = job_dict(j)
        d["approvals"] = [{**to_dict(a), "check": check} for a, check in checked]
        d["mpc"] = mpc_stats(j)  # merged over the parties
        emit_json(d)
    else:
        console.print(job_panel(j, checked))
        console.print(mpc_stats_table(mpc_stats(j)))


@job.command("watch")
@click.argument("job_id")
@_json
@click.pass_context
def watch(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Live progress until the job ends (JSON: one line per change)."""
    with client_from(ctx) as c:
        if as_json:
            # The whole job first, then one line per change: its id and state, and what
            # changed (fields, and only the parties whose progress moved).
            last, shown = None, None
            for j in c.watch(job_id):
                current = job_dict(j)
                change = job_changes(shown, current)
                if change is not None:
                    emit_json(change)
                shown, last = current, j
            final = last or c.job(job_id)
        else:
            final = follow(c, job_id)
            console.print(
                f"job {final.id}: {state_name(final)}"
                + escape(f" ({final.reason})" if final.reason else "")
            )
    if state_name(final) != "succeeded":
        raise JobDidNotSucceed(state_name(final))


@job.command("cancel")
@click.argument("job_id")
@_json
@click.pass_context
def cancel(ctx: click.Context, job_id: str, as_json: bool) -> None:
    """Cancel a job; every party's worker is stopped."""
    with client_from(ctx) as c:
        j = c.cancel(job_id)
    if as_json:
        emit_json(job_dict(j))
    else:
        console.print(f"job {j.id}: {state_name(j)}")


@job.command("result")
@click.argument("job_id")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(FORMATS),
    default=None,
    help="table (the default), json, csv or parquet: one row per output with its value, "
    "noise sd, 95% interval and the interval's method.",
)
@click.option("--output", "-o", type=click.Path(dir_okay=False), help="Write csv/parquet here.")
@_json
@click.pass_context
def result(
    ctx: click.Context, job_id: str, fmt: str | None, output: str | None, as_json: bool
) -> None:
    """Fetch the sealed result shares, open them with your key and combine them."""
    if as_json and fmt not in (None, "json"):
        raise click.UsageError("--json is --format json; give one of them")
    with client_from(ctx) as c:
        details = c.result_details(job_id)
    write_result(details, job_id, "json" if as_json else fmt or "table", output)
