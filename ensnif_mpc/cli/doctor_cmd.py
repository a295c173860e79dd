"""``ensnif doctor``: check a member's setup, one line per check (logic in :mod:`doctor`)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ensnif_mpc.cli import doctor as checks
from ensnif_mpc.cli.render import emit_json

# Exit code when at least one check failed (warnings and skipped checks do not count).
FAILED_EXIT = 1

_MARK = {
    checks.Status.OK: ("ok", "green"),
    checks.Status.WARN: ("warn", "yellow"),
    checks.Status.FAIL: ("FAIL", "red"),
    checks.Status.SKIP: ("skip", "bright_black"),
}


def render_line(c: checks.Check) -> str:
    mark, colour = _MARK[c.status]
    return f"{click.style(f'{mark:<4}', fg=colour)}  {c.name:<20} {c.message}"


@click.command("doctor")
@click.option(
    "--config",
    "config",
    type=click.Path(dir_okay=False),
    help="A party node's party.toml (checks the node: certificate, coordinator, data, ports).",
)
@click.option(
    "--profile",
    "profile",
    type=click.Path(dir_okay=False),
    help="An analyst's profile.toml (default: the global --profile, ENSNIF_PROFILE, "
    "~/.config/ensnif/profile.toml).",
)
@click.option(
    "--timeout",
    default=checks.DEFAULT_TIMEOUT_S,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Seconds to wait for the coordinator.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per check, in a list.")
@click.pass_context
def doctor(
    ctx: click.Context, config: str | None, profile: str | None, timeout: float, as_json: bool
) -> None:
    """Check this member's setup: configuration, certificates (expiry within 14 days is a
    warning), revocation list, the coordinator over mutual TLS, clock skew against the
    coordinator (warning above 30 s, failure above 5 minutes), and for a node every other
    member's MPC port range (reachable from here: a dropped port fails), its data sources
    (readable, within their declared bounds) and its own MPC port range.

    One line per check; exit code 1 if any check failed, 0 otherwise.
    """
    if config and profile:
        raise click.UsageError("give --config (a node) or --profile (an analyst), not both")
    if config:
        found = checks.diagnose_party(Path(config), timeout)
    else:
        chosen = profile or (ctx.find_root().obj or {}).get("profile")
        found = checks.diagnose_profile(Path(chosen) if chosen else None, timeout)
    if as_json:
        emit_json([c.as_dict() for c in found])
    else:
        for c in found:
            click.echo(render_line(c))
        counts = checks.summary(found)
        click.echo(
            f"{counts['fail']} failed, {counts['warn']} warning(s), {counts['ok']} ok, "
            f"{counts['skip']} skipped"
        )
    if checks.failed(found):
        sys.exit(FAILED_EXIT)
