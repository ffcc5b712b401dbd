"""The whole web experience in a real browser: sign up, ask, go through a session, rate,
see history and charts, memories in prompts, export, delete. Every page is screenshotted at
phone and desktop widths and checked with axe (no serious or critical violations)."""

from __future__ import annotations

import json
import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.browser.conftest import DESKTOP, PHONE, SCREENSHOTS

pytestmark = pytest.mark.browser
PASSWORD = "a quiet long password"
axe = Axe()


def check_page(page: Page, name: str) -> None:
    """Screenshots at both widths; axe in light and dark must find nothing serious."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    for label, viewport, scheme in (("phone", PHONE, "light"), ("desktop", DESKTOP, "dark")):
        page.set_viewport_size(viewport)
        page.emulate_media(color_scheme=scheme)
        page.screenshot(path=SCREENSHOTS / f"{name}-{label}.png", full_page=True)
        result = axe.run(page)
        problems += [
            f"{label}/{scheme} {v['id']} ({v['impact']}): {v['help']} at "
            f"{[n['target'] for n in v['nodes']][:3]}"
            for v in result.response["violations"] if v["impact"] in ("serious", "critical")
        ]
    page.set_viewport_size(PHONE)
    page.emulate_media(color_scheme="light")
    assert problems == [], f"{name}: " + "\n".join(problems)


def test_a_whole_visit(page: Page, live_server):
    page.goto("/")
    expect(page.get_by_role("heading", level=1)).to_have_text("A good cry, when you need one")
    check_page(page, "01-welcome")

    # Sign up: a mistake first, shown next to the field and keeping what was typed.
    page.get_by_role("link", name="Create an account").first.click()
    page.get_by_label("Username").fill("river")
    page.get_by_label("Password", exact=True).fill("short")
    page.get_by_label("Password again").fill("short")
    page.get_by_role("button", name="Create my account").click()
    expect(page.locator("#password-error")).to_have_text(
        "A password needs at least 8 characters.")
    expect(page.get_by_label("Username")).to_have_value("river")
    expect(page.get_by_label("Password", exact=True)).to_have_attribute("aria-invalid", "true")
    check_page(page, "02-signup-errors")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create my account").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "What would you like to let out?")

    # A memory about Dad, before asking for a session about him.
    page.get_by_role("link", name="Memories").click()
    page.get_by_label("A short name for this memory").fill("Dad's workshop")
    page.get_by_label("What happened, who was there").fill(
        "Saturday mornings in Dad's workshop: sawdust, the radio, his hands on mine.")
    page.get_by_label("People").fill("Dad")
    page.get_by_label("Tags").fill("father, home")
    page.get_by_role("button", name="Keep this memory").click()
    expect(page.get_by_role("status")).to_contain_text("Memory kept")
    expect(page.get_by_role("heading", name="Dad's workshop")).to_be_visible()
    check_page(page, "03-memories")

    # The request page, by keyboard: focus is visible and Space picks a mood.
    page.get_by_role("link", name="New session").click()
    check_page(page, "04-request")
    page.get_by_label("In a few words, what is on your mind?").fill("I miss my dad")
    page.keyboard.press("Shift+Tab")
    focused = page.evaluate("document.activeElement.value")
    assert focused == "joy"
    outline = page.evaluate(
        "getComputedStyle(document.activeElement.closest('label')).outlineStyle")
    assert outline == "solid", "the focused mood card shows no focus ring"
    page.keyboard.press("Space")  # picks Joy
    page.keyboard.press("Space")  # and unpicks it
    expect(page.locator("#moods-10")).not_to_be_checked()
    page.get_by_text("Grief", exact=True).click()
    expect(page.locator("#moods-0")).to_be_checked()
    page.get_by_role("button", name="Start").click()

    # The session: phases, prompts with the memory, a way to open each item, aftercare.
    expect(page.get_by_role("heading", level=1)).to_have_text("Your session")
    for phase in ("Settle", "Deepen", "Release", "Aftercare"):
        expect(page.get_by_role("heading", name=phase, exact=True)).to_be_visible()
    expect(page.locator(".memory-ref").first).to_contain_text("Your memory: Dad's workshop")
    assert page.locator(".item").count() >= 4
    links = page.locator(".item .links a")
    assert links.count() == page.locator(".item").count()
    assert all(re.match(r"https://(open\.spotify\.com|duckduckgo\.com)/", href)
               for href in links.evaluate_all("els => els.map(e => e.href)"))
    expect(page.get_by_role("heading", name="Afterwards")).to_be_visible()
    check_page(page, "05-session")

    # The little guide: Begin highlights the first item, Next moves on.
    page.get_by_role("button", name="Begin").click()
    first, second = page.locator(".item").nth(0), page.locator(".item").nth(1)
    expect(first).to_have_class(re.compile(r"\bnow\b"))
    expect(page.locator(".player .now")).to_contain_text(
        "Now: " + first.get_attribute("data-title"))
    expect(page.get_by_role("button", name="Pause")).to_be_visible()
    page.get_by_role("button", name="Next").click()
    expect(second).to_have_attribute("aria-current", "step")
    expect(first).not_to_have_class(re.compile(r"\bnow\b"))
    check_page(page, "06-session-playing")

    # Rating: one tap per item, release, mood before and after, a note.
    page.get_by_role("link", name="I'm done: how did it go?").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("How did it go?")
    items = page.locator("fieldset.rate-item")
    taps = ["Cried", "Moved", "Neutral", "Skipped"]
    for i in range(items.count()):
        items.nth(i).get_by_text(taps[i % len(taps)], exact=True).click()
    page.locator("fieldset", has_text="How much did it release?").get_by_text(
        "4", exact=True).click()
    page.locator("fieldset", has_text="Your mood before").get_by_text("3", exact=True).click()
    page.locator("fieldset", has_text="Your mood now").get_by_text("7", exact=True).click()
    page.get_by_label("A note for yourself").fill("The workshop song got me. Lighter now.")
    check_page(page, "07-rate")
    page.get_by_role("button", name="Save").click()

    # History with charts (inline SVG with a title) and their tables.
    expect(page.get_by_role("heading", level=1)).to_have_text("Your sessions")
    expect(page.get_by_role("status")).to_contain_text("Your rating is saved")
    charts = page.locator("svg.chart")
    expect(charts).to_have_count(3)
    expect(page.get_by_role("img", name="Mood before and after each session")).to_be_visible()
    page.get_by_text("The numbers, as a table").first.click()
    expect(page.locator("table").first).to_contain_text("3")
    check_page(page, "08-history")

    # A second session in two taps: a mood, then Start.
    page.get_by_role("link", name="New session").click()
    page.get_by_text("Heartbreak", exact=True).click()
    page.get_by_role("button", name="Start").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your session")

    # Editing the memory shows up in the next prompt that uses it.
    page.get_by_role("link", name="Memories").click()
    page.get_by_role("link", name="Edit Dad's workshop").click()
    expect(page.get_by_label("People")).to_have_value("Dad")
    page.get_by_label("A short name for this memory").fill("")
    page.get_by_role("button", name="Save").click()
    expect(page.locator("#title-error")).to_contain_text("Give the memory a short name")
    check_page(page, "09-memory-edit-errors")
    page.get_by_label("A short name for this memory").fill("Dad's workshop, Saturdays")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("heading", name="Dad's workshop, Saturdays")).to_be_visible()
    page.get_by_role("link", name="New session").click()
    page.get_by_label("In a few words, what is on your mind?").fill("I miss my dad so much")
    page.get_by_role("button", name="Start").click()
    expect(page.locator(".memory-ref").first).to_contain_text("Dad's workshop, Saturdays")

    # Account: everything as one file, then gone after a confirmation.
    page.get_by_role("link", name="Account").click()
    check_page(page, "10-account")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download all my data (JSON)").click()
    document = json.loads(download.value.path().read_text(encoding="utf-8"))
    assert download.value.suggested_filename.startswith("goodcry-river-")
    assert document["user"]["username"] == "river"
    assert len(document["sessions"]) == 3
    assert [m["title"] for m in document["memories"]] == ["Dad's workshop, Saturdays"]
    rated = [s for s in document["sessions"] if s["feedback"]]
    assert len(rated) == 1 and rated[0]["feedback"]["mood_after"] == 7

    page.get_by_role("link", name="Delete my account and everything in it").click()
    page.get_by_label("Your password, to confirm").fill("not my password")
    page.get_by_role("button", name="Delete everything").click()
    expect(page.locator("#password-error")).to_contain_text("nothing was deleted")
    check_page(page, "11-account-delete")
    page.get_by_label("Your password, to confirm").fill(PASSWORD)
    page.get_by_role("button", name="Delete everything").click()
    expect(page.get_by_role("status")).to_contain_text("everything in it are deleted")

    page.goto("/signin")
    page.get_by_label("Username").fill("river")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#password-error")).to_have_text(
        "That username and password do not match.")
    check_page(page, "12-signin-errors")
    page.goto("/help")
    expect(page.locator("main").get_by_text("116 123")).to_be_visible()
    check_page(page, "13-help")


def test_crisis_words_bring_the_care_card(page: Page):
    page.goto("/signup")
    page.get_by_label("Username").fill("harbour")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password again").fill(PASSWORD)
    page.get_by_role("button", name="Create my account").click()
    page.get_by_label("In a few words, what is on your mind?").fill(
        "I want to kill myself tonight")
    page.get_by_role("button", name="Start").click()
    card = page.locator("section.crisis")
    expect(card).to_contain_text("988")
    expect(card).to_contain_text("116 123")
    expect(card.get_by_role("link", name="findahelpline.com")).to_be_visible()
    check_page(page, "14-session-crisis")
