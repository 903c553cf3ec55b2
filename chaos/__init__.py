"""Chaos harness: a story on the local platform, its runner SIGKILLed at seeded random points.

``python -m chaos.harness --db sqlite|postgres --kills 30 --rounds 5 --seed S`` runs it (its
entry point, ``chaos.harness.run_chaos``, is not imported here so that ``-m`` runs it
cleanly); ``tests/test_chaos.py`` runs a short form.
"""

from chaos.checks import Verdict, check_story
from chaos.plan import Kill, make_plan

__all__ = ["Kill", "Verdict", "check_story", "make_plan"]
