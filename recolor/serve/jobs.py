"""Film jobs: a clip is uploaded, colorized in the background, followed through server-sent events, fetched.

One worker thread runs the jobs one after another, sharing the device with photos batch by batch
(device.TakingTurns). At most `capacity` jobs wait; more are told "busy". A job's files live in its own folder
under the server's temp folder: the source goes as soon as the job ends, the result when the job is deleted,
expires (`keep_s` after it ended, or when more than `keep_max` finished jobs are kept) or the server stops.
"""
from __future__ import annotations

import asyncio
import json
import logging
import queue
import shutil
import threading
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator, BinaryIO, Callable

from ..defaults import FILM_RENDER_FACTOR, OUTPUT_SUFFIX, RENDER_FACTOR_MAX, RENDER_FACTOR_MIN
from ..video import VideoConfig, VideoError, check_input, colorize_video, parse_time
from .changes import Changes
from .device import TakingTurns
from .errors import ApiError, Busy
from .forms import form_int, form_text

log = logging.getLogger("recolor")
FINISHED = ("done", "failed", "cancelled")  # a job is queued, then running, then one of these
OPTION_WORDS = {"--start": "the start time", "--duration": "the duration", "--render-factor": "the render factor"}
KEEPALIVE_S = 15.0  # a progress stream sends a comment this often, so idle proxies keep it open
# The upload's suffix, when it is one of these, is kept: FFmpeg takes it as a hint for a few raw formats.
# Taken from this list, never from the request.
SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".avi", ".webm", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv",
            ".wmv", ".3gp", ".ogv", ".gif", ".h264", ".264", ".hevc", ".y4m")


def read_film_config(form) -> VideoConfig:
    """The form's render_factor, start and duration (seconds or [HH:]MM:SS) -> the film's settings."""
    render_factor = form_int(form, "render_factor", FILM_RENDER_FACTOR, RENDER_FACTOR_MIN, RENDER_FACTOR_MAX)
    times = {}
    for name in ("start", "duration"):
        try:
            times[name] = parse_time(form_text(form, name))
        except ValueError as e:
            raise ApiError(400, f'"{name}": {e}') from None
    try:
        return VideoConfig(render_factor=render_factor, start=times["start"] or 0.0, duration=times["duration"],
                           overwrite=True)
    except ValueError as e:
        raise ApiError(400, in_page_words(str(e))) from None


def in_page_words(text: str) -> str:
    """The film library's messages name the CLI's options; the page and the API have fields, named so here."""
    for option, words in OPTION_WORDS.items():
        text = text.replace(option, words)
    return text


class Cancelled(Exception):
    """Raised from the progress callback: colorize_video stops and deletes its partial output."""


@dataclass(eq=False)
class Job:
    id: str
    name: str  # the upload's file name, for messages and the download's name
    folder: Path
    suffix: str
    model: str
    config: VideoConfig
    state: str = "queued"
    done: int = 0  # frames written
    total: int = 0  # frames expected (0 while unknown)
    error: str | None = None
    finished_at: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)

    @property
    def source(self) -> Path:
        return self.folder / f"input{self.suffix}"

    @property
    def output(self) -> Path:
        return self.folder / "output.mp4"

    @property
    def download_name(self) -> str:
        return f"{Path(self.name).stem or 'film'}{OUTPUT_SUFFIX}.mp4"

    def snapshot(self) -> dict:
        return {"id": self.id, "name": self.name, "model": self.model, "state": self.state, "done": self.done,
                "total": self.total, "error": self.error,
                "result": f"/api/jobs/{self.id}/result" if self.state == "done" else None}

    def message(self, e: Exception) -> str:
        """An error's first line with the server's own paths replaced by the upload's name."""
        text = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return in_page_words(text.replace(str(self.source), self.name).replace(str(self.output), self.download_name))


class Jobs:
    def __init__(self, colorizers: dict, lock: threading.Lock, capacity: int, keep_s: float = 3600.0,
                 keep_max: int = 8, release_memory: Callable[[], None] = lambda: None):
        self.colorizers = colorizers
        self.lock = lock  # the device's
        self.release_memory = release_memory  # after each film (device.Device.release_memory)
        self.capacity = capacity
        self.keep_s, self.keep_max = keep_s, keep_max
        self.jobs: dict[str, Job] = {}
        self.guard = threading.Lock()  # job states and the dict: changed by the event loop and the worker
        self.pending: queue.Queue[Job | None] = queue.Queue()
        self.receiving = 0  # uploaded films being checked before they join the queue (event loop only)
        self.stopping = False  # the server is stopping: progress streams end
        self.changes = Changes()
        self.root: Path | None = None
        self.thread: threading.Thread | None = None

    # ----------------------------------------------------------------------------------- lifecycle
    def start(self, root: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.changes.start(loop)
        self.thread = threading.Thread(target=self._work, name="recolor-films", daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop the running job (at its next batch), drop the queue and delete every job's files."""
        with self.guard:
            for job in self.jobs.values():
                job.cancel.set()
        self.pending.put(None)
        if self.thread is not None:
            self.thread.join()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)

    # ----------------------------------------------------------------------------------- submitting
    def refuse_if_full(self) -> None:
        with self.guard:
            waiting = sum(job.state == "queued" for job in self.jobs.values())
        if waiting + self.receiving >= self.capacity:
            raise Busy(f"busy: {waiting + self.receiving} films are waiting; try again when one is done", 10)

    @asynccontextmanager
    async def admission(self) -> AsyncIterator[None]:
        """Admit one film whose upload is in (it is then checked and queued), or refuse it when the queue is
        full: only films that are in count, never uploads still under way."""
        self.refuse_if_full()
        self.receiving += 1
        try:
            yield
        finally:
            self.receiving -= 1

    def create(self, name: str, suffix: str, model: str, config: VideoConfig) -> Job:
        job_id = uuid.uuid4().hex
        job = Job(job_id, name, self.root / job_id, suffix if suffix in SUFFIXES else "", model, config)
        job.folder.mkdir()
        return job

    def receive(self, job: Job, upload: BinaryIO) -> None:
        """Copy the upload into the job's folder and check that it is a film (in a thread: it reads and probes).
        A file that is not one is a 400 and leaves nothing behind."""
        try:
            with open(job.source, "wb") as f:
                shutil.copyfileobj(upload, f, 1 << 20)
            if job.source.stat().st_size == 0:
                raise ApiError(400, f"{job.name}: empty file (0 bytes)")
            check_input(job.source, job.output, job.config)
        except VideoError as e:
            shutil.rmtree(job.folder, ignore_errors=True)
            raise ApiError(400, job.message(e)) from None
        except BaseException:
            shutil.rmtree(job.folder, ignore_errors=True)
            raise

    def enqueue(self, job: Job) -> None:
        self.prune()
        with self.guard:
            self.jobs[job.id] = job
        self.pending.put(job)
        self.changes.announce()

    # ----------------------------------------------------------------------------------- reading
    def get(self, job_id: str) -> Job:
        with self.guard:
            job = self.jobs.get(job_id)
        if job is None:
            raise ApiError(404, f"no job {job_id[:40]!r} (finished jobs are kept for {self.keep_s / 60:g} minutes)")
        return job

    async def events(self, job: Job) -> AsyncIterator[str]:
        """Server-sent events: the job's state each time it changes, until it has finished."""
        sent = None
        while True:
            with self.guard:
                snapshot = job.snapshot()
            if snapshot != sent:
                yield f"data: {json.dumps(snapshot)}\n\n"
                sent = snapshot
            if snapshot["state"] in FINISHED or self.stopping:
                return
            if not await self.changes.wait(KEEPALIVE_S) and not self.stopping:
                yield ": keep-alive\n\n"

    def stop_streams(self) -> None:
        """The server is stopping: every progress stream ends now, so that it need not wait for them."""
        self.stopping = True
        self.changes.announce()

    # ----------------------------------------------------------------------------------- deleting
    def delete(self, job_id: str) -> None:
        self._forget(self.get(job_id))

    def _forget(self, job: Job) -> None:
        """A queued job never runs, a running one stops at its next batch; its files go now, or as soon as the
        worker lets go of them."""
        with self.guard:
            self.jobs.pop(job.id, None)
            job.cancel.set()
            if job.state == "queued":
                self._finish(job, "cancelled", None)
            if job.state != "running":
                shutil.rmtree(job.folder, ignore_errors=True)
        self.changes.announce()

    def prune(self) -> None:
        """Delete finished jobs older than keep_s, and the oldest beyond keep_max."""
        with self.guard:
            done = sorted((j for j in self.jobs.values() if j.finished_at is not None), key=lambda j: j.finished_at)
            now = time.monotonic()
            stale = [j for j in done if now - j.finished_at > self.keep_s]
            stale += [j for j in done[:max(0, len(done) - self.keep_max)] if j not in stale]
        for job in stale:
            self._forget(job)

    # ----------------------------------------------------------------------------------- the worker
    def _work(self) -> None:
        while (job := self.pending.get()) is not None:
            with self.guard:
                if job.cancel.is_set():  # deleted while it waited: delete() took its files
                    continue
                job.state = "running"
            self.changes.announce()
            self._run(job)
            self.prune()
            self.release_memory()

    def _run(self, job: Job) -> None:
        def progress(done: int, total: int) -> None:
            if job.cancel.is_set():
                raise Cancelled
            with self.guard:
                job.done, job.total = done, total
            self.changes.announce()

        colorizer = TakingTurns(self.colorizers[job.model], self.lock)
        state, error = "done", None
        try:
            colorize_video(colorizer, job.source, job.output, job.config, progress)
        except Cancelled:
            state = "cancelled"
        except VideoError as e:
            state, error = "failed", job.message(e)
        except Exception as e:  # a film the reader accepted but could not finish: the job fails, not the server
            log.exception("film job %s failed", job.id)
            state, error = "failed", f"{job.name}: could not colorize this film ({job.message(e)})"
        job.source.unlink(missing_ok=True)
        with self.guard:
            self._finish(job, state, error)
            if job.cancel.is_set():  # deleted while running
                shutil.rmtree(job.folder, ignore_errors=True)
        self.changes.announce()

    @staticmethod
    def _finish(job: Job, state: str, error: str | None) -> None:
        job.state, job.error, job.finished_at = state, error, time.monotonic()
