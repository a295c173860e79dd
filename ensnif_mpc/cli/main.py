"""Entry point: the command groups, and the one place errors become a line and an exit code."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ensnif_mpc import __version__, logs, reasons
from ensnif_mpc.cli import (
    approve_cmd,
    audit_cmd,
    budget_cmd,
    catalog_cmd,
    demo_cmd,
    doctor_cmd,
    init_cmd,
    job_cmd,
    pki_cmd,
    serve_cmd,
)
from ensnif_mpc.errors import EnsnifError
from ensnif_mpc.procs import die_with_parent

# Distinct exit codes per failure class, so scripts can branch without parsing text.
EXIT_CODES: dict[str, int] = {
    "INVALID_ARGUMENT": 2,
    "NOT_FOUND": 3,
    "PERMISSION_DENIED": 4,
    "FAILED_PRECONDITION": 5,
    "RESOURCE_EXHAUSTED": 6,
    "UNAVAILABLE": 7,
    "DEADLINE_EXCEEDED": 7,
    "ABORTED": 8,
}
JOB_FAILED_EXIT = 9


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ensnif")
@click.option(
    "--profile",
    type=click.Path(dir_okay=False),
    envvar="ENSNIF_PROFILE",
    help="Client profile TOML (default ~/.config/ensnif/profile.toml).",
)
@click.option(
    "--log-level",
    default="WARNING",
    envvar="ENSNIF_LOG_LEVEL",
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
)
@click.pass_context
def cli(ctx: click.Context, profile: str | None, log_level: str) -> None:
    """Ensnif: joint answers over data that no member shows the others."""
    # The one place logging is set up (text, or JSON lines with ENSNIF_LOG_FORMAT=json;
    # the daemons' --log-format switches it, see serve_cmd).
    logs.configure(log_level, logs.env_format())
    ctx.obj = {"profile": profile}


cli.add_command(pki_cmd.pki)
cli.add_command(serve_cmd.coordinator)
cli.add_command(serve_cmd.party)
cli.add_command(job_cmd.job)
for _admin in (approve_cmd.pending, approve_cmd.approve, approve_cmd.reject):
    job_cmd.job.add_command(_admin)
cli.add_command(catalog_cmd.protocols)
cli.add_command(catalog_cmd.parties)
cli.add_command(catalog_cmd.datasets)
cli.add_command(demo_cmd.demo)
cli.add_command(budget_cmd.budget)
cli.add_command(audit_cmd.audit)
cli.add_command(init_cmd.init)
cli.add_command(doctor_cmd.doctor)


def _wants_json(argv: list[str]) -> bool:
    return "--json" in argv


def main(argv: list[str] | None = None) -> None:
    die_with_parent()  # only when a parent asked for it (local consortium, tests)
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        cli.main(args=args, prog_name="ensnif", standalone_mode=False)
    except EnsnifError as err:
        code = EXIT_CODES.get(err.code.name, 1)
        if _wants_json(args):
            body: dict[str, Any] = {
                "error": {
                    "code": err.code.name,
                    "reason": err.reason,
                    "message": err.message,
                    "action": reasons.action(err.reason),  # what to do (docs/reasons.md)
                }
            }
            click.echo(json.dumps(body), err=True)
        else:
            click.echo(f"error: {err.message} [{err.code.name.lower()}: {err.reason}]", err=True)
        sys.exit(code)
    except job_cmd.JobDidNotSucceed as exc:
        sys.exit(JOB_FAILED_EXIT if exc.args else JOB_FAILED_EXIT)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except OSError as exc:
        click.echo(f"error: {exc.strerror or exc} ({exc.filename or ''})".rstrip(" ()"), err=True)
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
