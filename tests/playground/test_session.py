"""The play session on the toy world (exact by construction): selection, stepping, the others
rule, undo/reset/new start, labels, pictures and exports."""

from __future__ import annotations

import io
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image

from latentrl.decoder import ActionDecoder, DecoderConfig
from latentrl.playground.session import PlaySession
from tests.playground.toy import RIGHT, TOKEN_PX, sprite_centres, toy_run


def changed_pixels(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.abs(a.astype(int) - b.astype(int)).max(-1) > 0


@pytest.fixture
def session(tmp_path: Path) -> PlaySession:
    return PlaySession(toy_run(tmp_path), horizon=8)


def test_click_selects_the_slot_and_a_code_moves_only_that_sprite(session: PlaySession) -> None:
    centres = sprite_centres(session.frames[0].codes[0])
    x, y = centres[1]
    entity = session.select(x, y)
    assert entity.slots == (1,)
    before = session.frames[-1].image
    session.step(code=RIGHT)
    after = session.frames[-1].image
    diff = changed_pixels(before, after)
    ys, xs = np.nonzero(diff)
    # Sprite 1 left its token and entered the one to the right: nothing else changed.
    assert diff.sum() == 2 * TOKEN_PX * TOKEN_PX
    assert xs.min() >= x - TOKEN_PX and xs.max() <= x + 1.5 * TOKEN_PX
    assert ys.min() >= y - TOKEN_PX and ys.max() <= y + TOKEN_PX
    assert session.frames[-1].label == "slots [1]: code 5"


def test_others_follow_null_or_the_video(session: PlaySession) -> None:
    start = session.frames[0].image
    session.step()  # nothing selected, others on null: nothing moves
    assert np.array_equal(session.frames[-1].image, start)
    session.reset()
    session.set_others("video")
    for _ in range(3):
        session.step()
    video = session.run.decode(session.scene.codes[0, :4])
    assert np.array_equal(np.stack([f.image for f in session.frames]), video)
    with pytest.raises(ValueError, match="others"):
        session.set_others("random")


def test_undo_reset_and_new_start(session: PlaySession) -> None:
    session.select(*sprite_centres(session.frames[0].codes[0])[0])
    assert not session.undo()
    session.step(code=RIGHT)
    session.step(code=RIGHT)
    assert len(session.frames) == 3
    assert session.undo() and len(session.frames) == 2
    session.reset()
    assert len(session.frames) == 1 and session.selected is not None
    session.new_start()
    assert len(session.frames) == 1 and session.selected is None
    assert session.scene.steps >= 1


def test_scene_model_moves_everything(tmp_path: Path) -> None:
    session = PlaySession(toy_run(tmp_path, factored=False), horizon=8)
    entity = session.select(1.0, 1.0)
    assert entity.slots == (0,)
    before = session.frames[0].image
    session.step(code=RIGHT)
    moved = changed_pixels(before, session.frames[-1].image).sum()
    assert moved == 3 * 2 * TOKEN_PX * TOKEN_PX  # every sprite moved


def test_labels_outlines_and_downloads(session: PlaySession) -> None:
    assert [c.label for c in session.code_choices()] == [f"code {i}" for i in range(9)]
    plain = session.picture(outlines=False)
    assert plain.shape == (512, 512, 3)
    session.select(*sprite_centres(session.frames[0].codes[0])[2])
    outlined = session.picture(outlines=True)
    assert (outlined == 255).all(-1).sum() > 0  # the selected slot's white ring
    assert not np.array_equal(plain, outlined)
    session.step(code=RIGHT)
    gif = Image.open(io.BytesIO(session.gif()))
    assert gif.n_frames == 2 and gif.size == (256, 256)
    with av.open(io.BytesIO(session.mp4())) as video:
        assert sum(1 for _ in video.decode(video=0)) == 2
    with pytest.raises(ValueError, match="outside"):
        session.select(-1, 5)
    with pytest.raises(ValueError, match="exactly one"):
        session.step(code=1, vector=[0.0, 0.0])


@pytest.mark.parametrize("factored", [True, False])
def test_code_labels_come_from_the_decoder(tmp_path: Path, factored: bool) -> None:
    torch.manual_seed(0)
    decoder = ActionDecoder(DecoderConfig(), state_dim=3, action_dim=2, num_agents=3, num_actions=5)
    session = PlaySession(toy_run(tmp_path, factored), decoder.eval(), horizon=8)
    assert [c.label for c in session.code_choices()] == [f"code {i}" for i in range(9)]
    session.select(*sprite_centres(session.frames[0].codes[0])[0])
    probs = session.decoded()
    assert probs is not None and probs.shape == (9, 3, 5)
    labels = [c.label for c in session.code_choices()]
    if factored:
        agent = session.controlled_agent()
        assert agent is not None
        for c, label in enumerate(labels):
            u = int(probs[c, agent].argmax())
            assert label == f"action {u} {float(probs[c, agent, u]):.0%}"
    else:
        assert session.controlled_agent() is None
        assert all(label.count(":action") == 3 for label in labels)
