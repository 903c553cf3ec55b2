"""`storybot branches|fork|lore`: the operator's hands on the story tree and its bible."""

from __future__ import annotations

import json
import re
from typing import Any

import click
from sqlalchemy import select

from bot.app import App
from bot.cli.common import open_app
from bot.operator import audit
from story_state.db import session_scope
from story_state.errors import StateError
from story_state.models import Episode, LoreEntry, Story


def _app(ctx: click.Context) -> App:
    app: App = ctx.with_resource(open_app(ctx))
    return app


@click.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def branches(ctx: click.Context, as_json: bool) -> None:
    """Print the story's episode tree: the main line and every fork."""
    app = _app(ctx)
    story_id = app.runner.ensure_story()
    with session_scope(app.factory) as session:
        episodes = session.scalars(
            select(Episode).where(Episode.story_id == story_id).order_by(Episode.id)
        ).all()
        tree: list[dict[str, Any]] = [
            {
                "id": e.id,
                "branch": e.branch,
                "number": e.number,
                "parent": e.parent_id,
                "state": str(e.state),
                "beat": e.beat,
            }
            for e in episodes
        ]
    if as_json:
        click.echo(json.dumps({"episodes": tree}, indent=2))
        return
    children: dict[int | None, list[dict[str, Any]]] = {}
    for node in tree:
        children.setdefault(node["parent"], []).append(node)

    def show(node: dict[str, Any], depth: int) -> None:
        click.echo(
            f"{'  ' * depth}#{node['number']} [{node['branch']}] {node['state']}: "
            f"{str(node['beat'])[:70]}"
        )
        for kid in children.get(node["id"], []):
            if kid["branch"] == node["branch"]:
                show(kid, depth)
            else:
                click.echo(f"{'  ' * (depth + 1)}⎇ branch {kid['branch']}")
                show(kid, depth + 2)

    for root in children.get(None, []):
        show(root, 0)


@click.command()
@click.option("--from", "number", type=int, required=True, help="Main-line episode number.")
@click.option("--option", type=int, required=True, help="The poll option that should have won.")
@click.option("--name", "branch", required=True, help="A name for the new branch.")
@click.pass_context
def fork(ctx: click.Context, number: int, option: int, branch: str) -> None:
    """Start a branch: "what if option N had won after episode M?"."""
    app = _app(ctx)
    try:
        line = audit.logged(
            app.factory,
            f"fork --from {number} --option {option} --name {branch}",
            lambda: app.runner.fork(number, option, branch),
            app.runner.clock,
        )
    except StateError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(line)


@click.group()
def lore() -> None:
    """The story bible: characters, places and canon facts."""


@lore.command(name="list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def lore_list(ctx: click.Context, as_json: bool) -> None:
    """Every entry, canon and proposed."""
    app = _app(ctx)
    story_id = app.runner.ensure_story()
    with session_scope(app.factory) as session:
        story = session.get(Story, story_id)
        assert story is not None
        rows = [
            {
                "id": e.id,
                "kind": e.kind,
                "name": e.name,
                "status": e.status,
                "description": e.description,
                "visual": e.visual,
                "contradictions": list(e.contradictions),
            }
            for e in story.lore
        ]
        summary = story.summary
    if as_json:
        click.echo(json.dumps({"summary": summary, "entries": rows}, indent=2))
        return
    click.echo(f"summary: {summary or '(none yet)'}")
    for r in rows:
        click.echo(f"[{r['id']}] {r['kind']:<9} {r['status']:<8} {r['name']}: {r['description']}")


@lore.command(name="add")
@click.option("--kind", type=click.Choice(["character", "place", "fact"]), required=True)
@click.option("--name", required=True)
@click.option("--description", required=True)
@click.option("--visual", default="", help="How a character always looks in pictures.")
@click.option(
    "--contradicts",
    "patterns",
    multiple=True,
    help="A regular expression; matching suggestions are held for review.",
)
@click.pass_context
def lore_add(
    ctx: click.Context,
    kind: str,
    name: str,
    description: str,
    visual: str,
    patterns: tuple[str, ...],
) -> None:
    """Add a canon entry."""
    for pattern in patterns:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise click.ClickException(f"--contradicts {pattern!r}: {exc}") from None
    app = _app(ctx)
    story_id = app.runner.ensure_story()
    with session_scope(app.factory) as session:
        exists = session.scalars(
            select(LoreEntry).where(
                LoreEntry.story_id == story_id, LoreEntry.kind == kind, LoreEntry.name == name
            )
        ).first()
        if exists is not None:
            raise click.ClickException(f"a {kind} named {name!r} already exists (id {exists.id})")
        entry = LoreEntry(
            story_id=story_id,
            kind=kind,
            name=name,
            description=description,
            visual=visual,
            keywords=[],
            contradictions=list(patterns),
            status="canon",
        )
        session.add(entry)
        session.flush()
        line = f"added {kind} {name!r} (id {entry.id})"
    audit.record(app.factory, "cli", audit.cli_actor(), "lore add", True, line, app.runner.clock)
    click.echo(line)


def _set_status(ctx: click.Context, entry_id: int, status: str) -> None:
    app = _app(ctx)
    with session_scope(app.factory) as session:
        entry = session.get(LoreEntry, entry_id)
        if entry is None:
            raise click.ClickException(f"no lore entry {entry_id}")
        entry.status = status
        line = f"{entry.kind} {entry.name!r} is now {status}"
    action = f"lore {'accept' if status == 'canon' else 'reject'} {entry_id}"
    audit.record(app.factory, "cli", audit.cli_actor(), action, True, line, app.runner.clock)
    click.echo(line)


@lore.command(name="accept")
@click.argument("entry_id", type=int)
@click.pass_context
def lore_accept(ctx: click.Context, entry_id: int) -> None:
    """Make a proposed entry canon."""
    _set_status(ctx, entry_id, "canon")


@lore.command(name="reject")
@click.argument("entry_id", type=int)
@click.pass_context
def lore_reject(ctx: click.Context, entry_id: int) -> None:
    """Reject a proposed entry (kept, never used)."""
    _set_status(ctx, entry_id, "rejected")
