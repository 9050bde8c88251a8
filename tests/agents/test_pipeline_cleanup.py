"""A failed bc_from_video pipeline leaves no half-made output folder."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

import agents.pipeline as pipeline
from agents.pipeline import PipelineConfig, run_pipeline


def test_failure_after_the_output_folder_was_made_removes_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Path] = []

    def fail_later(*args: object, **kwargs: object) -> None:
        # By now the output folder exists: fail as a crashed stage would.
        made.extend((tmp_path / "runs" / "bc_from_video").iterdir())
        raise RuntimeError("stage crashed")

    monkeypatch.setattr(pipeline, "_tokenizer", fail_later)
    with pytest.raises(RuntimeError, match="stage crashed"):
        run_pipeline(PipelineConfig(agents=1), runs=tmp_path / "runs", root=str(tmp_path / "d"))
    assert len(made) == 1  # the folder had been made ...
    assert not made[0].exists()  # ... and is gone
    assert list((tmp_path / "runs" / "bc_from_video").iterdir()) == []


def test_a_stopped_pipeline_removes_its_output_folder_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SIGTERM (kill, a scheduler's stop) is a failure like any other: no half-made folder."""
    if threading.current_thread() is not threading.main_thread():
        pytest.skip("signals reach the main thread only; this runner runs tests elsewhere")
    made: list[Path] = []

    def stopped(*args: object, **kwargs: object) -> None:
        made.extend((tmp_path / "runs" / "bc_from_video").iterdir())
        os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(pipeline, "_tokenizer", stopped)
    handler = signal.getsignal(signal.SIGTERM)
    with pytest.raises(SystemExit) as stop:
        run_pipeline(PipelineConfig(agents=1), runs=tmp_path / "runs", root=str(tmp_path / "d"))
    assert stop.value.code == 128 + signal.SIGTERM
    assert len(made) == 1 and not made[0].exists()
    assert signal.getsignal(signal.SIGTERM) == handler  # the handler before is restored
