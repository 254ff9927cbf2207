"""The FastAPI app: the page (three static files held in memory) and the HTTP API it uses.

    GET    /api/health              model(s), device, version, limits; render factors, suffixes, job states
    POST   /api/colorize            multipart file [+ reference] [render_factor, hints, model, format] -> image
    POST   /api/hint-regions        multipart file, hints [render_factor] -> PNG: the region each hint takes
    POST   /api/jobs                multipart file (a film) [start, duration, render_factor, model] -> 202 job
    GET    /api/jobs/{id}           the job's state
    GET    /api/jobs/{id}/events    server-sent events: the state each time it changes, until it has finished
    GET    /api/jobs/{id}/result    the colour film (H.264 MP4; Range requests, so <video> can seek)
    DELETE /api/jobs/{id}           stop it and delete its files

Every refusal is `{"error": "one line"}` with a 4xx status (413 too large, 503 busy); no Swagger/ReDoc pages,
which would load scripts from a CDN.
"""
from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.exceptions import HTTPException
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse

from .. import __version__
from ..defaults import FILM_RENDER_FACTOR, PHOTO_RENDER_FACTOR, RENDER_FACTOR_MAX, RENDER_FACTOR_MIN
from ..images import IMAGE_EXTENSIONS
from . import ServeConfig
from .device import Device
from .errors import ApiError
from .forms import display_name, form_choice, form_file
from .guard import TOKEN_HEADER, Guard, Pace
from .jobs import FINISHED, SUFFIXES, Jobs, read_film_config
from .photos import colorize_photo, read_photo_request

log = logging.getLogger("recolor")
PAGES = {"/": ("index.html", "text/html; charset=utf-8"), "/app.js": ("app.js", "text/javascript; charset=utf-8"),
         "/style.css": ("style.css", "text/css; charset=utf-8")}
# The page may load nothing from anywhere else: it must work on a machine with no internet, and must not leak
# the photos (or the token in its address) to anyone.
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; media-src 'self' blob:; "
                               "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}
MB = 1_000_000
# What the page would otherwise restate (it reads them from /api/health): the render-factor range and defaults,
# the file suffixes taken as photos and films, and a film job's states (queued, running, then a finished one).
PAGE_SETTINGS = {
    "render_factor": {"min": RENDER_FACTOR_MIN, "max": RENDER_FACTOR_MAX, "photo": PHOTO_RENDER_FACTOR,
                      "film": FILM_RENDER_FACTOR},
    "suffixes": {"photo": list(IMAGE_EXTENSIONS), "film": list(SUFFIXES)},
    "job_states": {"all": ["queued", "running", *FINISHED], "finished": list(FINISHED)}}


@dataclass
class Server:
    """What the routes share: the loaded models (the first is the default), the device and the film jobs."""
    config: ServeConfig
    colorizers: dict  # name -> Colorizer
    device: Device
    jobs: Jobs
    folder: Path | None = None  # the server's temp folder, made when it starts

    @property
    def default_model(self) -> str:
        return next(iter(self.colorizers))


def create_app(colorizers: dict, config: ServeConfig = ServeConfig()) -> FastAPI:
    """colorizers: model name -> a loaded Colorizer (the first is the default)."""
    if not colorizers:
        raise ValueError("create_app needs at least one model")
    device = Device(config.queue, colorizers.values())
    server = Server(config, dict(colorizers), device, Jobs(colorizers, device.lock, config.film_queue,
                                                           release_memory=device.release_memory))

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        server.folder = Path(tempfile.mkdtemp(prefix="recolor-serve-"))
        (server.folder / "photos").mkdir()
        server.jobs.start(server.folder / "jobs", asyncio.get_running_loop())
        try:
            yield
        finally:  # the temp files go when the server stops (Ctrl-C, SIGTERM)
            await run_in_threadpool(server.jobs.close)
            server.device.close()
            shutil.rmtree(server.folder, ignore_errors=True)

    app = FastAPI(title="recolor", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.server = server  # for tests and benchmarks that look inside
    if config.allow_origins:  # inside the guard, which has refused every other origin by then
        app.add_middleware(CORSMiddleware, allow_origins=list(config.allow_origins),
                           allow_methods=["GET", "POST", "DELETE"], allow_headers=[TOKEN_HEADER],
                           expose_headers=["Location", "Retry-After", "Content-Disposition"])
    app.add_middleware(Guard, token=config.token, loopback_only=config.loopback,
                       body_limit=lambda path: int((config.max_film_mb if path == "/api/jobs" else
                                                    config.max_upload_mb) * MB),
                       pace=Pace(config.upload_grace_s, config.upload_min_rate), allow_origins=config.allow_origins)
    add_error_handlers(app)
    add_page(app)
    add_photo_api(app, server)
    add_film_api(app, server)
    return app


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request: Request, e: ApiError) -> JSONResponse:
        return JSONResponse({"error": e.message}, e.status, headers=e.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException) -> JSONResponse:
        message = f"not found: {request.method} {request.url.path}" if e.status_code == 404 else str(e.detail)
        return JSONResponse({"error": message}, e.status_code, headers=e.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, e: RequestValidationError) -> JSONResponse:
        first = (e.errors() or [{}])[0]
        return JSONResponse({"error": f"bad request: {first.get('msg', 'invalid')} ({first.get('loc')})"}, 400)

    @app.exception_handler(Exception)
    async def internal(request: Request, e: Exception) -> JSONResponse:  # a bug: one line here, a traceback in the log
        log.error("%s %s failed", request.method, request.url.path, exc_info=e)
        return JSONResponse({"error": f"internal error ({type(e).__name__}); the server's log has the details"}, 500)


def add_page(app: FastAPI) -> None:
    static = resources.files("recolor.serve") / "static"
    for route, (name, media_type) in PAGES.items():
        body = (static / name).read_bytes()  # read once: no path from a request reaches the file system
        app.add_api_route(route, page_file(body, media_type), methods=["GET", "HEAD"], include_in_schema=False)


def page_file(body: bytes, media_type: str):
    async def handler() -> Response:
        return Response(body, media_type=media_type, headers=PAGE_HEADERS)
    return handler


def add_photo_api(app: FastAPI, server: Server) -> None:
    @app.get("/api/health")
    async def health() -> dict:
        default = server.colorizers[server.default_model]
        return {"status": "ok", "version": __version__, "model": server.default_model,
                "device": str(default.device or "cpu"), "runtime": default.runtime,
                "models": [{"name": name} for name in server.colorizers],
                "limits": {"upload_mb": server.config.max_upload_mb, "film_mb": server.config.max_film_mb,
                           "max_pixels": server.config.max_pixels},
                **PAGE_SETTINGS,
                "busy": {"photos": server.device.active, "photo_slots": server.config.queue}}

    @app.post("/api/colorize")
    async def colorize(request: Request) -> Response:
        server.device.refuse_if_full()  # busy with work already: say so before the upload is read
        async with request.form(max_files=2, max_fields=8) as form:  # read whole (guard.py times it) ...
            photo = await read_photo_request(form, server.colorizers, server.default_model)
        async with server.device.slot():  # ... before it takes a slot: a stalled upload holds none
            data, media_type = await server.device.run(colorize_photo, server.colorizers[photo.model], photo,
                                                       server.folder / "photos", server.config.max_pixels)
        return Response(data, media_type=media_type, headers={"Cache-Control": "no-store"})

    @app.post("/api/hint-regions")
    async def hint_regions(request: Request) -> Response:  # what each hint will change, to lay over the photo
        server.device.refuse_if_full()
        async with request.form(max_files=2, max_fields=8) as form:
            photo = await read_photo_request(form, server.colorizers, server.default_model)
        async with server.device.slot():  # the same memory bound as a colour photo: one decoded at a time
            data = await server.device.run(region_png, photo, server.folder / "photos", server.config.max_pixels)
        return Response(data, media_type="image/png", headers={"Cache-Control": "no-store"})


def region_png(request, folder: Path, max_pixels: int) -> bytes:
    """A photo request's hints -> PNG (RGBA at render size) of the region each takes (propagation.py)."""
    from ..color import luminance
    from ..hints import HintError, check_inside
    from ..images import encode_image
    from ..propagation import region_overlay
    from .photos import read_upload
    image = read_upload(request.photo, request.name, folder, max_pixels)
    try:
        check_inside(request.hints, image.shape[1], image.shape[0])
    except HintError as e:
        raise ApiError(400, f"hints: {e}") from None
    return encode_image(region_overlay(luminance(image), request.hints, request.render_factor), ".png")


def add_film_api(app: FastAPI, server: Server) -> None:
    jobs = server.jobs

    @app.post("/api/jobs", status_code=202)
    async def create_job(request: Request) -> JSONResponse:
        jobs.refuse_if_full()  # the queue is full of films already: say so before the upload is read
        async with request.form(max_files=1, max_fields=8) as form:  # read whole, as for photos
            film = form_file(form, "file")
            name = display_name(film.filename, "film")
            model = form_choice(form, "model", server.default_model, list(server.colorizers))
            config = read_film_config(form)
            async with jobs.admission():
                job = jobs.create(name, Path(name).suffix.lower(), model, config)
                await run_in_threadpool(jobs.receive, job, film.file)
                jobs.enqueue(job)
        return JSONResponse(job.snapshot(), 202, headers={"Location": f"/api/jobs/{job.id}"})

    @app.get("/api/jobs/{job_id}")
    async def job_state(job_id: str) -> dict:
        return jobs.get(job_id).snapshot()

    @app.get("/api/jobs/{job_id}/events")
    async def job_events(job_id: str) -> StreamingResponse:
        return StreamingResponse(jobs.events(jobs.get(job_id)), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    @app.get("/api/jobs/{job_id}/result")
    async def job_result(job_id: str) -> FileResponse:
        job = jobs.get(job_id)
        if job.state != "done" or not job.output.exists():
            why = f": {job.error}" if job.error else ""
            raise ApiError(409, f"{job.name}: no result, the job is {job.state}{why}")
        return FileResponse(job.output, media_type="video/mp4", filename=job.download_name)

    @app.delete("/api/jobs/{job_id}")
    async def delete_job(job_id: str) -> dict:
        jobs.delete(job_id)
        return {"deleted": job_id}
