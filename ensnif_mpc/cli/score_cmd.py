"""`ensnif score` (an analyst) and `ensnif model register|list|remove` (a model's owner).

`score` is a thin layer over ensnif_mpc/sdk/scoring.py: read the rows, encrypt them
under the analyst's own CKKS key, stream them to the model owner's node through the
coordinator, decrypt the scores here. `model register` and `model remove` run beside the
owner's node, against its config and state directory (like `ensnif job approve`): the
weights are written to the node's state only and never travel.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.markup import escape

from ensnif_mpc.cli.context import client_from
from ensnif_mpc.cli.render import console, emit_json
from ensnif_mpc.config import PartyConfig
from ensnif_mpc.errors import InvalidArgument


def _pair(text: str, what: str) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise InvalidArgument(f"{what}: expected LOW,HIGH (two numbers)") from None
    return lo, hi


def read_rows(path: Path, names: list[str]) -> tuple[list[str], Any]:
    """The rows of a CSV file with a header line: the model's features by name if it
    names them, else every column in order."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"{path}: not a readable CSV file ({type(exc).__name__})") from None
    if names:
        missing = [n for n in names if n not in frame.columns]
        if missing:
            raise InvalidArgument(
                f"{path}: no column {missing[0]!r} (the model takes {', '.join(names)})",
                reason="he_feature_count",
            )
        frame = frame[names]
    try:
        return list(frame.columns), frame.to_numpy(dtype=np.float64)
    except ValueError:
        raise InvalidArgument(
            f"{path}: a feature column holds a value that is not a number",
            reason="he_input_out_of_range",
        ) from None


@click.command("score")
@click.option("--model", "model_name", required=True, help="The model's name (ensnif model list).")
@click.option("--party", default="", help="The model's owner, if several members use the name.")
@click.option("--input", "input_path", required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--output", "output_path", type=click.Path(dir_okay=False), help="Write scores.csv.")
@click.option("--key", "key_dir", type=click.Path(file_okay=False), help="The CKKS key directory.")
@click.option("--threads", default=1, show_default=True, help="TenSEAL threads here.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def score(
    ctx: click.Context,
    model_name: str,
    party: str,
    input_path: str,
    output_path: str | None,
    key_dir: str | None,
    threads: int,
    as_json: bool,
) -> None:
    """Score rows against a member's model under homomorphic encryption: only you see
    the rows and the scores; the model's weights stay at its owner."""
    from ensnif_mpc.sdk.scoring import find_model

    with client_from(ctx) as c:
        info = find_model(c.models(party), model_name, party)
        _, rows = read_rows(Path(input_path), list(info.feature_names))
        out = c.score(model_name, rows, info.party, Path(key_dir) if key_dir else None, threads)
    if output_path:
        import pandas as pd

        pd.DataFrame({"score": out.values}).to_csv(output_path, index=False)
    s = out.stats
    summary = {
        "model": info.name,
        "party": info.party,
        "kind": info.kind,
        "rows": s.rows,
        "batches": s.batches,
        "seconds": round(s.seconds, 3),
        "ciphertext_bytes_per_row": round(s.bytes_per_row, 1),
        "context_bytes": s.context_bytes,
        "rows_used": out.rows_used,
        "row_quota": info.row_quota,
        "sigmoid": info.sigmoid,
        "output": output_path or "",
    }
    if as_json:
        emit_json({**summary, "scores": [] if output_path else out.values.tolist()})
        return
    if not output_path:
        for v in out.values:
            click.echo(f"{v:.6f}")
    console.print(
        f"scored {s.rows} rows against {escape(info.party)}/{escape(info.name)} ({info.kind}) "
        f"in {s.seconds:.2f} s, {s.bytes_per_row:.0f} B of ciphertext per row"
        + (f"; sigmoid {escape(info.sigmoid)}" if info.sigmoid else ""),
        highlight=False,
    )


@click.group("model")
def model() -> None:
    """Models for encrypted scoring: registered by their owner at its node."""


_config = click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(dir_okay=False, exists=True),
    help="The node's party.toml (run beside the node).",
)


def _audit(cfg: PartyConfig, event: str, details: dict[str, Any]) -> None:
    from ensnif_mpc.audit import chain as audit
    from party_node.store import NodeStore

    db = cfg.state_dir / "node.db"
    if not db.is_file():
        return  # a node that never ran: its chain starts when it does
    store = NodeStore(db, signer=audit.Signer.from_key_file(cfg.tls.key))
    try:
        store.audit(event, details)
    finally:
        store.close()


def read_weights(path: Path) -> tuple[list[str], list[float]]:
    """A CSV with a header line of feature names and one line of weights."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
        weights = frame.iloc[0].to_numpy(dtype=np.float64).tolist()
    except (OSError, ValueError, IndexError):
        raise InvalidArgument(
            f"{path}: expected a header line of feature names and one line of weights"
        ) from None
    if len(frame) != 1:
        raise InvalidArgument(f"{path}: expected exactly one line of weights")
    return [str(c) for c in frame.columns], weights


def read_released(path: Path) -> tuple[str, list[float], float]:
    """(kind, weights, bias) of a model a training job released to this member: the
    outputs of `ensnif job result JOB --json`. A logistic regression releases coef[j]
    (one per feature) and intercept; a linear regression coef[0] (the intercept) and
    coef[1..d]."""
    import json

    try:
        outputs = json.loads(path.read_text())["outputs"]
        values = {k: float(v["value"] if isinstance(v, dict) else v) for k, v in outputs.items()}
    except (OSError, ValueError, KeyError, TypeError):
        raise InvalidArgument(
            f"{path}: not the JSON of `ensnif job result JOB --json` (an `outputs` object)"
        ) from None
    coef = [values[f"coef[{j}]"] for j in range(len(values)) if f"coef[{j}]" in values]
    if not coef or len(coef) != sum(k.startswith("coef[") for k in values):
        raise InvalidArgument(f"{path}: no coef[0], coef[1], ... outputs in order")
    if "intercept" in values:
        return "logistic", coef, values["intercept"]
    if len(coef) < 2:
        raise InvalidArgument(f"{path}: a linear model needs coef[0] (intercept) and coef[1..d]")
    return "linear", coef[1:], coef[0]


@model.command("register")
@_config
@click.option("--name", required=True)
@click.option("--weights", "weights_path", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--from-result",
    "result_path",
    type=click.Path(exists=True, dir_okay=False),
    help="A released model instead of --weights: the JSON of `ensnif job result JOB --json` "
    "of a logistic_regression job (coef[j] and intercept) or a linear regression job "
    "(coef[0] the intercept, then one per feature); kind and bias come from it.",
)
@click.option("--features", "feature_list", default="", help="Feature names (comma list).")
@click.option("--bias", default=0.0, show_default=True, type=float)
@click.option("--kind", type=click.Choice(["linear", "logistic"]), default="logistic")
@click.option("--input-range", default="", help="The logit range LOW,HIGH (logistic).")
@click.option(
    "--feature-bounds",
    default="",
    help="LOW,HIGH of every feature: the logit range is derived from them and the analyst's "
    "client refuses rows outside them.",
)
@click.option(
    "--sigmoid",
    type=click.Choice(["polynomial", "exact"]),
    default="polynomial",
    show_default=True,
    help="logistic: the node evaluates the stated cubic, or returns the encrypted logit and "
    "the analyst's client applies the exact sigmoid (the same information as an exact score).",
)
@click.option("--allow", default="*", show_default=True, help="Analysts allowed (comma list).")
@click.option("--row-quota", default=0, show_default=True, help="Rows per analyst (0: none).")
@click.option("--replace", is_flag=True, help="Overwrite a model of that name.")
@click.option("--json", "as_json", is_flag=True)
def register(
    config_path: str,
    name: str,
    weights_path: str | None,
    result_path: str | None,
    feature_list: str,
    bias: float,
    kind: str,
    input_range: str,
    feature_bounds: str,
    sigmoid: str,
    allow: str,
    row_quota: int,
    replace: bool,
    as_json: bool,
) -> None:
    """Register a linear or logistic model at this node (its weights stay here)."""
    from party_node import models

    cfg = PartyConfig.load(Path(config_path))
    if (weights_path is None) == (result_path is None):
        raise InvalidArgument("give the model as --weights CSV or --from-result JSON (one)")
    if result_path is not None:
        kind, weights, bias = read_released(Path(result_path))
        names = [n.strip() for n in feature_list.split(",") if n.strip()]
    else:
        assert weights_path is not None
        names, weights = read_weights(Path(weights_path))
    bounds = None
    if feature_bounds:
        lo, hi = _pair(feature_bounds, "--feature-bounds")
        bounds = ([lo] * len(weights), [hi] * len(weights))
    record = models.build(
        name,
        kind,
        weights,
        bias,
        _pair(input_range, "--input-range") if input_range else None,
        bounds,
        tuple(a.strip() for a in allow.split(",") if a.strip()),
        row_quota,
        tuple(names),
        "node" if sigmoid == "polynomial" else "analyst",
    )
    models.ModelRegistry(cfg.state_dir).register(record, replace=replace)
    public = record.public(cfg.name)
    _audit(cfg, "model_registered", {**public, "allow": list(record.allow)})
    if as_json:
        emit_json(public)
        return
    console.print(
        f"registered {escape(name)} ({kind}, {len(weights)} features) at {escape(cfg.name)}"
        + (f"; sigmoid {escape(public['sigmoid'])}" if public["sigmoid"] else ""),
        highlight=False,
    )


@model.command("remove")
@_config
@click.option("--name", required=True)
@click.option("--json", "as_json", is_flag=True)
def remove(config_path: str, name: str, as_json: bool) -> None:
    """Remove a model from this node."""
    from party_node import models

    cfg = PartyConfig.load(Path(config_path))
    models.ModelRegistry(cfg.state_dir).remove(name)
    _audit(cfg, "model_removed", {"name": name})
    if as_json:
        emit_json({"party": cfg.name, "removed": name})
        return
    console.print(f"removed {escape(name)} from {escape(cfg.name)}", highlight=False)


def _sigmoid_cell(m: Any) -> str:
    if m.kind != "logistic":
        return "-"
    return "exact, at the analyst" if m.sigmoid_at == "analyst" else f"{m.sigmoid_max_error:.3g}"
