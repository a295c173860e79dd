"""The static check of a member program: its code matches its manifest and keeps to the API.

Run wherever a program job is parsed (the submitter's client, the coordinator, every
node) and by ``ensnif program check``, before anything runs. It reads the Python source
with :mod:`ast`; nothing is imported or executed. What it refuses (``program_invalid``):

- a manifest whose entry file or function does not exist (an ``async def`` taking the
  :class:`protocols.program.Program`), an output the code reveals that the manifest does
  not declare or a declared output the code never reveals, a parameter or role the code
  reads that the manifest does not declare — so the manifest an owner approves describes
  the code it approves;
- output, parameter and role names that are not string literals (they could not be
  checked);
- imports outside a short list (numpy, math, the program API, the program's own files)
  and the builtins and attributes that reach past the API (``open``, ``eval``,
  ``exec``, ``__import__``, ``getattr``, private and dunder attributes, MPyC's peer
  links ``parties``/``protocol``/``transport``, numpy's file functions).

This is a review aid and a guard against mistakes, not a sandbox: Python code can reach
anything its process can. What stops a program that opens a value anyway is the worker's
run-time guard (``protocols/member.py``); what a malicious program could still do, and
how owners limit it, is in docs/threat-model.md.
"""

from __future__ import annotations

import ast

from ensnif_mpc.errors import ProgramInvalid
from ensnif_mpc.jobs.member_program import MANIFEST, Bundle, Manifest

ALLOWED_IMPORTS = frozenset(
    {"__future__", "math", "numpy", "fractions", "functools", "itertools", "protocols.program"}
)
FORBIDDEN_NAMES = frozenset(
    {
        "open",
        "eval",
        "exec",
        "compile",
        "__import__",
        "getattr",
        "setattr",
        "delattr",
        "globals",
        "locals",
        "vars",
        "breakpoint",
        "input",
        "print",
        "memoryview",
    }
)

# Attributes that reach the runtime's links or the file system past the API: MPyC's peer
# objects and transports, and numpy's file and foreign-memory functions.
FORBIDDEN_ATTRIBUTES = frozenset(
    {"parties", "protocol", "transport", "socket"}
    | {"load", "save", "savez", "savez_compressed", "savetxt", "loadtxt", "genfromtxt"}
    | {"fromfile", "tofile", "memmap", "ctypeslib", "DataSource", "lib", "f2py", "testing"}
)


def check(bundle: Bundle) -> Manifest:
    """The bundle's manifest, once the code is checked against it (or ProgramInvalid)."""
    manifest = bundle.manifest
    sources = {p: d for p, d in bundle.files if p.endswith(".py")}
    if manifest.entry_file not in sources:
        raise ProgramInvalid(
            f"{MANIFEST}: entry file {manifest.entry_file!r} is not among the program's files"
        )
    trees = {p: _parse(p, d) for p, d in sources.items()}
    for path, tree in trees.items():
        _check_module(path, tree)
    _check_entry(manifest, trees[manifest.entry_file])
    if manifest.reference:
        _check_reference(manifest, trees)
    used = _Uses()
    for path, tree in trees.items():
        used.scan(path, tree)
    declared_outputs = {o.name for o in manifest.outputs}
    _mismatch("reveals", "outputs", used.outputs, declared_outputs, both_ways=True)
    _mismatch("reads the parameter", "params", used.params, {p.name for p in manifest.params})
    roles = {r.name for position in manifest.roles for r in position}
    _mismatch("reads the role", "inputs", used.roles, roles)
    return manifest


def _parse(path: str, data: bytes) -> ast.Module:
    try:
        return ast.parse(data.decode("utf-8"), filename=path)
    except (UnicodeDecodeError, SyntaxError, ValueError) as exc:
        raise ProgramInvalid(f"program: {path} is not valid Python ({exc})") from None


def _check_module(path: str, tree: ast.Module) -> None:
    for node in ast.walk(tree):
        where = f"program: {path}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            for alias in node.names:
                _check_import(where, alias.name)
        elif isinstance(node, ast.ImportFrom):
            if node.level == 0:
                _check_import(where, node.module or "")
        elif isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            raise ProgramInvalid(
                f"{where}: {node.id} is not available to member programs (it reaches past "
                "the program API)"
            )
        elif isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            raise ProgramInvalid(
                f"{where}: private attribute .{node.attr} (a program uses the public API only)"
            )
        elif isinstance(node, ast.Attribute) and node.attr in FORBIDDEN_ATTRIBUTES:
            raise ProgramInvalid(
                f"{where}: .{node.attr} reaches past the program API (the MPC links or files)"
            )
        elif isinstance(node, ast.Global | ast.Nonlocal):
            raise ProgramInvalid(f"{where}: global state is not available to member programs")


def _check_import(where: str, module: str) -> None:
    root = module.split(".")[0]
    if module not in ALLOWED_IMPORTS and root not in {"numpy", "math"}:
        allowed = ", ".join(sorted(ALLOWED_IMPORTS - {"__future__"}))
        raise ProgramInvalid(
            f"{where}: import of {module!r}; member programs may import {allowed} and their "
            "own files (relative imports)"
        )


def _check_entry(manifest: Manifest, tree: ast.Module) -> None:
    fn = next(
        (
            n
            for n in tree.body
            if isinstance(n, ast.AsyncFunctionDef) and n.name == manifest.entry_function
        ),
        None,
    )
    if fn is None:
        raise ProgramInvalid(
            f"{MANIFEST}: entry {manifest.entry!r}: {manifest.entry_file} defines no "
            f"`async def {manifest.entry_function}(p)` at its top level"
        )
    if len(fn.args.args) != 1:
        raise ProgramInvalid(
            f"{MANIFEST}: entry {manifest.entry!r} must take one argument, the Program"
        )


def _check_reference(manifest: Manifest, trees: dict[str, ast.Module]) -> None:
    path, name = manifest.reference.split(":")
    tree = trees.get(path)
    if tree is None or not any(
        isinstance(n, ast.FunctionDef) and n.name == name for n in tree.body
    ):
        raise ProgramInvalid(
            f"{MANIFEST}: reference {manifest.reference!r}: no `def {name}(tables, params)` "
            f"at the top level of {path}"
        )


class _Uses:
    """The names the code reveals, reads as parameters and reads as roles (literals)."""

    def __init__(self) -> None:
        self.outputs: set[str] = set()
        self.params: set[str] = set()
        self.roles: set[str] = set()

    def scan(self, path: str, tree: ast.Module) -> None:
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            name = call.func.attr if isinstance(call.func, ast.Attribute) else ""
            where = f"program: {path}:{call.lineno}"
            if name in ("reveal_to_analyst", "reveal_to"):
                position = 0 if name == "reveal_to_analyst" else 1
                self.outputs.add(_literal(where, name, call, position, "name"))
            elif name == "public":
                self.params.add(_literal(where, name, call, 0, "name"))
            elif name in ("input_from", "input_from_all"):
                role = _keyword(call, "role")
                if role is None and len(call.args) > (2 if name == "input_from" else 1):
                    role = call.args[2 if name == "input_from" else 1]
                self.roles.add(_const(where, name, role) if role is not None else "value")


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _literal(where: str, func: str, call: ast.Call, position: int, keyword: str) -> str:
    node = call.args[position] if len(call.args) > position else _keyword(call, keyword)
    return _const(where, func, node)


def _const(where: str, func: str, node: ast.expr | None) -> str:
    if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
        raise ProgramInvalid(
            f"{where}: {func}() needs its name as a string literal, so that the manifest "
            "can be checked against the code"
        )
    return node.value


def _mismatch(
    verb: str, section: str, used: set[str], declared: set[str], both_ways: bool = False
) -> None:
    stray = sorted(used - declared)
    if stray:
        raise ProgramInvalid(
            f"program: the code {verb} {stray[0]!r}, which {MANIFEST} does not declare "
            f"in [[{section}]] (declared: {', '.join(sorted(declared)) or 'none'})"
        )
    missing = sorted(declared - used) if both_ways else []
    if missing:
        raise ProgramInvalid(
            f"program: {MANIFEST} declares the output {missing[0]!r}, which the code never reveals"
        )
