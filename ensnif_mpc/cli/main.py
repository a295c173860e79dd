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


# Each command's module is imported only when that command runs (`--help` lists them
# from SUMMARIES below): importing every command module, the SDK, numpy and pyarrow cost
# about 0.9 s on every invocation. A loader is "module:attribute" under ensnif_mpc.cli,
# or a function.
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


# What `ensnif --help` lists for a command not yet imported: the first paragraph of its
# help, shortened as click shortens it (tests/unit/ensnif_mpc/cli/test_cli_summaries.py
# keeps each equal to the command's own), so listing the commands imports none of them.
SUMMARIES: dict[str, str] = {
    "artifacts": "Artifacts: outputs kept secret-shared at the parties for a later job.",
    "audit": "The hash-chained audit log of this coordinator or node (run on its host).",
    "budget": "Privacy budgets of this node's datasets (run beside the node).",
    "coordinator": ("The consortium coordinator (registry, catalog, scheduling; never sees data)."),
    "datasets": "The dataset catalog (schemas, bounds, row counts; never rows).",
    "demo": ("Run a local consortium (coordinator + grocery, logistics, helper) and its jobs."),
    "doctor": (
        "Check this member's setup: configuration, certificates (expiry within 14 days is "
        "a warning), revocation list, the coordinator over mutual TLS, clock skew against "
        "the coordinator (warning above 30 s, failure above 5 minutes), and for a node "
        "every other member's MPC port range (reachable from here: a dropped port fails), "
        "its data sources (readable, within their declared bounds) and its own MPC port "
        "range."
    ),
    "init": (
        "Write a commented configuration: coordinator.toml, party.toml or (analyst) profile.toml."
    ),
    "job": "Submit and follow consortium jobs.",
    "model": (
        "Models: registered by a member at its node for encrypted scoring, or trained and "
        "kept secret-shared at the parties as an artifact (predict jobs)."
    ),
    "outsource": "Encrypted datasets for members without a node (BFV, 128-bit security).",
    "parties": "Registered party nodes.",
    "party": "A member's party node (datasets, policy, MPC workers).",
    "pki": "Consortium PKI: a CA and certificates for coordinator, nodes and analysts.",
    "program": "Programs written by consortium members (docs/programs.md).",
    "protocols": "The protocol registry.",
    "score": (
        "Score rows against a member's model under homomorphic encryption: only you see "
        "the rows and the scores; the model's weights stay at its owner."
    ),
}


class LazyGroup(click.Group):
    """A group whose commands are imported on first use (see COMMANDS)."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """The commands and their summaries without importing them (SUMMARIES)."""
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(map(len, names))
        rows = []
        for name in names:
            loaded = self.commands.get(name)
            if loaded is None and name in SUMMARIES:
                text = click.Command(name, help=SUMMARIES[name]).get_short_help_str(limit)
            else:
                command = loaded or self.get_command(ctx, name)
                if command is None or command.hidden:
                    continue
                text = command.get_short_help_str(limit)
            rows.append((name, text))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

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
