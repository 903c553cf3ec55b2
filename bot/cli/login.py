"""`storybot login`: get an access token once and keep it in an env file, never on screen."""

from __future__ import annotations

import contextlib
import os
import re
from pathlib import Path
from urllib.parse import urlparse

import click

OOB = "urn:ietf:wg:oauth:2.0:oob"  # the server shows the code instead of redirecting
APP_NAME = "storybot"
TIMEOUT_S = 30.0


def write_env_var(path: Path, name: str, value: str) -> None:
    """Set ``name=value`` in a dotenv file (mode 0600), keeping every other line as it was."""
    pattern = re.compile(rf"^\s*(export\s+)?{re.escape(name)}\s*=")
    lines = path.read_text().splitlines() if path.exists() else []
    out: list[str] = []
    done = False
    for line in lines:
        match = pattern.match(line)
        if match is None:
            out.append(line)
        elif not done:
            out.append(f"{match.group(1) or ''}{name}={value}")
            done = True
    if not done:
        out.append(f"{name}={value}")
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(out) + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def default_env_file(ctx: click.Context) -> Path:
    """The env file the other commands read: --env-file of `storybot`, else the .env beside the
    config file (not the current folder, which may be anywhere)."""
    obj = ctx.find_object(dict) or {}
    chosen = obj.get("env_file")
    if isinstance(chosen, Path):
        return chosen
    config_path = Path(obj.get("config_path") or "config.toml")
    return config_path.resolve().parent / ".env"


@click.group()
def login() -> None:
    """Get access tokens for the bot's social accounts."""


@login.command("mastodon")
@click.option(
    "--instance", required=True, help="The server's address, e.g. https://mastodon.social"
)
@click.option(
    "--env-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where to store the token (created with mode 0600; other lines are kept) "
    "[default: the .env beside the config, which every other command reads].",
)
@click.option(
    "--env-var",
    default="STORYBOT_MASTODON_TOKEN",
    show_default=True,
    help="The variable to store it as: the config's platforms.mastodon.token_env.",
)
@click.option(
    "--scopes", default="read write", show_default=True, help="OAuth scopes, space-separated."
)
@click.pass_context
def mastodon(
    ctx: click.Context, instance: str, env_file: Path | None, env_var: str, scopes: str
) -> None:
    """Authorise storybot on a Mastodon account and store the access token."""
    env_file = env_file or default_env_file(ctx)
    try:
        from mastodon import Mastodon
        from mastodon.errors import MastodonError
    except ImportError:
        raise click.ClickException(
            "logging in to Mastodon needs Mastodon.py: pip install 'storybot[mastodon]'"
        ) from None
    url = urlparse(instance if "://" in instance else f"https://{instance}")
    if url.scheme not in ("http", "https") or not url.netloc:
        raise click.ClickException(f"--instance {instance!r} is not a server address")
    base = f"{url.scheme}://{url.netloc}"
    allow_http = url.scheme == "http"
    if allow_http:
        click.echo(f"Warning: {base} is plain http; use https for a real server.", err=True)
    wanted = scopes.replace(",", " ").split()
    try:
        client_id, client_secret = Mastodon.create_app(
            APP_NAME,
            scopes=wanted,
            redirect_uris=OOB,
            api_base_url=base,
            request_timeout=TIMEOUT_S,
        )
        api = Mastodon(
            client_id=client_id,
            client_secret=client_secret,
            api_base_url=base,
            version_check_mode="none",
            mastodon_version="4.0.0",  # no version probing: odd servers must not break login
            request_timeout=TIMEOUT_S,
        )
        address = api.auth_request_url(redirect_uris=OOB, scopes=wanted, allow_http=allow_http)
    except (MastodonError, KeyError, ValueError) as exc:
        raise click.ClickException(f"{base} did not register storybot as an app: {exc}") from exc
    click.echo("Open this address, log in as the bot's account and allow storybot:")
    click.echo(f"\n  {address}\n")
    code = click.prompt("Then paste the code the server shows here").strip()
    try:
        token = api.log_in(code=code, redirect_uri=OOB, scopes=wanted, allow_http=allow_http)
        account = api.account_verify_credentials()
    except MastodonError as exc:
        raise click.ClickException(f"{base} did not accept the code: {exc}") from exc
    try:
        write_env_var(env_file, env_var, token)
    except OSError as exc:
        raise click.ClickException(f"cannot write {env_file}: {exc}") from exc
    click.echo(f"Logged in as @{account['acct']} on {url.netloc}.")
    click.echo(f"Stored the access token as {env_var} in {env_file} (readable only by you).")


APP_PASSWORD_SCOPE = "com.atproto.appPass"


@login.command("bluesky")
@click.option("--handle", required=True, help="The bot's handle, e.g. storybot.bsky.social")
@click.option(
    "--service",
    default="https://bsky.social",
    show_default=True,
    help="Where the account lives: Bluesky's own hosting, or the address of your PDS.",
)
@click.option(
    "--env-file",
    type=click.Path(path_type=Path, dir_okay=False),
    default=None,
    help="Where to store the app password (created with mode 0600; other lines are kept) "
    "[default: the .env beside the config, which every other command reads].",
)
@click.option(
    "--env-var",
    default="STORYBOT_BLUESKY_APP_PASSWORD",
    show_default=True,
    help="The variable to store it as: the config's platforms.bluesky.password_env.",
)
@click.pass_context
def bluesky(
    ctx: click.Context, handle: str, service: str, env_file: Path | None, env_var: str
) -> None:
    """Check a Bluesky app password by logging in with it, and store it (never the account's
    own password). The bot makes its session at its first post and keeps it refreshed."""
    env_file = env_file or default_env_file(ctx)
    try:
        from atproto_client import Client
        from atproto_core.exceptions import AtProtocolError
    except ImportError:
        raise click.ClickException(
            "logging in to Bluesky needs the atproto SDK: pip install 'storybot[bluesky]'"
        ) from None
    url = urlparse(service if "://" in service else f"https://{service}")
    if url.scheme not in ("http", "https") or not url.netloc:
        raise click.ClickException(f"--service {service!r} is not a server address")
    base = f"{url.scheme}://{url.netloc}"
    if url.scheme == "http":
        click.echo(f"Warning: {base} is plain http; use https for a real server.", err=True)
    handle = handle.strip().lstrip("@").lower()
    where = "Settings → Privacy and security → App passwords"
    click.echo(f"Make an app password for @{handle} ({where}).")
    password = click.prompt("Paste the app password here", hide_input=True).strip()
    client = Client(base_url=base)
    try:
        client.login(handle, password, fetch_bsky_profile=False)
        session = client._session
        scope = session.access_jwt_payload.scope
        # Only a check: the session made here is ended again (the bot makes and keeps its own).
        client.com.atproto.server.delete_session(headers=client._get_refresh_auth_headers())
    except AtProtocolError as exc:
        raise click.ClickException(f"{base} refused that handle and password: {exc}") from None
    finally:
        client.request.close()
    if scope != APP_PASSWORD_SCOPE:
        raise click.ClickException(
            "that is the account's own password: storybot takes an app password only "
            "(it can be revoked on its own and cannot change the account's settings)"
        )
    try:
        write_env_var(env_file, env_var, password)
    except OSError as exc:
        raise click.ClickException(f"cannot write {env_file}: {exc}") from exc
    click.echo(f"Logged in as @{session.handle} ({session.did}) on {url.netloc}.")
    click.echo(f"Stored the app password as {env_var} in {env_file} (readable only by you).")
    click.echo(
        f'In the config:\n\n  [platforms.bluesky]\n  enabled = true\n  service = "{base}"\n'
        f'  handle = "{handle}"\n  password_env = "{env_var}"\n'
    )
