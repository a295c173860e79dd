"""JSON log lines and the job id taken from context (ensnif_mpc/logs.py)."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from ensnif_mpc import logs


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(logs.JsonFormatter())
        self.addFilter(logs.JobIdFilter())
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def capture() -> Iterator[Capture]:
    handler = Capture()
    logger = logging.getLogger("ensnif.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler
    logger.removeHandler(handler)


log = logging.getLogger("ensnif.test")


@dataclass
class Job:
    job_id: str


def test_a_line_is_one_json_object_with_time_level_logger_message(capture: Capture) -> None:
    log.warning("a %s b", "x")
    (line,) = capture.lines
    assert set(line) == {"time", "level", "logger", "message"}  # no job: no job_id
    assert (line["level"], line["logger"], line["message"]) == ("WARNING", "ensnif.test", "a x b")
    assert str(line["time"]).endswith("Z")


def test_lines_inside_a_job_context_carry_its_id_and_only_there(capture: Capture) -> None:
    with logs.job_context("j1"):
        log.info("inside")
    log.info("after")
    assert [line.get("job_id") for line in capture.lines] == ["j1", None]


def test_job_scoped_reads_the_id_from_a_string_or_an_objects_job_id(capture: Capture) -> None:
    @logs.job_scoped("job_id")
    def by_id(other: int, job_id: str) -> None:
        log.info("by id")

    @logs.job_scoped("job")
    def by_object(job: Job) -> None:
        log.info("by object")

    by_id(1, job_id="a1")
    by_object(Job("b2"))
    assert [line["job_id"] for line in capture.lines] == ["a1", "b2"]


def test_a_job_context_does_not_leak_into_another_thread(capture: Capture) -> None:
    with logs.job_context("mine"):
        t = threading.Thread(target=lambda: log.info("other thread"))
        t.start()
        t.join()
    assert "job_id" not in capture.lines[0]


def test_an_exception_is_kept_in_its_line(capture: Capture) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    assert "RuntimeError: boom" in str(capture.lines[0]["exception"])


def test_configure_writes_json_lines_with_the_process_job(tmp_path: Path) -> None:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    try:
        logs.configure("INFO", "json", filename=tmp_path / "worker.log", force=True)
        logs.set_process_job("w1")
        logging.getLogger("ensnif.worker").info("done")
        for handler in root.handlers:
            handler.flush()
        (line,) = [json.loads(t) for t in (tmp_path / "worker.log").read_text().splitlines()]
        assert (line["job_id"], line["message"]) == ("w1", "done")
    finally:
        logs.set_process_job("")
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


def test_configure_leaves_a_root_logger_set_up_by_someone_else_alone() -> None:
    root = logging.getLogger()
    theirs = logging.NullHandler()
    root.addHandler(theirs)
    try:
        before = list(root.handlers)
        logs.configure("DEBUG", "json")  # e.g. the CLI run in-process under pytest
        assert root.handlers == before
    finally:
        root.removeHandler(theirs)


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="text, json"):
        logs.formatter("xml")
