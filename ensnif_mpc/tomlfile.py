"""Reading a TOML file that a person wrote: one clear error, whatever the bytes are.

Config files and job files are read here, so that a file that is not UTF-8, is not
TOML, or nests tables and arrays thousands deep (Python's TOML parser recurses, and a
deep enough file exhausts the stack) is refused with one line naming the file, as the
caller's own error class (:class:`~ensnif_mpc.errors.InvalidConfig` for configs,
:class:`~ensnif_mpc.errors.InvalidJobSpec` for jobs), never a traceback.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from ensnif_mpc.errors import EnsnifError


def read(path: Path, error: type[EnsnifError], what: str = "file") -> dict[str, Any]:
    """The TOML table in ``path``; ``error`` (naming the file) if it cannot be one."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(f"cannot read {what} {path}: {exc.strerror or exc}") from exc
    return parse(data, str(path), error)


def parse(data: bytes | str, where: str, error: type[EnsnifError]) -> dict[str, Any]:
    """The TOML table in ``data`` (bytes must be UTF-8; a BOM is allowed)."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise error(
                f"{where}: not UTF-8 text (byte {exc.start} is {data[exc.start]:#04x}); "
                "save the file as UTF-8"
            ) from None
    else:
        text = data
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise error(f"{where}: not valid TOML ({exc})") from exc
    except RecursionError:
        raise error(f"{where}: not valid TOML (tables or arrays nested too deeply)") from None
