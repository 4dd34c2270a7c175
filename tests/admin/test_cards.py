"""Cards in the staff console: list, detail, lifecycle actions, PDF, issuing from a member, bulk batches.

Ends with the issue's "done when": an admin issues cards to a ward in bulk,
downloads the print sheet, its QR codes decode and verify, revokes one card
and the public verification page says so.
"""

from __future__ import annotations

import re

import pypdfium2 as pdfium
import pytest
import zxingcpp
from sqlalchemy import select

from app.extensions import db
from app.models import Job, MembershipCard
from app.services import cards
from tests.conftest import csrf_token_from, login

LIST = "/admin/cards/"


def text(response) -> str:
    return response.get_data(as_text=True)


def get_ok(client, url: str) -> str:
    db.session.commit()
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code, text(response)[:500])
    return text(response)


def token(client, url: str = LIST) -> str:
    return csrf_token_from(get_ok(client, url))


def post(client, url: str, data: dict, page: str = LIST):
    data = dict(data, csrf_token=token(client, page))
    db.session.commit()
    return client.post(url, data=data)


@pytest.fixture()
def people(tree, make_member):
    return {
        "banda": make_member(tree["w1"], first_name="Mwila", last_name="Banda", phone="0977123456"),
        "phiri": make_member(tree["w1"], first_name="Grace", last_name="Phiri"),
        "pending": make_member(tree["w1"], first_name="Pat", last_name="Pending", status="pending"),
        "tembo": make_member(tree["w2"], first_name="Ruth", last_name="Tembo"),
        "mwale": make_member(tree["w4"], first_name="Esther", last_name="Mwale"),
    }


def test_list_is_scoped_and_filtered(client, staff, people):
    c1 = cards.issue_card(None, people["banda"])
    c4 = cards.issue_card(None, people["mwale"], "premium")
    cards.suspend_card(None, c4, "dues")
    login(client, "admin@test.org")
    html = get_ok(client, LIST)
    assert c1.card_number in html and c4.card_number in html and "Mwila Banda" in html
    html = get_ok(client, LIST + "?flt0_status_equals=suspended")
    assert c4.card_number in html and c1.card_number not in html
    html = get_ok(client, LIST + "?flt0_type_equals=premium")
    assert c4.card_number in html and c1.card_number not in html
    html = get_ok(client, LIST + f"?search={c1.card_number}")
    assert c1.card_number in html and c4.card_number not in html
    html = get_ok(client, LIST + "?search=banda")
    assert c1.card_number in html and c4.card_number not in html
    client.post("/logout", data={"csrf_token": token(client)})
    login(client, "coord@test.org")
    html = get_ok(client, LIST)
    assert c1.card_number in html and c4.card_number not in html
    assert client.get(f"{LIST}details/?id={c4.id}").status_code == 404


def test_unit_filter(client, staff, people, tree):
    c1 = cards.issue_card(None, people["banda"])
    c2 = cards.issue_card(None, people["tembo"])
    login(client, "admin@test.org")
    html = get_ok(client, LIST + f"?flt0_unit_in={tree['w2'].id}")
    assert c2.card_number in html and c1.card_number not in html
    html = get_ok(client, LIST + f"?flt0_unit_in={tree['c1'].id}")
    assert c1.card_number in html and c2.card_number in html


def test_search_points_out_a_wrong_check_digit(client, staff, people):
    card = cards.issue_card(None, people["banda"])
    wrong = card.card_number[:-1] + str((int(card.card_number[-1]) + 1) % 10)
    login(client, "admin@test.org")
    html = get_ok(client, LIST + f"?search={wrong}")
    assert "wrong check digit" in html and card.card_number not in re.sub(r"<div class=\"alert.*?</div>", "", html,
                                                                          flags=re.S)


def test_details_shows_history_qr_and_actions(client, staff, people):
    card = cards.issue_card(staff["admin"], people["banda"])
    login(client, "admin@test.org")
    html = get_ok(client, f"{LIST}details/?id={card.id}")
    assert card.card_number in html and "<svg" in html and 'id="card-history"' in html
    for op in ("renew", "suspend", "revoke", "reissue"):
        assert f'id="card-{op}-form"' in html
    assert 'id="card-reactivate-form"' not in html
    client.post("/logout", data={"csrf_token": token(client)})
    login(client, "coord@test.org")
    html = get_ok(client, f"{LIST}details/?id={card.id}")
    assert 'id="card-suspend-form"' not in html and "No actions available to you" in html


def test_actions_with_reasons(client, staff, people):
    card = cards.issue_card(None, people["banda"])
    login(client, "admin@test.org")
    page = f"{LIST}details/?id={card.id}"
    response = post(client, f"{LIST}{card.id}/do/suspend", {"suspend-reason": ""}, page)
    assert response.status_code == 200 and "Give a reason to suspend the card" in text(response)
    assert card.status == "active"
    response = post(client, f"{LIST}{card.id}/do/suspend", {"suspend-reason": "dues unpaid"}, page)
    assert response.status_code == 302
    db.session.refresh(card)
    assert card.status == "suspended" and card.transactions[0].reason == "dues unpaid"
    response = post(client, f"{LIST}{card.id}/do/suspend", {"suspend-reason": "again"}, page)
    assert "cannot be suspended" in text(response)
    post(client, f"{LIST}{card.id}/do/reactivate", {"reactivate-reason": "paid"}, page)
    db.session.refresh(card)
    assert card.status == "active"
    before = card.expires_on
    post(client, f"{LIST}{card.id}/do/renew", {}, page)
    db.session.refresh(card)
    assert card.expires_on == cards.add_months(before, 12)
    response = post(client, f"{LIST}{card.id}/do/reissue", {"reissue-reason": "lost"}, page)
    new = db.session.scalar(select(MembershipCard).where(MembershipCard.replaces_id == card.id))
    assert response.headers["Location"].endswith(f"details/?id={new.id}")
    db.session.refresh(card)
    assert card.status == "revoked" and new.status == "active"
    assert client.post(f"{LIST}{new.id}/do/explode", data={"csrf_token": token(client)}).status_code == 404


def test_coordinator_cannot_act(client, staff, people):
    card = cards.issue_card(None, people["banda"])
    login(client, "coord@test.org")
    response = post(client, f"{LIST}{card.id}/do/revoke", {"revoke-reason": "x"})
    assert response.status_code == 403
    other = cards.issue_card(None, people["mwale"])
    assert post(client, f"{LIST}{other.id}/do/revoke", {"revoke-reason": "x"}).status_code == 404


def test_pdf_download(client, staff, people):
    card = cards.issue_card(None, people["banda"])
    login(client, "coord@test.org")
    db.session.commit()
    response = client.get(f"{LIST}{card.id}/pdf")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    assert "attachment" in response.headers["Content-Disposition"]


def test_issue_from_the_member_page(client, staff, people):
    login(client, "admin@test.org")
    member_page = f"/admin/member/details/?id={people['banda'].id}"
    html = get_ok(client, member_page)
    assert 'id="member-card-panel"' in html and "No card yet" in html and 'id="issue-card-form"' in html
    response = post(client, f"{LIST}issue/{people['banda'].id}", {"card_type": "premium"}, member_page)
    card = db.session.scalar(select(MembershipCard).where(MembershipCard.member_id == people["banda"].id))
    assert response.status_code == 302 and card.card_type == "premium"
    html = get_ok(client, member_page)
    assert card.card_number in html and 'id="issue-card-form"' not in html
    pending_page = f"/admin/member/details/?id={people['pending'].id}"
    assert 'id="issue-card-form"' not in get_ok(client, pending_page)
    response = post(client, f"{LIST}issue/{people['pending'].id}", {"card_type": "standard"}, pending_page)
    assert response.status_code == 302
    assert "is pending" in get_ok(client, pending_page)


def test_coordinator_sees_the_card_but_cannot_issue(client, staff, people):
    login(client, "coord@test.org")
    html = get_ok(client, f"/admin/member/details/?id={people['banda'].id}")
    assert 'id="member-card-panel"' in html and 'id="issue-card-form"' not in html
    assert post(client, f"{LIST}issue/{people['banda'].id}", {"card_type": "standard"}).status_code == 403
    assert client.get(f"{LIST}batch/").status_code == 403


def test_member_list_action_leads_to_the_batch_page(client, staff, people):
    login(client, "admin@test.org")
    html = get_ok(client, "/admin/member/")
    assert "Cards: issue, renew or print" in html
    ids = [str(people["banda"].id), str(people["mwale"].id)]
    response = post(client, "/admin/member/action/", {"action": "cards", "rowid": ids}, "/admin/member/")
    assert response.status_code == 302 and "/admin/cards/batch/" in response.headers["Location"]
    html = get_ok(client, response.headers["Location"])
    assert "2</strong> members you selected" in html and "Mwila Banda" in html


def test_coordinator_has_no_card_action_on_the_member_list(client, staff, people):
    login(client, "coord@test.org")
    assert "Cards: issue, renew or print" not in get_ok(client, "/admin/member/")


def _job_pdf(client, job: Job) -> bytes:
    files = {f.name: f for f in job.files}
    pdf = next(f for name, f in files.items() if name.endswith(".pdf"))
    response = client.get(f"/admin/jobs/{job.id}/files/{pdf.id}")
    assert response.status_code == 200 and response.mimetype == "application/pdf"
    return response.data


def test_batch_for_picked_members_issues_and_prints(client, staff, people):
    login(client, "admin@test.org")
    ids = ",".join(str(people[k].id) for k in ("banda", "pending", "mwale"))
    response = post(client, f"{LIST}batch/", {"member_ids": ids, "mode": "issue", "card_type": "standard"},
                    f"{LIST}batch/?ids={ids}")
    assert response.status_code == 302
    job = db.session.get(Job, int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1]))
    assert job.state == "succeeded", job.message
    assert job.result == {"members": 3, "cards_printed": 2, "skipped": 0, "problems": 1}
    assert {f.name.split("-")[0] for f in job.files} == {"problems.csv", "cards"}
    html = get_ok(client, f"/admin/jobs/{job.id}")
    assert "Download problems.csv" in html and "100%" in html
    doc = pdfium.PdfDocument(_job_pdf(client, job))
    try:
        assert len(doc) == 2
        image = doc[0].render(scale=300 / 72).to_pil()
    finally:
        doc.close()
    assert len(zxingcpp.read_barcodes(image)) == 2
    # Again: nobody gets a second card, nothing is printed twice.
    response = post(client, f"{LIST}batch/", {"member_ids": ids, "mode": "issue", "card_type": "standard"},
                    f"{LIST}batch/?ids={ids}")
    job = db.session.get(Job, int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1]))
    assert job.result == {"members": 3, "cards_printed": 0, "skipped": 2, "problems": 1}


def test_batch_renew_and_print_modes(client, staff, people, tree):
    existing = cards.issue_card(None, people["banda"])
    before = existing.expires_on
    login(client, "admin@test.org")
    response = post(client, f"{LIST}batch/", {"unit": str(tree["w1"].id), "mode": "renew", "card_type": "standard"},
                    f"{LIST}batch/")
    job = db.session.get(Job, int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1]))
    assert job.state == "succeeded", job.message
    assert job.result["members"] == 2 and job.result["cards_printed"] == 2  # banda renewed, phiri issued
    db.session.refresh(existing)
    assert existing.expires_on == cards.add_months(before, 12)
    response = post(client, f"{LIST}batch/", {"unit": str(tree["w1"].id), "mode": "print", "card_type": "standard"},
                    f"{LIST}batch/")
    job = db.session.get(Job, int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1]))
    assert job.result["cards_printed"] == 2
    db.session.refresh(existing)
    assert existing.expires_on == cards.add_months(before, 12)  # printing changes nothing


def test_batch_form_errors(client, staff, people, tree):
    login(client, "admin@test.org")
    response = post(client, f"{LIST}batch/", {"mode": "issue", "card_type": "standard"}, f"{LIST}batch/")
    assert response.status_code == 200 and "Choose a unit" in text(response)


def test_batch_for_a_unit_outside_the_area_is_refused(client, staff, people, tree, make_user):
    from app.services import rbac

    p1_admin = make_user("p1admin@test.org")
    rbac.assign_role(None, p1_admin, rbac.role_by_name("admin"), tree["p1"])
    login(client, "p1admin@test.org")
    response = post(client, f"{LIST}batch/", {"unit": str(tree["w4"].id), "mode": "issue", "card_type": "standard"},
                    f"{LIST}batch/")
    assert response.status_code == 200 and "outside your area" in text(response)
    assert db.session.scalar(select(MembershipCard).where(MembershipCard.member_id == people["mwale"].id)) is None


def test_batch_resumes_after_an_interruption(app, staff, people, tree):
    """A job stopped halfway picks up after the last member done, without issuing twice."""
    from app.services import card_batches, jobs

    monkey = card_batches.BATCH
    card_batches.BATCH = 1
    try:
        job = jobs.create_job(staff["admin"], card_batches.KIND, {
            "mode": "issue", "card_type": "standard", "member_ids": None, "unit_id": tree["w1"].id,
            "base_url": None, "last_member_id": 0, "card_ids": [], "problems": []})
        db.session.commit()
        calls = {"n": 0}
        original = cards.issue_cards

        def flaky(*args, **kwargs):
            calls["n"] += 1
            if calls["n"] == 2:
                raise RuntimeError("power cut")
            return original(*args, **kwargs)

        cards.issue_cards = flaky
        try:
            jobs.run(job.id)
        finally:
            cards.issue_cards = original
        job = db.session.get(Job, job.id)
        assert job.state == "failed"
        job.state = "interrupted"
        db.session.commit()
        jobs.run(job.id)
    finally:
        card_batches.BATCH = monkey
    job = db.session.get(Job, job.id)
    assert job.state == "succeeded", job.message
    assert job.result["cards_printed"] == 2
    issued = db.session.scalars(select(MembershipCard).join(MembershipCard.member)
                                .where(MembershipCard.member_id.in_([people["banda"].id, people["phiri"].id]))).all()
    assert len(issued) == 2


def test_done_when_bulk_issue_print_verify_revoke(client, staff, people, tree):
    """The issue's acceptance: bulk issue to a ward, print, decode + verify, revoke one, the page says so."""
    login(client, "admin@test.org")
    response = post(client, f"{LIST}batch/", {"unit": str(tree["w1"].id), "mode": "issue", "card_type": "standard"},
                    f"{LIST}batch/")
    assert response.status_code == 302 and "/admin/jobs/" in response.headers["Location"]
    html = get_ok(client, response.headers["Location"])
    assert 'data-state="succeeded"' in html
    job = db.session.get(Job, int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1]))
    pdf = _job_pdf(client, job)
    doc = pdfium.PdfDocument(pdf)
    try:
        image = doc[0].render(scale=300 / 72).to_pil()
    finally:
        doc.close()
    urls = [d.text for d in zxingcpp.read_barcodes(image)]
    assert len(urls) == 2  # the two active members of W1; the pending one gets none
    verdicts = {}
    for url in urls:
        path = url[url.index("/verify/"):]
        page = get_ok(client, path)
        assert 'data-status="valid"' in page
        verdicts[re.search(r'id="card-number">([^<]+)<', page).group(1)] = path
    victim = db.session.scalar(select(MembershipCard).where(MembershipCard.member_id == people["banda"].id))
    assert set(verdicts) == {victim.card_number, cards.current_card(people["phiri"]).card_number}
    detail = f"{LIST}details/?id={victim.id}"
    response = post(client, f"{LIST}{victim.id}/do/revoke", {"revoke-reason": "reported stolen",
                                                            "revoke-confirmed": "yes"}, detail)
    assert response.status_code == 302
    client.post("/logout", data={"csrf_token": token(client, detail)})
    page = get_ok(client, verdicts[victim.card_number])
    assert 'data-status="revoked"' in page and f"Card {victim.card_number} has been revoked." in page
    other = next(path for number, path in verdicts.items() if number != victim.card_number)
    assert 'data-status="valid"' in get_ok(client, other)
