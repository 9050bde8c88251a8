"""Importing a folder of videos: layout, split by source, subsampling, and every bad input
(a listed skip or a clear error, and an existing dataset untouched)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from latentrl.data.cache import FrameCache
from latentrl.data.errors import DatasetExistsError
from latentrl.data.minari_io import dataset_path, read_metadata
from latentrl.data.recipes import DatasetSpec, ensure_datasets, video_family
from latentrl.data.video_import import (
    ImportConfig,
    NoVideosError,
    decode_video,
    fit_frame,
    import_videos,
)
from latentrl.viz import gif_bytes, mp4_bytes

CFG = ImportConfig(frame_size=16, episode_frames=10, min_frames=4, splits=(1.0, 1.0, 1.0))


def moving_square(frames: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """A white square wandering over a dark background: ``(frames, size, size, 3)``."""
    rng = np.random.default_rng(seed)
    video = np.full((frames, size, size, 3), 30, np.uint8)
    x, y = rng.integers(0, size - 8, 2)
    for t in range(frames):
        x = int(np.clip(x + rng.integers(-2, 3), 0, size - 8))
        y = int(np.clip(y + rng.integers(-2, 3), 0, size - 8))
        video[t, y : y + 8, x : x + 8] = 230
    return video


def write_folder(folder: Path, count: int = 3, frames: int = 25) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        (folder / f"clip{i}.mp4").write_bytes(mp4_bytes(moving_square(frames, seed=i), fps=10))
    return folder


def tree_digest(path: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(path.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(path)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


@pytest.fixture
def imported(tmp_path: Path) -> tuple[Path, Path]:
    root = tmp_path / "data"
    import_videos(write_folder(tmp_path / "videos"), "clips", CFG, root=root, progress=False)
    return root, dataset_path("video/clips-v0", root)


def test_import_writes_three_splits_by_source_video(tmp_path: Path) -> None:
    root = tmp_path / "data"
    result = import_videos(
        write_folder(tmp_path / "videos"), "clips", CFG, root=root, progress=False
    )
    assert result.ids == {
        "train": "video/clips-v0",
        "val": "video/clips-v1",
        "test": "video/clips-v2",
    }
    # 3 videos, one per split; 25 frames -> episodes of 10, 10 and 5 (>= min_frames 4).
    assert sorted(v for vs in result.videos.values() for v in vs) == [
        "clip0.mp4",
        "clip1.mp4",
        "clip2.mp4",
    ]
    assert all(len(v) == 1 for v in result.videos.values())
    assert result.episodes == {"train": 3, "val": 3, "test": 3}
    cache = FrameCache.load("video/clips-v2", root, labels=False)
    assert cache.frame_shape == (16, 16, 3)
    assert list(cache.episode_lengths) == [10, 10, 5]
    meta = read_metadata("video/clips-v1", root)["latentrl"]
    assert meta["env"] == "video" and meta["action_free"] and meta["split"] == "val"
    assert meta["sources"][0]["file"] == result.videos["val"][0]
    # The training scripts take it by name.
    spec = video_family("clips", root)
    assert spec == DatasetSpec(env="video", task="clips", frame_size=16)
    assert ensure_datasets(spec, root) == result.ids


def test_frames_read_back_match_the_source_within_codec_tolerance(tmp_path: Path) -> None:
    source = moving_square(20, size=32, seed=3)
    path = tmp_path / "a.mp4"
    path.write_bytes(mp4_bytes(source, fps=10))
    video = decode_video(path, 16)
    want = np.stack([fit_frame(f, 16) for f in source])
    err = np.abs(video.frames.astype(np.int16) - want.astype(np.int16))
    # H.264 at crf 12 (yuv420p): mean error below 2 levels of 255, worst pixel below 40.
    assert video.frames.shape == want.shape
    assert err.mean() < 2.0 and err.max() < 40


def test_fps_subsampling_and_gif_input(tmp_path: Path) -> None:
    source = moving_square(20, seed=1)
    (tmp_path / "a.gif").write_bytes(gif_bytes(source, fps=10))
    every = decode_video(tmp_path / "a.gif", 32)
    half = decode_video(tmp_path / "a.gif", 32, fps=5)
    assert len(every.frames) == 20 and len(half.frames) == 10
    assert np.array_equal(half.frames, every.frames[::2])
    assert np.abs(every.frames.astype(int) - source.astype(int)).max() <= 8  # GIF palette


def test_non_square_frames_are_centre_cropped() -> None:
    frame = np.zeros((20, 40, 3), np.uint8)
    frame[:, 10:30] = 255  # the centre square is white, the sides black
    assert (fit_frame(frame, 10) == 255).all()


@pytest.mark.parametrize("bad", ["not_a_video", "zero_frames", "mixed_resolutions", "other_file"])
def test_bad_files_are_skipped_and_listed(
    imported: tuple[Path, Path], tmp_path: Path, bad: str
) -> None:
    root, existing = imported
    before = tree_digest(existing)
    folder = write_folder(tmp_path / "more_videos")
    if bad == "not_a_video":
        (folder / "broken.mp4").write_bytes(b"this is not a video")
    elif bad == "zero_frames":
        (folder / "broken.mp4").write_bytes(mp4_bytes(moving_square(3), fps=10)[:48])
    elif bad == "mixed_resolutions":
        (folder / "broken.ts").write_bytes(mixed_resolution_stream())
    else:
        (folder / "notes.txt").write_text("hello")
    skips: list[str] = []
    result = import_videos(
        folder,
        "more",
        CFG,
        root=root,
        progress=False,
        on_skip=lambda s: skips.append(str(s)),
    )
    assert tree_digest(existing) == before  # another import in the same root is untouched
    assert len(result.skipped) == 1 and skips == [str(result.skipped[0])]
    reason = result.skipped[0].reason
    expected = {
        "not_a_video": "not a readable video",
        "zero_frames": "not a readable video",
        "mixed_resolutions": "mixed resolutions",
        "other_file": "not a video file name",
    }[bad]
    assert expected in reason, reason
    assert "broken" in result.skipped[0].path or "notes" in result.skipped[0].path
    assert sum(result.episodes.values()) == 9  # the good videos all went in
    meta = read_metadata("video/more-v0", root)["latentrl"]
    assert [s["path"] for s in meta["skipped"]] == [result.skipped[0].path]


def mixed_resolution_stream() -> bytes:
    """Two MPEG-TS streams back to back (32 px, then 24 px): a file whose size changes."""
    import io

    import av

    def ts(frames: np.ndarray) -> bytes:
        buf = io.BytesIO()
        with av.open(buf, "w", format="mpegts") as out:
            stream = out.add_stream("mpeg2video", rate=10)
            stream.height, stream.width = frames.shape[1:3]
            stream.pix_fmt = "yuv420p"
            for f in frames:
                out.mux(stream.encode(av.VideoFrame.from_ndarray(f, "rgb24")))
            out.mux(stream.encode(None))
        return buf.getvalue()

    return ts(moving_square(8, 32)) + ts(moving_square(8, 24))


@pytest.mark.parametrize("case", ["empty_folder", "only_bad_files", "not_a_folder"])
def test_no_usable_video_is_an_error_and_the_existing_dataset_is_untouched(
    imported: tuple[Path, Path], tmp_path: Path, case: str
) -> None:
    root, existing = imported
    before = tree_digest(existing)
    folder = tmp_path / "other"
    if case != "not_a_folder":
        folder.mkdir()
    if case == "only_bad_files":
        (folder / "a.mp4").write_bytes(b"garbage")
        (folder / "b.txt").write_text("text")
    with pytest.raises(NoVideosError) as err:
        import_videos(folder, "clips", CFG, root=root, overwrite=True, progress=False)
    msg = str(err.value)
    assert str(folder) in msg
    if case == "only_bad_files":
        assert "a.mp4" in msg and "b.txt" in msg and "Nothing was written" in msg
    assert tree_digest(existing) == before


def test_existing_dataset_is_never_replaced_without_overwrite(
    imported: tuple[Path, Path], tmp_path: Path
) -> None:
    root, existing = imported
    before = tree_digest(existing)
    folder = write_folder(tmp_path / "more", count=4)
    with pytest.raises(DatasetExistsError, match="--overwrite"):
        import_videos(folder, "clips", CFG, root=root, progress=False)
    assert tree_digest(existing) == before
    result = import_videos(folder, "clips", CFG, root=root, overwrite=True, progress=False)
    assert sum(len(v) for v in result.videos.values()) == 4
    assert tree_digest(existing) != before


def test_a_failure_while_writing_leaves_the_existing_dataset(
    imported: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, existing = imported
    before = tree_digest(existing)
    from latentrl.data import video_import

    def boom(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(video_import.DatasetWriter, "add", boom)
    with pytest.raises(OSError, match="disk full"):
        import_videos(
            write_folder(tmp_path / "more"), "clips", CFG, root=root, overwrite=True, progress=False
        )
    assert tree_digest(existing) == before
    assert not (root / ".staging").exists()


def test_bad_name_and_missing_import_are_clear_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="video dataset name"):
        import_videos(write_folder(tmp_path / "v"), "my clips", CFG, root=tmp_path, progress=False)
    with pytest.raises(FileNotFoundError, match=r"import_videos\.py"):
        video_family("nothing_here", tmp_path / "data")
    with pytest.raises(ValueError, match="--data-frame-size 16"):
        import_videos(write_folder(tmp_path / "v"), "ok", CFG, root=tmp_path / "d", progress=False)
        ensure_datasets(DatasetSpec(env="video", task="ok", frame_size=32), tmp_path / "d")


def test_import_script_lists_skips_and_refuses_an_empty_folder(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = Path(__file__).resolve().parents[2] / "experiments" / "import_videos.py"
    folder = write_folder(tmp_path / "videos", count=2)
    (folder / "readme.txt").write_text("not a video")
    args = [sys.executable, str(script), "--name", "clips", "--root", str(tmp_path / "data")]
    args += ["--frame-size", "16", "--episode-frames", "10", "--min-frames", "4"]
    ok = subprocess.run([*args[:2], str(folder), *args[2:]], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr[-2000:]
    assert "video/clips-v0:" in ok.stdout and "readme.txt" in ok.stderr
    (tmp_path / "empty").mkdir()
    other = [*args[:2], str(tmp_path / "empty"), *args[2:]]
    other[other.index("clips")] = "other"  # a new name: an existing import is refused first
    bad = subprocess.run(other, capture_output=True, text=True)
    assert bad.returncode != 0 and "no usable video" in bad.stderr
