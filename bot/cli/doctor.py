"""`storybot doctor`: print what will work with this config, what will not, and why."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click

from bot.config import Config
from bot.doctor.report import report_for, run_doctor
from bot.redact import scrub


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--probe",
    is_flag=True,
    help="Also upload a one-second test clip (unattached; deleted where the server allows) "
    "to learn for certain whether a server takes video.",
)
@click.pass_context
def doctor(ctx: click.Context, as_json: bool, probe: bool) -> None:
    """Check the config, secrets, database, tools and accounts: what will work, and why not."""
    obj = ctx.find_object(dict) or {}
    given = obj.get("config")
    if isinstance(given, Config):
        report = run_doctor(given, probe=probe)
    else:
        path = Path(obj.get("config_path") or os.environ.get("STORYBOT_CONFIG") or "config.toml")
        report = report_for(path, probe=probe)
    if as_json:
        click.echo(scrub(json.dumps(report.as_dict(), indent=2)))
    else:
        click.echo(scrub(report.render(styled=True)))
    ctx.exit(0 if report.ok else 1)
