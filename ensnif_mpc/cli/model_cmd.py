"""`ensnif model list|show|delete` over both kinds of model, beside `register`/`remove`.

A member's **registered** scoring model (weights in its node's state, for encrypted
scoring: `ensnif model register|remove --config`, ensnif_mpc/cli/score_cmd.py) and a
**trained model artifact** (a regression run with ``keep = "artifact"``, secret-shared at
every party of its session; ensnif_mpc/results/model_artifacts.py) are listed together.
An artifact is described from its metadata only (kind, feature count, precision,
producing job, owners, party order); its weights are never seen here, nor by the
coordinator. A model trained across a private join (join_regression, join_logistic) is
listed as ``vertical``: its weights are A's features then B's, and no predict job scores
with it (model_vertical). `delete` removes an artifact at every node that holds a share (the analyst
who made it only); a registered model is removed by its owner with `model remove`.
"""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from ensnif_mpc.cli.artifacts_cmd import _row as artifact_row
from ensnif_mpc.cli.context import client_from
from ensnif_mpc.cli.render import console, emit_json, to_dict
from ensnif_mpc.cli.score_cmd import _sigmoid_cell, model
from ensnif_mpc.errors import InvalidArgument, NotFound
from ensnif_mpc.results import model_artifacts

# The group's own `list` (registered models only) gives way to one over both kinds.
model.commands.pop("list", None)
model.help = (
    "Models: registered by a member at its node for encrypted scoring, or trained and "
    "kept secret-shared at the parties as an artifact (predict jobs)."
)


def trained_rows(artifacts: list[Any]) -> list[dict[str, Any]]:
    """The model artifacts among ``artifacts`` (the SDK's listing), described."""
    out = []
    for a in artifacts:
        row = artifact_row(a)
        if not model_artifacts.is_model(row):
            continue
        m = model_artifacts.from_metadata(row)
        out.append(
            {
                "id": m.artifact_id,
                "kind": m.kind,
                "features": m.features,
                "layout": m.layout,
                "partition": "vertical" if m.vertical else "horizontal",
                "scoring": "none: trained across a join (predict and model_accuracy refuse "
                "it, model_vertical)"
                if m.vertical
                else "predict, model_accuracy",
                "precision_bits": m.frac_bits,
                "job_id": m.job_id,
                "protocol": m.protocol,
                "owners": list(m.owners),
                "parties": list(m.parties),
                "analyst": row["analyst"],
                "holders": row["holders"],
                "created_at": row["created_at"],
                "may_use": f"{row['analyst']}, and the analysts every owner's "
                "[artifacts] analysts policy lists",
            }
        )
    return out


@model.command("list")
@click.option("--party", default="", help="Only this member's registered models.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_models(ctx: click.Context, party: str, as_json: bool) -> None:
    """Registered scoring models and trained model artifacts (never weights)."""
    with client_from(ctx) as c:
        found = c.models(party)
        trained = trained_rows(list(c.artifacts()))
    if as_json:
        emit_json({"models": [to_dict(m) for m in found], "trained": trained})
        return
    t = Table(title="Models for encrypted scoring")
    for col in ("party", "model", "kind", "features", "logit range", "sigmoid error", "quota"):
        t.add_column(col)
    for m in found:
        t.add_row(
            escape(m.party),
            escape(m.name),
            m.kind,
            str(m.features),
            f"[{m.input_low:g}, {m.input_high:g}]",
            _sigmoid_cell(m),
            str(m.row_quota or "-"),
        )
    console.print(t)
    k = Table(title="Trained models kept secret-shared (predict, model_accuracy)")
    for col in ("id", "kind", "partition", "features", "precision", "owners", "parties"):
        k.add_column(col)
    for r in trained:
        k.add_row(
            escape(r["id"]),
            r["kind"],
            r["partition"],
            str(r["features"]),
            f"2^-{r['precision_bits']}",
            escape(", ".join(r["owners"])),
            escape(", ".join(r["parties"])),
        )
    console.print(k)


@model.command("show")
@click.argument("model_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def show(ctx: click.Context, model_id: str, as_json: bool) -> None:
    """One model: a trained artifact by id (`<job>/model`) or a registered one by name."""
    with client_from(ctx) as c:
        if "/" in model_id:
            rows = [r for r in trained_rows(list(c.artifacts())) if r["id"] == model_id]
            registered = []
        else:
            rows = []
            registered = [to_dict(m) for m in c.models() if m.name == model_id]
    found: dict[str, Any] | None = rows[0] if rows else (registered[0] if registered else None)
    if found is None and "/" in model_id:
        raise NotFound(
            f"no trained model {model_id!r} you may see (ensnif model list)",
            reason="artifact_not_found",
        )
    if found is None:
        raise NotFound(f"no registered model {model_id!r} (ensnif model list)")
    if as_json:
        emit_json(found)
        return
    for key, value in found.items():
        shown = ", ".join(map(str, value)) if isinstance(value, list) else str(value)
        console.print(f"{key:>15}  {escape(shown)}", highlight=False)


@model.command("delete")
@click.argument("model_id")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def delete(ctx: click.Context, model_id: str, as_json: bool) -> None:
    """Delete a trained model artifact at every node that holds a share of it."""
    if "/" not in model_id:
        raise InvalidArgument(
            f"{model_id!r} is not a trained model's id (<job>/model); a registered model is "
            "removed by its owner: ensnif model remove --config party.toml --name NAME"
        )
    with client_from(ctx) as c:
        if not any(r["id"] == model_id for r in trained_rows(list(c.artifacts()))):
            raise NotFound(
                f"no trained model {model_id!r} (ensnif model list)", reason="artifact_not_found"
            )
        deleted = c.delete_artifact(model_id)
    if as_json:
        emit_json({"id": model_id, "deleted_at": deleted})
    else:
        console.print(f"model {escape(model_id)}: deleted at {escape(', '.join(deleted))}")
