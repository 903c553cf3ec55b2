"""Chaos harness: a story told on one platform, its runner SIGKILLed at seeded random points.

``python -m chaos.harness --platform local|mastodon-mock|takahe|bluesky --db sqlite|postgres
--kills 30 --rounds 5 --seed S`` runs it (its entry point, ``chaos.harness.run_chaos``, is not
imported here so that ``-m`` runs it cleanly); ``tests/test_chaos.py`` runs a short form.
Duplicates, losses and divergence are counted on the server's record (chaos/record.py).
"""

from chaos.checks import Verdict, check_story
from chaos.plan import Kill, make_plan
from chaos.record import Record, compare
from chaos.world import LocalWorld, Status, World

__all__ = [
    "Kill",
    "LocalWorld",
    "Record",
    "Status",
    "Verdict",
    "World",
    "check_story",
    "compare",
    "make_plan",
]
