"""Play a trained world model in the browser, one entity at a time.

    python experiments/play.py runs/<flam run>              # prints the address to open
    python experiments/play.py runs/<lam run> --port 8001   # LAM: one action moves the scene
    python experiments/play.py runs/<flam run> --bench 50   # step latency, printed, no server

Serves a page on 127.0.0.1 showing a start frame from the run's test split: click an entity to
select its slot(s), press a code button (or its key) to move it with that latent action while
every other slot follows its null action or the latent actions inferred from the original
video; step, undo, reset, new start frame, slot outlines, GIF and MP4 download. Codes are
labelled with the real action a latent-action decoder reads for them when one is found
(``--decoder``, ``RUN_DIR/decoder``, or the decoder of a ``bc_from_video`` run of this model).
Logic: ``latentrl/playground/``.
"""

from __future__ import annotations

import argparse
import socket
import sys
import time
from pathlib import Path

import numpy as np
import torch

from latentrl.artifacts import find_decoder
from latentrl.control import load_held_out
from latentrl.decoder import ActionDecoder
from latentrl.playground.session import OTHERS, PlaySession


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run", type=Path, help="a train_lam.py run folder (flam, lam or oclam)")
    parser.add_argument("--split", default="test", help="split the start frames come from")
    parser.add_argument("--decoder", type=Path, default=None, help="latent-action decoder folder")
    parser.add_argument("--others", choices=OTHERS, default="null", help="what the others follow")
    parser.add_argument("--horizon", type=int, default=32, help="steps of the original video kept")
    parser.add_argument("--host", default="127.0.0.1", help="address to serve on")
    parser.add_argument("--port", type=int, default=8000, help="port (0: any free port)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the start-frame draws")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument(
        "--bench", type=int, default=0, help="time this many steps, print the figures and exit"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    try:
        run = load_held_out(args.run, args.split)
        path = args.decoder or find_decoder(args.run)
        decoder = None if path is None else ActionDecoder.load(path)
        session = PlaySession(
            run, decoder, horizon=args.horizon, seed=args.seed, others=args.others
        )
    except (FileNotFoundError, ValueError) as e:
        sys.exit(f"play: {e}")
    print(
        f"model: {run.model.config.model} ({args.run}); decoder: {path or 'none (codes by index)'}"
    )
    if args.bench:
        bench(session, args.bench)
        return
    serve(session, args.host, args.port)


def bench(session: PlaySession, steps: int) -> None:
    """Time ``steps`` steps with the first slot/scene latent selected and random codes."""
    from latentrl.playground.server import png_bytes

    h, w = session.frame_shape
    session.select(w / 2, h / 2)
    rng = np.random.default_rng(0)
    png = []
    for _ in range(steps):
        if len(session.frames) > session.horizon:
            session.reset()
        code = int(rng.integers(session.num_codes)) if session.num_codes else None
        vector = None if code is not None else [0.0] * session.action_dim
        session.step(code, vector)
        t0 = time.perf_counter()
        png_bytes(session.picture())
        png.append((time.perf_counter() - t0) * 1000)
    ms, cpu = np.array(session.step_ms), np.array(session.step_cpu_ms)
    print(
        f"step latency over {steps} steps ({torch.get_num_threads()} thread): median "
        f"{np.median(ms):.1f} ms wall (p90 {np.percentile(ms, 90):.1f}, max {ms.max():.1f}), "
        f"median {np.median(cpu):.1f} ms CPU; PNG of the frame: median {np.median(png):.1f} ms"
    )


def serve(session: PlaySession, host: str, port: int) -> None:
    import uvicorn

    from latentrl.playground.server import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sys.exit(f"play: cannot listen on {host}:{port} ({e}): pass another --port (0: any free)")
    print(f"playground at http://{host}:{sock.getsockname()[1]}/  (Ctrl+C stops it)", flush=True)
    config = uvicorn.Config(create_app(session), log_level="warning")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
