"""Entry point: the command groups, and the one place errors become a line and an exit code."""

from __future__ import annotations

import importlib
import json
import sys
from collections.abc import Callable
from typing import Any

import click

from ensnif_mpc import __version__, logs, reasons
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


def _job() -> click.Command:
    from ensnif_mpc.cli import approve_cmd, job_cmd

    for admin in (approve_cmd.pending, approve_cmd.approve, approve_cmd.reject):
        job_cmd.job.add_command(admin)
    return job_cmd.job


# Each command's module is imported only when that command runs (or `--help` lists them
# all): importing every command module, the SDK, numpy and pyarrow cost about 0.9 s on every
# invocation. A loader is "module:attribute" under ensnif_mpc.cli, or a function.
COMMANDS: dict[str, str | Callable[[], click.Command]] = {
    "pki": "pki_cmd:pki",
    "coordinator": "serve_cmd:coordinator",
    "party": "serve_cmd:party",
    "job": _job,
    "protocols": "catalog_cmd:protocols",
    "parties": "catalog_cmd:parties",
    "datasets": "catalog_cmd:datasets",
    "demo": "demo_cmd:demo",
    "budget": "budget_cmd:budget",
    "audit": "audit_cmd:audit",
    "init": "init_cmd:init",
    "doctor": "doctor_cmd:doctor",
    "score": "score_cmd:score",
    "model": "model_cmd:model",
    "program": "program_cmd:program",
    "artifacts": "artifacts_cmd:artifacts",
    "outsource": "outsource_cmd:outsource",
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (see COMMANDS)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        found = super().get_command(ctx, cmd_name)
        if found is not None or cmd_name not in COMMANDS:
            return found
        loader = COMMANDS[cmd_name]
        if callable(loader):
            command = loader()
        else:
            module, attr = loader.split(":")
            command = getattr(importlib.import_module(f"ensnif_mpc.cli.{module}"), attr)
        self.add_command(command, cmd_name)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    except Exception as exc:
        from ensnif_mpc.cli.job_cmd import JobDidNotSucceed  # a job ended other than succeeded

        if isinstance(exc, JobDidNotSucceed):
            sys.exit(JOB_FAILED_EXIT)
        raise
    sys.exit(0)


if __name__ == "__main__":
    main()
