"""k parallel MPC sessions of one job on disjoint keyed-hash partitions of its keys.

Why: a join over hundreds of thousands of keys per side spends its time in per-key work
(tagging, matching, the dot products, the transfers), all of which splits by key. A job
whose coordinator set ``sessions = k > 1`` (the smallest of the analyst's
``params.sessions`` and every node's ``parallel_sessions``; ``ensnif_mpc.jobs.sessions``)
runs as k MPyC sessions per party at once, each the job's own program on one partition
of the keys, each with its own ports, its own TLS links and its own per-session seeds.

How, at every party (``protocols.worker`` drives it; this module holds the pieces):

1. Session 0 is the job's worker. It writes k − 1 sibling session directories under its
   job directory (``part<s>/``: the same session, ports shifted by s, the same per-job
   TLS credential) and forks one worker per sibling before its own MPyC runtime exists
   (imports paid, nothing of the job's data in memory yet), in its own process group.
2. The partition key P (:func:`agree_key`): in session 0, owner A draws a fresh 256-bit P
   and sends it to owner B only (``mpc.transfer``, as the tag key K of
   ``protocols.join.tagged``); the helper never receives it. At each owner, session 0
   hands P to its own siblings through node-local pipes (never a network link, never
   the disk).
3. Each owner puts each distinct key x in partition ``PRF_P(x) mod k`` (:func:`assign`:
   the route's CBC-MAC-over-AES PRF under a key derived from P with its own label, so
   the partition tags are unrelated to any session's join tags); a key's rows are never
   split. How the owner's sessions read (:func:`owner_input`; session 0 decides and
   tells its siblings): a file source is read split (``ensnif_mpc.data.split``): each
   session reads one row slice of the file, filters, checks and scales it, and hands
   each row to its key's partition's session through the pipes; each session then
   pre-aggregates only its partition's rows, so the reading, the hash grouping and the
   sorting fall to about 1/k per session. A source that does not split (SQL and Spark
   push the aggregation down; a CSV with quoted fields; a dataset with a row bound per
   person) is read and pre-aggregated once, in session 0, which keeps partition 0 and
   hands partition s to sibling s through its pipe. Either way the owner's rows move
   only between its own processes on its own node, and each session's keys are exactly
   its partition's. The sessions then add up their key counts to A's total n, and in
   every session A pads its vector to one public length (:func:`padding`, below).
4. Every session computes its outputs as secret shares and opens nothing. A sibling
   gathers its own shares of its partial outputs (a local step: a party's share of a
   secure value is its own) and writes them to its directory (:func:`write_partials`);
   session 0 at the same node adds them to its own (:func:`combine`). Shamir sharing is
   linear and every session shares in the same field (the same secure types, the same
   bit lengths and security parameter) at the same evaluation points (the same party
   order), so the sums of one party's k shares are that party's shares of the totals.
5. Only session 0 goes on: the DP noise is added once, to the totals, with the whole
   job's sensitivity (the release plan does not change with k); the protocol's
   after-noise step (the joint minimum cohort) runs on the totals; then the one
   re-randomization and sealing to the analyst, as for k = 1.

What each party learns, per session and over the k sessions (semi-honest, t = 1, the
tagged route's roles; the proofs per session are in ``protocols.join.tagged``):

- Owners A and B: P (both hold it, in each of their sessions; it selects partitions of
  their own keys, which they know anyway; a split read moves an owner's rows between its
  own processes, which see nothing another owner sent). A learns nothing new in any
  session. In one session B learns the length of A's vector, |A| (A's distinct keys).
  Unpadded, k sessions would show B the split (|A_0|, …, |A_{k−1}|) of A's keys by a hash
  B can evaluate (B holds P) — for a guess of A's key set, evidence beyond |A|. So A pads
  its vector in every session (:func:`padding`) to the one public length m = n/k +
  8·sqrt(n/k) + 8, n = |A|, with zero-valued entries under fresh random tags (they match
  none of B's tags but with the route's tag-collision probability, so the sums and the
  match count are unchanged): B sees m in each session, a function of |A|, which one
  session reveals. A partition larger than m (Binomial(n, 1/k) above its mean by 8 sd:
  probability below e^-32) ends the job at A instead of showing its size. Cost: about
  8/sqrt(n/k) more entries (2.8 % at 330,000 keys and k = 4).
- Helper H: per session, m (A's padded length), |B_s| (B's keys in partition s) and the
  match count c_s. H never sees P. Under the PRF (P uniform and unknown to H), each
  distinct key's partition is an independent uniform draw from {0, …, k − 1},
  independent of the tags H sees in any session (those are under unrelated per-session
  tag keys, and the dummies' tags are fresh random strings). So given one session's
  view (m, |B|, c), the per-session pairs (|B_s|, c_s) are distributed as the split of
  two disjoint classes of B's keys — matched (c) and unmatched (|B| − c) — each
  multinomially into k equal cells: H can sample them from the totals alone. Checked:
  exact in the ideal model (independent uniform partitions per distinct key; the real
  one is a PRF away from it), and it needs the padding: unpadded, H would see |A_s| too,
  which is also a multinomial split of |A| (so still simulable) — the padding is for B.
  What H learns beyond one session is therefore nothing. Not hidden from anyone: k
  itself (public in the job's record and manifest).
- Shares: every partial stays secret-shared; a party's k partial shares are added
  locally and the totals are re-randomized once before delivery, so the analyst receives
  exactly what a k = 1 job delivers (the same outputs, the same noise).
- Everyone: k, each session's bytes and rounds (public in the job's status and the
  node's last progress message; they follow m and |B_s|, which H learns anyway, and an
  observer of the k links' traffic volume sees as the one session's volume shows |A|
  and |B| today).

What breaks: as for the route (collusion of an owner with H: the dictionary attack on
the tags; and now also on the partition: A or B with H learns every key's partition).
A reused P would let B link partition splits across jobs: P is fresh per job and lives
only in the job directory until the job ends (the node scrubs it with the MPC keys).

Faults: a sibling that fails or dies ends its node's session 0 with ``partition_failed``
(session 0 polls its siblings while it waits for their partials; an owner's sessions also
read an end of file on the pipes of a session that ended while they exchange rows), which
fails the job at that node; a row that fails its checks in one session's slice fails every
session of that owner with the error an unpartitioned read gives (the same reason, the
file's first offending line: ``ensnif_mpc.data.split``); the peers' sessions lose their
links and end; no session opens anything before session 0's final step, which needs
every party's totals, so nothing is released.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

PARTIALS_FILE = "partials.json"  # a sibling's own shares of its partial outputs
SESSIONS_FILE = "sessions.json"  # session 0: each session's bytes, messages, rounds, CPU
SIBLING_PREFIX = "part"
PID_FILE = "worker.pid"  # in a sibling's directory: its worker's process id


@dataclass(frozen=True)
class Partition:
    """This process's session of a partitioned job: session ``index`` of ``count``."""

    index: int
    count: int
    key: bytes | None = None  # P at an owner once agreed; None at the helper

    @property
    def sibling(self) -> bool:
        return self.index > 0


_CURRENT: Partition | None = None  # one session per worker process, as MPyC's runtime


def install(partition: Partition | None) -> None:
    global _CURRENT
    _CURRENT = partition


def current() -> Partition | None:
    """This worker's partition, or None for an unpartitioned job (k = 1)."""
    return _CURRENT


def _partition_aes_key(key: bytes) -> bytes:
    """The PRF key of the partition function: derived from P with its own label."""
    return hashlib.sha256(b"ensnif-partition\x00" + key).digest()


def assign(key: bytes, keys: Any, count: int) -> np.ndarray:
    """Each key's partition in {0, …, count − 1}: PRF_P(key) mod count, all keys at once.

    The PRF is ``protocols.tagging.tags`` (CBC-MAC over AES-256, 64-bit output) under a
    key derived from P; the modulo bias is below count / 2^64. ``keys``: a sequence or
    numpy array of ints or strs, or an Arrow array of them (a split read's distinct keys:
    tagged from Arrow's buffers, with no Python object per key, to the same tags)."""
    from protocols.tagging import tags

    if count < 1:
        raise ValueError("a job has at least one partition")
    if _is_arrow(keys):
        hashed = _arrow_tags(_partition_aes_key(key), keys)
    else:
        hashed = tags(_partition_aes_key(key), keys)
    return (hashed % np.uint64(count)).astype(np.int64)


def _is_arrow(keys: Any) -> bool:
    return type(keys).__module__.startswith("pyarrow")


def _arrow_tags(tag_key: bytes, keys: Any) -> np.ndarray:
    """``protocols.tagging.tags`` of an Arrow array of ints or strings, the string keys'
    blocks gathered from the array's offsets and bytes (the same prefix-free encoding:
    the kind and length block, then the UTF-8 bytes zero-padded to whole blocks)."""
    import pyarrow as pa

    from protocols.tagging import _aes, _int_tags, packed_str_tags, tags

    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    if len(keys) == 0:
        return np.zeros(0, dtype="<u8")
    if pa.types.is_integer(keys.type):
        return _int_tags(_aes(tag_key), keys.to_numpy(zero_copy_only=False).astype(np.int64))
    if not (pa.types.is_string(keys.type) or pa.types.is_large_string(keys.type)):
        return tags(tag_key, keys.to_pylist())  # tags' own TypeError for other kinds
    wide = pa.types.is_large_string(keys.type)
    _, offsets_buf, data_buf = keys.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64 if wide else np.int32)
    offsets = offsets[keys.offset : keys.offset + len(keys) + 1].astype(np.int64)
    data = (
        np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    )
    return packed_str_tags(_aes(tag_key), data, offsets)


_APPLIED = [False]


def applied() -> bool:
    """True once this owner's program kept only its partition's keys (the worker checks
    it: a program that ignored the partition would count every key k times)."""
    return _APPLIED[0]


def padded_size(total: int, count: int) -> int:
    """The public length of owner A's vector in each session of a partitioned
    intersection_sum: n/k + 8·sqrt(n/k) + 8 for A's n distinct keys (a function of n, which
    one session shows B anyway). A partition holds Binomial(n, 1/k) keys, above this with
    probability below e^-32 (Chernoff), so the padded length hides the split of n."""
    import math

    mean = total / count
    return math.ceil(mean + 8 * math.sqrt(mean) + 8)


def padding(total: int, held: int) -> int:
    """How many dummy entries owner A appends to its ``held`` keys of this partition (0
    for an unpartitioned job). The dummies carry random tags (they match nothing but with
    the tags' own collision probability) and zero values."""
    part = current()
    if part is None or part.count == 1:
        return 0
    size = padded_size(total, part.count)
    if held > size:  # probability below e^-32: end the job rather than show the split
        raise RuntimeError("a partition holds more keys than its padded size")
    return size - held


# -- the owners' inputs --------------------------------------------------------------------
# One pipe per ordered pair of this node's sessions of the job, made before the forks:
# session s writes to t through _OUT[t] and reads what t wrote to it from _IN[t].
_OUT: dict[int, int] = {}
_IN: dict[int, int] = {}
SPLIT, WHOLE = "split", "whole"  # how an owner's sessions read its source (session 0 says)


def _frame(obj: Any) -> bytes:
    import pickle

    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(8, "little") + body


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exactly(fd: int, count: int) -> bytes:
    chunks, left = [], count
    while left:
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            raise PartitionFailed("another session of this job at this node has ended")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _send(to: int, obj: Any) -> None:
    try:
        _write_all(_OUT[to], _frame(obj))
    except OSError as exc:
        raise PartitionFailed(f"session {to} is gone ({exc.strerror})") from exc


def _receive(frm: int) -> Any:
    import pickle

    size = int.from_bytes(_read_exactly(_IN[frm], 8), "little")
    return pickle.loads(_read_exactly(_IN[frm], size))  # this job's sessions at this node


def exchange(me: int, items: list[Any]) -> list[Any]:
    """Hands ``items[t]`` to session t and returns what each session handed to this one
    (session order; ``items[me]`` in its own place). Blocking; every session of the node
    calls it at the same step. Sends and receives run at once (one thread each), so big
    items cannot fill the pipes both ways and wait on each other. A session that has
    ended (its pipe closed) raises :class:`PartitionFailed` here."""
    import threading

    got: list[Any] = [None] * len(items)
    got[me] = items[me]
    errors: list[BaseException] = []

    def run(step: Any, *args: Any) -> None:
        try:
            step(*args)
        except BaseException as exc:  # noqa: BLE001 - raised below, in the caller
            errors.append(exc)

    def receive(frm: int) -> None:
        got[frm] = _receive(frm)

    threads = []
    for t in range(len(items)):
        if t != me:
            threads.append(threading.Thread(target=run, args=(_send, t, items[t]), daemon=True))
            threads.append(threading.Thread(target=run, args=(receive, t), daemon=True))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        failed = next((e for e in errors if isinstance(e, PartitionFailed)), errors[0])
        raise failed
    return got


def _split_mode(local: Any) -> str:
    """Session 0's choice for this owner: a split read when its source allows one
    (``ensnif_mpc.data.split.splittable``), else a whole read in session 0."""
    from ensnif_mpc.data.split import splittable

    if local is None:
        return WHOLE
    source = local.source
    ok = splittable(source.spec.kind, source.spec.path, source.bound is not None)
    return SPLIT if ok and "key" in local.columns else WHOLE


async def owner_input(
    build: Any, columns: bool = False, local: Any = None
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """An owner's distinct keys of this session (and their columns), and its total n of
    distinct keys over all sessions. ``build()``: (keys, columns or None) from the owner's
    pre-aggregation of its ``local`` data. Unpartitioned: ``build()``.

    Partitioned, session 0 tells its siblings (with P, over the node-local pipes) how
    the sessions read: split, when the source allows it (``ensnif_mpc.data.split``): every
    session runs ``build()`` on its own row slice, the rows going to their key's
    partition's session, so each session's keys are exactly its partition's and the
    reading and the aggregation are split k ways; then the sessions add up their key
    counts to n. Otherwise whole: session 0 runs ``build()`` over all rows, keeps
    partition 0 and hands partition s to sibling s."""
    part = current()
    if part is None or part.count == 1:
        keys, cols = build()
        return keys, cols, len(keys)
    _APPLIED[0] = True
    siblings = range(1, part.count)
    if part.sibling:
        mode, key = await asyncio.to_thread(_receive, 0)
        part = Partition(part.index, part.count, key)
    else:
        if part.key is None:
            raise RuntimeError("this session's partition key was not agreed")
        mode, key = _split_mode(local), part.key
        for s in siblings:
            await asyncio.to_thread(_send, s, (mode, key))
    if mode == SPLIT:
        return await _split_input(part, key, build, local)
    if part.sibling:
        keys, cols, total = await asyncio.to_thread(_receive, 0)
        return keys, cols, int(total)
    keys, cols = build()
    keys = np.asarray(keys)
    which = assign(key, keys, part.count)
    for s in siblings:
        mask = which == s
        frame = (keys[mask], None if cols is None else cols[:, mask], len(keys))
        await asyncio.to_thread(_send, s, frame)
    mask = which == 0
    return keys[mask], None if cols is None else cols[:, mask], len(keys)


async def _split_input(
    part: Partition, key: bytes, build: Any, local: Any
) -> tuple[np.ndarray, np.ndarray | None, int]:
    """:func:`owner_input`'s split read at this session."""
    from ensnif_mpc.data.split import RowSplit

    me, count = part.index, part.count
    source = local.source
    source.split = RowSplit(
        me,
        count,
        local.name("key"),
        lambda values: assign(key, values, count),
        lambda items: exchange(me, items),
    )
    try:
        keys, cols = await asyncio.to_thread(build)
    finally:
        source.split = None
    counts = await asyncio.to_thread(exchange, me, [len(keys)] * count)
    return np.asarray(keys), cols, int(sum(counts))


# -- the partition key ------------------------------------------------------------------------
def _write_private(path: Path, data: bytes) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


async def agree_key(
    mpc: Any, me: int, owners: Sequence[int], part: Partition, job_dir: Path
) -> Partition:
    """P at this party: session 0's owner A draws it and sends it to B only (every party
    of session 0 takes part in the transfer). Siblings never need it: their keys come
    from session 0 (:func:`owner_input`). The helper never holds it."""
    a, b = owners[0], owners[1]
    if part.sibling:
        return part
    # Every party of session 0 takes part in the transfer (MPyC's program counters stay
    # in step); only B receives.
    mine = secrets.token_bytes(32) if me == a else None
    got = list(await mpc.transfer(mine, senders=[a], receivers=[b]))
    if me not in (a, b):
        return part
    key = mine if me == a else got[0]
    assert isinstance(key, bytes) and len(key) == 32
    return Partition(part.index, part.count, key)


# -- the partials -----------------------------------------------------------------------------
def _sectype(value: Any) -> Any:
    return getattr(value, "sectype", None) or type(value)


async def write_partials(mpc: Any, outputs: Sequence[Any], directory: Path) -> None:
    """A sibling's own shares of its partial outputs (scalars), with their names and
    fields, for session 0 at the same node. Nothing is opened: a party's share of a
    secure value is its own, gathered locally."""
    own = await mpc.gather([o.value for o in outputs]) if outputs else []
    records = [
        {
            "name": o.name,
            "modulus": int(_sectype(o.value).field.modulus),
            "share": int(getattr(s, "value", s)),
        }
        for o, s in zip(outputs, own, strict=True)
    ]
    _write_private(directory / PARTIALS_FILE, json.dumps(records).encode())


class PartitionFailed(Exception):
    """A sibling session at this node ended without its partials."""


async def wait_partials(
    siblings: Sequence[tuple[Path, Any]], poll_s: float = 0.05
) -> list[list[dict[str, Any]]]:
    """Every sibling's partials, in session order; raises :class:`PartitionFailed` as soon
    as one sibling process has ended without writing them. ``siblings``: (directory,
    process with ``poll()``) per sibling."""
    found: dict[int, list[dict[str, Any]]] = {}
    while len(found) < len(siblings):
        for i, (directory, proc) in enumerate(siblings):
            if i in found:
                continue
            path = directory / PARTIALS_FILE
            if path.exists():
                found[i] = json.loads(path.read_text())
            elif proc.poll() is not None:
                raise PartitionFailed(f"session {i + 1} ended with code {proc.poll()}")
        if len(found) < len(siblings):
            await asyncio.sleep(poll_s)
    return [found[i] for i in range(len(siblings))]


def combine(outputs: Sequence[Any], partials: Sequence[Sequence[dict[str, Any]]]) -> list[Any]:
    """Session 0's outputs plus the siblings' shares of theirs: the same names in the same
    order, the same fields; each total is a secure value whose share is the sum of this
    party's shares (local additions, no communication)."""
    import dataclasses

    combined = []
    for j, out in enumerate(outputs):
        sectype = _sectype(out.value)
        field = sectype.field
        total = out.value
        for records in partials:
            if len(records) != len(outputs):
                raise ValueError("a partition returned another number of outputs")
            rec = records[j]
            if rec["name"] != out.name or rec["modulus"] != int(field.modulus):
                raise ValueError(f"a partition's output {rec['name']!r} does not match")
            total = total + sectype(field(int(rec["share"])))
        combined.append(dataclasses.replace(out, value=total))
    return combined


def sibling_addresses(addresses: Sequence[str], index: int) -> list[str]:
    """Session ``index``'s MPC addresses: every party's job port plus ``index`` (each node
    reserved the ``parallel_sessions`` ports from its job port on)."""
    out = []
    for addr in addresses:
        host, port = addr.rsplit(":", 1)
        out.append(f"{host}:{int(port) + index}")
    return out


def sibling_dirs(job_dir: Path) -> list[Path]:
    return sorted(
        (p for p in job_dir.glob(f"{SIBLING_PREFIX}*") if p.is_dir()),
        key=lambda p: int(p.name[len(SIBLING_PREFIX) :]),
    )


def scrub(job_dir: Path) -> None:
    """After the job: the siblings' MPC keys and partial shares are no longer needed."""
    import shutil

    for sibling in sibling_dirs(job_dir):
        shutil.rmtree(sibling / ".config", ignore_errors=True)
        with contextlib.suppress(OSError):
            (sibling / PARTIALS_FILE).unlink()


# -- the sibling sessions at this node --------------------------------------------------------
def sessions_of(extra: dict[str, Any]) -> int:
    """The job's k as the node wrote it into the session (1 when absent)."""
    return max(1, int(extra.get("sessions", 1) or 1))


class _Forked:
    """A sibling session forked from session 0 (``poll``/``wait`` as a Popen's)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.code: int | None = None

    def poll(self) -> int | None:
        if self.code is None:
            done, status = os.waitpid(self.pid, os.WNOHANG)
            if done:
                self.code = os.waitstatus_to_exitcode(status)
        return self.code

    def wait(self) -> int:
        if self.code is None:
            _, status = os.waitpid(self.pid, 0)
            self.code = os.waitstatus_to_exitcode(status)
        return self.code


def _run_sibling(sib: Path, parent: int) -> int:
    """In the forked sibling: its own output and randomness, then the job's worker on its
    own directory (MPyC's runtime is built there, from its session)."""
    from ensnif_mpc.procs import PARENT_ENV

    os.environ[PARENT_ENV] = str(parent)  # protocols.worker.main: die with session 0
    out = os.open(sib / "worker.out", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    np.random.seed()  # the legacy global generator, from the OS (the fork copied it)
    from protocols.worker import main as run_job

    return run_job([str(sib)])


def launch_siblings(directory: Path, session: Any) -> list[tuple[Path, Any]]:
    """Session 0's k − 1 siblings: one directory ``part<s>/`` each (the session with every
    party's port shifted by s, the job's TLS material) and one worker process each,
    forked from session 0 before its MPyC runtime exists (so with its imports done and
    nothing of the job's data in it), in session 0's process group (the node's terminate
    reaches them), each dying with session 0."""
    import dataclasses
    import shutil
    import sys
    import traceback

    from ensnif_mpc.jobs.worker_session import atomic_write

    count = sessions_of(session.extra)
    siblings: list[tuple[Path, Any]] = []
    # (s, t) -> (read, write): session s writes to session t (the owners' inputs)
    pipes = {(s, t): os.pipe() for s in range(count) for t in range(count) if s != t}
    for s in range(1, count):
        sib = directory / f"{SIBLING_PREFIX}{s}"
        sib.mkdir(mode=0o700, exist_ok=True)
        shutil.copytree(directory / ".config", sib / ".config", dirs_exist_ok=True)
        dataclasses.replace(
            session,
            addresses=sibling_addresses(session.addresses, s),
            extra={**session.extra, "partition": s},
        ).write(sib)
        parent = os.getpid()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                _keep_pipes(pipes, s)
                code = _run_sibling(sib, parent)
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else 1
            except BaseException:
                traceback.print_exc()
            finally:
                os._exit(code)
        # For the operator (and the tests); whole or absent, never read half-written.
        atomic_write(sib / PID_FILE, str(pid).encode())
        siblings.append((sib, _Forked(pid)))
    _keep_pipes(pipes, 0)
    return siblings


def _keep_pipes(pipes: dict[tuple[int, int], tuple[int, int]], me: int) -> None:
    """Session ``me`` keeps the write ends of its pipes to the others and the read ends
    of theirs to it, and closes every other end (so a session that ends closes the last
    write end of its pipes: the others read an end of file, never wait)."""
    _OUT.clear()
    _IN.clear()
    for (frm, to), (r, w) in pipes.items():
        if frm == me:
            _OUT[to] = w
        else:
            os.close(w)
        if to == me:
            _IN[frm] = r
        else:
            os.close(r)


def session_stats(directory: Path, own: dict[str, Any]) -> list[dict[str, Any]]:
    """Each session's bytes, messages, rounds and CPU seconds (session 0 first), from the
    siblings' last status files; written to ``sessions.json`` for the node."""
    from ensnif_mpc.jobs.worker_session import WorkerStatus

    rows = [{"session": 0, **own}]
    for sib in sibling_dirs(directory):
        st = WorkerStatus.read(sib)
        rows.append(
            {
                "session": int(sib.name[len(SIBLING_PREFIX) :]),
                "bytes_sent": st.bytes_sent if st else 0,
                "messages_sent": st.messages_sent if st else 0,
                "rounds": st.rounds if st else 0,
                "cpu_seconds": st.cpu_seconds if st else 0.0,
            }
        )
    return rows
