"""The CLI's connection to the coordinator, from the client profile."""

from __future__ import annotations

from pathlib import Path

import click

from ensnif_mpc.config import ClientProfile
from ensnif_mpc.sdk.client import Client


def client_from(ctx: click.Context) -> Client:
    root = ctx.find_root()
    profile = (root.obj or {}).get("profile")
    return Client(ClientProfile.load(Path(profile) if profile else None))
