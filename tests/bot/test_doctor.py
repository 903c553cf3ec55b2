"""`storybot doctor` against the offline default, mastodon-mock and a scripted X on loopback."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from bot.cli.doctor import doctor
from bot.config import parse_config
from bot.doctor.report import DoctorReport, Status, run_doctor
from bot.platforms.mastodon.adapter import MastodonPlatform
from bot.platforms.x.adapter import XPlatform
from story_state import migrate
from tests.bot.conftest import small_config, write_config
from tests.bot.mastodon_fixtures import MockMastodon, body, recorded
from tests.bot.x_fixtures import NOT_ENROLLED, UNAUTHORIZED, Answer, FakeX, SpecSession, user

ME = "1500000000000000001"
X_SECRETS = {
    "DOCTOR_X_CK": "ck-Vq7dRw2LmZ8pXs41",
    "DOCTOR_X_CS": "cs-Hn3KfT9yQe6uBj52",
    "DOCTOR_X_AT": "at-Pw5GcL1zRa8nYm63",
    "DOCTOR_X_AS": "as-Jd2XbN7sKq4vTf74",
}
ADMIN_SECRET = "admin-Zr8QmW3tLc6yHp95"
X_KEYS = {
    "consumer_key_env": "DOCTOR_X_CK",
    "consumer_secret_env": "DOCTOR_X_CS",
    "access_token_env": "DOCTOR_X_AT",
    "access_secret_env": "DOCTOR_X_AS",
}


def settings(tmp_path: Path, **platforms: Any) -> dict[str, Any]:
    data = small_config(tmp_path, f"sqlite:///{tmp_path / 'storybot.db'}")
    data["web"]["admin_token_env"] = "DOCTOR_ADMIN"
    if platforms:
        data["platforms"] = platforms
    return data


def invoke(tmp_path: Path, data: dict[str, Any], *args: str) -> Result:
    path = write_config(tmp_path, data)
    return CliRunner().invoke(doctor, list(args), obj={"config_path": path})


def rows(report: DoctorReport, area: str) -> dict[str, tuple[Status, str]]:
    return {c.item: (c.status, c.detail) for c in report.checks if c.area == area}


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def secrets_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {**X_SECRETS, "DOCTOR_ADMIN": ADMIN_SECRET}.items():
        monkeypatch.setenv(name, value)


def assert_no_secrets(output: str, *extra: str) -> None:
    for value in (*X_SECRETS.values(), ADMIN_SECRET, *extra):
        assert value not in output
        assert value[:-2] not in output  # not even most of it


# -- offline ---------------------------------------------------------------------------------


def test_offline_default_is_all_ok(tmp_path: Path) -> None:
    data = settings(tmp_path)
    result = invoke(tmp_path, data)
    assert result.exit_code == 0, result.output
    assert "Everything works." in result.output
    assert "FAIL" not in result.output and " warn " not in result.output
    assert "not created yet" in result.output
    assert not (tmp_path / "storybot.db").exists()  # the doctor creates nothing
    assert not (tmp_path / "media").exists()

    migrate.upgrade(data["database"]["url"])
    report = json.loads(invoke(tmp_path, data, "--json").output)
    assert report["ok"] is True
    assert {c["status"] for c in report["checks"]} == {"ok"}
    found = {(c["area"], c["item"]): c["detail"] for c in report["checks"]}
    assert found[("database", "migrations")].endswith("(the newest)")
    assert "espeak" in found[("voice", "espeak")] or "espeak" in found[("voice", "backend")]
    assert ("clip", "ffmpeg") in found
    assert found[("local", "polls")].startswith("4 options of up to 50 characters")


def test_database_behind_is_a_warning_and_unreachable_is_a_failure(tmp_path: Path) -> None:
    data = settings(tmp_path)
    url = data["database"]["url"]
    migrate.upgrade(url)
    migrate.downgrade(url, "-1")
    report = run_doctor(parse_config(data, tmp_path / "config.toml"))
    assert report.ok
    status, detail = rows(report, "database")["migrations"]
    assert status is Status.WARN and "storybot db upgrade" in detail

    data["database"]["url"] = f"postgresql+psycopg://bot:Pg-s3cret-Ux7@127.0.0.1:{closed_port()}/b"
    result = invoke(tmp_path, data)
    assert result.exit_code == 1
    assert re.search(r"FAIL\s+database", result.output) and "Traceback" not in result.output
    assert "Pg-s3cret-Ux7" not in result.output and "***" in result.output


def test_broken_config_and_missing_secret_are_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = settings(tmp_path)
    data["story"]["colour"] = "red"
    result = invoke(tmp_path, data, "--json")
    assert result.exit_code == 1
    (check,) = json.loads(result.output)["checks"]
    assert check["status"] == "fail" and "story.colour: unknown key" in check["detail"]

    monkeypatch.delenv("DOCTOR_MASTODON", raising=False)
    mastodon = {
        "enabled": True,
        "instance": "https://example.social",
        "token_env": "DOCTOR_MASTODON",
    }
    result = invoke(tmp_path, settings(tmp_path, mastodon=mastodon))
    assert result.exit_code == 1
    assert "DOCTOR_MASTODON is not set" in result.output
    assert "local" in result.output  # the rest is still checked


class Exploding:
    """An adapter that fails in a way no check expects, naming a secret in its message."""

    name = "odd"

    def limits(self) -> Any:
        raise RuntimeError(f"boom with {ADMIN_SECRET} inside")


def test_unexpected_adapter_errors_are_rows_and_scrubbed(tmp_path: Path, secrets_set: None) -> None:
    config = parse_config(settings(tmp_path), tmp_path / "config.toml")
    report = run_doctor(config, platforms={"odd": Exploding()})  # type: ignore[dict-item]
    assert not report.ok
    status, detail = rows(report, "odd")["checks"]
    assert status is Status.FAIL
    assert detail == "stopped by RuntimeError: boom with **** inside"


# -- mastodon-mock ---------------------------------------------------------------------------


@pytest.fixture
def mock(tmp_path: Path) -> Iterator[MockMastodon]:
    with MockMastodon(tmp_path) as server:
        yield server


def mastodon_settings(tmp_path: Path, instance: str) -> dict[str, Any]:
    mastodon = {"enabled": True, "instance": instance, "token_env": "DOCTOR_MASTODON"}
    return settings(tmp_path, mastodon=mastodon)


def test_mastodon_good_token(
    tmp_path: Path, mock: MockMastodon, monkeypatch: pytest.MonkeyPatch, secrets_set: None
) -> None:
    monkeypatch.setenv("DOCTOR_MASTODON", "alice_token")
    result = invoke(tmp_path, mastodon_settings(tmp_path, mock.base_url))
    assert result.exit_code == 0, result.output
    assert "logged in as @alice" in result.output
    report = json.loads(
        invoke(tmp_path, mastodon_settings(tmp_path, mock.base_url), "--json").output
    )
    found = {(c["area"], c["item"]): c for c in report["checks"]}
    assert found[("mastodon", "secret")]["detail"] == "DOCTOR_MASTODON is set (****)"
    assert found[("mastodon", "polls")]["detail"].startswith("4 options of up to 50 characters")
    assert found[("mastodon", "video")]["status"] == "ok"
    assert found[("mastodon", "server")]["detail"].startswith("Mastodon ")
    assert found[("mastodon", "votes")]["detail"].startswith("poll votes are anonymous")
    assert found[("mastodon", "replies and polls")]["status"] == "ok"
    assert "GET /api/v1/accounts/verify_credentials" in mock.seen
    assert not [s for s in mock.seen if s.startswith("POST")]  # nothing was posted
    assert_no_secrets(result.output, "alice_token")


def test_mastodon_bad_token_fails(
    tmp_path: Path, mock: MockMastodon, monkeypatch: pytest.MonkeyPatch, secrets_set: None
) -> None:
    token = "mstdn-bad-Wk4Yp9Ls2Qd7"
    monkeypatch.setenv("DOCTOR_MASTODON", token)
    result = invoke(tmp_path, mastodon_settings(tmp_path, mock.base_url))
    assert result.exit_code == 1
    assert re.search(r"FAIL\s+mastodon\s+credentials", result.output)
    assert "storybot login mastodon" in result.output
    assert (
        "2 to fix before storybot can run: mastodon credentials, mastodon replies and polls"
        in result.output
    )
    assert "Everything" not in result.output
    assert "DOCTOR_MASTODON is set (****d7)" in result.output  # the last 2 characters at most
    assert_no_secrets(result.output, token)


def test_mastodon_unreachable_is_a_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, secrets_set: None
) -> None:
    monkeypatch.setenv("DOCTOR_MASTODON", "alice_token")
    result = invoke(tmp_path, mastodon_settings(tmp_path, f"http://127.0.0.1:{closed_port()}"))
    assert result.exit_code == 1
    assert re.search(r"FAIL\s+mastodon\s+credentials\s+network error", result.output)
    assert "Traceback" not in result.output


def test_mastodon_image_only_server(tmp_path: Path, mock: MockMastodon) -> None:
    instance = body(recorded("test_instance.yaml", "GET", "/api/v2/instance"))
    instance["version"] = "0.17.3 git-ccdb5bb"
    instance["source_url"] = "https://github.com/superseriousbusiness/gotosocial"
    media = instance["configuration"]["media_attachments"]
    media["supported_mime_types"] = [m for m in media["supported_mime_types"] if "image" in m]
    mock.fault(r"^/api/v2/instance/?$", status=200, body=instance)
    data = mastodon_settings(tmp_path, mock.base_url)
    data["platforms"]["mastodon"]["token_env"] = "DOCTOR_NO_SUCH_VAR"
    data["platforms"]["mastodon"]["enabled"] = False
    config = parse_config(data, tmp_path / "config.toml")
    report = run_doctor(
        config, platforms={"mastodon": MastodonPlatform(mock.base_url, "bob_token")}
    )
    assert report.ok
    found = rows(report, "mastodon")
    assert found["video"][0] is Status.WARN and "the still is posted instead" in found["video"][1]
    assert found["server"][1].startswith("GoToSocial ")


def unlisted_media(mock: MockMastodon) -> None:
    """The server stops listing its media types (as several Mastodon-API servers do)."""
    instance = body(recorded("test_instance.yaml", "GET", "/api/v2/instance"))
    del instance["configuration"]["media_attachments"]["supported_mime_types"]
    mock.fault(r"^/api/v2/instance/?$", status=200, body=instance)


def test_unreadable_limits_are_unknown_never_ok(
    tmp_path: Path, mock: MockMastodon, monkeypatch: pytest.MonkeyPatch, secrets_set: None
) -> None:
    mock.fault(r"^/api/v2/instance/?$", status=500, body="Internal Error")
    mock.fault(r"^/api/v1/instance/?$", status=404)
    monkeypatch.setenv("DOCTOR_MASTODON", "alice_token")
    result = invoke(tmp_path, mastodon_settings(tmp_path, mock.base_url))
    assert result.exit_code == 1, result.output
    assert re.search(r"\?\?\s+mastodon\s+server\s+.*conservative limits", result.output)
    assert re.search(r"\?\?\s+mastodon\s+video\s+unknown", result.output)
    assert re.search(r"\?\?\s+mastodon\s+posts\s+up to 500 characters \(assumed", result.output)
    assert "Everything" not in result.output
    assert "could not be verified" in result.output
    assert not re.search(r"ok\s+mastodon\s+video", result.output)


def test_probe_learns_that_a_server_refuses_video(
    tmp_path: Path, mock: MockMastodon, monkeypatch: pytest.MonkeyPatch, secrets_set: None
) -> None:
    unlisted_media(mock)
    monkeypatch.setenv("DOCTOR_MASTODON", "alice_token")
    plain = invoke(tmp_path, mastodon_settings(tmp_path, mock.base_url))
    assert plain.exit_code == 1 and re.search(r"\?\?\s+mastodon\s+video", plain.output)
    assert "POST /api/v2/media" not in mock.seen  # nothing uploaded without --probe
    mock.fault(r"^/api/v2/media/?$", methods=["POST"], status=500, body="Internal Error", count=1)
    probed = invoke(tmp_path, mastodon_settings(tmp_path, mock.base_url), "--probe")
    assert probed.exit_code == 0, probed.output
    assert re.search(r"warn\s+mastodon\s+video\s+the server takes no video", probed.output)
    assert mock.seen.count("POST /api/v2/media") == 2  # the clip (refused), then the image
    assert not [s for s in mock.seen if s.startswith("POST /api/v1/statuses")]  # no post


def test_probe_confirms_video(
    tmp_path: Path, mock: MockMastodon, monkeypatch: pytest.MonkeyPatch, secrets_set: None
) -> None:
    unlisted_media(mock)
    monkeypatch.setenv("DOCTOR_MASTODON", "alice_token")
    probed = invoke(tmp_path, mastodon_settings(tmp_path, mock.base_url), "--probe")
    assert probed.exit_code == 0, probed.output
    assert re.search(r"ok\s+mastodon\s+video\s+video accepted \(probe", probed.output)


# -- a scripted X ------------------------------------------------------------------------------


@pytest.fixture
def fake_x() -> Iterator[FakeX]:
    server = FakeX()
    yield server
    server.close()
    assert not server.unexpected, f"requests X was not scripted for: {server.unexpected}"


def x_settings(tmp_path: Path, fake: FakeX, *, post_only: bool) -> dict[str, Any]:
    x = {"enabled": True, "api_base": fake.base, "post_only": post_only, **X_KEYS}
    return settings(tmp_path, x=x)


def me(fake: FakeX) -> None:
    fake.on("GET", "/2/users/me", Answer(body={"data": user(ME, "storybot", "Storybot")}))


def spec_x(fake: FakeX, *, post_only: bool) -> XPlatform:
    return XPlatform(
        *X_SECRETS.values(), api_base=fake.base, session=SpecSession(), post_only=post_only
    )


def test_x_post_only(tmp_path: Path, fake_x: FakeX, secrets_set: None) -> None:
    me(fake_x)
    result = invoke(tmp_path, x_settings(tmp_path, fake_x, post_only=True))
    assert result.exit_code == 0, result.output
    assert "logged in as @storybot (id 1500000000000000001)" in result.output
    assert re.search(r"warn\s+x\s+replies and polls", result.output)
    assert "post-only (platforms.x.post_only = true): reading replies" in result.output
    assert "votes and ideas come from local" in result.output
    assert "up to 280 characters" in result.output and "4 options of up to 25" in result.output
    assert "DOCTOR_X_AT is set (****63)" in result.output
    assert_no_secrets(result.output)


def test_x_read_mode_refused_by_the_tier(tmp_path: Path, fake_x: FakeX, secrets_set: None) -> None:
    me(fake_x)
    fake_x.on("GET", f"/2/users/{ME}/mentions", Answer(403, NOT_ENROLLED))
    config = parse_config(x_settings(tmp_path, fake_x, post_only=False), tmp_path / "config.toml")
    x = spec_x(fake_x, post_only=False)
    report = run_doctor(config, platforms={"x": x})
    assert report.ok  # posting works; reading is what the tier lacks
    status, detail = rows(report, "x")["replies and polls"]
    assert status is Status.WARN
    assert "paid API tier" in detail and "client-not-enrolled" in detail
    assert "no other platform reads them" in detail  # local was not among the platforms
    assert x.limits().can_read  # the doctor only looked: the adapter is unchanged
    assert_no_secrets(report.render() + json.dumps(report.as_dict()))


def test_x_read_mode_ok_and_bad_keys(tmp_path: Path, fake_x: FakeX, secrets_set: None) -> None:
    me(fake_x)
    empty = Answer(body={"meta": {"result_count": 0}})
    fake_x.on("GET", f"/2/users/{ME}/mentions", empty)
    fake_x.on("GET", "/2/tweets/search/recent", empty)
    data = x_settings(tmp_path, fake_x, post_only=False)
    config = parse_config(data, tmp_path / "config.toml")
    report = run_doctor(config, platforms={"x": spec_x(fake_x, post_only=False)})
    assert rows(report, "x")["replies and polls"] == (Status.OK, "read: search and mentions answer")

    fake_x.on("GET", "/2/users/me", Answer(401, UNAUTHORIZED))
    result = invoke(tmp_path, data)
    assert result.exit_code == 1
    assert "check the four X credentials" in result.output
    assert_no_secrets(result.output)


def test_openai_compatible_writer_endpoint(tmp_path: Path) -> None:
    server = FakeX()  # any HTTP server on loopback will do
    server.on("GET", "/v1/models", Answer(body={"object": "list", "data": []}))
    data = settings(tmp_path)
    data["generation"]["writer"] = {"backend": "openai", "base_url": f"{server.base}/v1"}
    try:
        report = run_doctor(parse_config(data, tmp_path / "config.toml"))
    finally:
        server.close()
    assert rows(report, "writer")["endpoint"] == (
        Status.OK,
        f"{server.base}/v1 answers (HTTP 200)",
    )

    data["generation"]["writer"]["base_url"] = f"http://127.0.0.1:{closed_port()}/v1"
    report = run_doctor(parse_config(data, tmp_path / "config.toml"))
    assert report.ok  # the template writer stands in
    status, detail = rows(report, "writer")["endpoint"]
    assert status is Status.WARN and "not reachable" in detail


def test_moderation_endpoint_down_is_a_warning_that_says_what_happens(tmp_path: Path) -> None:
    data = settings(tmp_path)
    data["moderation"] = {"backend": "openai", "base_url": f"http://127.0.0.1:{closed_port()}/v1"}
    report = json.loads(invoke(tmp_path, data, "--json").output)
    found = {(c["area"], c["item"]): c for c in report["checks"]}
    assert found[("moderation", "backend")]["status"] == "ok"
    endpoint = found[("moderation", "endpoint")]
    assert endpoint["status"] == "warn"
    assert "not reachable" in endpoint["detail"] and "wait for the operator" in endpoint["detail"]


def test_clustering_endpoint_down_is_a_warning(tmp_path: Path) -> None:
    data = settings(tmp_path)
    data["clustering"] = {"backend": "openai", "base_url": f"http://127.0.0.1:{closed_port()}/v1"}
    report = json.loads(invoke(tmp_path, data, "--json").output)
    endpoint = {(c["area"], c["item"]): c for c in report["checks"]}[("clustering", "endpoint")]
    assert endpoint["status"] == "warn" and "grouped by their words" in endpoint["detail"]
