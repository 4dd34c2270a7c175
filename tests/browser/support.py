"""What the browser tests share: phone and desktop contexts, the menu, sign-in, screenshots, mail.

Kept apart from conftest.py so they are plain functions a test imports (not
fixtures). Set PORTAL_SCREENSHOTS=/some/dir to keep screenshots (``shot``).
"""

from __future__ import annotations

import os
import re
import time
from email.message import EmailMessage

PHONE = {"width": 360, "height": 740}
DESKTOP = {"width": 1280, "height": 900}
LINK_RE = re.compile(r"https?://[^\s<>\"]+")


def phone_page(browser):
    """A new page in a context of its own that behaves like a cheap phone (360 x 740, touch)."""
    page = browser.new_context(viewport=PHONE, device_scale_factor=1, is_mobile=True, has_touch=True).new_page()
    page.set_default_timeout(15_000)
    return page


def desktop_page(browser):
    """A new page in a context of its own (its own cookies) on a desktop screen, for the console."""
    page = browser.new_context(viewport=DESKTOP).new_page()
    page.set_default_timeout(15_000)
    return page


def shot(page, name: str) -> None:
    """A full-page screenshot into PORTAL_SCREENSHOTS, when set (for people looking at the pages)."""
    folder = os.environ.get("PORTAL_SCREENSHOTS")
    if folder:
        page.screenshot(path=os.path.join(folder, f"{name}.png"), full_page=True)


def fits(page) -> bool:
    """Nothing sticks out sideways: the page scrolls only up and down."""
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def open_menu(page) -> None:
    """Unfold the portal menu (narrow screens) and wait until it has finished opening.

    Bootstrap animates the opening ("collapsing"); a click on an item while it
    still moves can land elsewhere when the machine is busy.
    """
    page.click(".navbar-toggler")
    page.wait_for_selector("#portal-nav.collapse.show")


def menu(page, link_id: str) -> None:
    """Open the folded portal menu (narrow screens) if need be and follow one of its links."""
    if not page.locator(f"#{link_id}").is_visible():
        open_menu(page)
    with page.expect_navigation():
        page.click(f"#{link_id}")


def submit(page, selector: str = "main button[type=submit]") -> None:
    with page.expect_navigation():
        page.click(selector)


def sign_in(page, base: str, login: str, password: str) -> None:
    """The sign-in form, filled and sent as a person does (the page that follows is the caller's to check)."""
    page.goto(f"{base}/login")
    page.fill("input[name=email]", login)
    page.fill("input[name=password]", password)
    submit(page, "form button[type=submit]")


def wait_for_mail(smtp, to: str, subject_starts: str, timeout: float = 20) -> EmailMessage:
    """The first message the SMTP server accepted for ``to`` whose subject starts so (fails after ``timeout``).

    Matching on recipient and subject, not on a count, keeps the journey
    independent of any other mail the app may send along the way.
    """
    deadline = time.monotonic() + timeout
    while True:
        for message in list(smtp.messages):
            if message["To"] and to in message["To"] and str(message["Subject"]).startswith(subject_starts):
                return message
        seen = [(m["To"], m["Subject"]) for m in smtp.messages]
        assert time.monotonic() < deadline, f"no mail to {to} starting {subject_starts!r}; the server has {seen}"
        time.sleep(0.05)  # polling the SMTP server thread, as tests/mailserver.py wait_for does


def link_in(message: EmailMessage, fragment: str, base: str) -> str:
    """The one link in the mail's text body whose path contains ``fragment``; it must start with ``base``."""
    body = message.get_body(("plain",)).get_content()
    links = {link.rstrip(".,)") for link in LINK_RE.findall(body) if fragment in link}
    assert len(links) == 1, f"expected one {fragment} link in the mail, found {links}:\n{body}"
    [link] = links
    assert link.startswith(f"{base}/"), f"{link} is not on the public URL {base}"
    return link
