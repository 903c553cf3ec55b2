"""`storybot run`: APScheduler ticks (jobs kept in the story database) until stopped."""

from __future__ import annotations

import logging
import signal
import threading
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from bot.app import App
from bot.loop.runlock import LockLost, RunLock

log = logging.getLogger(__name__)

JOB_ID = "storybot-tick"
_current: dict[str, tuple[App, threading.Event]] = {}


def scheduled_tick() -> None:
    """The persisted job; it finds the running app by reference, never by pickling it."""
    entry = _current.get(JOB_ID)
    if entry is None:
        return
    app, stop = entry
    try:
        for note in app.runner.tick(stop):
            log.info("%s", note)
    except Exception:
        # One failed tick must not kill the scheduler; the next tick retries from the database.
        log.exception("tick failed")
    app.heartbeat = datetime.now(UTC)


def build_scheduler(app: App) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=app.engine)},
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        timezone=UTC,
    )
    return scheduler


def run(
    app: App,
    stop: threading.Event | None = None,
    serve_web: bool = True,
    lock: RunLock | None = None,
) -> None:
    """Tick on the story's cadence until SIGINT/SIGTERM (or ``stop``), then stop cleanly.

    With ``lock`` (the runner lock `storybot run` holds), every step first checks that the lock
    is still ours; a runner whose lock went away (its PostgreSQL connection dropped, so another
    runner may have taken it) stops within one tick and raises :class:`LockLost`.
    """
    stop = stop or threading.Event()
    if lock is not None:
        app.runner.guard = lock.still_held
    _current[JOB_ID] = (app, stop)

    def _signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping after the current step", signal.Signals(signum).name)
        stop.set()

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _signal)
        signal.signal(signal.SIGINT, _signal)
    scheduler = build_scheduler(app)
    scheduler.add_job(
        scheduled_tick,
        "interval",
        seconds=app.config.scheduler.tick_seconds,
        id=JOB_ID,
        replace_existing=True,
        next_run_time=datetime.now(UTC),  # a story with nothing posted starts at once
    )
    server = None
    if serve_web and app.config.web.enabled:
        from bot.web import start_server

        server = start_server(app)
    scheduler.start()
    log.info("storybot is running; round length %s min", app.config.story.round_minutes)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        scheduler.shutdown(wait=True)
        if server is not None:
            server.stop()
        _current.pop(JOB_ID, None)
        log.info("stopped")
    if lock is not None and not lock.still_held():
        raise LockLost(
            "this runner lost the database's runner lock (its connection ended) and stopped; "
            "another runner may be active: check before starting it again"
        )
