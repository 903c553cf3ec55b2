"""A story as files: story.json and a readable thread.html with the clips embedded."""

from __future__ import annotations

import html
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from story_state.models import Episode, PollTally, Story


def poster_for(video: Path) -> Path | None:
    """The poster frame the clip assembler writes beside each clip (``clip.jpg``), if there."""
    poster = video.with_suffix(".jpg")
    return poster if poster != video and poster.is_file() else None


def story_document(session: Session, story: Story, media_root: Path) -> dict[str, Any]:
    episodes = []
    for e in session.scalars(
        select(Episode).where(Episode.story_id == story.id).order_by(Episode.number)
    ):
        if e.video_path is None:
            continue
        poll = None
        if e.round is not None:
            totals: dict[int, int] = {}
            for t in session.scalars(select(PollTally).where(PollTally.round_id == e.round.id)):
                totals[t.position] = totals.get(t.position, 0) + t.votes
            winner = next(
                (o for o in e.round.options if o.position == e.round.winner_position), None
            )
            poll = {
                "options": [
                    {
                        "label": o.label,
                        "beat": o.beat,
                        "source": o.source,
                        "votes": totals.get(o.position, 0),
                    }
                    for o in e.round.options
                ],
                "winner": winner.beat if winner else None,
                "winner_label": winner.label if winner else None,
                "reason": (e.round.decision or {}).get("reason"),
                "suggestions": len(e.round.suggestions),
            }
        source = media_root / e.video_path
        poster = poster_for(source)
        episodes.append(
            {
                "number": e.number,
                "title": e.title,
                "beat": e.beat,
                "narration": e.narration,
                "image_prompt": e.image_prompt,
                "seed": e.seed,
                "video": f"episode-{e.number:03d}.mp4",
                "source_video": str(source),
                "poster": f"episode-{e.number:03d}.jpg" if poster else None,
                "source_poster": str(poster) if poster else None,
                "duration_s": e.duration_s,
                "ideas": [i["text"] for i in e.ideas],
                "credits": [c.contributor.display_name for c in e.credits],
                "poll": poll,
            }
        )
    return {
        "title": story.title,
        "premise": story.premise,
        "seed": story.seed,
        "episodes": episodes,
    }


def copy_videos(doc: dict[str, Any], out_dir: Path) -> None:
    """Each clip (and its poster) beside the page, under the names the document gives."""
    for e in doc["episodes"]:
        shutil.copyfile(e.pop("source_video"), out_dir / e["video"])
        poster = e.pop("source_poster", None)
        if poster and e.get("poster"):
            shutil.copyfile(poster, out_dir / e["poster"])


_CSS = """
body{background:#14110f;color:#eadfc8;font:16px/1.5 Georgia,serif;max-width:760px;margin:2em auto}
h1{font-variant:small-caps;letter-spacing:.1em}.post{border-left:3px solid #a0522d;
padding:.5em 1em;margin:1em 0}.reply{margin-left:2em;border-color:#555}video{width:100%}
.who{color:#d9a441;font-weight:bold}.poll li{list-style:none}.bar{background:#a0522d;height:6px}
.meta{color:#9b8f7a;font-size:.85em}.winner{color:#d9a441;font-weight:bold}
"""


def thread_html(title: str, thread: dict[str, Any], videos: dict[str, str]) -> str:
    """``videos`` maps a media path in the thread to the file name beside the page; a clip's
    poster (see ``poster_for``) is named like its copy, with ``.jpg``."""
    esc = html.escape
    parts = [
        f"<!doctype html><meta charset=utf-8><title>{esc(title)}</title>",
        f"<style>{_CSS}</style><h1>{esc(title)}</h1>",
    ]
    for post in thread["posts"]:
        cls = "post" if post["is_bot"] else "post reply"
        parts.append(f'<div class="{cls}" id="p{esc(post["id"])}">')
        who = esc(post["author"]) + (" (bot)" if post["is_bot"] else "")
        parts.append(f'<div class="who">{who}</div>')
        parts += [f"<p>{esc(line)}</p>" for line in post["text"].split("\n") if line.strip()]
        for m in post["media"]:
            src = videos.get(m["path"])
            if src:
                poster = ""
                if poster_for(Path(m["path"])) is not None:
                    poster = f' poster="{esc(Path(src).with_suffix(".jpg").name)}"'
                parts.append(
                    f'<video controls preload="metadata" src="{esc(src)}"{poster} '
                    f'title="{esc(m["alt_text"])}"></video>'
                )
        if post["poll"]:
            total = sum(o["votes"] for o in post["poll"]["options"]) or 1
            winner = post["poll"].get("winner")
            parts.append('<ul class="poll">')
            for i, o in enumerate(post["poll"]["options"], start=1):
                width = round(100 * o["votes"] / total)
                won = i == winner
                mark = ' class="winner"' if won else ""
                tag = " ★ chosen" if won else ""
                parts.append(
                    f"<li{mark}>{esc(o.get('text') or o['label'])} — {o['votes']} vote(s){tag}"
                    f'<div class="bar" style="width:{width}%"></div></li>'
                )
            parts.append("</ul>")
        likes = f" · ♥ {post['likes']}" if post.get("likes") else ""
        parts.append(f'<div class="meta">#{esc(post["id"])}{likes}</div></div>')
    return "\n".join(parts)
