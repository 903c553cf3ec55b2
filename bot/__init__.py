"""The edge: everything that talks to the world, grouped by role.

- ``app.py``: the one composition root (``build_app``) that wires storage, platforms and
  generators from ``config.py``'s settings;
- ``cli/``: the ``storybot`` command line, one module per command group;
- ``loop/``: the story loop (runner, rounds, outbox, captions, run lock, failpoints);
- ``ideas/``: replies in, suggestions and clusters out (harvest, moderation, embeddings);
- ``platforms/``: the platform port and its adapters (local sandbox, Mastodon, X);
- ``operator/``: the operator's actions, audit log, status, export and the Community's Cut;
- ``workers/``: render workers (Celery) for a render fleet;
- ``web/``: the sandbox page, the dashboard, health and metrics;
- ``doctor/``: ``storybot doctor``'s checks; ``demo/``: the offline demo and its audience;
- ``scheduler.py``: ``storybot run``'s ticks; ``redact.py``: secrets kept out of logs.

Importing ``bot`` loads nothing else: import the module you need (``from bot.app import
build_app``), so that a bottom module such as ``bot.loop.failpoints`` stays cheap.
"""

__all__: list[str] = []
