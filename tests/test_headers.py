"""Security headers, inline-script-free pages, and links that never come from the Host header."""

from __future__ import annotations

import io
from datetime import timedelta
from html.parser import HTMLParser

import pypdfium2 as pdfium
import pytest
import zxingcpp
from PIL import Image

from app import config as app_config
from app import create_app
from app.extensions import db
from app.models import Job
from app.models.base import utcnow
from app.services import cards, jobs
from app.services import events as ev
from tests.conftest import PASSWORD, login


def _csp(response) -> dict[str, str]:
    policy = response.headers.get("Content-Security-Policy", "")
    return {part.split(" ", 1)[0]: part.partition(" ")[2] for part in (p.strip() for p in policy.split(";")) if part}


def assert_safe_headers(response, personal: bool = True) -> None:
    csp = _csp(response)
    assert csp.get("script-src") == "'self'", csp
    assert csp.get("frame-ancestors") == "'none'", csp
    assert csp.get("object-src") == "'none'", csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    if personal:
        assert "no-store" in response.headers["Cache-Control"]


class _InlineScript(HTMLParser):
    """Collects what the CSP would block: inline <script> bodies and on...= handler attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        names = dict(attrs)
        for name, _value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=...>")
        if tag == "script" and not names.get("src") and names.get("type") != "application/json":
            self.found.append(f"<script {names}> without src")


def inline_script(html: str) -> list[str]:
    parser = _InlineScript()
    parser.feed(html)
    return parser.found


@pytest.fixture()
def console_data(tree, staff, make_member):
    member = make_member(tree["w1"], first_name="Chanda", last_name="Mwansa", email="chanda@example.org")
    card = cards.issue_card(None, member)
    now = utcnow()
    event = ev.create_event(staff["super_admin"], {
        "title": "Ward meeting", "start_at": now - timedelta(hours=1), "end_at": now + timedelta(hours=3),
        "unit_id": tree["w1"].id, "status": "upcoming",
    })
    db.session.commit()
    return {"member": member, "card": card, "event": event}


def test_console_pages_carry_the_headers_and_no_inline_script(client, staff, console_data):
    login(client, "super@test.org")
    member, card, event = console_data["member"], console_data["card"], console_data["event"]
    urls = [
        "/admin/", "/admin/member/", f"/admin/member/details/?id={member.id}", f"/admin/member/edit/?id={member.id}",
        "/admin/member/new/", "/admin/member/deleted/", "/admin/cards/", f"/admin/cards/details/?id={card.id}",
        "/admin/events/", "/admin/events/?view=calendar", f"/admin/events/{event.id}/", f"/admin/events/{event.id}/checkin",
        "/admin/events/new", "/admin/geography/", "/admin/users/", f"/admin/users/{staff['admin'].id}/",
        "/admin/roles/", "/admin/audit/", "/admin/imports/", "/admin/jobs/",
    ]
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, (url, response.status_code)
        assert_safe_headers(response)
        assert inline_script(response.get_data(as_text=True)) == [], url


def test_portal_and_login_pages_carry_the_headers(client, staff, console_data):
    login_page = client.get("/login")
    assert_safe_headers(login_page)
    assert inline_script(login_page.get_data(as_text=True)) == []
    login(client, "member@test.org")
    home = client.get("/")
    assert home.status_code == 200
    assert_safe_headers(home)
    assert inline_script(home.get_data(as_text=True)) == []


def test_api_answers_are_not_stored_and_static_files_keep_their_caching(client, staff):
    api = client.get("/api/v1/members")
    assert api.status_code == 401
    assert api.headers["Cache-Control"] == "no-store"
    assert api.headers["X-Content-Type-Options"] == "nosniff"

    script = client.get("/static/js/console.js")
    assert script.status_code == 200
    assert "no-store" not in script.headers.get("Cache-Control", "")
    assert script.headers["X-Content-Type-Options"] == "nosniff"
    admin_css = client.get("/admin/static/admin/css/bootstrap4/admin.css")
    assert admin_css.status_code == 200 and "no-store" not in admin_css.headers.get("Cache-Control", "")


@jobs.handler("test.headers_file")
def _personal_file(ctx: jobs.JobContext) -> dict:
    ctx.add_file("members.csv", "text/csv", b"name,phone\nChanda Mwansa,+260977000001\n")
    return {}


def test_downloads_of_personal_data_are_not_stored(client, staff):
    job = jobs.create_job(staff["admin"], "test.headers_file", {})
    db.session.commit()
    jobs.submit(job)
    login(client, "admin@test.org")
    download = client.get(f"/admin/jobs/{job.id}/files/{db.session.get(Job, job.id).files[0].id}")
    assert download.status_code == 200
    assert download.headers["Cache-Control"] == "no-store"
    assert download.headers["X-Content-Type-Options"] == "nosniff"


def test_no_hsts_or_secure_cookie_over_plain_http(client):
    response = client.get("/login")
    assert "Strict-Transport-Security" not in response.headers
    assert "Secure" not in response.headers["Set-Cookie"]


def test_https_public_url_turns_on_hsts_and_secure_cookies(monkeypatch, database_url):
    monkeypatch.setenv("MUSTER_PUBLIC_URL", "https://members.example.org")
    https_app = create_app(app_config.TestConfig(database_url))
    response = https_app.test_client().get("/login", headers={"Host": "members.example.org"})
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    session_cookie = next(c for c in response.headers.getlist("Set-Cookie") if c.startswith("session="))
    assert "Secure" in session_cookie and "HttpOnly" in session_cookie
    # The public URL's host is trusted; any other is not.
    assert https_app.test_client().get("/login", headers={"Host": "evil.example"}).status_code == 400


# --- Host header --------------------------------------------------------------------------


def test_an_untrusted_host_answers_400(client, staff, console_data):
    assert client.get("/login", headers={"Host": "evil.example"}).status_code == 400
    assert client.get("/login", headers={"Host": "localhost:5000"}).status_code == 200
    assert client.get("/login", headers={"Host": "127.0.0.1:8000"}).status_code == 200
    login(client, "super@test.org")
    card = console_data["card"]
    response = client.get(f"/admin/cards/{card.id}/pdf", headers={"Host": "evil.example"})
    assert response.status_code == 400
    assert b"evil.example" not in response.data


def test_card_links_never_come_from_the_host_header(app, client, staff, console_data, monkeypatch):
    """Even where no trusted-host list applies, QR codes and PDFs point at MUSTER_PUBLIC_URL."""
    monkeypatch.setitem(app.config, "TRUSTED_HOSTS", None)
    monkeypatch.setitem(app.config, "PUBLIC_URL", "https://members.example.org")
    card = console_data["card"]
    client.environ_base["HTTP_HOST"] = "evil.example"  # every request below, the login included
    token = client.post("/api/v1/auth/token", json={"email": "super@test.org", "password": PASSWORD}).get_json()["token"]
    bearer = {"Authorization": f"Bearer {token}"}

    qr = client.get(f"/api/v1/cards/{card.id}/qr?format=png", headers=bearer)
    assert qr.status_code == 200
    texts = [d.text for d in zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.data)))]
    assert len(texts) == 1 and texts[0].startswith("https://members.example.org/verify/"), texts

    svg = client.get(f"/api/v1/cards/{card.id}/qr?format=svg", headers=bearer)
    assert svg.status_code == 200 and b"evil.example" not in svg.data

    login(client, "super@test.org")
    pdf = client.get(f"/admin/cards/{card.id}/pdf")
    assert pdf.status_code == 200
    doc = pdfium.PdfDocument(pdf.data)
    try:
        front, back = doc[0], doc[1]
        image = front.render(scale=300 / 72).to_pil()
        back_text = back.get_textpage().get_text_range()
    finally:
        doc.close()
    decoded = [d.text for d in zxingcpp.read_barcodes(image)]
    assert len(decoded) == 1 and decoded[0].startswith("https://members.example.org/verify/"), decoded
    assert "evil.example" not in back_text and "members.example.org" in back_text


def test_without_a_public_url_links_use_the_configured_default(app, client, staff, console_data, monkeypatch):
    monkeypatch.setitem(app.config, "TRUSTED_HOSTS", None)
    monkeypatch.setitem(app.config, "PUBLIC_URL", None)
    client.environ_base["HTTP_HOST"] = "evil.example"
    token = client.post("/api/v1/auth/token", json={"email": "super@test.org", "password": PASSWORD}).get_json()["token"]
    qr = client.get(f"/api/v1/cards/{console_data['card'].id}/qr?format=png",
                    headers={"Authorization": f"Bearer {token}"})
    texts = [d.text for d in zxingcpp.read_barcodes(Image.open(io.BytesIO(qr.data)))]
    assert len(texts) == 1 and texts[0].startswith("http://127.0.0.1:5000/verify/"), texts
