"""Dataset ids follow the paper's convention; splits get disjoint seeds and exact counts."""

from __future__ import annotations

import pytest
from minari.dataset.minari_dataset import parse_dataset_id

from latentrl.data.naming import (
    multigrid_dataset_id,
    procgen_dataset_id,
    split_counts,
    split_of,
    split_seed_ranges,
)


def test_paper_ids() -> None:
    assert multigrid_dataset_id("empty", 4) == "multigrid/empty-agent_4-v0"
    assert multigrid_dataset_id("empty", 4, split="val") == "multigrid/empty-agent_4-v1"
    assert multigrid_dataset_id("empty", 4, split="test") == "multigrid/empty-agent_4-v2"
    assert multigrid_dataset_id("goal", 4, policy="expert") == "multigrid/goal-agent_4-expert-v0"
    assert procgen_dataset_id("Coinrun") == "procgen/coinrun-v0"


def test_non_default_fields_are_named() -> None:
    got = multigrid_dataset_id("goal", 2, policy="noisy-expert", size=8, tile_size=2, split="val")
    assert got == "multigrid/goal-agent_2-noisy_expert-size_8-tile_2-v1"
    assert procgen_dataset_id("bigfish", frame_size=128) == "procgen/bigfish-px_128-v0"


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_ids_parse_in_minari_and_back(split: str) -> None:
    dataset_id = multigrid_dataset_id("goal", 16, policy="noisy-expert", size=16, split=split)
    namespace, _, version = parse_dataset_id(dataset_id)
    assert namespace == "multigrid"
    assert split_of(dataset_id) == split
    assert version == ["train", "val", "test"].index(split)


def test_bad_split_and_id() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        multigrid_dataset_id("empty", 4, split="validation")
    with pytest.raises(ValueError, match="-v0/-v1/-v2"):
        split_of("multigrid/empty-agent_4-v7")


def test_split_counts_sum_and_ratios() -> None:
    assert split_counts(1000, [80, 10, 10]) == [800, 100, 100]
    assert split_counts(1000, [0.8, 0.1, 0.1]) == [800, 100, 100]
    assert split_counts(4, [80, 10, 10]) == [3, 1, 0]
    assert split_counts(7, [1, 0, 0]) == [7, 0, 0]
    for total in range(30):
        assert sum(split_counts(total, [80, 10, 10])) == total
    with pytest.raises(ValueError, match="positive sum"):
        split_counts(10, [0, 0, 0])


def test_split_seeds_are_disjoint_and_consecutive() -> None:
    ranges = split_seed_ranges(100, [8, 1, 1])
    assert [list(r) for r in ranges] == [list(range(100, 108)), [108], [109]]
