"""Pictures: rollout grids as GIF/MP4/PNG files and tensorboard image summaries.

Frames are uint8 ``(t, h, w, c)``; a grid stacks rows (e.g. ground truth, prediction, error)
vertically and animates over ``t``. Tensorboard animates a GIF logged as an image summary, which
avoids moviepy (``add_video``'s dependency; see ENVIRONMENT.md). MP4 files are H.264 written
with PyAV (its own FFmpeg): lossy (``crf``), but a player or a browser plays them anywhere.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import numpy as np
from einops import rearrange, repeat
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary
from torch.utils.tensorboard import SummaryWriter


def grid_frames(rows: list[np.ndarray], scale: int = 4, gap: int = 2) -> np.ndarray:
    """Rows of videos ``(t, h, w, c)`` -> one video ``(t, H, W, c)``, upscaled, with gaps."""
    t = min(len(r) for r in rows)
    padded = [np.pad(r[:t], ((0, 0), (0, gap), (0, 0), (0, 0)), constant_values=255) for r in rows]
    video = np.concatenate(padded, axis=1)
    return repeat(video, "t h w c -> t (h s1) (w s2) c", s1=scale, s2=scale)


def gif_bytes(video: np.ndarray, fps: int = 4) -> bytes:
    """Encode uint8 ``(t, h, w, c)`` as an endlessly looping GIF."""
    images = [Image.fromarray(f) for f in video]
    buf = io.BytesIO()
    images[0].save(
        buf, format="GIF", save_all=True, append_images=images[1:], duration=int(1000 / fps), loop=0
    )
    return buf.getvalue()


def mp4_bytes(video: np.ndarray, fps: int = 4, crf: int = 12) -> bytes:
    """Encode uint8 ``(t, h, w, 3)`` as H.264 MP4 (yuv420p, so odd sides are padded by one
    pixel with black; ``crf`` 0-51, lower is closer to the frames)."""
    import av

    _, h, w, _ = video.shape
    pad = ((0, 0), (0, h % 2), (0, w % 2), (0, 0))
    frames = np.pad(video, pad) if h % 2 or w % 2 else video
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for frame in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), "rgb24")))
        out.mux(stream.encode(None))
    return buf.getvalue()


def save_mp4(video: np.ndarray, path: Path, fps: int = 4) -> None:
    """Write ``video`` as MP4 atomically (temporary file + rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_bytes(mp4_bytes(video, fps))
    os.replace(tmp, path)


def save_gif(video: np.ndarray, path: Path, fps: int = 4) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gif_bytes(video, fps))


def save_png_strip(video: np.ndarray, path: Path) -> None:
    """All frames side by side as one PNG ``(H, t * W, c)``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rearrange(video, "t h w c -> h (t w) c")).save(path)


def log_gif(writer: SummaryWriter, tag: str, video: np.ndarray, step: int, fps: int = 4) -> None:
    """Log a GIF as an image summary (tensorboard plays it)."""
    _, h, w, c = video.shape
    image = Summary.Image(
        height=h, width=w, colorspace=c, encoded_image_string=gif_bytes(video, fps)
    )
    writer._get_file_writer().add_summary(
        Summary(value=[Summary.Value(tag=tag, image=image)]), step
    )


def error_map(truth: np.ndarray, pred: np.ndarray) -> np.ndarray:
    """Absolute error as a grey video, amplified so small errors are visible."""
    err = np.abs(truth.astype(np.int16) - pred.astype(np.int16)).max(axis=-1)
    err = np.clip(err * 2, 0, 255).astype(np.uint8)
    return repeat(err, "t h w -> t h w c", c=3)
