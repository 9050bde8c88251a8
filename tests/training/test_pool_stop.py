"""Stopping: a process pool ends its running jobs on an error rather than waiting for them, and
a forked child of a process under ``sigterm_as_exit`` ends on SIGTERM whatever it runs."""

from __future__ import annotations

import contextlib
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest

from latentrl.runs import sigterm_as_exit, stop_workers_on_error


def test_an_error_ends_running_workers_without_waiting_for_them() -> None:
    start = time.perf_counter()
    with (
        pytest.raises(SystemExit),
        ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool,
        stop_workers_on_error(pool),
    ):
        jobs = [pool.submit(time.sleep, 120) for _ in range(6)]
        # Wait until both workers exist and have taken a job (spawn is slow on a loaded CPU).
        deadline = time.perf_counter() + 40
        while time.perf_counter() < deadline and not (
            len(pool._processes) == 2 and all(job.running() for job in jobs[:2])
        ):
            time.sleep(0.05)
        time.sleep(1.0)
        workers = list(pool._processes.values())
        assert len(workers) == 2
        raise SystemExit(143)  # what sigterm_as_exit raises on SIGTERM
    assert time.perf_counter() - start < 90  # not the 120 s the running jobs would take
    # The pool's own management thread reaps the workers too, so read the exit code it records
    # (a second waiter can see "alive" for a moment after the process is gone).
    deadline = time.perf_counter() + 20
    while time.perf_counter() < deadline and any(w.exitcode is None for w in workers):
        time.sleep(0.1)
    assert [w.exitcode for w in workers] == [-signal.SIGTERM] * 2


def test_a_clean_exit_waits_for_the_jobs_as_before() -> None:
    with (
        ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool,
        stop_workers_on_error(pool),
    ):
        job = pool.submit(pow, 2, 10)
    assert job.result() == 1024


def _swallow_every_exit() -> None:
    """A child that catches everything, SystemExit included (as some library code does)."""
    while True:
        with contextlib.suppress(BaseException):
            time.sleep(60)


def test_a_forked_child_ends_on_sigterm_even_if_it_swallows_system_exit() -> None:
    with sigterm_as_exit():
        child = get_context("fork").Process(target=_swallow_every_exit)
        child.start()
        time.sleep(0.5)  # let it reach its loop
        child.terminate()
        child.join(timeout=20)
        alive = child.is_alive()
        if alive:
            child.kill()
    assert not alive
    assert child.exitcode == 128 + signal.SIGTERM
