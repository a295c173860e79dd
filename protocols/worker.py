"""A job's worker process: runs one protocol as one MPyC party, then seals its output shares.

Started by the party node as ``python -m protocols.worker JOB_DIR`` in a fresh
process (MPyC keeps one global runtime per process; one job per process also
bounds memory and crashes). MPyC is configured from the session the node wrote,
never from a user's command line: ``sys.argv`` is replaced with the session's
MPyC options before the first ``import mpyc``.

Output delivery: after the program returns its secure outputs, every party adds
a fresh sharing of zero (each party inputs a zero; their sum re-randomizes the
polynomial), gathers its own share and seals it to the analyst. No party opens
the result; the analyst interpolates the shares (``ensnif_mpc.results.shares``).
"""

from __future__ import annotations

import asyncio
import importlib
import json
import logging
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import numpy as np

from ensnif_mpc import logs
from ensnif_mpc.errors import EnsnifError
from ensnif_mpc.jobs.member_program import MEMBER_PROTOCOL
from ensnif_mpc.jobs.protocol import ARTIFACT
from ensnif_mpc.jobs.worker_session import (
    ARTIFACTS_FILE,
    DONE_FD_ENV,
    EXIT_BAD_SESSION,
    EXIT_FAILED,
    EXIT_OK,
    LOG_FILE,
    RESULT_FILE,
    WorkerSession,
    WorkerStatus,
    atomic_write,
)
from ensnif_mpc.procs import die_with_parent
from ensnif_mpc.results.shares import OutputShare
from protocols import connect, delivery
from protocols.partitions import PartitionFailed

# For annotations only: the worker imports these where it uses them. MPyC has no type
# stubs: its runtime (``mpc``), secure types and values are typed Any here.
if TYPE_CHECKING:
    from ensnif_mpc.privacy.dp import ReleasePlan
    from protocols.io import LocalData, SecureOutput

log = logging.getLogger("ensnif.worker")


def mpyc_argv(session: WorkerSession) -> list[str]:
    from ensnif_mpc.privacy import dlaplace

    sec_param = session.sec_param
    if session.release.get("mechanism") == "laplace" and not session.release.get("exact"):
        sec_param = max(sec_param, dlaplace.MIN_SEC_PARAM)  # pure ε-DP jobs: at least 60
    argv = ["ensnif-worker", "--no-log", "-T", str(session.threshold), "-K", str(sec_param)]
    if len(session.addresses) > 1:
        argv += ["-I", str(session.index), "--ssl"]
        for addr in session.addresses:
            argv += ["-P", addr]
    return argv


class Reporter:
    """Writes this worker's status. In session 0 of a partitioned job (``others``: the
    sibling sessions' last figures) the bytes, messages and CPU seconds are summed over
    the sessions and the rounds are the largest session's (they run at once).

    A new phase is written at once: the node acts on it (a worker still starting or
    connecting is held to the connect timeout, any later phase to the job's), and a phase
    written late would show an old one while a long synchronous step holds the event loop.
    Within one phase, updates (a fraction, a message) are written at most once per
    ``MIN_INTERVAL_S`` (a file and a rename each; the node reads the status no more often
    than its monitor ticks, every 0.2 s): one that comes sooner is held and written when
    the interval is up (by the event loop, if one runs), unless a later one replaces it."""

    MIN_INTERVAL_S = 0.1
    _FINAL = ("done", "failed")

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.bytes_sent = 0
        self.others: list[dict[str, Any]] = []
        self._written_at = -1.0
        self._written_phase = ""
        self._held: WorkerStatus | None = None
        self._flush: asyncio.TimerHandle | None = None

    def __call__(self, phase: str, fraction: float, message: str = "") -> None:
        from protocols.transport_stats import COUNTS

        sent, cpu, messages, rounds = self.bytes_sent, _cpu(), COUNTS.messages, COUNTS.rounds
        for other in self.others:
            sent += int(other["bytes_sent"])
            cpu += float(other["cpu_seconds"])
            messages += int(other["messages_sent"])
            rounds = max(rounds, int(other["rounds"]))
        status = WorkerStatus(
            phase,
            fraction,
            message,
            sent,
            cpu_seconds=round(cpu, 3),
            messages_sent=messages,
            rounds=rounds,
        )
        wait = self._written_at + self.MIN_INTERVAL_S - time.monotonic()
        if phase in self._FINAL or phase != self._written_phase or wait <= 0:
            self._write(status)
            return
        self._held = status
        if self._flush is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop (before MPyC's): the next report writes it
                return
            self._flush = loop.call_later(wait, self._write_held)

    def _write_held(self) -> None:
        self._flush = None
        if self._held is not None:
            self._write(self._held)

    def _write(self, status: WorkerStatus) -> None:
        if self._flush is not None:
            self._flush.cancel()
            self._flush = None
        self._held = None
        status.write(self.directory)
        self._written_at = time.monotonic()
        self._written_phase = status.phase

    def own(self, mpc: Any) -> dict[str, Any]:
        """This session's own figures (for ``sessions.json``)."""
        from protocols.transport_stats import COUNTS

        return {
            "bytes_sent": _bytes_sent(mpc),
            "messages_sent": COUNTS.messages,
            "rounds": COUNTS.rounds,
            "cpu_seconds": _cpu(),
        }


def _cpu() -> float:
    return round(time.process_time(), 3)


def _bytes_sent(mpc: Any) -> int:
    total = 0
    for peer in mpc.parties:
        proto = getattr(peer, "protocol", None)
        if peer.pid != mpc.pid and proto is not None and hasattr(proto, "nbytes_sent"):
            total += proto.nbytes_sent
    return total


async def _watch_peers(
    mpc: Any, session: WorkerSession, directory: Path, state: dict[str, bool]
) -> None:
    """MPyC waits forever for a peer that vanished or went silent; notice either and end
    this worker with a reason.

    - lost (``peer_lost``): the connection to the peer closed;
    - stalled (``peer_stalled``): this worker waits for a message from the peer and nothing
      at all has arrived from it for ``ENSNIF_PEER_SILENCE_SECONDS`` (default 600; 0 turns
      the check off): a frozen process, or a link that stopped carrying data while the
      connection stays open. Silence is counted only while this watch runs every interval;
      after the worker's own computation held the event loop, counting starts again, as the
      peer's data may be waiting unread. A peer that computes longer than the limit between
      two messages would be taken for stalled: the default must stay far above the longest
      local step of a job (a join's grow with its keys).
    """
    try:
        silence_s = float(os.environ.get("ENSNIF_PEER_SILENCE_SECONDS", "600"))
    except ValueError:
        silence_s = 600.0
    interval = 0.2
    heard: dict[int, tuple[tuple[frozenset[Any], int], float]] = {}  # pid -> (what we saw, since)
    last = time.monotonic()

    def leave(msg: str, code: str) -> None:
        log.error("job %s: %s", session.job_id, msg)
        WorkerStatus("failed", 0.0, msg, 0, code).write(directory)
        logging.shutdown()
        os._exit(EXIT_FAILED)

    while not state["finishing"]:
        now = time.monotonic()
        if now - last > 5 * interval:
            heard.clear()
        last = now
        for peer in mpc.parties:
            if peer.pid == mpc.pid:
                continue
            proto = peer.protocol
            address = session.addresses[peer.pid]
            if proto is None or (hasattr(proto, "transport") and proto.transport.is_closing()):
                if state["finishing"]:
                    return
                leave(f"lost the MPC connection to party {peer.pid} ({address})", "peer_lost")
            if silence_s <= 0:
                continue
            awaited = any(
                isinstance(v, asyncio.Future) and not v.done() for v in proto.buffers.values()
            )
            if not awaited:
                heard.pop(peer.pid, None)
                continue
            # Any message (or part of one) from the peer changes what is buffered.
            seen = (frozenset(proto.buffers), len(proto.bytes))
            before = heard.get(peer.pid)
            if before is None or before[0] != seen:
                heard[peer.pid] = (seen, now)
            elif now - before[1] > silence_s:
                if state["finishing"]:
                    return
                leave(
                    f"no data from party {peer.pid} ({address}) for {silence_s:.0f}s while "
                    "waiting for it: the peer or the link stalled",
                    "peer_stalled",
                )
        await asyncio.sleep(interval)


def waiting_for(mpc: Any, session: WorkerSession) -> str:
    """Which peers this party is still waiting for while MPyC connects, by name and address.

    MPyC's party i dials every party above it and listens for every party below it on its
    own port, so "cannot reach" names a peer's address this party dials, and "has not
    connected" this party's own port, which that peer dials: between the two the node's
    peer_connect_timeout names the member and the port a firewall drops."""
    names = session.party_names or [f"party {i}" for i in range(len(session.addresses))]
    me = session.index
    own_port = session.addresses[me].rsplit(":", 1)[-1] if session.addresses else "?"
    parts = []
    for peer in mpc.parties:
        if peer.pid == me or peer.protocol is not None:
            continue
        if peer.pid > me:
            parts.append(f"cannot reach {names[peer.pid]} at {session.addresses[peer.pid]}")
        else:
            parts.append(f"{names[peer.pid]} has not connected to this party's port {own_port}")
    return "; ".join(parts)


async def _report_connecting(mpc: Any, session: WorkerSession, report: Reporter) -> None:
    """While MPyC connects: the connecting status names the peers still missing, every
    second (the node quotes it when the connect timeout ends the job)."""
    delay = 0.25  # soon after the first attempts, then every second
    while True:
        await asyncio.sleep(delay)
        delay = 1.0
        missing = waiting_for(mpc, session)
        if missing:
            report("connecting", 0.05, f"waiting: {missing}")


def _local_data(session: WorkerSession) -> LocalData | None:
    from ensnif_mpc.data.schema import Column
    from ensnif_mpc.data.sources import SourceSpec, open_source
    from protocols.io import LocalData

    if session.source is None:
        return None
    from ensnif_mpc.data.bounding import Bound

    columns = tuple(Column(**c) for c in session.dataset_columns)
    source = open_source(SourceSpec.from_dict(session.source), columns, clamp=session.clamp)
    if session.bound:
        source.bound = Bound(str(session.bound[0]), int(session.bound[1]))
    return LocalData(
        source,
        dict(session.roles),
        session.decimals,
        withheld=session.withheld,
        min_cohort=session.min_cohort,
        lists={r: list(c) for r, c in session.role_lists.items()},
    )


async def _add_noise(
    mpc: Any, outputs: list[SecureOutput], plan: ReleasePlan, gated: bool = False
) -> list[SecureOutput]:
    """Add the plan's noise to the noisy outputs, on shares, before anything is opened.

    Gaussian: each party draws ``plan.dims`` integer shares with OpenDP's exact sampler
    and secret-shares them; only value + Σ shares is ever opened (by the analyst), so no
    party sees its own noise next to the value, and colluders' shares are not relied on.
    Laplace: the noise is sampled jointly inside MPC from random bits nobody knows
    (``protocols.dlaplace``); no party holds any part of it in the clear.
    Outputs not marked noisy are allowed only when the protocol ``gated`` them: its
    after-noise step (``ProtocolDef.extra["after_noise"]``) opens them only where a noisy
    output selects them (group discovery's labels).
    """
    import dataclasses

    from ensnif_mpc.privacy import dp

    noisy = [o for o in outputs if o.noisy]
    if len(noisy) != plan.dims or (len(noisy) != len(outputs) and not gated):
        raise ValueError(
            f"the release plan noises {plan.dims} outputs; the program returned "
            f"{len(noisy)} noisy of {len(outputs)}"
        )
    sectype = type(noisy[0].value)
    if getattr(sectype, "frac_length", 0) or any(type(o.value) is not sectype for o in noisy):
        raise ValueError("DP noise is added to integer outputs of one secure type only")
    if plan.laplace:
        from protocols import dlaplace

        total = dlaplace.noise(mpc, sectype, dlaplace.plan_blocks(plan))
    else:
        draws = [v for b in plan.blocks for v in dp.sample_shares(b.sigma_share, b.dims)]
        mine = sectype.array(np.array(draws, dtype=object))
        everyone = list(range(len(mpc.parties)))
        total = mpc.np_sum(mpc.np_stack(mpc.input(mine, senders=everyone)), axis=0)
    position = {id(o): i for i, o in enumerate(noisy)}
    return [
        dataclasses.replace(o, value=o.value + total[position[id(o)]]) if o.noisy else o
        for o in outputs
    ]


def _sigmas(outputs: list[SecureOutput], plan: ReleasePlan) -> list[float]:
    """The plan's noise sd of each noisy output in order, 0 for the others."""
    sds = iter(plan.output_sigmas())
    return [next(sds) if o.noisy else 0.0 for o in outputs]


async def _after_noise(
    definition: Any, ctx: Any, outputs: list[SecureOutput], plan: ReleasePlan
) -> list[SecureOutput]:
    """A protocol's step between the noise and the delivery, inside MPC (e.g. DP partition
    selection: zero every slot whose noisy count is below a threshold); none by default.
    It keeps the number, names and order of the outputs."""
    step = definition.extra.get("after_noise")
    if not step:
        return outputs
    module_name, func_name = step.split(":")
    gated = await getattr(importlib.import_module(module_name), func_name)(ctx, outputs, plan)
    if [o.name for o in gated] != [o.name for o in outputs]:
        raise ValueError("the after-noise step changed the outputs")
    return list(gated)


async def _reshare_outputs(
    mpc: Any, outputs: list[SecureOutput], decimals: int, sigmas: list[float]
) -> tuple[list[OutputShare], int]:
    """Re-randomize every output with a fresh sharing of zero and take this party's share.

    All zero-sharings are input and all shares gathered in one batch, so the
    number of outputs (e.g. one per group) does not add rounds.
    """
    everyone = list(range(len(mpc.parties)))
    fresh = [
        out.value + mpc.sum(mpc.input(type(out.value)(0), senders=everyone)) for out in outputs
    ]
    own = await mpc.gather(fresh)
    shares = []
    modulus = 0
    for out, share, sigma in zip(outputs, own, sigmas, strict=True):
        sectype = type(out.value)
        frac = int(getattr(sectype, "frac_length", 0))
        shares.append(
            OutputShare(
                name=out.name,
                share=int(share),
                kind="fixed" if frac else "int",
                frac_bits=frac,
                # on_value_scale k (True = 1): the value is on the grid 10**(k·decimals),
                # e.g. 2 for a product of two sums.
                decimals=decimals * int(out.on_value_scale),
                modulus=int(sectype.field.modulus),
                noise_sd=sigma,
            )
        )
        modulus = modulus or int(sectype.field.modulus)
    return shares, modulus


async def _run(
    mpc: Any,
    session: WorkerSession,
    directory: Path,
    report: Reporter,
    siblings: list[tuple[Path, Any]] | None = None,
) -> tuple[bytes | None, list[dict[str, Any]]]:
    """The session's program, noise and delivery. In a partitioned job
    (``protocols.partitions``) a sibling session stops after its partial outputs (its
    shares go to session 0 at this node; None is returned) and session 0 combines them
    with its own before the noise and the delivery."""
    from ensnif_mpc.privacy.dp import EXACT, ReleasePlan
    from protocols import he_outsourced, partitions, registry
    from protocols.io import Context
    from protocols.rounds import NoisyRounds

    plan = ReleasePlan.from_dict(session.release) if session.release else EXACT
    if session.protocol == MEMBER_PROTOCOL:  # a member's program, from this job's directory
        from protocols import member

        definition, program = member.load(directory, session)
    else:
        definition = registry.get(session.protocol)
        module_name, func_name = definition.program.split(":")
        program = getattr(importlib.import_module(module_name), func_name)

    outsourced = he_outsourced.for_session(session, directory, report)
    report("connecting", 0.05)
    finished = False
    waiting = asyncio.ensure_future(_report_connecting(mpc, session, report))
    try:
        await connect.start(mpc)  # every higher peer dialled at once, the job's CA only
    finally:
        waiting.cancel()
    state = {"finishing": False}
    watcher = asyncio.ensure_future(_watch_peers(mpc, session, directory, state))
    try:
        part = None
        if partitions.sessions_of(session.extra) > 1:
            part = partitions.Partition(
                int(session.extra.get("partition", 0)), partitions.sessions_of(session.extra)
            )
            part = await partitions.agree_key(mpc, session.index, session.owners, part, directory)
            partitions.install(part)
        # The owner reads its own data only now: a slow source then counts against the
        # job's time limit, not the peers' connect timeout.
        report("preparing", 0.08)
        ctx = Context(
            mpc=mpc,
            index=session.index,
            owners=session.owners,
            local=_local_data(session),
            params=session.params,
            bit_length=session.bit_length,
            decimals=session.decimals,
            progress=lambda phase, frac: report(phase, frac),
            input_roles=tuple(session.input_roles),
            input_role_lists=tuple(session.input_role_lists),
            dp=not plan.exact,
            artifacts=tuple(session.artifacts),
            outsourced=outsourced,
        )
        rounds = None if plan.exact else NoisyRounds(mpc, plan)
        ctx.rounds = rounds
        report("computing", 0.1)
        produced = await program(ctx)
        delivery.check_destinations(definition, produced, len(session.addresses))
        outputs = [o for o in produced if o.to != ARTIFACT]
        if part is not None and session.index in session.owners and not partitions.applied():
            raise RuntimeError(f"{session.protocol} did not partition its input")
        if part is not None and part.sibling:  # shares only: session 0 goes on
            report.bytes_sent = _bytes_sent(mpc)
            report("partials", 0.9)
            await partitions.write_partials(mpc, outputs, directory)
            finished = True
            return None, []
        if part is not None:
            report("combining", 0.8)
            partials = await partitions.wait_partials(siblings or [])
            outputs = partitions.combine(outputs, partials)
            report.others = partitions.session_stats(directory, {})[1:]
        sigmas = [0.0] * len(outputs)
        if rounds is not None and rounds.used:  # an iterative program noised its rounds
            outputs, sigmas = rounds.finish(outputs)
        elif not plan.exact:
            report("noising", 0.85)
            gated = bool(definition.extra.get("after_noise"))
            outputs = await _add_noise(mpc, outputs, plan, gated)
            sigmas = _sigmas(outputs, plan)
        outputs = await _after_noise(definition, ctx, outputs, plan)
        outputs = delivery.to_member(outputs, session)  # a model released to a member
        report("delivering", 0.9)
        shares, modulus = await _reshare_outputs(mpc, outputs, session.decimals, sigmas)
        kept = await delivery.artifact_shares(
            mpc, session, [o for o in produced if o.to == ARTIFACT]
        )
        report.bytes_sent = _bytes_sent(mpc)
        if part is not None:
            stats = partitions.session_stats(directory, report.own(mpc))
            report.others = stats[1:]
            atomic_write(directory / partitions.SESSIONS_FILE, json.dumps(stats).encode())
        finished = True
    finally:
        state["finishing"] = True
        watcher.cancel()
        # MPyC's shutdown is a barrier with the peers: after a local failure it would wait
        # forever for parties still inside the program. Leave instead; the peers notice the
        # closed links and end with peer_lost, and the node reports this party's reason.
        if finished:
            await mpc.shutdown()
    destinations = [o.to for o in outputs]
    return delivery.seal_parts(session, shares, destinations, modulus), kept


def bind_peer_indices() -> None:
    """Accept an MPC peer only at the index its certificate names.

    MPyC's server side trusts the party index a client announces in its first bytes,
    for any certificate the TLS context accepts. Here every connection's announced
    index must match the CN ``MPyC party <i>`` of the certificate the client presented
    (each per-job certificate is bound to one consortium member by a signature every
    node checks), and only parties below this one may dial it. Otherwise the
    connection is dropped: the impostor cannot take another member's place, and the
    job ends on the connect watchdog.
    """
    from mpyc import asyncoro

    exchange = asyncoro.MessageExchanger
    if getattr(exchange, "_ensnif_bound", False):
        return
    original = exchange.data_received

    def data_received(self: Any, data: bytes) -> None:
        if self.peer_pid is None and len(self.bytes) + len(data) >= 2:
            head = (bytes(self.bytes) + bytes(data))[:2]
            claimed = int.from_bytes(head, "little")
            cert = self.transport.get_extra_info("peercert") if self.transport else None
            names = [
                v for rdn in (cert or {}).get("subject", ()) for k, v in rdn if k == "commonName"
            ]
            own = self.runtime.pid
            if names != [f"MPyC party {claimed}"] or not 0 <= claimed < own:
                log.error(
                    "refused an MPC connection claiming party %d with certificate %s",
                    claimed,
                    names or "none",
                )
                self.transport.close()
                self.bytes.clear()
                return
        original(self, data)

    exchange.data_received = data_received
    exchange._ensnif_bound = True


def session_runtime() -> Any:
    """MPyC's runtime for this session, built from ``sys.argv`` (the session's options).

    Importing ``mpyc.runtime`` builds it. A worker forked by a node's fork server finds the
    module imported already (protocols/standby.py imports it with a one-party placeholder
    runtime and no event loop): the session's runtime is then built the same way the
    import builds it (``setup()``, which also hands it to MPyC's other modules), and
    replaces the placeholder as the module's ``mpc``."""
    preloaded = "mpyc.runtime" in sys.modules
    from mpyc import runtime

    if preloaded:
        runtime.mpc = runtime.setup()
    return runtime.mpc


OPENINGS_FILE = "openings.log"


def _trace_openings(mpc: Any, directory: Path) -> None:
    """With ENSNIF_TRACE_OPENINGS=1, log every value this party opens (count, not content).

    For audits and tests: what a party opens is what it learns beyond its own shares.
    """
    if os.environ.get("ENSNIF_TRACE_OPENINGS") != "1":
        return
    opened = mpc.output

    def traced(x: Any, *args: Any, **kwargs: Any) -> Any:
        size = len(x) if isinstance(x, list) else getattr(x, "size", 1)
        with (directory / OPENINGS_FILE).open("a") as f:
            f.write(f"{type(x).__name__} {size}\n")
        return opened(x, *args, **kwargs)

    mpc.output = traced


def _sessions_summary(directory: Path) -> str:
    """A partitioned job's sessions at this party, for the node's last progress message:
    k and each session's bytes, rounds and CPU seconds (``sessions.json``)."""
    from protocols import partitions

    try:
        rows = json.loads((directory / partitions.SESSIONS_FILE).read_text())
    except (OSError, ValueError):
        return ""
    parts = [
        f"s{r['session']}: {r['bytes_sent']} B, {r['rounds']} rounds, {r['cpu_seconds']:.2f} s CPU"
        for r in rows
    ]
    return f"{len(rows)} parallel sessions; " + "; ".join(parts)


def _first_of_partitioned(session: WorkerSession) -> bool:
    from protocols import partitions

    return partitions.sessions_of(session.extra) > 1 and "partition" not in session.extra


def _leave(code: int) -> NoReturn:
    """Exit now: after a failure MPyC's open connections must not keep the process alive."""
    logging.shutdown()
    os._exit(code)


def _lost_peer(mpc: Any) -> int | None:
    """The first peer whose MPC link is closed, or None.

    Why: when a peer ends (a failed parallel session, a killed process) while this party is
    sending to it, MPyC's send fails inside the program with whatever the torn-down link
    raises (an ``AttributeError`` on a transport already gone) before the peer watch's next
    look. That failure is the peer's loss, not this worker's bug: it ends as ``peer_lost``,
    as the watch would have said a moment later.
    """
    if mpc is None or mpc.start_time is None:  # not connected yet: a connect failure
        return None
    for peer in mpc.parties:
        if peer.pid == mpc.pid:
            continue
        proto = getattr(peer, "protocol", None)
        transport = getattr(proto, "transport", None)
        if proto is None or transport is None or transport.is_closing():
            return int(peer.pid)
    return None


def main(argv: list[str] | None = None) -> int:
    die_with_parent()
    global _DONE_FD  # taken out of the environment before any job code runs
    _DONE_FD = os.environ.pop(DONE_FD_ENV, None)
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m protocols.worker JOB_DIR", file=sys.stderr)
        return EXIT_BAD_SESSION
    directory = Path(args[0]).resolve()
    # The node's format (ENSNIF_LOG_FORMAT, inherited); every line carries the job's id.
    logs.configure(logging.INFO, logs.env_format(), filename=directory / LOG_FILE, force=True)
    try:
        session = WorkerSession.read(directory)
    except (OSError, ValueError, TypeError) as exc:
        log.error("unreadable session: %s", exc)
        return EXIT_BAD_SESSION
    logs.set_process_job(session.job_id)
    os.chdir(directory)  # MPyC reads its TLS material from ./.config
    sys.argv = mpyc_argv(session)
    report = Reporter(directory)
    report("starting", 0.0)
    siblings: list[tuple[Path, Any]] = []
    mpc: Any = None
    try:
        definition = delivery.backend_definition(session)
        if definition is not None:  # another backend than MPyC: no MPC session, no MPyC
            report("computing", 0.1)
            sealed, kept = delivery.run_local(definition, session, _local_data(session)), []
        else:
            if _first_of_partitioned(session):  # forked before this session's runtime
                from protocols import partitions

                siblings = partitions.launch_siblings(directory, session)
            mpc = session_runtime()  # only here, after sys.argv holds the options

            from protocols import transport_stats

            transport_stats.install()  # messages and rounds, reported with the bytes
            _trace_openings(mpc, directory)
            bind_peer_indices()
            sealed, kept = mpc.run(_run(mpc, session, directory, report, siblings))
    except PartitionFailed as exc:  # another session of this job at this node ended
        log.error("job %s failed: %s", session.job_id, exc)
        WorkerStatus(
            "failed",
            0.0,
            f"a parallel session of this job failed at this node ({exc}); the whole job "
            "ends and nothing is released",
            report.bytes_sent,
            "partition_failed",
        ).write(directory)
        return _leave(EXIT_FAILED)
    except EnsnifError as exc:  # a known failure (bad data, a failing source): its own reason
        log.error("job %s failed: %s (%s)", session.job_id, exc.message, exc.reason)
        WorkerStatus("failed", 0.0, exc.message, report.bytes_sent, exc.reason).write(directory)
        return _leave(EXIT_FAILED)
    except Exception as exc:  # the worker's one boundary: record why, exit non-zero
        log.error("job %s failed: %s\n%s", session.job_id, exc, traceback.format_exc())
        lost = _lost_peer(mpc)
        if lost is not None:  # a send on a link the peer just closed: the peer's loss
            msg = f"lost the MPC connection to party {lost} ({session.addresses[lost]})"
            WorkerStatus("failed", 0.0, msg, report.bytes_sent, "peer_lost").write(directory)
            return _leave(EXIT_FAILED)
        WorkerStatus(
            "failed",
            0.0,
            # The exception's text may quote data; it stays in the worker log at the node.
            f"internal error in the worker ({type(exc).__name__}); see worker.log at the node",
            report.bytes_sent,
            "worker_failed",
        ).write(directory)
        return _leave(EXIT_FAILED)
    if sealed is None:  # a partitioned job's sibling session: its partials are written
        report("done", 1.0)
        return _leave(EXIT_OK)
    for _, proc in siblings:
        proc.wait()
    if kept:  # before the result: the node takes a present result as the job's end
        atomic_write(directory / ARTIFACTS_FILE, json.dumps(kept).encode())
    atomic_write(directory / RESULT_FILE, sealed)
    log.info("job %s done, %d bytes sent", session.job_id, report.bytes_sent)
    report("done", 1.0, _sessions_summary(directory) if siblings else "")
    _say_done()
    return EXIT_OK


_DONE_FD: str | None = None  # a forked worker's done pipe (protocols/standby.py), or None


def _say_done() -> None:
    """Tell the fork server this worker's result and last status are written (a forked
    worker only; the node then delivers without waiting for this process to end)."""
    fd = _DONE_FD
    if fd is None:
        return
    try:
        os.write(int(fd), b"done\n")
        os.close(int(fd))
    except (OSError, ValueError):  # the server went: the exit report still ends the job
        log.warning("could not report the result to the fork server")


if __name__ == "__main__":
    sys.exit(main())
