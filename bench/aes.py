"""The aes128 port (protocols/ports/aes.py, SCALE-MAMBA's GC_test): one AES-128 block under
a secret-shared key, three parties over TLS on loopback.

Prints the time per block (a) in the clear: the port's numpy reference and the
``cryptography`` package's AES-ECB, (b) as a minimal raw MPyC program running the same
GF(2^8) circuit and opening the ciphertext directly (bench/raw_aes.py: process start and
TLS connection included, its compute phase shown apart), (c) as the Ensnif program under
the test harness (three real ``python -m protocols.worker`` processes, daBits to the prime
field, output shares sealed to the analyst and combined). Every answer is checked against
``cryptography``.

    python bench/aes.py [--runs 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

import numpy as np  # noqa: E402
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes  # noqa: E402

from protocols.ports.aes import encrypt  # noqa: E402
from tests.protocols import harness  # noqa: E402


def _per_block(f: object, repeat: int) -> float:
    t = time.perf_counter()
    for _ in range(repeat):
        f()  # type: ignore[operator]
    return (time.perf_counter() - t) / repeat


def run(runs: int = 2) -> bool:
    rng = np.random.default_rng(0)
    key, block = rng.integers(0, 256, 16), rng.integers(0, 256, 16)
    cipher = Cipher(algorithms.AES(bytes(key.tolist())), modes.ECB())
    want = cipher.encryptor().update(bytes(block.tolist()))
    problems = []
    if bytes(int(v) for v in encrypt(key, block)) != want:
        problems.append("numpy reference")
    numpy_s = _per_block(lambda: encrypt(key, block), 200)
    crypto_s = _per_block(lambda: cipher.encryptor().update(bytes(block.tolist())), 2000)

    import raw as rawrun

    raw_wall, raw_compute, ours = [], [], []
    with tempfile.TemporaryDirectory(prefix="ensnif-aes-") as tmp:
        work = Path(tmp)
        for i in range(runs):
            job = {"key": key.tolist(), "block": block.tolist()}
            r = rawrun.run(work / f"raw{i}", "raw_aes.py", job, 600)
            raw_wall.append(r.wall)
            raw_compute.append(max(p.get("compute", 0.0) for p in r.phases))
            if r.outputs["ct"] != want.hex():
                problems.append("raw MPyC")
            t = time.perf_counter()
            out = harness.run_parties(
                work / f"ours{i}", "aes128", [key, block, None], lower=0, upper=255, timeout=600
            )
            ours.append(time.perf_counter() - t)
            if bytes(int(out.outputs[f"ct[{j}]"]) for j in range(16)) != want:
                problems.append("ensnif")
    best = {k: min(v) for k, v in {"raw": raw_wall, "raw_c": raw_compute, "ours": ours}.items()}
    print("== aes128 (3 parties, TLS on loopback): seconds per block, best of", runs)
    print(
        f"{'numpy ref':>10} {'cryptography':>12} {'raw MPyC':>9} {'raw compute':>11} "
        f"{'ensnif':>7} {'ensnif/raw':>10} {'compute/numpy':>13}"
    )
    print(
        f"{numpy_s:10.2e} {crypto_s:12.2e} {best['raw']:9.2f} {best['raw_c']:11.2f} "
        f"{best['ours']:7.2f} {best['ours'] / best['raw']:10.2f} {best['raw_c'] / numpy_s:13.0f}",
        flush=True,
    )
    for p in problems:
        print("PROBLEM:", p)
    return not problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=2)
    return 0 if run(ap.parse_args().runs) else 1


if __name__ == "__main__":
    sys.exit(main())
