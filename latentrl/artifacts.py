"""Run artifacts: the one module that knows what a run folder holds.

Every stage reads artifacts and writes one::

    DatasetSpec -> TokenizerRun -> ModelRun -> PipelineRun (decoders, controllers, policies)
                                        \\-> eval/ (world-model evaluation of the model run)

An artifact is a frozen view of one folder: it names its files (nothing else in the library
spells ``results.json``, ``config.json``, ``data.json`` or ``codes/``), loads what it holds, and
answers "is there a finished run of exactly these settings?" (:meth:`TokenizerRun.find`,
:meth:`ModelRun.find`). The settings of a run are the whole config it was made with, in the
JSON form it is stored in (:func:`latentrl.runs.as_stored`); :func:`differences` is the one
comparison of two such configs, and it names the fields that differ, so that a cached run or
cell is reused only when nothing differs and a refusal can say what did.

Folder layout (unchanged from the folders earlier versions wrote, so those still load):

- tokenizer run ``<runs>/<env>__tokenizer__<seed>__<time>/``: ``data.json`` (the
  :class:`~latentrl.data.recipes.DatasetSpec`), ``config.json`` (``tokenizer``, ``train``),
  ``tokenizer/`` (config + safetensors), ``codes/<split>.safetensors`` (every split encoded),
  ``results.json`` (written last: the run is finished);
- model run ``<runs>/<env>__<model>__<seed>__<time>/``: ``data.json``, ``config.json``
  (``model``, ``train``, ``stage``, ``tokenizer_run``), ``model/``, ``checkpoints/``,
  ``results.json`` (last), and ``eval/`` once evaluated;
- pipeline run ``<runs>/bc_from_video/<env id>__<seed>__<time>/``: ``decoder_<kind>/``,
  ``controller_<kind>/``, one folder per cloned policy, ``results.json``, ``table.md``.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

import torch

from latentrl.config import from_dict
from latentrl.data.recipes import DatasetSpec
from latentrl.errors import ArtifactError
from latentrl.runs import as_stored, read_json, write_json

if TYPE_CHECKING:
    # Imported where a file is loaded or written, so that a script that only reads results
    # (plot_probe.py, the benchmarks) does not import the models, the tokenizer and tensorboard.
    from latentrl.data.codes import CodeCache
    from latentrl.models import LatentActionModel, ModelConfig
    from latentrl.tokenizer import Tokenizer, TokenizerConfig
    from latentrl.train import TrainConfig

RESULTS = "results.json"
"""The figures of a finished run or experiment folder; written last, so its presence means done."""
CONFIG = "config.json"
DATA = "data.json"
CODES = "codes"
EVAL = "eval"
PIPELINE = "bc_from_video"
"""Folder (under a runs folder) of the video-to-policy pipeline's runs."""


# -- comparing settings ------------------------------------------------------------------------------
_MISSING = object()


@dataclasses.dataclass(frozen=True)
class Difference:
    """One setting that differs: its dotted name, the stored value and the wanted one."""

    field: str
    stored: Any
    wanted: Any

    def __str__(self) -> str:
        def show(v: Any) -> str:
            return "(not set)" if v is _MISSING else repr(v)

        return f"{self.field}: {show(self.stored)} -> {show(self.wanted)}"


def differences(stored: Any, wanted: Any, prefix: str = "") -> list[Difference]:
    """Every field in which two stored-form configs (:func:`latentrl.runs.as_stored`) differ,
    by dotted name; empty when they are equal. The one comparison of run settings."""
    if isinstance(stored, dict) and isinstance(wanted, dict):
        out = []
        for key in sorted(set(stored) | set(wanted), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            out += differences(stored.get(key, _MISSING), wanted.get(key, _MISSING), name)
        return out
    return [] if stored == wanted else [Difference(prefix or "(config)", stored, wanted)]


def describe(found: list[Difference], limit: int = 8) -> str:
    """``a.b: 1 -> 2, c: 'x' -> 'y'`` (the first ``limit`` differences)."""
    text = ", ".join(str(d) for d in found[:limit])
    return text + (f" and {len(found) - limit} more" if len(found) > limit else "")


# -- results of any experiment folder ----------------------------------------------------------------
def results_path(folder: Path) -> Path:
    return folder / RESULTS


def has_results(folder: Path) -> bool:
    """Whether ``folder`` holds the results of a finished run or experiment."""
    return results_path(folder).is_file()


def read_results(folder: Path) -> dict[str, Any]:
    """The results of a finished run or experiment folder (a JSON object)."""
    path = results_path(folder)
    data = read_json(path)
    if not isinstance(data, dict):
        raise ArtifactError(
            f"{path}: expected a JSON object of results, found {type(data).__name__}. Fix: "
            f"re-run the command that wrote {folder}, or restore the file."
        )
    return data


def write_results(folder: Path, results: Any) -> Path:
    """Write ``folder``'s results atomically; returns the file."""
    path = results_path(folder)
    write_json(path, results)
    return path


def _config_object(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """A run's ``config.json``, refused unless it is an object holding ``keys``."""
    stored = read_json(path)
    if not isinstance(stored, dict) or not set(keys) <= set(stored):
        found = sorted(stored) if isinstance(stored, dict) else type(stored).__name__
        raise ArtifactError(
            f"{path}: expected a JSON object with {list(keys)}, found {found}. Fix: pass the "
            "run folder the training command wrote, or restore the file."
        )
    return stored


R = TypeVar("R", bound="_Run")


@dataclasses.dataclass(frozen=True)
class _Run:
    """What every run folder under a runs folder shares: its files and the search for one."""

    path: Path
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ()

    @property
    def finished(self) -> bool:
        """Whether training ended and every output was written (``results.json`` is last)."""
        return has_results(self.path)

    @property
    def resumable(self) -> bool:
        """Whether an unfinished run has a checkpoint to continue from."""
        return not self.finished and (self.path / "checkpoints" / "latest").is_dir()

    @property
    def config_path(self) -> Path:
        return self.path / CONFIG

    @property
    def data_path(self) -> Path:
        return self.path / DATA

    def config(self) -> dict[str, Any]:
        """``config.json``: every config the run was trained with (JSON)."""
        return _config_object(self.config_path, self.CONFIG_KEYS)

    def data(self) -> DatasetSpec:
        """The dataset the run was trained on."""
        return from_dict(DatasetSpec, read_json(self.data_path), source=self.data_path)

    def results(self) -> dict[str, Any]:
        return read_results(self.path)

    def write_results(self, results: Any) -> Path:
        return write_results(self.path, results)

    def settings(self) -> dict[str, Any]:
        """The whole config the run was made with, as compared by :meth:`find`."""
        raise NotImplementedError

    @classmethod
    def candidates(cls: type[R], runs: Path, kind: str) -> Iterator[R]:
        """Run folders of ``kind`` under ``runs``, newest (modification time) first."""
        if not runs.is_dir():
            return
        found = sorted(runs.glob(f"*__{kind}__*"), key=lambda p: p.stat().st_mtime, reverse=True)
        yield from (cls(p) for p in found if p.is_dir())

    @classmethod
    def _find(
        cls: type[R], runs: Path, kind: str, settings: dict[str, Any], resumable: bool
    ) -> R | None:
        for run in cls.candidates(runs, kind):
            if (run.resumable if resumable else run.finished) and not differences(
                run.settings(), settings
            ):
                return run
        return None


# -- stage 1: the tokenizer ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class TokenizerRun(_Run):
    """A tokenizer run folder: the trained tokenizer and every split of its data as codes."""

    KIND: ClassVar[str] = "tokenizer"
    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("tokenizer", "train")

    @staticmethod
    def settings_for(
        data: DatasetSpec, tokenizer: TokenizerConfig, train: TrainConfig
    ) -> dict[str, Any]:
        """The settings of a tokenizer run trained with these configs."""
        return as_stored({"data": data, "tokenizer": tokenizer, "train": train})

    def settings(self) -> dict[str, Any]:
        return {"data": read_json(self.data_path), **_config_object(self.config_path, ())}

    @classmethod
    def find(cls, runs: Path, settings: dict[str, Any]) -> TokenizerRun | None:
        """The newest finished tokenizer run under ``runs`` of exactly these settings."""
        return cls._find(runs, cls.KIND, settings, resumable=False)

    @classmethod
    def find_resumable(cls, runs: Path, settings: dict[str, Any]) -> TokenizerRun | None:
        """The newest unfinished, checkpointed tokenizer run of exactly these settings."""
        return cls._find(runs, cls.KIND, settings, resumable=True)

    @classmethod
    def newest_on(cls, runs: Path, data: DatasetSpec) -> TokenizerRun | None:
        """The newest finished tokenizer run on ``data`` whatever its tokenizer settings: the
        input a model run picks when none is named (``train_lam.py`` without ``--tokenizer``)."""
        want = as_stored(data)
        for run in cls.candidates(runs, cls.KIND):
            if run.finished and not differences(read_json(run.data_path), want):
                return run
        return None

    @classmethod
    def open(cls, path: Path) -> TokenizerRun:
        """``path`` as a finished tokenizer run; raises naming what is missing."""
        run = cls(path)
        if not run.finished:
            raise FileNotFoundError(
                f"{path} is not a finished tokenizer run (no {RESULTS}): run "
                "experiments/train_tokenizer.py first, or pass a finished one as train_lam.py "
                "--tokenizer RUN_DIR"
            )
        return run

    def write_settings(
        self, data: DatasetSpec, tokenizer: TokenizerConfig, train: TrainConfig
    ) -> None:
        write_json(self.data_path, dataclasses.asdict(data))
        write_json(
            self.config_path,
            {"tokenizer": dataclasses.asdict(tokenizer), "train": dataclasses.asdict(train)},
        )

    def stored_configs(self) -> tuple[DatasetSpec, TokenizerConfig, TrainConfig]:
        """The data, tokenizer and training configs the run was started with (to resume it)."""
        from latentrl.tokenizer import TokenizerConfig
        from latentrl.train import TrainConfig

        stored = self.config()
        return (
            self.data(),
            from_dict(TokenizerConfig, stored["tokenizer"], source=self.config_path),
            from_dict(TrainConfig, stored["train"], source=self.config_path),
        )

    @property
    def tokenizer_dir(self) -> Path:
        return self.path / "tokenizer"

    def tokenizer_config(self) -> TokenizerConfig:
        """The trained tokenizer's config (without building it)."""
        from latentrl.tokenizer import TokenizerConfig

        path = self.tokenizer_dir / CONFIG
        return from_dict(TokenizerConfig, read_json(path), source=path)

    def load_tokenizer(self, device: torch.device | str = "cpu") -> Tokenizer:
        from latentrl.tokenizer import load_tokenizer

        return load_tokenizer(self.path, device)

    def save_tokenizer(self, tok: Tokenizer) -> None:
        """``tokenizer/``: its config and weights (what :meth:`load_tokenizer` reads)."""
        from latentrl.checkpoint import save_weights
        from latentrl.config import to_json

        self.tokenizer_dir.mkdir(exist_ok=True)
        (self.tokenizer_dir / CONFIG).write_text(to_json(tok.config))
        save_weights(tok, self.tokenizer_dir / "model.safetensors")

    def codes_path(self, split: str) -> Path:
        """Where ``split``'s code indices are (``codes/<split>.safetensors``)."""
        return self.path / CODES / f"{split}.safetensors"

    def code_splits(self) -> list[str]:
        """The splits whose codes are stored."""
        return sorted(p.stem for p in (self.path / CODES).glob("*.safetensors"))

    def codes(self, split: str, codebook_size: int | None = None) -> CodeCache:
        """``split``'s code indices; a missing split is named with those there are."""
        path = self.codes_path(split)
        if not path.is_file():
            raise FileNotFoundError(
                f"no {split!r} codes at {path} (the run has {self.code_splits()}): encode them "
                "by re-running experiments/train_tokenizer.py on data with that split"
            )
        from latentrl.data.codes import CodeCache

        return CodeCache.load(path, codebook_size)


# -- stage 2: the latent action model ------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class ModelRun(_Run):
    """A latent action model run folder (FLAM, LAM, LAPO, OC+LAM or WM), trained on the codes
    of one tokenizer run."""

    CONFIG_KEYS: ClassVar[tuple[str, ...]] = ("model", "train", "stage", "tokenizer_run")

    @staticmethod
    def settings_for(
        model: ModelConfig, train: TrainConfig, stage: Any, tokenizer_run: TokenizerRun
    ) -> dict[str, Any]:
        """The settings of a model run trained with these configs (``model`` with what the
        tokenizer fixes filled in, :func:`latentrl.stages.model_config_for`)."""
        return as_stored(
            {
                "model": model,
                "train": train,
                "stage": stage,
                "tokenizer_run": str(tokenizer_run.path.resolve()),
            }
        )

    def settings(self) -> dict[str, Any]:
        """The stored settings, with the model and training configs read through their
        dataclasses: a field added to either after the run was made reads as its default (new
        options default to the behaviour before them), so older runs stay reusable."""
        from latentrl.models import ModelConfig
        from latentrl.train import TrainConfig

        stored = _config_object(self.config_path, ())
        for key, cls in (("model", ModelConfig), ("train", TrainConfig)):
            if isinstance(stored.get(key), dict):
                stored[key] = as_stored(from_dict(cls, stored[key], source=self.config_path))
        if "tokenizer_run" in stored:
            stored["tokenizer_run"] = str(Path(str(stored["tokenizer_run"])).resolve())
        return stored

    @property
    def finished(self) -> bool:
        return has_results(self.path) and self.model_dir.is_dir()

    @classmethod
    def find(cls, runs: Path, kind: str, settings: dict[str, Any]) -> ModelRun | None:
        """The newest finished ``kind`` run under ``runs`` of exactly these settings."""
        return cls._find(runs, kind, settings, resumable=False)

    @classmethod
    def find_resumable(cls, runs: Path, kind: str, settings: dict[str, Any]) -> ModelRun | None:
        """The newest unfinished, checkpointed ``kind`` run of exactly these settings."""
        return cls._find(runs, kind, settings, resumable=True)

    @classmethod
    def finished_in(cls, folder: Path) -> list[ModelRun]:
        """The finished run folders directly in ``folder``, by name (oldest first)."""
        return (
            [cls(p) for p in sorted(folder.iterdir()) if cls(p).finished] if folder.is_dir() else []
        )

    @classmethod
    def open(cls, path: Path) -> ModelRun:
        """``path`` as a finished model run whose tokenizer run is there.

        Raises:
            FileNotFoundError: no such folder, or the model or its tokenizer is missing.
            ValueError: the folder is not a latent-action-model run (e.g. a tokenizer run).
        """
        made_by = "pass a folder made by experiments/train_lam.py"
        if not path.is_dir():
            raise FileNotFoundError(
                f"no run folder at {path}: it is not a finished latent action model run; {made_by}"
            )
        run = cls(path)
        if not run.config_path.is_file():
            raise FileNotFoundError(
                f"{path} is not a finished latent action model run (it has no {CONFIG}): {made_by}"
            )
        config = read_json(run.config_path)
        if not isinstance(config, dict) or "tokenizer_run" not in config or "model" not in config:
            raise ValueError(
                f"{path} is not a latent-action-model run (its {CONFIG} names no "
                f"tokenizer_run): {made_by}, not a tokenizer run"
            )
        if not (run.model_dir / "model.safetensors").is_file():
            raise FileNotFoundError(
                f"{path} is not a finished latent action model run (no "
                "model/model.safetensors): training did not finish; continue it with python "
                f"experiments/train_lam.py --resume {path}"
            )
        tokenizer = TokenizerRun(Path(str(config["tokenizer_run"])))
        if not (tokenizer.tokenizer_dir / "model.safetensors").is_file():
            raise FileNotFoundError(
                f"{path} was trained on the tokenizer run {tokenizer.path}, which has no "
                "tokenizer (tokenizer/model.safetensors): restore that folder or re-train"
            )
        return run

    def write_settings(
        self,
        data: DatasetSpec,
        model: ModelConfig,
        train: TrainConfig,
        stage: Any,
        tokenizer_run: TokenizerRun,
    ) -> None:
        write_json(self.data_path, dataclasses.asdict(data))
        write_json(
            self.config_path,
            {
                "model": dataclasses.asdict(model),
                "train": dataclasses.asdict(train),
                "stage": dataclasses.asdict(stage),
                "tokenizer_run": str(tokenizer_run.path.resolve()),
            },
        )

    @property
    def tokenizer_run(self) -> TokenizerRun:
        """The tokenizer run whose codes the model was trained on."""
        stored = _config_object(self.config_path, ("tokenizer_run",))
        return TokenizerRun(Path(str(stored["tokenizer_run"])))

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    def model_config(self) -> dict[str, Any]:
        """The saved model's ``model/config.json`` (JSON, not validated: for quick questions
        such as its latent-action family before anything is loaded)."""
        stored = read_json(self.model_dir / CONFIG)
        if not isinstance(stored, dict):
            raise ArtifactError(
                f"{self.model_dir / CONFIG}: expected a JSON object, found "
                f"{type(stored).__name__}. Fix: re-train, or restore the file."
            )
        return stored

    def load_model(self, device: torch.device | str = "cpu") -> LatentActionModel:
        from latentrl.models import LatentActionModel

        return LatentActionModel.load(self.model_dir, device)

    def save_model(self, model: LatentActionModel) -> None:
        model.save(self.model_dir)

    @property
    def eval_dir(self) -> Path:
        """Where the world-model evaluation of this run goes (``eval/``)."""
        return self.path / EVAL


# -- stage 3 and on: decoders, controllers and policies of the pipeline --------------------------------
@dataclasses.dataclass(frozen=True)
class PipelineRun:
    """An output folder of the video-to-policy pipeline (``experiments/bc_from_video.py``)."""

    path: Path

    @classmethod
    def create(cls, runs: Path, env_id: str, seed: int) -> PipelineRun:
        """A new, empty folder ``<runs>/bc_from_video/<env id>__<seed>__<time>``."""
        path = runs / PIPELINE / f"{env_id}__{seed}__{time.strftime('%Y%m%d-%H%M%S')}"
        path.mkdir(parents=True, exist_ok=False)
        return cls(path)

    @classmethod
    def open_with(cls, path: Path, kind: str) -> PipelineRun:
        """``path`` as a finished pipeline run holding ``kind``'s decoder (e.g. ``flam``)."""
        run = cls(path)
        if not has_results(path) or not run.decoder_dir(kind).is_dir():
            raise FileNotFoundError(
                f"{path} is not a finished bc_from_video.py run with {kind.upper()} (it needs "
                f"{RESULTS} and decoder_{kind}/): pass a folder under RUNS/{PIPELINE}/"
            )
        return run

    @property
    def finished(self) -> bool:
        return has_results(self.path)

    def results(self) -> dict[str, Any]:
        return read_results(self.path)

    def write_results(self, results: Any) -> Path:
        return write_results(self.path, results)

    def decoder_dir(self, kind: str) -> Path:
        """The latent-action decoder of model ``kind`` (``flam``, ``lam``, ...)."""
        return self.path / f"decoder_{kind}"

    def controller_dir(self, kind: str) -> Path:
        return self.path / f"controller_{kind}"

    def policy_dir(self, method: str) -> Path:
        """The cloned policy of ``method`` (``bc_true_actions``, ``bc_flam``, ...)."""
        return self.path / method

    def model_run(self, kind: str) -> ModelRun:
        """The model run of ``kind`` whose decoder this run trained."""
        return ModelRun(Path(str(self.results()["model_runs"][kind])))

    @property
    def tokenizer_run(self) -> TokenizerRun:
        """The tokenizer run of the pipeline's models."""
        return TokenizerRun(Path(str(self.results()["tokenizer_run"])))


def find_decoder(model_run: Path) -> Path | None:
    """A latent-action decoder trained for the model in ``model_run``, if one is on disk:
    ``model_run/decoder``, or the ``decoder_<kind>`` folder of a pipeline run (next to
    ``model_run``, under ``bc_from_video/``) whose results name this run; the newest wins."""
    if (model_run / "decoder" / CONFIG).is_file():
        return model_run / "decoder"
    target = model_run.resolve()
    found = []
    for folder in sorted((model_run.parent / PIPELINE).glob("*")):
        if not has_results(folder):
            continue
        try:
            runs = read_results(folder).get("model_runs", {})
        except (OSError, ValueError):
            continue
        for kind, path in runs.items():
            decoder = PipelineRun(folder).decoder_dir(kind)
            if Path(path).resolve() == target and (decoder / CONFIG).is_file():
                found.append(decoder)
    return max(found, key=lambda p: p.stat().st_mtime) if found else None
