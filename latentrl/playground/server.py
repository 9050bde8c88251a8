"""A Starlette app serving one :class:`~latentrl.playground.session.PlaySession` to a browser.

Routes: ``GET /`` the page (``page.html``); ``GET /api/state`` everything the page shows, as
JSON; ``GET /frame.png?outlines=0|1`` the current frame, upscaled; ``POST /api/select`` ``{x, y}``
in frame pixels; ``POST /api/step`` ``{code}`` or ``{vector}`` (or ``{}``: every slot on the
others rule); ``POST /api/undo``, ``/api/reset``, ``/api/new``, ``/api/others`` ``{mode}``;
``GET /download.gif`` and ``/download.mp4``. Endpoints are plain functions, which Starlette runs
in its thread pool; a lock keeps one request at a time on the session.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from latentrl.playground.session import PlaySession

PAGE = Path(__file__).with_name("page.html")


def png_bytes(image: Any) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def state_of(session: PlaySession, request_ms: list[float]) -> dict[str, Any]:
    """What the page shows (JSON-ready)."""
    model = session.run.model
    selected = session.selected
    h, w = session.frame_shape
    recent = session.step_ms[-50:]
    return {
        "model": model.config.model,
        "factored": session.factored,
        "run": str(session.run.path),
        "dataset": session.run.data.dataset_id(session.run.split),
        "episode": session.episode,
        "start": session.start,
        "step": len(session.frames) - 1,
        "video_steps": session.scene.steps,
        "frame_size": [w, h],
        "scale": session.scale(),
        "slots": int(model.config.num_slots) if session.factored else 1,
        "selected": None
        if selected is None
        else {"name": selected.name, "slots": list(selected.slots)},
        "agent": session.controlled_agent(),
        "codes": [{"index": c.index, "label": c.label} for c in session.code_choices()],
        "continuous_dims": 0 if session.num_codes is not None else session.action_dim,
        "decoder": session.decoder is not None,
        "others": session.others,
        "history": [f.label for f in session.frames],
        "step_ms_median": None if not recent else sorted(recent)[len(recent) // 2],
        "step_ms_last": None if not recent else recent[-1],
        "step_cpu_ms_median": None
        if not session.step_cpu_ms
        else sorted(session.step_cpu_ms[-50:])[len(session.step_cpu_ms[-50:]) // 2],
        "steps_measured": len(recent),
        "request_ms_median": None
        if not request_ms
        else sorted(request_ms[-50:])[len(request_ms[-50:]) // 2],
    }


def create_app(session: PlaySession) -> Starlette:
    """The playground app over ``session``.

    Over 80 lines on purpose: the routes are small closures over one session and one lock, kept
    side by side so that the page's whole HTTP API reads in one place.
    """
    lock = threading.Lock()
    request_ms: list[float] = []

    def page(request: Request) -> HTMLResponse:
        return HTMLResponse(PAGE.read_text())

    def state(request: Request) -> JSONResponse:
        with lock:
            return JSONResponse(state_of(session, request_ms))

    def frame(request: Request) -> Response:
        outlines = request.query_params.get("outlines", "0") == "1"
        with lock:
            data = png_bytes(session.picture(outlines))
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})

    async def body(request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        data = await request.json()
        if not isinstance(data, dict):
            raise ValueError("the request body must be a JSON object")
        return data

    def act(fn: Any) -> Any:
        async def endpoint(request: Request) -> JSONResponse:
            t0 = time.perf_counter()
            try:
                data = await body(request)
                with lock:
                    fn(data)
                    out = state_of(session, request_ms)
            except (ValueError, TypeError, KeyError) as e:
                return JSONResponse({"error": str(e)}, status_code=400)
            if fn is do_step:
                request_ms.append((time.perf_counter() - t0) * 1000)
            return JSONResponse(out)

        return endpoint

    def do_select(data: dict[str, Any]) -> None:
        if "slots" in data:
            session.select_slots([int(s) for s in data["slots"]])
        else:
            session.select(float(data["x"]), float(data["y"]))

    def do_step(data: dict[str, Any]) -> None:
        code = data.get("code")
        vector = data.get("vector")
        session.step(None if code is None else int(code), vector)

    def download(kind: str) -> Any:
        def endpoint(request: Request) -> Response:
            with lock:
                data = session.gif() if kind == "gif" else session.mp4()
            name = f"play_{session.run.path.name}.{kind}"
            return Response(
                data,
                media_type="image/gif" if kind == "gif" else "video/mp4",
                headers={"Content-Disposition": f'attachment; filename="{name}"'},
            )

        return endpoint

    routes = [
        Route("/", page),
        Route("/api/state", state),
        Route("/frame.png", frame),
        Route("/api/select", act(do_select), methods=["POST"]),
        Route("/api/step", act(do_step), methods=["POST"]),
        Route("/api/undo", act(lambda d: session.undo()), methods=["POST"]),
        Route("/api/reset", act(lambda d: session.reset()), methods=["POST"]),
        Route("/api/new", act(lambda d: session.new_start()), methods=["POST"]),
        Route("/api/others", act(lambda d: session.set_others(str(d["mode"]))), methods=["POST"]),
        Route("/download.gif", download("gif")),
        Route("/download.mp4", download("mp4")),
    ]
    return Starlette(routes=routes)
