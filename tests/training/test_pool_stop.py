"""Stopping a process pool on an error ends its running jobs at once rather than waiting for them."""

from __future__ import annotations

import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context

import pytest

from latentrl.runs import stop_workers_on_error


def test_an_error_ends_running_workers_without_waiting_for_them() -> None:
    start = time.perf_counter()
    with (
        pytest.raises(SystemExit),
        ProcessPoolExecutor(max_workers=2, mp_context=get_context("spawn")) as pool,
        stop_workers_on_error(pool),
    ):
        jobs = [pool.submit(time.sleep, 120) for _ in range(6)]
        while not all(job.running() for job in jobs[:2]):
            time.sleep(0.05)
        workers = list(pool._processes.values())
        assert len(workers) == 2
        raise SystemExit(143)  # what sigterm_as_exit raises on SIGTERM
    assert time.perf_counter() - start < 60  # not the 120 s the running jobs would take
    for worker in workers:
        worker.join(timeout=10)
        assert not worker.is_alive()


def test_a_clean_exit_waits_for_the_jobs_as_before() -> None:
    with (
        ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool,
        stop_workers_on_error(pool),
    ):
        job = pool.submit(pow, 2, 10)
    assert job.result() == 1024
