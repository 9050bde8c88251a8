"""Import a folder of your own videos as a dataset (``video/NAME-v0/-v1/-v2``: train/val/test).

    python experiments/import_videos.py FOLDER --name my_clips
    python experiments/import_videos.py FOLDER --name my_clips --frame-size 32 --fps 10
    python experiments/train_tokenizer.py --video my_clips
    python experiments/train_lam.py --video my_clips --model flam
    python experiments/play.py runs/<the flam run>

Reads mp4 / webm / avi / gif / mkv / mov files (recursively) with PyAV, keeps one frame per
``1 / --fps`` seconds, centre-crops each frame to a square and resizes it to --frame-size, cuts
long videos into episodes of --episode-frames frames and assigns whole videos to the splits.
Files that cannot be used (not a video, no frames, resolution changing midway) are skipped and
listed; existing datasets are never replaced without --overwrite. Logic:
``latentrl/data/video_import.py``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from latentrl.data.errors import DatasetError
from latentrl.data.video_import import ImportConfig, import_videos


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("folder", type=Path, help="folder holding the video files")
    parser.add_argument("--name", required=True, help="dataset name: video/NAME-v0 .. -v2")
    parser.add_argument("--frame-size", type=int, default=64, help="frame side in pixels")
    parser.add_argument(
        "--fps", type=float, default=None, help="frames kept per second (default: every frame)"
    )
    parser.add_argument(
        "--episode-frames", type=int, default=64, help="frames per episode (longer videos are cut)"
    )
    parser.add_argument(
        "--min-frames", type=int, default=8, help="drop a last piece shorter than this"
    )
    parser.add_argument(
        "--splits",
        type=float,
        nargs=3,
        default=(80.0, 10.0, 10.0),
        help="train/val/test proportions of the source videos",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split assignment")
    parser.add_argument("--root", type=Path, default=None, help="datasets root (Minari's default)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing import")
    args = parser.parse_args()
    config = ImportConfig(
        frame_size=args.frame_size,
        fps=args.fps,
        episode_frames=args.episode_frames,
        min_frames=args.min_frames,
        splits=tuple(args.splits),
        seed=args.seed,
    )
    try:
        result = import_videos(
            args.folder,
            args.name,
            config,
            root=args.root,
            overwrite=args.overwrite,
            on_skip=lambda s: print(f"skipped {s}", file=sys.stderr),
        )
    except (DatasetError, ValueError) as e:
        sys.exit(f"import_videos: {e}")
    for split, dataset_id in result.ids.items():
        print(
            f"{dataset_id}: {result.episodes[split]} episodes from "
            f"{len(result.videos[split])} videos"
        )
    if result.skipped:
        print(f"{len(result.skipped)} file(s) skipped (listed above and in the metadata)")


if __name__ == "__main__":
    main()
