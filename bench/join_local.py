"""The tagged-helper join's local steps at N distinct keys, in one process, CPU seconds:
the key tags (protocols.tagging.tags: CBC-MAC over AES-256, vectorized) against the
per-key HMAC-SHA256 loop they replaced, for int and string keys; the helper's matching
(tagging.select, both lists sorted first) against ``np.isin``; the owners' private order;
and an owner's read and pre-aggregation of its CSV through the node's data layer (A's
N × 3 rows, as bench/join_fast.py generates them). Not a test: it prints numbers.

    python bench/join_local.py [--keys 1000000]
"""

from __future__ import annotations

import argparse
import hashlib
import secrets
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import numpy as np  # noqa: E402

from protocols import tagging  # noqa: E402


def hmac_loop(tag_key: bytes, keys: list[Any]) -> np.ndarray:
    """The tags as the route computed them before: HMAC-SHA256 per key in a Python loop."""
    block = tag_key.ljust(64, b"\x00")
    inner = hashlib.sha256(bytes(x ^ 0x36 for x in block))
    outer = hashlib.sha256(bytes(x ^ 0x5C for x in block))
    out = bytearray()
    for key in keys:
        if isinstance(key, str):
            data = b"ensnif-key\x00s" + key.encode()
        else:
            data = b"ensnif-key\x00i" + int(key).to_bytes(16, "big", signed=True)
        h = inner.copy()
        h.update(data)
        o = outer.copy()
        o.update(h.digest())
        out += o.digest()[:8]
    return np.frombuffer(bytes(out), dtype="<u8")


def cpu(step: Callable[[], object]) -> float:
    start = time.process_time()
    step()
    return time.process_time() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--keys", type=int, default=1_000_000)
    n = ap.parse_args().keys
    rng = np.random.default_rng(0)
    ints = rng.choice(100 * n, size=n, replace=False).astype(np.int64)
    strings = np.array([f"c{v:09d}" for v in ints.tolist()], dtype=object)
    key = secrets.token_bytes(32)
    print(f"local steps at {n:,} distinct keys (CPU seconds, one process)")
    for name, keys in (("int", ints), ("string", strings)):
        before = cpu(lambda keys=keys: hmac_loop(key, keys.tolist()))
        now = cpu(lambda keys=keys: tagging.tags(key, keys))
        print(f"  tags, {name} keys: HMAC loop {before:.3f}, CBC-MAC-AES {now:.3f}")
    tags_a = tagging.tags(key, ints)
    tags_b = np.concatenate([tags_a[: n // 2], tagging.tags(key, ints[: n - n // 2] + 100 * n)])
    tags_b = tags_b[rng.permutation(n)]
    print(
        f"  matching: np.isin {cpu(lambda: np.isin(tags_a, tags_b)):.3f}, "
        f"tagging.select {cpu(lambda: tagging.select(tags_a, tags_b)):.3f}"
    )
    print(f"  private order {cpu(lambda: tagging.private_order(n)):.3f}")
    import join_fast

    from ensnif_mpc.data.sources import SourceSpec, open_source
    from protocols.io import LocalData
    from protocols.join.common import keyed

    with tempfile.TemporaryDirectory(prefix="ensnif-join-local-") as tmp:
        a, _ = join_fast.generate(Path(tmp), n, 3, seed=1)
        source = open_source(SourceSpec(kind="csv", path=str(a.path)), a.columns)
        local = LocalData(source, {"key": "customer", "value": "basket"}, join_fast.DECIMALS)
        read = cpu(lambda: keyed(local, ["key"], measures=[("count", None), ("sum", "value")]))
    print(f"  owner A reads and pre-aggregates {3 * n:,} rows (data layer): {read:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
