"""Logging for the entry points: text or JSON lines, with the job id on every line of a job.

Configured in one place (:func:`configure`, called by the CLI's entry point and by a job's
worker); everything else uses ``logging.getLogger(__name__)``. The job a line belongs to
comes from context, not from the call: a job's entry points are wrapped in
:func:`job_scoped` (or a ``with job_context(job_id):`` block), which sets a
:class:`~contextvars.ContextVar` that :class:`JobIdFilter` copies onto each record. A
worker process runs exactly one job and says so once with :func:`set_process_job`.

The format travels to the workers a node starts through the environment
(``ENSNIF_LOG_FORMAT``): a node's workers log as the node does.

JSON lines hold ``time`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, ``job_id``
when the line belongs to a job, and ``exception`` (the traceback) when there is one.
What is logged is the same as in text: never a secret, a share, a key or a data row.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import inspect
import json
import logging
import os
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Final, TypeVar

FORMATS: Final = ("text", "json")
ENV_FORMAT: Final = "ENSNIF_LOG_FORMAT"
TEXT_FORMAT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_job: ContextVar[str] = ContextVar("ensnif_job_id", default="")
_process_job = ""  # a worker's one job (set once, before its event loop starts threads)

F = TypeVar("F", bound=Callable[..., Any])


def current_job() -> str:
    """The job the running code works for ("" when none)."""
    return _job.get() or _process_job


@contextlib.contextmanager
def job_context(job_id: str) -> Iterator[None]:
    """Every line logged inside the block (in this thread or task) carries ``job_id``."""
    token = _job.set(job_id)
    try:
        yield
    finally:
        _job.reset(token)


def job_scoped(param: str) -> Callable[[F], F]:
    """Decorate a job's entry point: its lines carry the job id found in argument ``param``
    (a job id string, or an object with a ``job_id`` attribute)."""

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            value = signature.bind_partial(*args, **kwargs).arguments.get(param, "")
            job_id = value if isinstance(value, str) else str(getattr(value, "job_id", ""))
            with job_context(job_id):
                return fn(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def set_process_job(job_id: str) -> None:
    """This process works for one job only (a worker): every line carries its id."""
    global _process_job
    _process_job = job_id


class JobIdFilter(logging.Filter):
    """Puts the current job's id on each record (``record.job_id``, "" when none)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not getattr(record, "job_id", ""):
            record.job_id = current_job()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        at = dt.datetime.fromtimestamp(record.created, dt.UTC)
        line: dict[str, Any] = {
            "time": at.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        job_id = getattr(record, "job_id", "") or current_job()
        if job_id:
            line["job_id"] = job_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False)


def check_format(fmt: str) -> str:
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return fmt


def formatter(fmt: str) -> logging.Formatter:
    return JsonFormatter() if check_format(fmt) == "json" else logging.Formatter(TEXT_FORMAT)


def env_format(default: str = "text") -> str:
    """The format asked for by ``ENSNIF_LOG_FORMAT`` (an unknown value: ``default``)."""
    value = os.environ.get(ENV_FORMAT, default).lower()
    return value if value in FORMATS else default


_OURS = "_ensnif_handler"  # marks the handlers configure() installed


def configure(
    level: str | int, fmt: str = "text", filename: Path | None = None, force: bool = False
) -> None:
    """The process's logging: one handler on the root logger (stderr, or ``filename``),
    in ``fmt``, with job ids, replacing the one configured before. Like
    :func:`logging.basicConfig`, it leaves alone a root logger that someone else set up
    (a test runner, a program embedding the CLI) unless ``force``."""
    root = logging.getLogger()
    if not force and any(not getattr(h, _OURS, False) for h in root.handlers):
        return
    handler: logging.Handler = (
        logging.FileHandler(filename) if filename is not None else logging.StreamHandler()
    )
    handler.setFormatter(formatter(fmt))
    handler.addFilter(JobIdFilter())
    setattr(handler, _OURS, True)
    for old in list(root.handlers):
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)


def set_format(fmt: str) -> None:
    """Switch the handlers :func:`configure` installed to ``fmt``, and hand it to the
    workers this process starts (they inherit the environment)."""
    fmt = check_format(fmt)
    os.environ[ENV_FORMAT] = fmt
    for handler in logging.getLogger().handlers:
        if getattr(handler, _OURS, False):
            handler.setFormatter(formatter(fmt))
