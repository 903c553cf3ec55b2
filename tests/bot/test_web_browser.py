"""The sandbox and the dashboard in real headless Chromium (Debian's, driven by Playwright)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Dialog, Page, expect, sync_playwright
from sqlalchemy import select

from story_state.db import session_scope
from story_state.models import Episode
from tests.bot.websupport import TOKEN, Site, lengthen_option, serve

pytestmark = pytest.mark.timeout(180)

CHROMIUM = Path("/usr/bin/chromium")
ARGS = [
    "--no-sandbox",  # the test run may be root
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
WAIT_MS = 30_000
HOSTILE = (
    '<img src=x onerror="window.__pwned=1;alert(1)"><script>window.__pwned=2;alert(2)</script>'
)
LAST_VIDEO = "[...document.querySelectorAll('#thread article.bot video')].pop()"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install -y chromium", pytrace=False)
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with serve(tmp_path, first_tick=False) as running:  # as `storybot run` starts: no episode
        yield running


def guarded(browser: Browser, dialogs: list[str]) -> Page:
    """A page in its own context (own cookies) that records any dialog a script opens."""
    page = browser.new_context().new_page()
    page.set_default_timeout(WAIT_MS)

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", record)
    return page


def not_pwned(page: Page) -> None:
    assert page.evaluate("() => typeof window.__pwned") == "undefined"


def test_follower_and_operator_in_a_real_browser(browser: Browser, site: Site) -> None:
    dialogs: list[str] = []
    page = guarded(browser, dialogs)
    page.goto(site.base + "/")
    page.evaluate("() => { window.__stayed = 42; }")  # gone if the page ever reloads
    expect(page.locator("#empty")).to_contain_text("The first episode is being made")
    site.app.runner.tick()  # what the scheduler does at once on start: episode 1 and its poll
    expect(page.locator("#thread article.bot video")).to_have_count(1)
    expect(page.locator("#empty")).to_have_count(0)

    page.fill("#name", "ana")
    page.click("#name-form button")
    expect(page.locator("#whoami")).to_contain_text("Posting as ana")
    page.fill("#reply-text", "The miners rebel")
    page.click("#reply-form button")
    expect(page.locator("#notice")).to_contain_text("Thanks, ana")
    page.click(".poll.open li[data-position='1'] button")
    expect(page.locator("#notice")).to_contain_text("Vote counted")
    page.fill("#reply-text", HOSTILE)
    page.click("#reply-form button")
    expect(page.locator("#thread")).to_contain_text("window.__pwned=2")  # shown as text
    expect(page.locator("#thread")).to_contain_text("The miners rebel")

    assert site.app.local is not None
    thread = site.app.local.thread()["posts"]
    assert [p["text"] for p in thread if p["author"] == "ana"] == ["The miners rebel", HOSTILE]
    assert [p for p in thread if p["poll"]][-1]["poll"]["options"][0]["votes"] == 1

    # The operator rejects ana's idea on the dashboard (after a tick has harvested it).
    site.app.runner.tick()
    admin = guarded(browser, dialogs)
    admin.goto(site.base + "/admin")
    admin.fill("#token", TOKEN)
    admin.click("#login-form button")
    row = admin.locator("tr", has_text="The miners rebel")
    row.locator("input[name=reason]").fill("too close to canon")
    row.locator("form.reject button").click()
    expect(admin.locator(".flash.ok")).to_contain_text("rejected suggestion")
    expect(admin.locator("tr", has_text="The miners rebel")).to_contain_text(
        "rejected: too close to canon"
    )
    expect(admin.locator("#queue")).to_contain_text("window.__pwned=2")
    not_pwned(admin)

    # The round closes; the next episode shows up in the open page without a reload and plays.
    site.app.runner.close_round_now()
    site.app.runner.tick()
    page.wait_for_function(
        "() => document.querySelectorAll('#thread article.bot video').length === 2",
        timeout=WAIT_MS,
    )
    assert page.evaluate("() => window.__stayed") == 42
    page.evaluate(
        f"""async () => {{
            const video = {LAST_VIDEO};
            video.muted = true;
            const hung = () => new Error("play() hung");
            const timeout = new Promise((_, no) => setTimeout(() => no(hung()), 15000));
            await Promise.race([video.play(), timeout]);
        }}"""
    )
    page.wait_for_function(
        f"() => {{ const v = {LAST_VIDEO}; return v.readyState >= 2 && v.duration > 0 "
        "&& v.currentTime > 0; }",
        timeout=WAIT_MS,
    )
    expect(page.locator(".poll.open")).to_have_count(1)  # the new poll; the old one closed
    not_pwned(page)
    assert dialogs == []
    with session_scope(site.app.factory) as session:
        second = session.scalars(select(Episode).where(Episode.number == 2)).one()
        assert "The miners rebel" not in [idea["text"] for idea in second.ideas]


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Site]:
    with serve(tmp_path) as running:  # episode 1 and its poll are up
        yield running


def test_the_top_panel_posters_whole_options_and_a_long_paste(browser: Browser, live: Site) -> None:
    beat = "The radio wakes up and calls Mara by the name of her drowned sister"
    label = lengthen_option(live, 2, beat)
    dialogs: list[str] = []
    page = guarded(browser, dialogs)
    page.set_viewport_size({"width": 1000, "height": 700})
    page.goto(live.base + "/")

    # The newest episode, the open poll and the reply box are at the top of the page.
    panel = page.locator("#now")
    expect(panel).to_contain_text("Now: Episode 1")
    poll_id = page.locator("#thread .poll.open").locator("xpath=ancestor::article[1]")
    poll_post = poll_id.get_attribute("data-id")
    expect(page.locator("#now-vote")).to_have_attribute("href", f"#p{poll_post}")
    expect(page.locator("#reply-target")).to_contain_text(
        f"Your reply answers the poll after episode 1 (#{poll_post})"
    )
    assert page.locator("#reply-to").input_value() == poll_post
    top = panel.bounding_box()
    first_post = page.locator("#thread article").first.bounding_box()
    assert top is not None and first_post is not None
    assert top["y"] + top["height"] <= first_post["y"]
    assert top["y"] < 700  # in the first screenful
    page.click("#now-vote")
    page.wait_for_function(f"() => location.hash === '#p{poll_post}'")

    # Every clip shows its poster before it plays, and the poster is a real picture.
    size = page.evaluate(
        """async () => {
            const videos = [...document.querySelectorAll('video')];
            const sizes = [];
            for (const v of videos) {
                if (!v.poster) return null;
                const img = new Image();
                img.src = v.poster;
                await img.decode();
                sizes.push([img.naturalWidth, img.naturalHeight]);
            }
            return sizes;
        }"""
    )
    assert size == [[320, 180]]

    # Poll buttons carry the whole option, not the label fitted to a platform's limit.
    button = page.locator(".poll.open li[data-position='2'] button")
    expect(button).to_have_text(beat)
    assert label != beat
    assert button.evaluate(
        "b => b.scrollWidth <= b.clientWidth && b.scrollHeight <= b.clientHeight"
    )

    page.fill("#name", "ana")
    page.click("#name-form button")
    expect(page.locator("#whoami")).to_contain_text("Posting as ana")

    # A long paste is kept whole and refused with the reason; nothing is cut.
    long = " ".join(["saltwind"] * 50)  # 449 characters
    page.focus("#reply-text")
    page.keyboard.insert_text(long)
    assert page.locator("#reply-text").input_value() == long
    expect(page.locator("#reply-count")).to_contain_text("449 / 400 characters: too long by 49")
    page.click("#reply-form button")
    expect(page.locator("#notice")).to_contain_text(
        "Not accepted: too long (449 characters; 400 max)"
    )
    assert page.locator("#reply-text").input_value() == long
    assert page.locator("#notice").get_attribute("class") == "error"

    page.fill("#reply-text", "Mara answers the radio")
    page.click("#reply-form button")
    expect(page.locator("#notice")).to_contain_text("Thanks, ana! Your idea counts")
    assert page.locator("#notice").get_attribute("class") == "ok"
    page.fill("#reply-text", "Mara breaks the radio")
    page.click("#reply-form button")
    expect(page.locator("#notice")).to_contain_text("Your first idea this round is the one")
    assert page.locator("#notice").get_attribute("class") == "warn"
    page.click(".poll.open li[data-position='2'] button")
    expect(page.locator("#notice")).to_contain_text(f"Vote counted: {beat}.")

    # Another browser cannot take ana's name.
    other = guarded(browser, dialogs)
    other.goto(live.base + "/")
    other.fill("#name", "Ana")
    other.click("#name-form button")
    expect(other.locator("#notice")).to_contain_text("taken by another follower")
    expect(other.locator("#whoami")).not_to_contain_text("Posting as")

    # The next episode arrives: the panel follows it without a reload.
    live.app.runner.close_round_now()
    live.app.runner.tick()
    expect(panel).to_contain_text("Now: Episode 2")
    expect(page.locator("#reply-target")).to_contain_text("the poll after episode 2")
    expect(page.locator(".poll li.winner")).to_have_count(1)
    not_pwned(page)
    assert dialogs == []
