"""`storybot round close|status|retry|pause|resume|audit`: the operator's day-to-day commands."""

from __future__ import annotations

import json

import click

from bot import redact
from bot.cli.common import open_app, operate
from bot.operator import audit
from story_state.db import session_scope


@click.group(name="round")
def round_group() -> None:
    """The open round."""


@round_group.command(name="close")
@click.pass_context
def round_close(ctx: click.Context) -> None:
    """Close the open round now and pick the next beat."""
    with open_app(ctx) as app:
        click.echo(operate(app, "round close", lambda: app.runner.close_round_now()))


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """Each story, its episodes and the open round."""
    from bot.operator.status import render_text, story_status

    with open_app(ctx) as app, session_scope(app.factory) as session:
        doc = story_status(session)
    click.echo(redact.scrub(json.dumps(doc, indent=2) if as_json else render_text(doc)))


@click.command()
@click.pass_context
def retry(ctx: click.Context) -> None:
    """Retry an episode that was held after repeated failures."""
    with open_app(ctx) as app:
        click.echo(operate(app, "retry", lambda: app.runner.retry_held()))


@click.command()
@click.pass_context
def pause(ctx: click.Context) -> None:
    """Pause the story: nothing is written, rendered or posted until `resume`."""
    with open_app(ctx) as app:
        click.echo(operate(app, "pause", lambda: app.runner.set_paused(True)))


@click.command()
@click.pass_context
def resume(ctx: click.Context) -> None:
    """Resume a paused story."""
    with open_app(ctx) as app:
        click.echo(operate(app, "resume", lambda: app.runner.set_paused(False)))


@click.command(name="audit")
@click.option("--limit", type=click.IntRange(1, 10_000), default=50, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.pass_context
def audit_log(ctx: click.Context, limit: int, as_json: bool) -> None:
    """The operator log: dashboard buttons and operator commands, newest first."""
    with open_app(ctx) as app:
        actions = audit.recent(app.factory, limit)
    if as_json:
        rows = [{**a, "at": a["at"].isoformat()} for a in actions]
        click.echo(json.dumps({"actions": rows}, indent=2))
        return
    if not actions:
        click.echo("no operator actions yet")
    for a in actions:
        mark = "ok" if a["ok"] else "FAILED"
        click.echo(
            f"{a['at']:%Y-%m-%d %H:%M:%S}Z {a['source']:<9} {a['actor']:<16} "
            f"{a['action']}: {mark}: {a['outcome']}"
        )
