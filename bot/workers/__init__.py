"""Render workers on Celery: ``queue.py`` is the scheduler's side (routing, the JobQueue),
``process.py`` the worker's side (the render task, locks, its app)."""
