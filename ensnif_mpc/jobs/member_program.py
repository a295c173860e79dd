"""Programs written by consortium members: packaged, pinned by SHA-256, described by a manifest.

A member writes an MPC program against the program API (``protocols/program.py``) and
submits it with a job (``protocol = "program"``): a Python file or a directory, with a
manifest ``program.toml`` declaring its inputs (roles per input position), parameters,
outputs and recipients, what it leaks, and its DP release (sensitivities per block of
outputs, or exact). This module is the package and the pin, nothing that runs it:

- :class:`Bundle`: the program's files (manifest included), read from a path or from the
  job's wire form, and its content hash :func:`content_hash` — SHA-256 over the sorted
  relative paths and bytes, so one changed byte anywhere is another program.
- :class:`Manifest`: the parsed ``program.toml``, and the
  :class:`~ensnif_mpc.jobs.protocol.ProtocolDef` it amounts to, so the coordinator and
  every node check a program job with the same functions as any protocol
  (``ensnif_mpc.jobs.checks``).

Why the hash is what owners approve: the submitter's signature covers it
(``jobspec.canonical``), a node recomputes it from the files it received before anything
else (:meth:`Bundle.from_wire`), and a dataset policy lists the hashes it allows
(``programs = ["sha256:…"]``; a helper, which runs the code too, in its party.toml); any
other program waits for that party's administrator.
Whether the code matches its manifest is checked statically by
``ensnif_mpc.jobs.program_lint`` and at run time by the worker (``protocols/member.py``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ensnif_mpc import tomlfile
from ensnif_mpc.errors import InvalidJobSpec, ProgramInvalid
from ensnif_mpc.jobs.protocol import NUMERIC, Param, ProtocolDef, Role
from ensnif_mpc.privacy.dp import BlockSpec

MEMBER_PROTOCOL = "program"  # the job spec's protocol for a member program
MANIFEST = "program.toml"
JOB_DIR = "program"  # where a node writes a member program inside a job's workspace
MAX_FILES = 32
MAX_BYTES = 256 * 1024  # all files together: a program is reviewed by people, not shipped data
_HASH_DOMAIN = b"ensnif-program-v1\0"
_PATH = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(/[A-Za-z0-9_][A-Za-z0-9_.-]*)*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def content_hash(files: Sequence[tuple[str, bytes]]) -> str:
    """``sha256:<hex>`` over the files sorted by path: each path and its bytes, both
    length-prefixed, so no two different packages share an encoding."""
    h = hashlib.sha256(_HASH_DOMAIN)
    for path, data in sorted(files):
        raw = path.encode()
        h.update(len(raw).to_bytes(8, "big") + raw + len(data).to_bytes(8, "big"))
        h.update(data)
    return "sha256:" + h.hexdigest()


@dataclass(frozen=True)
class Bundle:
    """A member program's files (relative path -> bytes, the manifest among them)."""

    files: tuple[tuple[str, bytes], ...]

    def __post_init__(self) -> None:
        paths = [p for p, _ in self.files]
        if len(paths) != len(set(paths)):
            raise ProgramInvalid("program: a file is listed twice")
        if len(paths) > MAX_FILES:
            raise ProgramInvalid(f"program: more than {MAX_FILES} files")
        if sum(len(d) for _, d in self.files) > MAX_BYTES:
            raise ProgramInvalid(f"program: its files exceed {MAX_BYTES // 1024} KiB together")
        for p in paths:
            if not _PATH.match(p) or ".." in p.split("/"):
                raise ProgramInvalid(f"program: {p[:80]!r} is not a plain relative file path")
        if MANIFEST not in paths:
            raise ProgramInvalid(f"program: no {MANIFEST} (the manifest) among its files")

    @property
    def digest(self) -> str:
        return content_hash(self.files)

    def file(self, path: str) -> bytes:
        return dict(self.files)[path]

    @property
    def manifest(self) -> Manifest:
        return Manifest.parse(self.file(MANIFEST))

    # -- reading and writing ------------------------------------------------------------
    @staticmethod
    def from_path(path: Path) -> Bundle:
        """A directory (every regular file below it but caches and hidden files), or one
        ``.py`` file with its manifest beside it (``NAME.toml`` or ``program.toml``)."""
        if path.is_dir():
            files = []
            for f in sorted(path.rglob("*")):
                rel = f.relative_to(path).as_posix()
                if f.is_file() and not _skipped(rel):
                    files.append((rel, f.read_bytes()))
            return Bundle(tuple(files))
        if path.is_file() and path.suffix == ".py":
            for name in (path.with_suffix(".toml"), path.with_name(MANIFEST)):
                if name.is_file():
                    return Bundle(((path.name, path.read_bytes()), (MANIFEST, name.read_bytes())))
            raise ProgramInvalid(f"program: no manifest beside {path.name} ({path.stem}.toml)")
        raise ProgramInvalid(f"program: {path} is neither a directory nor a .py file")

    def to_wire(self) -> dict[str, Any]:
        """The job's ``program`` table: the hash and the files (base64), as JSON travels."""
        return {
            "hash": self.digest,
            "files": {p: base64.b64encode(d).decode() for p, d in sorted(self.files)},
        }

    @staticmethod
    def from_wire(raw: Any) -> Bundle:
        """The program a job carries, checked against the hash it claims: a program whose
        files do not hash to it is refused (``program_hash_mismatch``) before anything."""
        if not isinstance(raw, dict) or set(raw) != {"hash", "files"}:
            raise ProgramInvalid("program: expected a table with hash and files (or path)")
        claimed, files = raw["hash"], raw["files"]
        if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
            raise ProgramInvalid("program.files: expected a table of base64 strings")
        try:
            decoded = tuple((str(p), base64.b64decode(v, validate=True)) for p, v in files.items())
        except (binascii.Error, ValueError):
            raise ProgramInvalid("program.files: not base64") from None
        bundle = Bundle(decoded)
        check_pin(bundle, claimed)
        return bundle

    def write(self, directory: Path) -> None:
        """The files under ``directory`` (a job's workspace, where the worker loads them)."""
        for rel, data in self.files:
            target = directory / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)


def check_pin(bundle: Bundle, claimed: Any) -> None:
    """``claimed`` (a ``sha256:<hex>`` the submitter or an owner pinned) is the bundle's."""
    if not isinstance(claimed, str) or not re.fullmatch(r"sha256:[0-9a-f]{64}", claimed):
        raise ProgramInvalid("program.hash: expected sha256:<64 hex digits>")
    if claimed != bundle.digest:
        raise InvalidJobSpec(
            f"program.hash: the program's files hash to {bundle.digest}, not {claimed}: "
            "the code is not the code that was pinned",
            reason="program_hash_mismatch",
        )


def _skipped(rel: str) -> bool:
    parts = rel.split("/")
    return any(p.startswith(".") or p == "__pycache__" for p in parts) or rel.endswith(".pyc")


# -- the manifest ----------------------------------------------------------------------

_TOP = {"name", "summary", "entry", "leakage", "min_owners", "max_owners", "inputs"}
_TOP |= {"params", "outputs", "release", "reference", "tolerance"}
_ROLE_TYPES = {"numeric": NUMERIC, "int": frozenset({"int"}), "float": frozenset({"float"})}
_ROLE_TYPES |= {"string": frozenset({"string"}), "key": frozenset({"int", "string"})}
_ROLE_NAMES = ("value", "key", "group", "filter", "features", "label", "weight")
_PARAM_TYPES = ("number", "int", "bool", "string", "numbers")
_OUTPUT_KINDS = ("int", "fixed")
_FACTORS = ("rows", "value")  # what a sensitivity may multiply: see Block


@dataclass(frozen=True)
class Output:
    name: str
    kind: str  # "int" (DP noise applies) | "fixed"
    size: int = 0  # 0: one number; n: n numbers name[0] … name[n-1]
    to: str = "analyst"

    @property
    def names(self) -> tuple[str, ...]:
        return (
            (self.name,) if not self.size else tuple(f"{self.name}[{i}]" for i in range(self.size))
        )


@dataclass(frozen=True)
class Block:
    """A block of the DP release: its outputs and its L2 sensitivity on the integer grid,
    a product of factors summed over the owners (a person may be at every owner):
    ``rows`` is the owner's rows per person, ``value`` the largest |value| of its value
    column on the session's grid, numbers are constants. ``"rows * value"`` is a sum's,
    ``"rows"`` a count's."""

    outputs: tuple[str, ...]
    l2: str

    def factors(self) -> list[str | float]:
        out: list[str | float] = []
        for term in (t.strip() for t in self.l2.split("*")):
            if term in _FACTORS:
                out.append(term)
                continue
            try:
                number = float(term)
            except ValueError:
                raise ProgramInvalid(
                    f"release.blocks.l2: {term[:40]!r} is not rows, value or a number"
                ) from None
            if not 0 < number < 2**50:
                raise ProgramInvalid("release.blocks.l2: constants must be positive")
            out.append(number)
        return out

    def sensitivity(self, owner: tuple[int, int]) -> float:
        rows, bound = owner
        total = 1.0
        named = {"rows": float(rows), "value": float(bound)}
        for f in self.factors():
            total *= named[f] if isinstance(f, str) else f
        return total


@dataclass(frozen=True)
class Manifest:
    name: str
    summary: str
    entry: str  # "path/to/file.py:function"
    leakage: str
    roles: tuple[tuple[Role, ...], ...]
    params: tuple[Param, ...]
    outputs: tuple[Output, ...]
    exact: bool  # release = "exact": no DP release (owners must allow exact for "program")
    blocks: tuple[Block, ...] = ()
    min_owners: int = 1
    max_owners: int | None = None
    # Optional: "file.py:function", the same computation in the clear (numpy), which
    # `ensnif program check` compares with the MPC run; and the relative error allowed.
    reference: str = ""
    tolerance: float = 0.0

    @property
    def entry_file(self) -> str:
        return self.entry.split(":")[0]

    @property
    def entry_function(self) -> str:
        return self.entry.split(":")[1]

    @property
    def output_names(self) -> tuple[str, ...]:
        """Every output the program may reveal, in release order (the blocks' order)."""
        if self.blocks:
            by = {o.name: o for o in self.outputs}
            return tuple(n for b in self.blocks for o in b.outputs for n in by[o].names)
        return tuple(n for o in self.outputs for n in o.names)

    @staticmethod
    def parse(data: bytes) -> Manifest:
        raw = tomlfile.parse(data, MANIFEST, ProgramInvalid)
        unknown = sorted(set(raw) - _TOP)
        if unknown:
            raise ProgramInvalid(f"{MANIFEST}: unknown key {unknown[0]!r}")
        name = _text(raw, "name")
        if not _NAME.match(name):
            raise ProgramInvalid(f"{MANIFEST}: name must be lower_snake_case, got {name[:40]!r}")
        entry = _text(raw, "entry")
        reference = raw.get("reference", "")
        for key, value in (("entry", entry), ("reference", reference)):
            if value and not re.fullmatch(r"[A-Za-z0-9_./-]+\.py:[A-Za-z_][A-Za-z0-9_]*", value):
                raise ProgramInvalid(f"{MANIFEST}: {key} must be 'file.py:function'")
        tolerance = raw.get("tolerance", 0.0)
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
            raise ProgramInvalid(f"{MANIFEST}: tolerance must be a number (a relative error)")
        outputs = tuple(_output(o, n) for n, o in enumerate(_tables(raw, "outputs", True)))
        names = [o.name for o in outputs]
        if len(set(names)) != len(names):
            raise ProgramInvalid(f"{MANIFEST}: outputs: a name is declared twice")
        exact, blocks = _release(raw.get("release"), outputs)
        min_owners = _count(raw, "min_owners", 1)
        max_owners = _count(raw, "max_owners", 0) or None
        if max_owners is not None and max_owners < min_owners:
            raise ProgramInvalid(f"{MANIFEST}: max_owners is below min_owners")
        return Manifest(
            name=name,
            summary=_text(raw, "summary"),
            entry=entry,
            leakage=_text(raw, "leakage"),
            roles=tuple(_roles(t, n) for n, t in enumerate(_tables(raw, "inputs", True))),
            params=tuple(_param(p, n) for n, p in enumerate(_tables(raw, "params", False))),
            outputs=outputs,
            exact=exact,
            blocks=blocks,
            min_owners=min_owners,
            max_owners=max_owners,
            reference=str(reference),
            tolerance=float(tolerance),
        )

    def definition(self, digest: str) -> ProtocolDef:
        """The protocol this program is, for the checks every party runs (roles, columns,
        types, parameters, owners, the release and its sensitivities)."""
        return ProtocolDef(
            name=MEMBER_PROTOCOL,
            family="member",
            summary=f"{self.name} ({digest[:19]}…): {self.summary}",
            inputs="as the program's manifest declares",
            outputs=self.output_names,
            leakage=self.leakage,
            program="",  # loaded from the job's directory by the worker, never imported
            reference=_no_reference,
            roles=self.roles,
            parameters=self.params,
            min_data_owners=self.min_owners,
            max_data_owners=self.max_owners,
            dp_sensitivity=None if self.exact else self._sensitivity,
            extra={"program": digest, "manifest": self},
        )

    def _sensitivity(
        self, owners: Sequence[tuple[int, int]], params: Mapping[str, Any]
    ) -> list[BlockSpec]:
        by = {o.name: o for o in self.outputs}
        return [
            BlockSpec(
                float(max(1.0, sum(b.sensitivity(o) for o in owners))),
                sum(len(by[n].names) for n in b.outputs),
            )
            for b in self.blocks
        ]


def _no_reference(tables: Any, params: Any) -> dict[str, float]:
    raise NotImplementedError("a member program has no plaintext reference in the registry")


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ProgramInvalid(f"{MANIFEST}: {key} is required (a non-empty string)")
    return value.strip()


def _count(raw: Mapping[str, Any], key: str, default: int) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 64:
        raise ProgramInvalid(f"{MANIFEST}: {key} must be a whole number from 0 to 64")
    return value


def _tables(raw: Mapping[str, Any], key: str, required: bool) -> list[dict[str, Any]]:
    value = raw.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise ProgramInvalid(f"{MANIFEST}: {key} must be an array of tables ([[{key}]])")
    if required and not value:
        raise ProgramInvalid(f"{MANIFEST}: at least one [[{key}]] is required")
    return value


def _roles(table: Mapping[str, Any], n: int) -> tuple[Role, ...]:
    """``[[inputs]]`` n: role -> column type (numeric, int, float, string, key), or a
    table ``{ type = "numeric", columns = [min, max] }`` for a role that takes a list of
    min to max columns (``features = ["x1", "x2"]`` in the job); ``optional = [roles]``
    lists the roles an input may leave out."""
    optional = table.get("optional", [])
    if not isinstance(optional, list):
        raise ProgramInvalid(f"{MANIFEST}: inputs[{n}].optional must be a list of roles")
    roles = []
    for role, kind in table.items():
        if role == "optional":
            continue
        if role not in _ROLE_NAMES:
            raise ProgramInvalid(
                f"{MANIFEST}: inputs[{n}].{role}: unknown role (roles: {', '.join(_ROLE_NAMES)})"
            )
        many, low, high = False, 1, 1
        if isinstance(kind, dict):
            counts = kind.get("columns")
            if set(kind) != {"type", "columns"} or not (
                isinstance(counts, list)
                and len(counts) == 2
                and all(isinstance(c, int) and not isinstance(c, bool) for c in counts)
                and 1 <= counts[0] <= counts[1] <= 64
            ):
                raise ProgramInvalid(
                    f"{MANIFEST}: inputs[{n}].{role}: expected {{ type = ..., columns = "
                    "[min, max] }} with 1 <= min <= max <= 64"
                )
            kind, many, (low, high) = kind["type"], True, counts
        if kind not in _ROLE_TYPES:
            raise ProgramInvalid(
                f"{MANIFEST}: inputs[{n}].{role}: type must be one of {', '.join(_ROLE_TYPES)}"
            )
        required = role not in optional
        what = f"{low} to {high} {kind} columns" if many else f"a {kind} column"
        roles.append(Role(role, _ROLE_TYPES[kind], what, required, many, low, high))
    if not roles:
        raise ProgramInvalid(f"{MANIFEST}: inputs[{n}] declares no role")
    stray = sorted(set(optional) - {r.name for r in roles})
    if stray:
        raise ProgramInvalid(
            f"{MANIFEST}: inputs[{n}].optional names no declared role {stray[0]!r}"
        )
    return tuple(roles)


def _param(table: Mapping[str, Any], n: int) -> Param:
    name = table.get("name")
    kind = table.get("type")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ProgramInvalid(f"{MANIFEST}: params[{n}].name must be lower_snake_case")
    if kind not in _PARAM_TYPES:
        raise ProgramInvalid(f"{MANIFEST}: params[{n}].type must be one of {_PARAM_TYPES}")
    return Param(
        name,
        str(kind),
        str(table.get("description", "")),
        bool(table.get("required", False)),
        table.get("default"),
    )


def _output(table: Mapping[str, Any], n: int) -> Output:
    name, kind, size = table.get("name"), table.get("kind", "int"), table.get("size", 0)
    to = table.get("to", "analyst")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ProgramInvalid(f"{MANIFEST}: outputs[{n}].name must be lower_snake_case")
    if kind not in _OUTPUT_KINDS:
        raise ProgramInvalid(f"{MANIFEST}: outputs[{n}].kind must be int or fixed")
    if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= 4096:
        raise ProgramInvalid(f"{MANIFEST}: outputs[{n}].size must be 0 to 4096")
    if to != "analyst":
        raise ProgramInvalid(
            f"{MANIFEST}: outputs[{n}].to: member programs release to the analyst only "
            "(outputs to a named member or kept as artifacts are not open to them yet)"
        )
    return Output(name, kind, size, to)


def _release(raw: Any, outputs: tuple[Output, ...]) -> tuple[bool, tuple[Block, ...]]:
    """``[release] exact = true`` or ``[[release.blocks]] outputs = [...], l2 = "…"``
    covering every output once (DP noise is integer: fixed-point outputs are exact only)."""
    if not isinstance(raw, dict) or set(raw) - {"exact", "blocks"}:
        raise ProgramInvalid(
            f"{MANIFEST}: [release] is required: exact = true, or [[release.blocks]]"
        )
    if raw.get("exact") is True:
        if "blocks" in raw:
            raise ProgramInvalid(f"{MANIFEST}: release: exact = true or blocks, not both")
        return True, ()
    blocks = tuple(
        Block(tuple(b.get("outputs", [])), str(b.get("l2", "")))
        for b in _tables(raw, "blocks", True)
    )
    covered = [o for b in blocks for o in b.outputs]
    declared = {o.name: o for o in outputs}
    if sorted(covered) != sorted(declared):
        raise ProgramInvalid(
            f"{MANIFEST}: release.blocks must cover every declared output exactly once "
            f"(outputs: {', '.join(declared)}; blocks cover: {', '.join(covered) or 'none'})"
        )
    if any(declared[o].kind != "int" for o in covered):
        raise ProgramInvalid(
            f"{MANIFEST}: DP noise is added to integer outputs only; release a fixed-point "
            "output with exact = true"
        )
    for b in blocks:
        b.factors()  # refuses a malformed sensitivity now
    return False, blocks


def wire_json(bundle: Bundle | None) -> str:
    return json.dumps(bundle.to_wire(), sort_keys=True) if bundle is not None else ""
