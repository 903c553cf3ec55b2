"""Where rendering happens: in the scheduler's process, or on render workers.

The runner hands PLANNED and WRITTEN episodes to a ``JobQueue`` when one is configured
(``[workers] broker_url``). A worker runs ``StoryRunner.render_now(episode_id)``: the same
write and render steps, with the same persistence, so a job is idempotent — running it twice
finds the episode already moved on and does nothing.
"""

from __future__ import annotations

from typing import Protocol


class JobQueue(Protocol):
    def submit(self, episode_id: int) -> str:
        """Queue the render of one episode; returns the job id. May be called again for a
        job that was lost (the runner resubmits after ``job_timeout``)."""
        ...
