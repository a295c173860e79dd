"""`ensnif program check DIR`: a member program and its manifest, checked offline and run locally.

What a member runs before submitting a program (and an owner's reviewer before listing
its hash): the package and its SHA-256 (what owners pin), the manifest against the code
(``ensnif_mpc.jobs.program_lint``), then one run on generated data with three local
parties — real worker processes over TLS on loopback (``ensnif_mpc.demo.local_run``) —
compared with the program's plaintext ``reference`` when the manifest names one.
No coordinator, node or profile is needed.
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import click
import numpy as np

from ensnif_mpc.cli.render import console, emit_json
from ensnif_mpc.data.schema import Column
from ensnif_mpc.errors import EnsnifError, ProgramInvalid
from ensnif_mpc.jobs import checks, member_program, program_lint
from ensnif_mpc.jobs.member_program import Bundle, Manifest


@click.group()
def program() -> None:
    """Programs written by consortium members (docs/programs.md)."""


@program.command("check")
@click.argument("path", type=click.Path(exists=True))
@click.option("--param", "raw_params", multiple=True, help="name=value (JSON), repeatable.")
@click.option("--owners", type=int, default=0, help="Data owners to generate (default 2).")
@click.option("--rows", type=int, default=60, help="Rows per generated owner.")
@click.option("--seed", type=int, default=0)
@click.option("--no-run", is_flag=True, help="Check the package and manifest only.")
@click.option("--json", "as_json", is_flag=True)
def check(
    path: str,
    raw_params: tuple[str, ...],
    owners: int,
    rows: int,
    seed: int,
    no_run: bool,
    as_json: bool,
) -> None:
    """Validate a member program (directory or FILE.py) and run it with three local parties."""
    bundle = Bundle.from_path(Path(path))
    manifest = program_lint.check(bundle)
    definition = manifest.definition(bundle.digest)
    params = definition.check_params(_params(raw_params))
    report: dict[str, Any] = {
        "hash": bundle.digest,
        "name": manifest.name,
        "files": [p for p, _ in bundle.files],
        "outputs": list(manifest.output_names),
        "release": "exact" if manifest.exact else [b.l2 for b in manifest.blocks],
    }
    if not no_run:
        report.update(_run(bundle, manifest, params, owners, rows, seed))
    if as_json:
        emit_json(report)
    else:
        _print(report)
    if not report.get("ok", True):
        raise ProgramInvalid(
            f"program {manifest.name}: the MPC run differs from its reference "
            f"({report['mismatch']})"
        )


def _params(raw: tuple[str, ...]) -> dict[str, Any]:
    out = {}
    for item in raw:
        name, sep, value = item.partition("=")
        if not sep:
            raise ProgramInvalid(f"--param {item!r}: expected name=value")
        try:
            out[name] = json.loads(value)
        except ValueError:
            out[name] = value
    return out


def generated_owner(manifest: Manifest, position: int, rows: int, rng: np.random.Generator) -> Any:
    """One owner's table for the roles its position takes: numbers in [0, 100] (two
    decimals for numeric and float roles), keys and labels from ten strings."""
    from ensnif_mpc.demo.local_run import LocalOwner

    roles = manifest.roles[min(position, len(manifest.roles) - 1)]
    columns, data, names, lists = [], {}, {}, {}
    for role in roles:
        if not role.required:
            continue
        made = [f"{role.name}_{position}_{j}" for j in range(role.min_columns)]
        for name in made:
            if role.types & {"int", "float"}:
                kind = "float" if "float" in role.types else "int"
                decimals = 2 if kind == "float" else 0
                ints = rng.integers(0, 100 * 10**decimals, size=rows, endpoint=True)
                columns.append(Column(name, kind, 0.0, 100.0, decimals))
                data[name] = ints / 10**decimals if decimals else ints.astype(np.int64)
            else:
                columns.append(Column(name, "string"))
                data[name] = np.array([f"k{v}" for v in rng.integers(0, 10, size=rows)])
        if role.many:
            lists[role.name] = made
        else:
            names[role.name] = made[0]
    return LocalOwner(tuple(columns), data, names, lists)


def _run(
    bundle: Bundle,
    manifest: Manifest,
    params: dict[str, Any],
    owners: int,
    rows: int,
    seed: int,
) -> dict[str, Any]:
    from ensnif_mpc.demo import local_run

    n_owners = owners or max(manifest.min_owners, 2)
    if n_owners < manifest.min_owners or (manifest.max_owners or n_owners) < n_owners:
        raise ProgramInvalid(f"--owners {n_owners}: the manifest takes {manifest.min_owners}+")
    rng = np.random.default_rng(seed)
    tables = [generated_owner(manifest, k, rows, rng) for k in range(n_owners)]
    values = [c for t in tables for c in t.columns if c.name == t.roles.get("value") and c.numeric]
    decimals = max((c.decimals for c in values), default=0)
    sizing = checks.sizing_for(
        [(rows, c.abs_bound, decimals) for c in values] or [(rows, 1, 0)], decimals
    )
    parties: list[Any] = [*tables, *[None] * max(0, 3 - n_owners)]
    with tempfile.TemporaryDirectory(prefix="ensnif-program-check-") as tmp:
        result = local_run.run(
            Path(tmp),
            parties,
            protocol=member_program.MEMBER_PROTOCOL,
            params=params,
            bit_length=sizing.bit_length,
            decimals=decimals,
            program=bundle,
        )
        logs = local_run.log_tail(Path(tmp)) if not result.ok else ""
    if not result.ok:
        raise EnsnifError.received(  # the failing worker's own reason, as a node reports it
            f"program {manifest.name} failed in the local run: {result.message}\n{logs}",
            result.reason or None,
        )
    mpc = {k: float(v) for k, v in result.outputs.items()}
    out: dict[str, Any] = {"parties": len(parties), "owners": n_owners, "rows": rows, "mpc": mpc}
    if manifest.reference:
        expected = _reference(bundle, manifest, tables, params)
        out["reference"] = expected
        bad = [
            k
            for k in mpc
            if not math.isclose(
                mpc[k], expected.get(k, math.nan), rel_tol=manifest.tolerance, abs_tol=1e-9
            )
        ]
        out["ok"] = not bad
        if bad:
            out["mismatch"] = f"{bad[0]}: MPC {mpc[bad[0]]!r}, reference {expected.get(bad[0])!r}"
    return out


def _reference(
    bundle: Bundle, manifest: Manifest, tables: list[Any], params: dict[str, Any]
) -> dict[str, float]:
    """The manifest's plaintext reference, run here on the same generated tables (the
    member's own code on its own machine, as `check` runs the program itself)."""
    path, name = manifest.reference.split(":")
    module_name = f"ensnif_member_reference_{bundle.digest[7:23]}"
    spec = importlib.util.spec_from_loader(module_name, loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    exec(compile(bundle.file(path), path, "exec"), module.__dict__)
    given = [
        {
            **{role: np.asarray(t.data[col]) for role, col in t.roles.items()},
            **{r: np.column_stack([t.data[c] for c in cs]) for r, cs in t.role_lists.items()},
        }
        for t in tables
    ]
    return {k: float(v) for k, v in getattr(module, name)(given, params).items()}


def _print(report: dict[str, Any]) -> None:
    console.print(f"[bold]{report['name']}[/]  {report['hash']}")
    console.print(f"files    {', '.join(report['files'])}")
    console.print(f"outputs  {', '.join(report['outputs'])}")
    release = report["release"]
    console.print(
        "release  " + (release if isinstance(release, str) else "DP, L2 " + "; ".join(release))
    )
    if "mpc" not in report:
        console.print("manifest and code: ok (not run)")
        return
    console.print(
        f"ran with {report['parties']} local parties ({report['owners']} owners, "
        f"{report['rows']} generated rows each)"
    )
    reference = report.get("reference", {})
    for name, value in report["mpc"].items():
        ref = f"   reference {reference[name]!r}" if name in reference else ""
        console.print(f"  {name} = {value!r}{ref}")
    if "ok" in report:
        console.print(
            "matches its reference" if report["ok"] else "[red]differs from its reference[/]"
        )
