"""DaemonThreads: the scheduler's drivers and watchers run at once, on reused threads.

A task may block for a job's whole run (a Watch stream), so none may ever wait for
another to end; a thread that finished a task takes the next one instead of a new thread
being started; threads left idle end; nothing keeps the interpreter from exiting.
"""

from __future__ import annotations

import threading
import time

from coordinator.threads import DaemonThreads

WAIT_S = 10.0


def _wait_until(condition, timeout_s: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_a_task_runs_while_every_other_task_still_blocks() -> None:
    threads = DaemonThreads("t")
    release = threading.Event()
    running = threading.Semaphore(0)

    def block() -> None:
        running.release()
        release.wait(WAIT_S)

    for _ in range(5):
        threads.run(block)
    started = [running.acquire(timeout=WAIT_S) for _ in range(5)]
    ran = threading.Event()
    threads.run(ran.set)

    assert all(started)
    assert ran.wait(WAIT_S)  # a sixth task did not wait for the five blocked ones
    release.set()


def test_a_thread_that_finished_takes_the_next_task() -> None:
    threads = DaemonThreads("t")
    names: list[str] = []
    done = threading.Semaphore(0)

    def note() -> None:
        names.append(threading.current_thread().name)
        done.release()

    for _ in range(4):
        threads.run(note)
        assert done.acquire(timeout=WAIT_S)
        assert _wait_until(lambda: threads.idle == 1)  # back to waiting for the next

    assert names == ["t-1"] * 4
    assert all(t.daemon for t in threading.enumerate() if t.name.startswith("t-"))


def test_a_failing_task_leaves_its_thread_for_the_next() -> None:
    threads = DaemonThreads("t")
    ran = threading.Event()

    def fail() -> None:
        raise RuntimeError("boom")

    threads.run(fail)
    assert _wait_until(lambda: threads.idle == 1)
    threads.run(ran.set)

    assert ran.wait(WAIT_S)
    assert _wait_until(lambda: threads.idle == 1)


def test_threads_left_idle_end() -> None:
    threads = DaemonThreads("idle-end", idle_s=0.05)
    done = threading.Event()
    threads.run(done.set)
    assert done.wait(WAIT_S)

    gone = _wait_until(
        lambda: not any(t.name.startswith("idle-end-") for t in threading.enumerate())
    )

    assert gone and threads.idle == 0
    again = threading.Event()
    threads.run(again.set)  # a new thread when none is left
    assert again.wait(WAIT_S)
