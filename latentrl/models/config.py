"""Configuration shared by FLAM and its baselines (one code path, one config)."""

from __future__ import annotations

import dataclasses
from typing import Literal

from latentrl.config import opt
from latentrl.quantize import BottleneckConfig

ModelKind = Literal["flam", "lam", "oclam", "wm", "lapo"]


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Architecture of a latent action model (stage 2)."""

    model: ModelKind = opt(
        "flam",
        "flam (per-slot latent actions), lam, oclam (LAM + reconstruction), lapo (LAPO-style: "
        "CNN inverse dynamics over 3 stacked frames, UNet forward model) or wm (true actions)",
    )
    d_model: int = opt(64, "model width (paper: 256)")
    heads: int = opt(4, "attention heads")
    blocks: int = opt(1, "spatio-temporal blocks in the IDM and FDM (paper: 2)")
    num_slots: int = opt(5, "K, factors/slots (FLAM, OC+LAM; paper: 4 MultiGrid, 32 Procgen)")
    slot_iters_first: int = opt(3, "slot-attention iterations on the first frame")
    slot_iters: int = opt(1, "slot-attention iterations on later frames (recursive init)")
    slot_scale: float = opt(10.0, "multiplier of the slot-attention logits (sharper competition)")
    slot_init: Literal["learned", "seeded"] = opt(
        "seeded",
        "first-frame slots: learned vectors, or seeded from the frame's own tokens by "
        "farthest-point sampling (each distinct-looking token seeds its own slot)",
    )
    recursive_init: bool = opt(True, "initialise frame t+1's slots from frame t's (paper default)")
    action_kind: Literal["fsq", "gaussian", "sparse"] = opt("fsq", "latent action bottleneck")
    action_levels: tuple[int, ...] = opt((5,), "FSQ levels of one latent action (paper: [2,2])")
    action_positions: int = opt(
        1,
        "lam: code positions of the scene latent action (Genie/LAPO-style): that many pooled "
        "queries, each quantised with FSQ action_levels; the scene latent holds them all "
        "(len(action_levels) x positions values, prod(levels)^positions codes)",
    )
    action_dim: int = opt(8, "continuous latent action dimension (gaussian, sparse)")
    beta: float = opt(0.01, "KL weight (gaussian)")
    action_center: float = opt(
        0.0,
        "fsq: weight of a penalty on each pre-quantization dimension's batch mean, which keeps "
        "a dimension from drifting into tanh saturation where every slot gets the same level",
    )
    action_norm: bool = opt(
        False,
        "fsq: batch-normalise each pre-quantization dimension (no learnable scale or shift), so "
        "that no dimension can sit at one level for every slot (a dead dimension)",
    )
    action_whiten: bool = opt(
        False,
        "fsq: whiten the pre-quantization values over the batch (zero mean, identity "
        "covariance): like --action-norm, and two dimensions cannot become one",
    )
    l1: float = opt(0.01, "L1 weight (sparse)")
    vc: float = opt(0.01, "variance/covariance weight (sparse)")
    pos_init: Literal["sincos", "small"] = opt(
        "sincos",
        "initial token position embedding (learned either way): 2D sin/cos (slots start "
        "spatially local, so separate agents can win separate slots) or small random",
    )
    pos_slots: bool = opt(
        True,
        "FLAM: carry each slot's attention centroid (in cells) with it; the IDM sees the "
        "centroid's displacement, the FDM predicts its move, the gauss readout draws around it",
    )
    move_input: Literal["action", "slot"] = opt(
        "action",
        "FLAM pos_slots: the predicted centroid move reads the slot's latent action only "
        "(no history leak) or the predicted slot plus its action",
    )
    aggregator: Literal["parallel", "autoregressive"] = opt("parallel", "patch decoding order")
    readout: Literal["auto", "xattn", "mix", "gauss"] = opt(
        "auto",
        "aggregator readout: cross-attention, slot mixture, or gauss (per-patch softmax over "
        "slots of a Gaussian kernel around each slot's centroid; FLAM with pos_slots only); "
        "auto = gauss for FLAM with pos_slots, else xattn",
    )
    prediction: Literal["classification", "regression"] = opt(
        "classification", "CE on code indices or MSE on features"
    )
    subtokens: tuple[int, ...] = opt(
        (32, 32), "hierarchical sub-token sizes; product = codebook size"
    )
    pred_steps: int = opt(
        1, "prediction steps per window (paper: 5); >1 rolls the FDM on its own predictions"
    )
    changed_weight: float = opt(
        10.0, "loss weight of tokens that change between frames (1 = plain CE)"
    )
    idm_delta: bool = opt(
        False,
        "lam, oclam, lapo: the inverse dynamics model's change features minus their value had "
        "nothing changed, so that unchanged content contributes exactly nothing to the latent",
    )
    idm_conv: bool = opt(
        False,
        "lam: a convolutional inverse dynamics model over the token grid, on token content "
        "without absolute positions (LAPO's IDM is a CNN over stacked frames): its latent can "
        "say how things moved, not where",
    )
    scene_patch: int = opt(
        1,
        "lam, wm: cells per side merged into one state token (Genie/LAPO patchify); the "
        "spatial transformer then attends over grid^2/p^2 tokens, p^4 less attention",
    )
    lapo_channels: tuple[int, ...] = opt(
        (32, 64), "lapo: channels of the IMPALA inverse-dynamics stages and the UNet levels"
    )
    recon_weight: float = opt(1.0, "weight of the current-frame reconstruction loss (oclam)")
    num_agents: int = opt(4, "agents in the data (wm action input; probes)")
    agent_actions: int = opt(5, "real actions per agent (wm)")
    # Filled from the tokenizer when the model is built; not meant for the command line.
    codebook_size: int = opt(1024, "tokenizer codebook size (set from the tokenizer)")
    code_dim: int = opt(64, "tokenizer feature dimension (set from the tokenizer)")
    grid: int = opt(8, "tokens per side (set from the tokenizer)")

    def __post_init__(self) -> None:
        if self.scene_patch < 1 or self.grid % self.scene_patch:
            raise ValueError(
                f"scene_patch {self.scene_patch} does not divide the {self.grid}x{self.grid} "
                "token grid: pass train_lam.py --scene-patch with a divisor of the grid (1: no merging)"
            )
        if self.idm_delta and self.model not in ("lam", "oclam", "lapo"):
            raise ValueError(
                f"idm_delta changes the scene inverse dynamics of lam, oclam and lapo; "
                f"{self.model} has none"
            )
        if self.idm_conv and (self.model != "lam" or self.scene_patch > 1):
            raise ValueError(
                "idm_conv replaces the scene inverse dynamics of lam on its unmerged token grid; "
                f"got model {self.model} with scene_patch {self.scene_patch}"
            )
        if self.scene_patch > 1 and self.model not in ("lam", "wm"):
            raise ValueError(
                f"scene_patch merges the tokens of token-level models (lam, wm), not {self.model}'s"
            )

    @property
    def num_tokens(self) -> int:
        return self.grid**2

    @property
    def bottleneck(self) -> BottleneckConfig:
        positions = self.action_positions if self.model == "lam" else 1
        return BottleneckConfig(
            kind=self.action_kind,
            fsq_levels=tuple(self.action_levels) * positions,
            dim=self.action_dim,
            beta=self.beta,
            center=self.action_center,
            norm=self.action_norm,
            whiten=self.action_whiten,
            l1=self.l1,
            vc=self.vc,
        )

    @property
    def positional(self) -> bool:
        """Slots carry their centroid (FLAM with ``pos_slots``): states are ``d_model + 2`` wide."""
        return self.model == "flam" and self.pos_slots

    @property
    def resolved_readout(self) -> Literal["xattn", "mix", "gauss"]:
        """The aggregator readout ``auto`` stands for; gauss needs positional slots."""
        if self.readout == "auto":
            return "gauss" if self.positional else "xattn"
        if self.readout == "gauss" and not self.positional:
            raise ValueError(
                "readout gauss needs slot centroids: use train_lam.py --model flam with "
                "--pos-slots true"
            )
        return self.readout

    @property
    def conditioned_on_true_actions(self) -> bool:
        """The model reads the recorded actions instead of inferring latent ones (WM): it
        needs labelled windows and has no latent action to probe, decode or plan with."""
        return self.model == "wm"

    @property
    def factored(self) -> bool:
        """One latent action per slot (FLAM) rather than one per scene."""
        return self.model == "flam"
