"""`storybot local …`: act as followers in the sandbox, or read its thread."""

from __future__ import annotations

import json
from pathlib import Path

import click

from bot.cli.common import open_app
from bot.platforms.local import LocalAction, LocalActionError, LocalPlatform
from story_state.errors import StorybotError


def _local(ctx: click.Context) -> LocalPlatform:
    app = ctx.with_resource(open_app(ctx))
    if app.local is None:
        raise click.ClickException("platforms.local is not enabled in this config")
    return app.local


def _do(ctx: click.Context, action: LocalAction) -> None:
    platform = _local(ctx)
    try:
        click.echo(platform.act(action))
    except StorybotError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def local() -> None:
    """Be a follower in the local sandbox."""


@local.command()
@click.option("--as", "actor", required=True, help="Your display name.")
@click.option("--to", "to", default=None, help="Post id to reply to (default: the open round).")
@click.argument("text")
@click.pass_context
def reply(ctx: click.Context, actor: str, to: str | None, text: str) -> None:
    """Reply with a plot idea."""
    _do(ctx, LocalAction(actor=actor, reply=text, to=to))


@local.command()
@click.option("--as", "actor", required=True)
@click.option("--to", "to", default=None, help="The poll's post id (default: the latest poll).")
@click.argument("option")
@click.pass_context
def vote(ctx: click.Context, actor: str, to: str | None, option: str) -> None:
    """Vote in the open poll: a 1-based option number or the exact label."""
    _do(ctx, LocalAction(actor=actor, vote=option, to=to))


@local.command()
@click.option("--as", "actor", required=True)
@click.argument("reply_id")
@click.pass_context
def like(ctx: click.Context, actor: str, reply_id: str) -> None:
    """Like a reply."""
    _do(ctx, LocalAction(actor=actor, like=reply_id))


def parse_jsonl(path: Path) -> list[tuple[int, LocalAction]]:
    """Every line checked before anything is applied; errors name the line."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise LocalActionError(f"{path}: cannot read: {exc}") from None
    actions = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise LocalActionError(f"{path}:{number}: not JSON: {exc.msg}") from None
        if not isinstance(item, dict):
            raise LocalActionError(f"{path}:{number}: expected a JSON object")
        unknown = set(item) - {"as", "reply", "to", "vote", "like"}
        kinds = [k for k in ("reply", "vote", "like") if k in item]
        actor = item.get("as")
        if unknown:
            raise LocalActionError(f"{path}:{number}: unknown key(s) {sorted(unknown)}")
        if not isinstance(actor, str):
            raise LocalActionError(f'{path}:{number}: "as" must be a name (a string)')
        if len(kinds) != 1:
            raise LocalActionError(f"{path}:{number}: give exactly one of reply, vote, like")
        vote = item.get("vote")
        if "vote" in item and (isinstance(vote, bool) or not isinstance(vote, int | str)):
            raise LocalActionError(f'{path}:{number}: "vote" is an option number or label')
        for key in ("reply", "to", "like"):
            value = item.get(key)
            if key in item and (isinstance(value, bool) or not isinstance(value, str | int)):
                raise LocalActionError(f'{path}:{number}: "{key}" must be text or an id')
        if isinstance(item.get("reply"), int):
            raise LocalActionError(f'{path}:{number}: "reply" must be text')
        actions.append(
            (
                number,
                LocalAction(
                    actor=actor,
                    reply=item.get("reply"),
                    to=str(item["to"]) if item.get("to") is not None else None,
                    vote=vote,
                    like=str(item["like"]) if "like" in item else None,
                ),
            )
        )
    return actions


@local.command(name="import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.pass_context
def import_(ctx: click.Context, file: Path) -> None:
    """Replay follower actions from a JSONL file (all or nothing)."""
    try:
        actions = parse_jsonl(file)
        platform = _local(ctx)
        done = platform.act_many(actions)
    except StorybotError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"imported {len(done)} action(s)")


@local.command()
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def thread(ctx: click.Context, as_json: bool) -> None:
    """Print the thread as followers see it."""
    platform = _local(ctx)
    doc = platform.thread()
    if as_json:
        click.echo(json.dumps(doc, indent=2, ensure_ascii=False))
        return
    depth: dict[str, int] = {}
    for post in doc["posts"]:
        level = depth.get(post["in_reply_to"], -1) + 1 if post["in_reply_to"] else 0
        depth[post["id"]] = level
        pad = "  " * level
        who = f"{post['author']}{' (bot)' if post['is_bot'] else ''}"
        click.echo(f"{pad}[{post['id']}] {who}: {post['text'].splitlines()[0][:100]}")
        for m in post["media"]:
            click.echo(f"{pad}    ▶ {m['path']}")
        if post["poll"]:
            for i, o in enumerate(post["poll"]["options"], start=1):
                click.echo(f"{pad}    {i}. {o['label']} — {o['votes']} vote(s)")
        if post["likes"]:
            click.echo(f"{pad}    ♥ {post['likes']}")
