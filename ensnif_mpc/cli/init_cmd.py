"""``ensnif init coordinator|party|analyst``: commented starting configurations.

Each file is what :mod:`ensnif_mpc.config` loads (``CoordinatorConfig``, ``PartyConfig``,
``ClientProfile``), with every key at its default or a sensible value and a comment on
what it does; the certificate paths point at ``pki/`` next to the file, where
``ensnif pki request`` puts the member's key and request.
"""

from __future__ import annotations

from pathlib import Path

import click

from ensnif_mpc.cli.render import emit_json
from ensnif_mpc.errors import InvalidArgument
from ensnif_mpc.security import pki

COORDINATOR = """\
# Ensnif coordinator: the consortium's registry, catalog and scheduler; it never sees data.
# Run by the platform operator:   ensnif coordinator serve --config coordinator.toml
# Relative paths are resolved against this file's directory.
# Precedence: command-line flag > ENSNIF_* environment variable > this file > default.

# Informational: the coordinator's identity is the common name of its certificate, and
# nodes and analysts expect that name (their coordinator_name, default "coordinator").
name = "<NAME>"

# host:port of CoordinatorService. Env: ENSNIF_LISTEN (also --listen).
# Use 0.0.0.0:50051 to accept members from other hosts (every call is mutual TLS).
listen = "127.0.0.1:50051"

# SQLAlchemy URL of the coordinator's state (parties, catalog, jobs, sealed result
# shares, audit chain). SQLite (WAL) by default; a relative path is resolved against
# this file and its directory must exist. Env: ENSNIF_DATABASE.
# PostgreSQL: database = "postgresql+psycopg://ensnif@db.example.org/ensnif"
database = "sqlite:///coordinator.db"

# A DP question an analyst repeats within this many seconds, with the same release, is
# answered from the earlier result at no privacy cost (0: never).
cache_seconds = 86400

[tls]
# The consortium CA and this coordinator's certificate and key. At this host:
#   ensnif pki request <NAME> --role coordinator --host coordinator.example.org --out pki
# then the consortium lead signs pki/<NAME>.csr (ensnif pki sign); put the returned
# <NAME>.crt and ca.crt into pki/. The key never leaves this host.
ca = "pki/ca.crt"
cert = "pki/<NAME>.crt"
key = "pki/<NAME>.key"
# The CA's revocation list (ensnif pki revoke writes it); default: ca.crl next to ca.
# It may be missing (nothing revoked); the coordinator re-reads it when it changes.
# crl = "pki/ca.crl"

[timeouts]
propose_seconds = 30        # every node must answer a proposal within this
approval_seconds = 604800   # manual approvals: how long a job waits for administrators
job_seconds = 3600          # wall-clock limit of a job, from its submission
"""

PARTY = """\
# Ensnif party node: runs beside a member's data, approves jobs by its own policy.
# Run:   ensnif party serve --config party.toml      Check:  ensnif doctor --config party.toml
# Relative paths are resolved against this file's directory.
# Precedence: command-line flag > ENSNIF_* environment variable > this file > default.

# The node's consortium identity: must equal the common name of tls.cert (role party).
name = "<NAME>"

# PartyService, called only by the coordinator. Env: ENSNIF_LISTEN (also --listen).
listen = "127.0.0.1:50061"
# The address the coordinator dials (default: listen). Set it behind NAT, or when
# listening on 0.0.0.0.
# advertise = "<NAME>.example.org:50061"

# Where the coordinator runs, and the name its certificate must carry.
# Env: ENSNIF_COORDINATOR.
coordinator = "127.0.0.1:50051"
coordinator_name = "coordinator"

# The node's own SQLite state (jobs, decisions, budget ledger, audit) and job workspaces.
state_dir = "state"

# MPC links: the host the other members' workers dial, and the ports this node's workers
# listen on (one per concurrent job). MPyC binds them on all interfaces: open them in
# the firewall only to the other members' MPC hosts.
mpc_host = "127.0.0.1"
mpc_ports = "41000-41099"

# Job workers kept pre-started (imports done, no job in them until one is assigned; each
# serves one job): about 0.5-1 s less per job, about 140 MB each while idle. 0: cold starts.
standby_workers = 1

# TenSEAL's thread pool for each encrypted-scoring request, set explicitly (its pool has
# crashed other projects; the node's gRPC threads already serve requests side by side).
tenseal_threads = 1

[timeouts]
connect_seconds = 30        # all MPC peers must connect within this
job_seconds = 3600          # the node's own limit on one worker
start_seconds = 600         # an approved job the coordinator never starts is dropped
approval_seconds = 604800   # a job waiting for `ensnif job approve` is dropped after this

[tls]
# The consortium CA and this node's certificate and key. At this host:
#   ensnif pki request <NAME> --role party --host <NAME>.example.org --out pki
# then the consortium lead signs pki/<NAME>.csr (ensnif pki sign); put the returned
# <NAME>.crt and ca.crt into pki/. The key never leaves this host.
ca = "pki/ca.crt"
cert = "pki/<NAME>.crt"
key = "pki/<NAME>.key"
# The CA's revocation list, copied from the lead (default: ca.crl next to ca).
# crl = "pki/ca.crl"

# No [[datasets]]: a compute-only node (a helper). A data owner declares each dataset;
# remove the leading "# " of the lines between the two markers for an example.
# The catalog gets name, description, columns with their bounds and the row count;
# rows, paths and queries never leave this machine.
# --- example dataset
# [[datasets]]
# name = "orders"
# path = "data/orders.csv"          # CSV or Parquet; or url = "postgresql+psycopg://..."
#                                   # with query = "SELECT ..." (a ${PASSWORD} stays unexpanded)
# description = "one row per order"
# # The only protocols that may read it; the joins leak table sizes (docs/protocols.md).
# allowed_protocols = ["count", "sum", "mean"]
#
# [datasets.privacy]                # differential privacy, charged to this node's ledger
# budget_rho = 1.0                  # total zCDP rho this dataset may ever spend
# default_rho = 0.1                 # charged per job that names none
# max_rho = 0.5                     # the most one job may spend
# person_column = "customer_id"     # the column naming the privacy unit (a person)
# rows_per_person = 1               # most rows one person has in this dataset
# exact_protocols = []              # protocols that may release exact answers
#
# [datasets.policy]
# approval = "auto"                 # "manual": every job waits for `ensnif job approve`
# min_cohort = 0                    # every released aggregate draws on >= this many rows
# max_groups = 10000                # groups one job may list (0: no cap)
# max_outputs = 50000               # outputs one job may release (0: no cap)
#
# [[datasets.columns]]
# name = "customer_id"
# type = "string"
#
# [[datasets.columns]]              # numeric columns: bounds fix secure-type sizes and
# name = "basket_total"             # DP sensitivity; every value is checked against them
# type = "float"
# lower = 0
# upper = 500
# decimals = 2
# --- end of example dataset
"""

PROFILE = """\
# Ensnif client profile of an analyst: how `ensnif job ...` and the Python client reach
# the coordinator. Default location: ~/.config/ensnif/profile.toml; or point to it with
# ENSNIF_PROFILE=/path/profile.toml or `ensnif --profile /path/profile.toml ...`.
# Check it with:  ensnif doctor --profile profile.toml
# Relative paths are resolved against this file's directory.

# Env: ENSNIF_COORDINATOR, ENSNIF_COORDINATOR_NAME.
coordinator = "127.0.0.1:50051"
coordinator_name = "coordinator"   # the coordinator's certificate must carry this name

[tls]
# Env: ENSNIF_CA, ENSNIF_CERT, ENSNIF_KEY. At your machine:
#   ensnif pki request <NAME> --role analyst --out pki
# then the consortium lead signs pki/<NAME>.csr (ensnif pki sign); put the returned
# <NAME>.crt and ca.crt into pki/. Results are sealed to this key: never share it.
ca = "pki/ca.crt"
cert = "pki/<NAME>.crt"
key = "pki/<NAME>.key"
"""

# role -> (file name, template, default identity)
TEMPLATES: dict[str, tuple[str, str, str]] = {
    "coordinator": ("coordinator.toml", COORDINATOR, "coordinator"),
    "party": ("party.toml", PARTY, "node"),
    "analyst": ("profile.toml", PROFILE, "analyst"),
}


def render(role: str, name: str) -> str:
    return TEMPLATES[role][1].replace("<NAME>", name)


def write(role: str, directory: Path, name: str | None = None, force: bool = False) -> Path:
    """Write the commented example for ``role`` into ``directory``; never overwrites
    an existing file unless ``force``."""
    filename, _, default = TEMPLATES[role]
    chosen = name or default
    pki.check_name(chosen)
    path = directory / filename
    if path.exists() and not force:
        raise InvalidArgument(f"{path} already exists; refusing to overwrite it (use --force)")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "pki").mkdir(exist_ok=True)
    pki.write_atomic(path, render(role, chosen).encode(), 0o644)
    return path


def _next_steps(role: str, path: Path, name: str) -> str:
    check = {
        "coordinator": f"ensnif coordinator serve --config {path}",
        "party": f"ensnif doctor --config {path}, then ensnif party serve --config {path}",
        "analyst": f"ensnif doctor --profile {path}",
    }[role]
    return (
        f"wrote {path}\n"
        "next:\n"
        f"  1. ensnif pki request {name} --role {role} --out {path.parent / 'pki'}"
        + (" --host YOUR.HOST.NAME" if role != "analyst" else "")
        + "\n"
        f"  2. send {path.parent / 'pki' / (name + '.csr')} to the consortium lead "
        "(ensnif pki sign); put the certificate and ca.crt back into pki/\n"
        f"  3. edit {path.name} (addresses" + (", datasets" if role == "party" else "") + ")\n"
        f"  4. {check}"
    )


@click.command("init")
@click.argument("role", type=click.Choice(list(TEMPLATES)))
@click.option(
    "--dir",
    "directory",
    default=".",
    show_default=True,
    type=click.Path(file_okay=False),
    help="Where to write the file (a pki/ folder is made next to it).",
)
@click.option("--name", help="The identity (certificate name) the file refers to.")
@click.option("--force", is_flag=True, help="Overwrite an existing file.")
@click.option("--json", "as_json", is_flag=True)
def init(role: str, directory: str, name: str | None, force: bool, as_json: bool) -> None:
    """Write a commented configuration: coordinator.toml, party.toml or (analyst) profile.toml."""
    path = write(role, Path(directory), name, force)
    chosen = name or TEMPLATES[role][2]
    if as_json:
        emit_json({"role": role, "name": chosen, "path": str(path)})
    else:
        click.echo(_next_steps(role, path, chosen))
