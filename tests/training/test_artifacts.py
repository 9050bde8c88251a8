"""Run artifacts that are damaged, foreign or absurd are refused, naming the file.

A crafted corpus (each case written by the test into a tmp folder) over the model folder, the
checkpoint folder and the encoded-code cache, then a hypothesis fuzz over the model folder:
every case is an :class:`~latentrl.errors.ArtifactError` whose message names the file, or a
load that reproduces the saved weights; reading never changes a file (SHA-256 before/after).
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safetensors.torch import save_file

import latentrl.models as models
from latentrl.checkpoint import load_checkpoint, save_checkpoint
from latentrl.data.codes import CodeCache
from latentrl.errors import ArtifactError
from latentrl.models import LatentActionModel
from tests.models.tiny import random_batch, tiny_model


def digests(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, torch.Tensor]]:
    folder = tmp_path_factory.mktemp("model") / "model"
    model = tiny_model("flam", action_norm=True)
    model.save(folder)
    return folder, {k: v.clone() for k, v in model.state_dict().items()}


def copy(src: Path, tmp: Path) -> Path:
    dst = tmp / "model"
    shutil.copytree(src, dst)
    return dst


def refused(folder: Path, name: str) -> str:
    with pytest.raises(ArtifactError) as err:
        LatentActionModel.load(folder)
    message = str(err.value)
    assert str(folder / name) in message, message
    assert "expected" in message and "found" in message and "Fix" in message, message
    return message


def test_intact_folder_loads_the_saved_weights(saved, tmp_path: Path) -> None:
    folder, state = saved
    loaded = LatentActionModel.load(copy(folder, tmp_path))
    for name, value in state.items():
        torch.testing.assert_close(loaded.state_dict()[name], value, rtol=0, atol=0)


def test_damaged_weights_file(saved, tmp_path: Path) -> None:
    folder = copy(saved[0], tmp_path)
    path = folder / "model.safetensors"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    refused(folder, "model.safetensors")
    path.write_bytes(b"\xff" * 64)
    refused(folder, "model.safetensors")


def test_flipped_tensor_byte_is_caught_by_the_digest(saved, tmp_path: Path) -> None:
    folder = copy(saved[0], tmp_path)
    path = folder / "model.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x40  # inside the last tensor's bytes
    path.write_bytes(bytes(data))
    assert "damaged" in refused(folder, "model.safetensors")


def test_foreign_and_misshaped_tensors(saved, tmp_path: Path) -> None:
    folder, state = saved
    folder = copy(folder, tmp_path)
    save_file({"encoder.weight": torch.zeros(3, 3)}, str(folder / "model.safetensors"))
    assert "missing" in refused(folder, "model.safetensors")
    name = next(k for k, v in state.items() if v.ndim == 2)
    wrong = dict(state)
    wrong[name] = torch.zeros(state[name].shape[0] + 1, state[name].shape[1])
    save_file({k: v.contiguous() for k, v in wrong.items()}, str(folder / "model.safetensors"))
    assert name in refused(folder, "model.safetensors")


def test_bad_json_config(saved, tmp_path: Path) -> None:
    folder = copy(saved[0], tmp_path)
    (folder / "config.json").write_text('{"d_model": 32,')
    refused(folder, "config.json")
    (folder / "config.json").write_text("[1, 2]")
    refused(folder, "config.json")


@pytest.mark.parametrize(
    "field, value",
    [("d_model", 10**7), ("num_slots", 10**6), ("grid", 10**5), ("action_levels", [1000] * 20)],
)
def test_absurd_config_value_is_refused_before_building(
    saved, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str, value: object
) -> None:
    folder = copy(saved[0], tmp_path)
    config = json.loads((folder / "config.json").read_text())
    config[field] = value
    (folder / "config.json").write_text(json.dumps(config))

    def no_build(*args: object, **kwargs: object) -> None:
        raise AssertionError("the model was built from an absurd config")

    monkeypatch.setattr(models, "build_model", no_build)
    assert field in refused(folder, "config.json")


def test_checkpoint_refusals(tmp_path: Path) -> None:
    model = tiny_model("lam")
    optimizer = torch.optim.AdamW(model.parameters())
    model.loss(random_batch())[0].backward()
    optimizer.step()
    ckpt = tmp_path / "latest"
    save_checkpoint(ckpt, model, optimizer, {"step": 3})
    fresh = tiny_model("lam", seed=5)
    assert load_checkpoint(ckpt, fresh, torch.optim.AdamW(fresh.parameters()))["step"] == 3
    (ckpt / "state.json").write_text("{not json")
    with pytest.raises(ArtifactError, match=re.escape(str(ckpt / "state.json"))):
        load_checkpoint(ckpt, fresh, torch.optim.AdamW(fresh.parameters()))
    save_checkpoint(ckpt, model, optimizer, {"step": 3})
    other = tiny_model("wm")  # another model's optimizer state
    with pytest.raises(ArtifactError, match=re.escape(str(ckpt / "model.safetensors"))):
        load_checkpoint(ckpt, other, torch.optim.AdamW(other.parameters()))


def test_code_cache_refusals(tmp_path: Path) -> None:
    path = tmp_path / "train.safetensors"
    codes = np.arange(24, dtype=np.int16).reshape(6, 4) % 16
    CodeCache(codes, np.array([0, 3, 6], np.int64)).save(path)
    assert CodeCache.load(path, codebook_size=16).num_frames == 6
    with pytest.raises(ArtifactError, match=r"codes in \[0, 8\)"):
        CodeCache.load(path, codebook_size=8)
    CodeCache(codes, np.array([0, 3, 5], np.int64)).save(path)
    with pytest.raises(ArtifactError, match="episode_starts"):
        CodeCache.load(path)
    CodeCache(codes.astype(np.float32), np.array([0, 6], np.int64)).save(path)  # type: ignore[arg-type]
    with pytest.raises(ArtifactError, match="integer"):
        CodeCache.load(path)
    path.write_bytes(b"\x00" * 10)
    with pytest.raises(ArtifactError, match=re.escape(str(path))):
        CodeCache.load(path)


# -- fuzz -----------------------------------------------------------------------------------
# Integers either small or absurd: mid-sized ones (d_model 5000) are legal and would make the
# test build multi-GB models before the weights check refuses them.
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-2, 64)
    | st.integers(10**6, 10**12)
    | st.floats(allow_nan=True)
    | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner),
    max_leaves=5,
)
FUZZ = settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def check_load(folder: Path, state: dict[str, torch.Tensor]) -> None:
    before = digests(folder)
    try:
        loaded = LatentActionModel.load(folder)
    except ArtifactError as e:
        assert str(folder) in str(e), str(e)
    else:
        got = loaded.state_dict()
        assert got.keys() == state.keys()
        for name, value in state.items():
            assert torch.equal(got[name], value), f"{name} loaded as other values"
    assert digests(folder) == before, "loading changed a file"


@FUZZ
@given(data=st.data())
def test_fuzz_weights_bytes(saved, data: st.DataObject) -> None:
    src, state = saved
    with tempfile.TemporaryDirectory() as tmp:
        folder = copy(src, Path(tmp))
        path = folder / "model.safetensors"
        raw = bytearray(path.read_bytes())
        if data.draw(st.booleans()):
            offset = data.draw(st.integers(0, len(raw) - 1))
            junk = data.draw(st.binary(min_size=1, max_size=16))
            raw[offset : offset + len(junk)] = junk[: len(raw) - offset]
        else:
            raw = raw[: data.draw(st.integers(0, len(raw) - 1))]
        path.write_bytes(bytes(raw))
        check_load(folder, state)


@FUZZ
@given(data=st.data())
def test_fuzz_config_json(saved, data: st.DataObject) -> None:
    src, state = saved
    with tempfile.TemporaryDirectory() as tmp:
        folder = copy(src, Path(tmp))
        config = json.loads((folder / "config.json").read_text())
        how = data.draw(st.sampled_from(["value", "drop", "add", "text"]))
        if how == "text":
            (folder / "config.json").write_text(data.draw(st.text(max_size=30)))
        else:
            if how == "add":
                config[data.draw(st.text(min_size=1, max_size=6))] = 1
            else:
                key = data.draw(st.sampled_from(sorted(config)))
                if how == "drop":
                    del config[key]
                else:
                    config[key] = data.draw(json_values)
            (folder / "config.json").write_text(json.dumps(config))
        check_load(folder, state)
