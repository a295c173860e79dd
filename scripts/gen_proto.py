"""Generate the gRPC stubs under ensnif_mpc/gen from proto/ensnif/v1.

protoc writes imports as ``from ensnif.v1 import x_pb2`` (the proto path); the
stubs live inside the ``ensnif_mpc`` distribution, so the imports are rewritten
to ``from ensnif_mpc.gen.ensnif.v1 import x_pb2``. ``--check`` regenerates into a
temporary directory and fails if the committed stubs differ (used by the tests).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT = ROOT / "ensnif_mpc" / "gen"
_IMPORT = re.compile(r"^from ensnif\.v1 import", re.MULTILINE)


def generate(out: Path) -> list[Path]:
    from grpc_tools import protoc  # dev dependency only

    # protoc finds the mypy plugins (protoc-gen-mypy*) on PATH, beside this interpreter.
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")

    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_ROOT.rglob("*.proto"))
    include = Path(protoc.__file__).parent / "_proto"
    args = [
        "protoc",
        f"-I{PROTO_ROOT}",
        f"-I{include}",
        f"--python_out={out}",
        f"--grpc_python_out={out}",
        f"--mypy_out={out}",
        f"--mypy_grpc_out={out}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    written = []
    for path in sorted(out.rglob("*.py*")):
        if path.suffix not in (".py", ".pyi"):
            continue
        text = _IMPORT.sub("from ensnif_mpc.gen.ensnif.v1 import", path.read_text())
        path.write_text(text)
        written.append(path)
    for pkg in (out / "ensnif", out / "ensnif" / "v1"):
        (pkg / "__init__.py").write_text("")
    (out / "__init__.py").write_text('"""Generated gRPC stubs (make proto). Do not edit."""\n')
    return written


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in root.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    }


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--check", action="store_true", help="fail if committed stubs are stale")
    ns = parser.parse_args()
    if not ns.check:
        OUT.mkdir(parents=True, exist_ok=True)
        generate(OUT)
        print(f"stubs written to {OUT.relative_to(ROOT)}")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh, committed = _tree(Path(tmp)), _tree(OUT)
    if fresh != committed:
        diff = sorted(set(fresh) ^ set(committed)) + sorted(
            k for k in fresh.keys() & committed.keys() if fresh[k] != committed[k]
        )
        print("stale stubs, run `make proto`: " + ", ".join(diff), file=sys.stderr)
        return 1
    print("stubs are fresh")
    return 0


if __name__ == "__main__":
    sys.exit(main())
