"""The reason registry: every reason used in the source is registered, and docs/reasons.md
is what the registry renders.

The source scan reads the AST of every module of ensnif_mpc/, coordinator/, party_node/ and
protocols/ and collects the reason literals at:

- the construction of an error class (any class derived from ``EnsnifError``): its
  ``reason=`` keyword, and a class body's ``reason = "…"``;
- any call with a ``code=`` or ``reason_code=`` keyword (``ProposeResponse(reason_code=…)``);
- any call of a function or dataclass of the scanned tree that has a parameter (or field)
  named ``code`` or ``reason_code``, by position too: the calls that end jobs
  (``_end(job, "failed", msg, "peer_connect_timeout")``, ``_fail(job_id, reason, code)``,
  ``store.transition(…, reason, "cancelled")``, ``WorkerStatus(…, "worker_failed")``);
- comparisons with a ``.reason_code``.

An argument is followed through what the enclosing function assigns to it (``code = x or
"worker_failed"``, ``reason, code = outcome["fail"]`` with ``outcome["fail"] = (msg,
"party_lost_job")``) and through module constants (``reason=MALFORMED``). What comes from
elsewhere at run time (``err.reason``) is not a literal: the error's constructor checks it.
"""

from __future__ import annotations

import ast
import json
import re
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest

from ensnif_mpc import errors, reasons
from ensnif_mpc.errors import EnsnifError
from ensnif_mpc.reasons import REASONS, UnknownReason

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("ensnif_mpc", "coordinator", "party_node", "protocols")
SKIP = ("ensnif_mpc/gen/",)
CODE_NAMES = frozenset({"code", "reason_code"})
SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")

# A raise site whose class maps to another status code than the registry's, known and
# listed in the note; each entry: (reason, class). Fix the site, then remove it.
KNOWN_CODE_MISMATCHES: frozenset[tuple[str, str]] = frozenset()


# -- the scanner -------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    path: str
    line: int
    reason: str
    how: str  # "PolicyViolation(reason=)", "_end(code)", …
    error_class: str = ""  # set for the construction of an error class

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.reason!r} ({self.how})"


def _name(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return ""


class Tree:
    """What the scan needs to know about the whole tree before it reads the call sites."""

    def __init__(self, modules: dict[str, ast.Module]) -> None:
        self.modules = modules
        self.error_classes = self._error_classes()
        self.signatures = self._signatures()
        self.constants = self._constants()

    def _error_classes(self) -> set[str]:
        found = {"EnsnifError"}
        classes = [
            n for m in self.modules.values() for n in ast.walk(m) if isinstance(n, ast.ClassDef)
        ]
        grew = True
        while grew:
            grew = False
            for c in classes:
                if c.name not in found and any(_name(b) in found for b in c.bases):
                    found.add(c.name)
                    grew = True
        return found

    def _signatures(self) -> dict[str, set[tuple[int, str]]]:
        """Callable name → the positions (and names) of its reason-code parameters."""
        out: dict[str, set[tuple[int, str]]] = {}

        def add(name: str, params: list[str]) -> None:
            for i, p in enumerate(params):
                if p in CODE_NAMES:
                    out.setdefault(name, set()).add((i, p))

        for module in self.modules.values():
            methods: set[int] = set()
            for node in ast.walk(module):
                if isinstance(node, ast.ClassDef):
                    fields = [
                        s.target.id
                        for s in node.body
                        if isinstance(s, ast.AnnAssign) and isinstance(s.target, ast.Name)
                    ]
                    add(node.name, fields)  # a dataclass's fields, in order
                    for s in node.body:
                        if isinstance(s, ast.FunctionDef | ast.AsyncFunctionDef):
                            methods.add(id(s))
                            params = [a.arg for a in (*s.args.posonlyargs, *s.args.args)]
                            add(s.name, params[1:])  # without self / cls
                elif (
                    isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
                    and id(node) not in methods  # a class is walked before its methods
                ):
                    add(node.name, [a.arg for a in (*node.args.posonlyargs, *node.args.args)])
        return out

    def _constants(self) -> dict[str, set[str]]:
        """Module-level ``NAME = "text"`` anywhere in the tree, by name."""
        out: dict[str, set[str]] = {}
        for module in self.modules.values():
            for s in module.body:
                if (
                    isinstance(s, ast.Assign)
                    and isinstance(s.value, ast.Constant)
                    and isinstance(s.value.value, str)
                ):
                    for t in s.targets:
                        if isinstance(t, ast.Name):
                            out.setdefault(t.id, set()).add(s.value.value)
        return out


class Scope:
    """The outermost function around a call: where its arguments' values are assigned."""

    def __init__(self, tree: Tree, node: ast.AST | None) -> None:
        self.tree = tree
        self.nodes = list(ast.walk(node)) if node is not None else []

    def values(self, expr: ast.expr | None, seen: frozenset[str] = frozenset()) -> set[str]:
        if expr is None:
            return set()
        if isinstance(expr, ast.Constant):
            return {expr.value} if isinstance(expr.value, str) else set()
        if isinstance(expr, ast.BoolOp):
            return set().union(*(self.values(v, seen) for v in expr.values))
        if isinstance(expr, ast.IfExp):
            return self.values(expr.body, seen) | self.values(expr.orelse, seen)
        if isinstance(expr, ast.Attribute) and expr.attr.isupper():
            return set(self.tree.constants.get(expr.attr, ()))
        if isinstance(expr, ast.Name | ast.Subscript):
            return self._assigned(expr, None, seen)
        return set()  # a value from elsewhere at run time (err.reason, a parameter)

    def element(self, expr: ast.expr, k: int, seen: frozenset[str]) -> set[str]:
        if isinstance(expr, ast.Tuple) and k < len(expr.elts):
            return self.values(expr.elts[k], seen)
        if isinstance(expr, ast.Name | ast.Subscript):
            return self._assigned(expr, k, seen)
        return set()

    def _assigned(self, target: ast.expr, k: int | None, seen: frozenset[str]) -> set[str]:
        key = ast.dump(target, include_attributes=False).replace("ctx=Store()", "ctx=Load()")
        if key in seen:
            return set()
        seen = seen | {key}
        found: set[str] = set()

        def same(t: ast.expr) -> bool:
            dumped = ast.dump(t, include_attributes=False).replace("ctx=Store()", "ctx=Load()")
            return dumped == key

        def take(value: ast.expr) -> set[str]:
            return self.values(value, seen) if k is None else self.element(value, k, seen)

        for n in self.nodes:
            if isinstance(n, ast.Assign):
                for t in n.targets:
                    if same(t):
                        found |= take(n.value)
                    elif isinstance(t, ast.Tuple):
                        for i, elt in enumerate(t.elts):
                            if same(elt) and k is None:
                                found |= self.element(n.value, i, seen)
            elif isinstance(n, ast.AnnAssign) and n.value is not None and same(n.target):
                found |= take(n.value)
            elif (
                isinstance(n, ast.Call)
                and isinstance(n.func, ast.Attribute)
                and n.func.attr == "setdefault"
                and isinstance(target, ast.Subscript)
                and len(n.args) == 2
                and ast.dump(n.func.value) == ast.dump(target.value)
                and ast.dump(n.args[0]) == ast.dump(target.slice)
            ):
                found |= take(n.args[1])
        if not found and isinstance(target, ast.Name) and k is None:
            found = set(self.tree.constants.get(target.id, ()))
        return found


def _outermost_functions(module: ast.Module) -> Iterator[tuple[ast.AST | None, list[ast.AST]]]:
    """(function, the nodes in it) for each outermost function; (None, the rest) once."""
    rest: list[ast.AST] = []

    def visit(node: ast.AST) -> Iterator[tuple[ast.AST | None, list[ast.AST]]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda):
                yield child, list(ast.walk(child))
            else:
                rest.append(child)
                yield from visit(child)

    yield from visit(module)
    yield None, rest


def scan_modules(modules: dict[str, ast.Module]) -> list[Site]:
    tree = Tree(modules)
    sites: list[Site] = []
    for path, module in sorted(modules.items()):
        for function, nodes in _outermost_functions(module):
            scope = Scope(tree, function)
            sites += _sites_in(path, nodes, scope, tree)
    return sites


def _sites_in(path: str, nodes: list[ast.AST], scope: Scope, tree: Tree) -> list[Site]:
    sites: list[Site] = []

    def found(expr: ast.expr | None, line: int, how: str, cls: str = "") -> None:
        for value in sorted(scope.values(expr)):
            if value:  # "" is "no reason" (a job that succeeded)
                sites.append(Site(path, line, value, how, cls))

    for node in nodes:
        if isinstance(node, ast.ClassDef) and node.name in tree.error_classes:
            for s in node.body:
                if isinstance(s, ast.Assign) and any(_name(t) == "reason" for t in s.targets):
                    found(s.value, s.lineno, f"class {node.name}", node.name)
        if isinstance(node, ast.Compare) and _name(node.left) == "reason_code":
            for c in node.comparators:
                found(c, node.lineno, "compared with .reason_code")
        if not isinstance(node, ast.Call):
            continue
        callee = _name(node.func)
        for kw in node.keywords:
            if kw.arg == "reason" and callee in tree.error_classes:
                found(kw.value, node.lineno, f"{callee}(reason=)", callee)
            elif kw.arg in CODE_NAMES:
                found(kw.value, node.lineno, f"{callee}({kw.arg}=)")
        if any(isinstance(a, ast.Starred) for a in node.args):
            continue
        for i, param in sorted(tree.signatures.get(callee, ())):
            if i < len(node.args):
                found(node.args[i], node.lineno, f"{callee}({param})")
    return sites


def _source_modules() -> dict[str, ast.Module]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if not rel.startswith(SKIP):
                modules[rel] = ast.parse(path.read_text(encoding="utf-8"), rel)
    return modules


@pytest.fixture(scope="module")
def source_sites() -> list[Site]:
    return scan_modules(_source_modules())


def _scan_text(text: str) -> list[Site]:
    """Scan one module beside ensnif_mpc/errors.py (which defines the error classes)."""
    errors_py = ROOT / "ensnif_mpc" / "errors.py"
    modules = {
        "ensnif_mpc/errors.py": ast.parse(errors_py.read_text(encoding="utf-8")),
        "mod.py": ast.parse(textwrap.dedent(text)),
    }
    return [s for s in scan_modules(modules) if s.path == "mod.py"]


# -- the source uses only registered reasons ---------------------------------------------


def test_every_reason_used_in_the_source_is_registered(source_sites):
    unregistered = [s for s in source_sites if s.reason not in REASONS]

    assert not unregistered, (
        "reason codes used but not registered in ensnif_mpc/reasons.py (add each, then run "
        "python scripts/gen_reasons_doc.py):\n" + "\n".join(map(str, unregistered))
    )


def test_every_registered_reason_is_used_somewhere(source_sites):
    used = {s.reason for s in source_sites}

    unused = sorted(set(REASONS) - used)

    assert not unused, f"registered in ensnif_mpc/reasons.py but used nowhere: {unused}"


def test_raise_sites_use_a_class_of_the_registered_status_code(source_sites):
    wrong = []
    for s in source_sites:
        cls = getattr(errors, s.error_class, None)
        if not isinstance(cls, type) or not issubclass(cls, EnsnifError):
            continue
        registered = REASONS.get(s.reason)
        if registered is None or (s.reason, s.error_class) in KNOWN_CODE_MISMATCHES:
            continue
        if registered.grpc_code != cls.code:
            wrong.append(f"{s}: {cls.code.name}, registered {registered.grpc_code}")

    assert not wrong, "\n".join(wrong)


def test_the_scan_sees_reasons_in_every_package(source_sites):
    packages = {s.path.split("/")[0] for s in source_sites}

    assert packages == set(PACKAGES)
    assert len({s.reason for s in source_sites}) >= 40


def test_known_code_mismatches_still_exist(source_sites):
    present = {(s.reason, s.error_class) for s in source_sites}

    assert present >= KNOWN_CODE_MISMATCHES, "fixed: remove it from KNOWN_CODE_MISMATCHES"


# -- the scanner itself ------------------------------------------------------------------


def test_scan_finds_a_made_up_reason_at_a_raise_site():
    sites = _scan_text(
        """
        from ensnif_mpc.errors import PolicyViolation
        def check():
            raise PolicyViolation("no", reason="made_up_here")
        """
    )

    assert [(s.reason, s.how) for s in sites] == [("made_up_here", "PolicyViolation(reason=)")]


def test_scan_finds_reasons_of_classes_derived_from_an_error_class():
    sites = _scan_text(
        """
        class Mine(PolicyViolation):
            reason = "mine"
        class Other(Mine):
            pass
        def f():
            return errors.Other("x", reason="other_reason")
        """
    )

    assert {s.reason for s in sites} == {"mine", "other_reason"}


def test_scan_ignores_reason_keywords_of_other_calls():
    sites = _scan_text(
        """
        def f():
            pki.revoke(ca, reason="key_compromise")
            ppb.AbortRequest(job_id=j, reason="a sentence for a person")
        """
    )

    assert sites == []


def test_scan_finds_positional_codes_of_job_ending_calls():
    sites = _scan_text(
        """
        class Node:
            def _end(self, job, state, reason, code, **fields):
                self.store.transition(job.id, job.state, state, reason, code)
            def tick(self, job, status):
                self._end(job, "failed", "too slow", "peer_connect_timeout")
                self._end(job, "succeeded", "", "")
                code = status.reason_code if status.reason_code else "worker_failed"
                self._end(job, "failed", "it died", code)
        """
    )

    assert sorted(s.reason for s in sites) == ["peer_connect_timeout", "worker_failed"]


def test_scan_follows_codes_through_tuples_set_in_closures():
    sites = _scan_text(
        """
        class Scheduler:
            def _fail(self, job_id, reason, code, abort=True):
                pass
            def follow(self, job):
                outcome = {}
                def record(st):
                    outcome["fail"] = (st.reason, st.reason_code or "party_failed")
                def watch():
                    outcome.setdefault("fail", ("lost", "party_lost_job"))
                reason, code = outcome["fail"]
                self._fail(job.id, reason, code)
        """
    )

    assert sorted(s.reason for s in sites) == ["party_failed", "party_lost_job"]


def test_scan_finds_dataclass_fields_keywords_and_comparisons():
    sites = _scan_text(
        """
        @dataclass
        class Status:
            phase: str
            message: str = ""
            reason_code: str = ""
        def f(a):
            Status("failed", "gone", "peer_lost")
            Response(reason_code="awaiting_approval")
            return a.reason_code == "compared_code"
        """
    )

    assert sorted(s.reason for s in sites) == ["awaiting_approval", "compared_code", "peer_lost"]


def test_scan_resolves_module_constants():
    sites = _scan_text(
        """
        MALFORMED = "malformed_request"
        def f():
            raise InvalidArgument("bad", reason=MALFORMED)
            raise CryptoError("revoked", reason=revocation.MALFORMED)
        """
    )

    assert [s.reason for s in sites] == ["malformed_request", "malformed_request"]


# -- the registry ------------------------------------------------------------------------


def test_registry_names_are_unique():
    assert len(reasons._ALL) == len(REASONS)


@pytest.mark.parametrize("reason", REASONS.values(), ids=lambda r: r.name)
def test_registered_reason_is_complete(reason):
    assert SNAKE.match(reason.name)
    assert reason.meaning.endswith(".") and reason.action.endswith(".")
    assert reason.group in reasons.GROUPS
    assert reason.grpc_code is None or isinstance(reason.grpc_code, grpc.StatusCode)
    assert set(reason.ends) <= {"failed", "rejected", "cancelled", "aborted"}
    if reason.name != "awaiting_approval":  # the one reason that ends nothing: a job waits
        assert reason.grpc_code is not None or reason.ends


def test_get_names_the_registry_for_an_unknown_reason():
    with pytest.raises(UnknownReason, match="ensnif_mpc/reasons.py"):
        reasons.get("no_such_reason")


def test_action_of_an_unknown_reason_is_empty():
    assert reasons.action("no_such_reason") == ""
    assert reasons.action("budget_exhausted") == REASONS["budget_exhausted"].action


# -- the docs ----------------------------------------------------------------------------


def test_docs_reasons_md_is_generated_from_the_registry():
    committed = (ROOT / "docs" / "reasons.md").read_text(encoding="utf-8")

    assert committed == reasons.render_markdown(), (
        "docs/reasons.md is stale: run python scripts/gen_reasons_doc.py"
    )


def test_docs_list_every_registered_reason_once():
    text = reasons.render_markdown()

    rows = [line.split(" | ")[0] for line in text.splitlines() if line.startswith("| `")]

    assert sorted(rows) == sorted(f"| `{name}`" for name in REASONS)


# -- the CLI shows what to do -------------------------------------------------------------


def test_cli_json_error_carries_what_to_do(monkeypatch, capsys):
    from ensnif_mpc.cli import main as cli_main

    def refuse(**kwargs: object) -> None:
        raise errors.BudgetExhausted("dataset 'orders' has no budget left")

    monkeypatch.setattr(cli_main.cli, "main", refuse)

    with pytest.raises(SystemExit) as exited:
        cli_main.main(["job", "submit", "job.toml", "--json"])

    error = json.loads(capsys.readouterr().err)["error"]
    assert exited.value.code == 6
    assert error["reason"] == "budget_exhausted"
    assert error["action"] == REASONS["budget_exhausted"].action
