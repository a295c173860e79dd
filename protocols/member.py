"""Running a member-written program: loaded from the job's directory, opened by the runtime only.

The worker calls :func:`load` for a job whose protocol is ``"program"``. The program's
files are the ones the node wrote into the job's workspace (``program/``); they are
hashed again here and must be the ones the job pinned (the node checked the same files
against the submitter-signed hash). The code is imported under a fresh package name
from that directory: it is never on ``sys.path``, never importable from the node's own
code, and one job's program cannot shadow a module of another.

The runtime, not the program, opens outputs:

- while the program's body runs, every way of opening a value the MPyC runtime offers
  (``mpc.output``, ``mpc.transfer``, ``mpc.is_zero_public``, ``mpc.np_is_zero_public``)
  is guarded: called from anywhere but MPyC's own code (whose internal openings are of
  masked values, as in every comparison) or the program API's public row count, it
  raises ``undeclared_opening`` *before* opening anything, and the job fails. A program
  that catches the error is failed all the same when its body returns;
- what the body revealed through ``p.reveal_to_analyst`` must be exactly the manifest's
  outputs, of the declared kinds (``undeclared_output`` otherwise); they are then put in
  the manifest's release order and noised, reshared and sealed by the worker as any
  protocol's outputs.

What is revealed: the declared outputs to the analyst, with the manifest's DP release.
What leaks: what the program's manifest says in ``leakage``, which its owners reviewed;
the guard stops the openings a program makes through the runtime, not a program written
to evade it (see docs/threat-model.md).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ensnif_mpc.errors import PolicyViolation
from ensnif_mpc.jobs import member_program, program_lint
from ensnif_mpc.jobs.member_program import Bundle, Manifest
from ensnif_mpc.jobs.protocol import ProtocolDef
from ensnif_mpc.jobs.worker_session import WorkerSession
from protocols.io import Context, SecureOutput
from protocols.program import Program

OPENINGS = ("output", "transfer", "is_zero_public", "np_is_zero_public")
_API_FILE = os.path.abspath(sys.modules[Program.__module__].__file__ or "")


def load(directory: Path, session: WorkerSession) -> tuple[ProtocolDef, Callable[[Context], Any]]:
    """The job's program as the worker runs a protocol: its definition (from the
    manifest) and ``async def run(ctx) -> outputs``."""
    bundle = Bundle.from_path(directory / member_program.JOB_DIR)
    member_program.check_pin(bundle, session.extra.get("program"))
    manifest = program_lint.check(bundle)
    body = _import(directory / member_program.JOB_DIR, bundle.digest, manifest)

    async def run(ctx: Context) -> list[SecureOutput]:
        p = Program(ctx)
        guard = OpeningGuard(ctx.mpc)
        guard.install()
        try:
            await body(p)
        except BaseException:
            if guard.violation:
                await _drain(ctx.mpc)
            raise
        finally:
            guard.remove()
        if guard.violation:  # the program caught the refusal: it is stopped all the same
            await _drain(ctx.mpc)
            raise PolicyViolation(guard.violation, reason="undeclared_opening")
        return declared_outputs(manifest, p.outputs, noisy=ctx.dp)

    return manifest.definition(bundle.digest), run


async def _drain(mpc: Any, timeout_s: float = 3.0) -> None:
    """Let what this party already sent reach its peers before the worker exits.

    Every party runs the same program, so every one reaches the refused opening; a peer
    still waiting for a message this party had queued would otherwise see a closed link
    (``peer_lost``) instead of stopping at the same call with the same reason."""
    import asyncio

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        pending = 0
        for peer in mpc.parties:
            transport = getattr(getattr(peer, "protocol", None), "transport", None)
            if transport is not None and not transport.is_closing():
                pending += transport.get_write_buffer_size()
        if not pending:
            return
        await asyncio.sleep(0.01)


def _import(root: Path, digest: str, manifest: Manifest) -> Any:
    """The entry function, imported from ``root`` as package ``ensnif_member_<hash>``."""
    package = f"ensnif_member_{digest.removeprefix('sha256:')[:16]}"
    spec = importlib.machinery.ModuleSpec(package, None, is_package=True)
    module = importlib.util.module_from_spec(spec)
    module.__path__ = [str(root)]
    sys.modules[package] = module
    entry = manifest.entry_file.removesuffix(".py").replace("/", ".")
    function = getattr(importlib.import_module(f"{package}.{entry}"), manifest.entry_function)
    # `@program` wraps the body; the runtime builds the Program and takes the outputs itself.
    return getattr(function, "__wrapped__", function)


def declared_outputs(
    manifest: Manifest, revealed: list[SecureOutput], noisy: bool
) -> list[SecureOutput]:
    """The revealed outputs in the manifest's release order, or ``undeclared_output``."""
    names = [o.name for o in revealed]
    declared = manifest.output_names
    if sorted(names) != sorted(declared):
        extra = sorted(set(names) - set(declared)) or sorted(n for n in names if names.count(n) > 1)
        missing = sorted(set(declared) - set(names))
        raise PolicyViolation(
            "the program revealed "
            + (f"{extra[0]!r}, which its manifest does not declare" if extra else "")
            + (f"nothing as the declared {missing[0]!r}" if not extra and missing else "")
            + "; nothing was opened",
            reason="undeclared_output",
        )
    kinds = {n: o.kind for o in manifest.outputs for n in o.names}
    by_name = {o.name: o for o in revealed}
    out = []
    for name in declared:
        o = by_name[name]
        fixed = bool(getattr(type(o.value), "frac_length", 0))
        if fixed != (kinds[name] == "fixed"):
            raise PolicyViolation(
                f"the program revealed {name!r} as "
                + ("fixed point" if fixed else "an integer")
                + f"; its manifest declares {kinds[name]}; nothing was opened",
                reason="undeclared_output",
            )
        out.append(SecureOutput(o.name, o.value, o.on_value_scale, noisy))
    return out


class OpeningGuard:
    """While installed, the runtime's opening functions refuse callers outside MPyC."""

    def __init__(self, mpc: Any) -> None:
        self.mpc = mpc
        self.violation = ""
        self._saved: list[tuple[Any, str, Any]] = []
        import mpyc

        self._mpyc_dir = os.path.dirname(os.path.abspath(mpyc.__file__ or "")) + os.sep

    def install(self) -> None:
        # The class and the instance both: `type(mpc).output(mpc, x)` must not slip past,
        # nor the instance attribute ENSNIF_TRACE_OPENINGS installs.
        for owner in (type(self.mpc), self.mpc):
            for name in OPENINGS:
                if name in vars(owner):
                    original = vars(owner)[name]
                    self._saved.append((owner, name, original))
                    setattr(owner, name, self._wrap(name, original))

    def remove(self) -> None:
        for owner, name, original in reversed(self._saved):
            setattr(owner, name, original)
        self._saved.clear()

    def _wrap(self, name: str, original: Any) -> Any:
        guard = self

        def guarded(*args: Any, **kwargs: Any) -> Any:
            caller = os.path.abspath(sys._getframe(1).f_code.co_filename)
            allowed = caller.startswith(guard._mpyc_dir) or (
                name == "transfer" and caller == _API_FILE
            )
            if not allowed:
                guard.violation = guard.violation or (
                    f"the program called mpc.{name}, which opens a value outside the "
                    "runtime; only the manifest's outputs are opened, by the analyst: "
                    "the worker stopped the job before opening it"
                )
                raise PolicyViolation(guard.violation, reason="undeclared_opening")
            return original(*args, **kwargs)

        return guarded  # on the class, Python binds it as it bound the original
