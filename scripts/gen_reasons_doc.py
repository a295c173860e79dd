"""Write docs/reasons.md from the reason registry (ensnif_mpc/reasons.py).

``--check`` writes nothing and fails if the committed file differs from what the
registry renders (tests/unit/ensnif_mpc/test_reasons.py checks the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reasons.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if docs/reasons.md is stale")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from ensnif_mpc.reasons import render_markdown

    text = render_markdown()
    if args.check:
        if not DOC.exists() or DOC.read_text(encoding="utf-8") != text:
            print(f"{DOC.relative_to(ROOT)} is stale: run python scripts/gen_reasons_doc.py")
            return 1
        return 0
    DOC.write_text(text, encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
