"""bc_from_video.py end to end for every latent-action family, at tiny settings (a few steps of
every stage): FLAM and LAM with FSQ, Gaussian and sparse latent actions run through decoder,
controller, labelling, cloning and the planner, and write results.json. Nothing here measures
quality; the figures only have to be there and be in range."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.agents.test_pipeline_script import run_script

TINY = (
    "--agents",
    "2",
    "--wm-episodes",
    "24",
    "--expert-episodes",
    "4",
    "--episodes",
    "2",
    "--tokenizer-steps",
    "10",
    "--model-steps",
    "10",
    "--flam-candidates",
    "1",
    "--decoder-steps",
    "10",
    "--controller-steps",
    "10",
    "--bc-steps",
    "5",
    "--jobs",
    "1",
    "--label-fraction",
    "0.2",
    "--methods",
    "random",
    "bc_flam",
    "bc_lam",
    "planner_flam",
)


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One data and runs folder for the families: the video and the tokenizer are reused."""
    return tmp_path_factory.mktemp("families")


@pytest.mark.slow
@pytest.mark.parametrize(
    ("kind", "planner"),
    [
        ("fsq", ("--planner-search", "cem", "--planner-horizon", "2")),
        ("gaussian", ("--planner-horizon", "2", "--planner-cem-population", "8")),
        ("sparse", ()),
    ],
)
def test_every_family_runs_the_pipeline(shared: Path, kind: str, planner: tuple[str, ...]) -> None:
    before = set((shared / "runs" / "bc_from_video").glob("*/results.json"))
    out = run_script(shared, *TINY, "--action-kind", kind, *planner)
    assert out.returncode == 0, out.stderr[-3000:]
    (path,) = set((shared / "runs" / "bc_from_video").glob("*/results.json")) - before
    results = json.loads(path.read_text())
    assert results["config"]["action_kind"] == kind
    methods = results["methods"]
    assert set(methods) == {"random", "bc_flam", "bc_lam", "planner_flam"}
    # Every part of every branch is timed, and a branch's total is the sum of its parts.
    seconds = results["stage_seconds"]
    parts = ("load", "decoder", "controller", "labels", "bc", "evaluate_bc")
    for model in ("flam", "lam"):
        assert all(seconds[f"{model}:{part}"] >= 0 for part in parts), seconds
        total = sum(v for k, v in seconds.items() if k.startswith(f"{model}:"))
        assert abs(seconds[f"decode_clone_evaluate_{model}"] - total) < 1e-6, seconds
        # The controller starts after the decoder, so the branch lasts at least both in turn.
        chain = sum(
            seconds[f"{model}:{p}"] for p in ("load", "decoder", "load_controller", "controller")
        )
        assert seconds[f"branch_wall_{model}"] >= chain, seconds
    assert seconds["flam:planner"] > 0 and seconds["reference:evaluate_random"] > 0, seconds
    for name in ("bc_flam", "bc_lam"):
        m = methods[name]
        assert 0.0 <= m["decoder_accuracy"] <= 1.0
        assert 0.0 <= m["controller_accuracy"] <= 1.0
        assert 0.0 <= m["controller"]["token_error"] <= 1.0
    search = methods["planner_flam"]["planner"]["search"]
    assert search == ("controller" if kind == "fsq" and not planner else "cem")
    assert methods["planner_flam"]["seconds_per_step"] > 0
    model = json.loads((Path(results["model_runs"]["flam"]) / "model" / "config.json").read_text())
    assert model["action_kind"] == kind
    assert (path.parent / "controller_flam" / "model.safetensors").is_file()


def test_a_code_search_with_continuous_latents_is_refused_before_any_work(tmp_path: Path) -> None:
    out = run_script(
        tmp_path, "--action-kind", "gaussian", "--planner-search", "controller", timeout=300
    )
    assert out.returncode != 0
    assert "use --planner-search cem or auto" in out.stderr
    assert not (tmp_path / "data").exists()  # nothing generated
