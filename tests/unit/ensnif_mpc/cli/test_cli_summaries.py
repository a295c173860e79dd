"""`ensnif --help` lists every command from ensnif_mpc.cli.main.SUMMARIES without importing
the command modules (the CLI start goal: about 0.1 s instead of 0.6 s of CPU), and each
summary is the command's own."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from ensnif_mpc.cli import main


@pytest.mark.parametrize("name", sorted(main.COMMANDS))
def test_each_summary_is_the_command_s_own_at_any_width(name: str) -> None:
    command = main.cli.get_command(click.Context(main.cli), name)
    assert command is not None
    for limit in (30, 45, 80, 400):
        own = command.get_short_help_str(limit)
        summary = click.Command(name, help=main.SUMMARIES[name])
        assert summary.get_short_help_str(limit) == own


def test_help_lists_every_command_and_imports_none_of_them() -> None:
    probe = (
        "import sys\n"
        "from ensnif_mpc.cli.main import main\n"
        "try:\n"
        "    main(['--help'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "loaded = sorted(m for m in sys.modules if m.startswith('ensnif_mpc.cli.') and\n"
        "                m.endswith('_cmd'))\n"
        "print('LOADED', loaded)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    assert out.strip().endswith("LOADED []")
    for name in main.COMMANDS:
        assert f"\n  {name} " in out
