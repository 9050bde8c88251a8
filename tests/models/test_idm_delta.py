"""``idm_delta``: the scene inverse dynamics models read changes only.

A transition in which nothing changes must get one and the same latent action whatever the
frame shows (the change features are exactly zero); without ``idm_delta`` the latent also
depends on the frame's content; with it, a transition in which one token changes still moves
the latent.
"""

from __future__ import annotations

import pytest
import torch

from tests.models.tiny import CODEBOOK, random_batch, tiny_model


def static_windows() -> torch.Tensor:
    """Two windows of two identical frames, different between the windows ``(2, 2, n)``."""
    first = random_batch(b=2, t=2).codes[:, :1]
    return torch.cat([first, first], dim=1)


def latent_means(kind: str, delta: bool, codes: torch.Tensor) -> torch.Tensor:
    model = tiny_model(kind, action_kind="gaussian", idm_delta=delta).eval()
    with torch.no_grad():
        return model.infer_latent_actions(codes).actions


# Not OC+LAM: its states are slots, which slot attention refines from one frame to the next
# even when the frame does not change, so its "nothing changed" is a slot's change.
@pytest.mark.parametrize("kind", ["lam", "lapo"])
def test_unchanged_frames_give_one_latent_whatever_they_show(kind: str) -> None:
    codes = static_windows()
    with_delta = latent_means(kind, True, codes)
    torch.testing.assert_close(with_delta[0], with_delta[1], atol=1e-5, rtol=0)
    without = latent_means(kind, False, codes)
    assert not torch.allclose(without[0], without[1], atol=1e-3)


@pytest.mark.parametrize("kind", ["lam", "oclam", "lapo"])
def test_a_changed_token_moves_the_delta_latent(kind: str) -> None:
    codes = static_windows()
    moved = codes.clone()
    moved[:, 1, 5] = (moved[:, 1, 5] + 1) % CODEBOOK
    still, changed = latent_means(kind, True, codes), latent_means(kind, True, moved)
    assert not torch.allclose(still, changed, atol=1e-4)


def test_idm_delta_is_refused_where_there_is_no_scene_idm() -> None:
    with pytest.raises(ValueError, match="idm_delta"):
        tiny_model("flam", idm_delta=True)
