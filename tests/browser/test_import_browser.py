"""A coordinator and an admin import the test files through the console in a real browser."""

from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import Member
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser
DATA = Path(__file__).resolve().parent.parent / "data"


@pytest.fixture(autouse=True)
def _uploads_in_tmp(app, tmp_path, monkeypatch):
    """Uploaded files go to a temporary folder, not the instance folder."""
    monkeypatch.setitem(app.config, "IMPORT_UPLOAD_DIR", str(tmp_path / "uploads"))


def log_in(page, base, email):
    page.goto(f"{base}/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/admin/")


@pytest.mark.parametrize("email,name,new,bad", [
    ("coord@test.org", "members_other_wards.csv", 1, 2),
    ("admin@test.org", "members.xlsx", 10, 0),
])
def test_import_through_the_console(live_server, page, tree, staff, email, name, new, bad):
    db.session.commit()
    log_in(page, live_server, email)
    page.click("text=Import members")
    page.set_input_files("input[name=file]", str(DATA / name))
    page.click("text=Upload and choose columns")
    page.wait_for_url("**/mapping")
    assert page.locator("#col-0").input_value() == "last_name"
    page.click("text=Check every row")
    page.wait_for_selector("#preview-counts")
    assert page.locator("#preview-counts").inner_text().count(str(new)) >= 1
    if bad:
        assert page.locator("#bad-rows tbody tr").count() == bad
        with page.expect_download() as download:
            page.click("#error-report")
        assert "Reason" in Path(download.value.path()).read_text(encoding="utf-8-sig")
    page.click("#start-import")
    page.wait_for_selector("#job-progress[data-state=succeeded]")
    assert f"New: {new}" in page.locator("#job-progress").inner_text()
    db.session.rollback()
    assert db.session.scalar(select(func.count()).select_from(Member)) == new
