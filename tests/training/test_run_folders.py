"""Run folders as typed artifacts: a finished run is found only when its whole config equals the
one asked for, a differing one is named field by field, and missing or damaged files are named.

The folders are written by the artifacts' own writers (the ones the stages call), without any
training: seconds.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

import agents.benchmark as benchmark
import latentrl.presets as presets
from agents.pipeline import PipelineConfig
from latentrl.artifacts import (
    ModelRun,
    PipelineRun,
    TokenizerRun,
    describe,
    differences,
    find_decoder,
)
from latentrl.errors import ArtifactError
from latentrl.presets import get_preset
from latentrl.runs import as_stored, new_run_dir, write_json
from latentrl.stages import model_config_for

TINY = get_preset("tiny")


def tokenizer_run(runs: Path, train_steps: int = 3, finished: bool = True) -> TokenizerRun:
    train = dataclasses.replace(TINY.tokenizer_train, steps=train_steps)
    run = TokenizerRun(new_run_dir(runs, TINY.data, "tokenizer", train.seed))
    run.write_settings(TINY.data, TINY.tokenizer, train)
    run.tokenizer_dir.mkdir()
    write_json(run.tokenizer_dir / "config.json", dataclasses.asdict(TINY.tokenizer))
    (run.tokenizer_dir / "model.safetensors").write_bytes(b"")
    if finished:
        run.write_results({"steps": train_steps})
    return run


def tokenizer_settings(train_steps: int = 3) -> dict[str, Any]:
    train = dataclasses.replace(TINY.tokenizer_train, steps=train_steps)
    return TokenizerRun.settings_for(TINY.data, TINY.tokenizer, train)


def model_settings(tok: TokenizerRun, steps: int = 5) -> tuple[Any, Any, dict[str, Any]]:
    model = model_config_for(TINY.model, tok.tokenizer_config(), TINY.data)
    train = dataclasses.replace(TINY.train, steps=steps)
    return model, train, ModelRun.settings_for(model, train, TINY.stage, tok)


def model_run(runs: Path, tok: TokenizerRun, steps: int = 5, finished: bool = True) -> ModelRun:
    model, train, _ = model_settings(tok, steps)
    run = ModelRun(new_run_dir(runs, TINY.data, model.model, train.seed))
    run.write_settings(TINY.data, model, train, TINY.stage, tok)
    run.model_dir.mkdir()
    (run.model_dir / "model.safetensors").write_bytes(b"")
    if finished:
        run.write_results({"steps": steps})
    else:
        (run.path / "checkpoints" / "latest").mkdir(parents=True)
    return run


def test_differences_name_every_differing_field() -> None:
    stored = as_stored({"train": TINY.train, "data": TINY.data})
    assert differences(stored, stored) == []
    wanted = as_stored(
        {"train": dataclasses.replace(TINY.train, steps=7, lr=0.5), "data": TINY.data}
    )
    found = differences(stored, wanted)
    assert [d.field for d in found] == ["train.lr", "train.steps"]
    assert f"train.steps: {TINY.train.steps} -> 7" in describe(found)
    missing = differences({"a": 1}, {"a": 1, "b": 2})
    assert [str(d) for d in missing] == ["b: (not set) -> 2"]


def test_a_tokenizer_run_is_reused_only_with_equal_settings(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    assert TokenizerRun.find(runs, tokenizer_settings()) is None  # no runs folder yet
    old = tokenizer_run(runs)
    new = tokenizer_run(runs)
    os.utime(old.path, (1, 1))  # the newest of two equal runs wins
    assert TokenizerRun.find(runs, tokenizer_settings()) == new
    assert TokenizerRun.find(runs, tokenizer_settings(train_steps=4)) is None
    assert [d.field for d in differences(new.settings(), tokenizer_settings(4))] == ["train.steps"]
    # The input a model run picks when none is named compares the data only.
    assert TokenizerRun.newest_on(runs, TINY.data) == new
    assert TokenizerRun.newest_on(runs, dataclasses.replace(TINY.data, agents=3)) is None


def test_an_unfinished_run_is_only_resumed(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    tok = tokenizer_run(runs)
    stopped = model_run(runs, tok, finished=False)
    _, _, settings = model_settings(tok)
    assert ModelRun.find(runs, "flam", settings) is None
    assert ModelRun.find_resumable(runs, "flam", settings) == stopped
    _, _, other = model_settings(tok, steps=6)
    assert ModelRun.find_resumable(runs, "flam", other) is None


def test_a_model_run_compares_the_whole_config_and_the_tokenizer_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runs = tmp_path / "runs"
    tok = tokenizer_run(runs)
    run = model_run(runs, tok)
    model, train, settings = model_settings(tok)
    assert ModelRun.find(runs, "flam", settings) == run
    assert ModelRun.find(runs, "lam", settings) is None
    # The same tokenizer run named by a relative path is the same run.
    monkeypatch.chdir(tmp_path)
    relative = TokenizerRun(tok.path.relative_to(tmp_path))
    assert ModelRun.find(runs, "flam", ModelRun.settings_for(model, train, TINY.stage, relative))
    # The stage config is part of the settings: a differing probe count is a different run.
    stage = dataclasses.replace(TINY.stage, probe_windows=TINY.stage.probe_windows + 1)
    wanted = ModelRun.settings_for(model, train, stage, tok)
    assert ModelRun.find(runs, "flam", wanted) is None
    assert [d.field for d in differences(run.settings(), wanted)] == ["stage.probe_windows"]
    other_tok = tokenizer_run(runs, train_steps=9)
    wanted = ModelRun.settings_for(model, train, TINY.stage, other_tok)
    assert [d.field for d in differences(run.settings(), wanted)] == ["tokenizer_run"]


def test_a_run_made_before_a_config_field_existed_reads_it_as_its_default(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    tok = tokenizer_run(runs)
    run = model_run(runs, tok)
    model, train, settings = model_settings(tok)
    stored = json.loads(run.config_path.read_text())
    assert stored["model"]["idm_delta"] is False and "idm_delta" in settings["model"]
    del stored["model"]["idm_delta"], stored["train"]["seed"]  # as written before they existed
    run.config_path.write_text(json.dumps(stored))
    assert ModelRun.find(runs, "flam", settings) == run
    other = dataclasses.replace(train, seed=train.seed + 1)  # not the default: a different run
    assert ModelRun.find(runs, "flam", ModelRun.settings_for(model, other, TINY.stage, tok)) is None


def test_a_damaged_config_of_a_candidate_is_named(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    tok = tokenizer_run(runs)
    tok.config_path.write_text("{not json")
    with pytest.raises(ArtifactError, match=str(tok.config_path)):
        TokenizerRun.find(runs, tokenizer_settings())


def test_opening_a_model_run_names_what_is_missing(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    tok = tokenizer_run(runs)
    run = model_run(runs, tok)
    assert ModelRun.open(run.path).tokenizer_run == TokenizerRun(tok.path.resolve())
    (run.model_dir / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"model/model\.safetensors.*--resume"):
        ModelRun.open(run.path)
    run = model_run(runs, tok)
    (tok.tokenizer_dir / "model.safetensors").unlink()
    with pytest.raises(FileNotFoundError, match=r"tokenizer/model\.safetensors"):
        ModelRun.open(run.path)
    run.config_path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="not a latent-action-model run"):
        ModelRun.open(run.path)
    with pytest.raises(ArtifactError, match=str(run.config_path)):
        run.config()


def test_missing_and_damaged_results_and_codes_are_named(tmp_path: Path) -> None:
    tok = tokenizer_run(tmp_path / "runs", finished=False)
    with pytest.raises(FileNotFoundError, match="not a finished tokenizer run"):
        TokenizerRun.open(tok.path)
    with pytest.raises(FileNotFoundError, match=str(tok.path / "results.json")):
        tok.results()
    tok.write_results([1])
    with pytest.raises(ArtifactError, match="expected a JSON object of results"):
        tok.results()
    with pytest.raises(FileNotFoundError, match=r"no 'test' codes at .*codes/test\.safetensors"):
        tok.codes("test")


def test_a_decoder_is_found_through_the_pipeline_run_that_trained_it(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    tok = tokenizer_run(runs)
    run = model_run(runs, tok)
    assert find_decoder(run.path) is None
    out = PipelineRun.create(runs, "MultiGrid-Goal-8x8-N4-v0", 0)
    write_json(out.decoder_dir("flam") / "config.json", {})
    out.write_results({"model_runs": {"flam": str(run.path)}, "tokenizer_run": str(tok.path)})
    assert find_decoder(run.path) == out.decoder_dir("flam")
    assert PipelineRun.open_with(out.path, "flam").model_run("flam") == run
    with pytest.raises(FileNotFoundError, match="decoder_lam"):
        PipelineRun.open_with(out.path, "lam")


def test_a_benchmark_cell_is_reused_only_with_an_equal_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    ran: list[PipelineConfig] = []

    def fake_pipeline(cfg: PipelineConfig, **_: object) -> dict[str, Any]:
        ran.append(cfg)
        method = {"success_rate": cfg.bc_steps / 10_000, "mean_return": 0.0}
        return {"out": str(tmp_path / str(len(ran))), "wall_seconds": 1.0, "methods": {"x": method}}

    monkeypatch.setattr(benchmark, "run_pipeline", fake_pipeline)
    monkeypatch.setattr(benchmark, "plot_success", lambda *a: None)
    monkeypatch.setattr(benchmark, "BENCHMARK_METHODS", ("x",))

    def bench(cfg: PipelineConfig) -> dict[str, Any]:
        return benchmark.run_benchmark(cfg, [1], [0], out=tmp_path / "b", runs=tmp_path / "r")

    first = bench(PipelineConfig(bc_steps=2500))
    assert len(ran) == 1 and first["rows"]["1"]["x"]["success_mean"] == 0.25
    bench(PipelineConfig(bc_steps=2500))
    assert len(ran) == 1 and "reused" in capsys.readouterr().out
    again = bench(PipelineConfig(bc_steps=3000))
    assert len(ran) == 2 and "bc_steps: 2500 -> 3000" in capsys.readouterr().out
    assert again["rows"]["1"]["x"]["success_mean"] == 0.3  # the new config's figure

    # The same flags under a changed preset (here: the LAM's steps) are recomputed too.
    tiny = get_preset("tiny")
    changed = dataclasses.replace(tiny, steps_by_model=(("lam", 7), *tiny.steps_by_model[1:]))
    monkeypatch.setitem(presets.PRESETS, "tiny", changed)
    bench(PipelineConfig(bc_steps=3000))
    assert len(ran) == 3 and "preset.steps_by_model" in capsys.readouterr().out
