"""``/referrals`` ("Refer a friend") and joining with a code or a join link, as a member and a joiner see them.

Chanda (tests/portal/conftest.py, ward W1 of constituency C1) is the
referrer. What is asserted is what the pages say and what is left in the
database: the referral, its status and source, the ledger.
"""

from __future__ import annotations

import io
import re
from urllib.parse import quote

import zxingcpp
from PIL import Image
from sqlalchemy import func, select

from app.extensions import db
from app.models import MailMessage, Member, PointsEntry, Referral
from app.services import joining
from app.services import referrals as referral_service
from tests.conftest import csrf_token_from, login
from tests.portal.conftest import EMAIL, post, text
from tests.portal.test_join import application, messages


def code_on(page: str) -> str:
    return re.search(r'id="referral-code">([A-Z0-9]+)<', page).group(1)


def test_an_active_member_sees_their_code_link_qr_and_share_buttons(portal, member, app):
    page = text(portal.get("/referrals"))
    code = code_on(page)
    assert code == referral_service.code_for(member)
    link = f"{app.config['PUBLIC_URL']}/join?ref={code}"
    assert f'value="{link}"' in page
    assert f"https://wa.me/?text={quote('Join me in ' + app.config['ORG_NAME'] + ': ' + link)}" in page
    assert 'href="sms:?&amp;body=' in page and 'href="mailto:?subject=' in page
    assert 'data-copy="#join-link"' in page
    assert "Nobody yet" in page  # the empty list says what will appear there

    png = portal.get("/referrals/qr.png")  # the code holds the link, nothing about Chanda
    assert png.status_code == 200 and png.mimetype == "image/png"
    assert png.headers["Cache-Control"] == "private, no-store"
    [read] = zxingcpp.read_barcodes(Image.open(io.BytesIO(png.data)))
    assert read.text == link
    svg = portal.get("/referrals/qr.svg")
    assert svg.mimetype == "image/svg+xml" and b"<svg" in svg.data
    printed = text(portal.get("/referrals/print"))
    assert code in printed and link in printed


def test_the_code_is_created_once_by_a_reading_request_and_kept(portal, member):
    first = code_on(text(portal.get("/referrals")))
    db.session.expire_all()
    assert code_on(text(portal.get("/referrals"))) == first
    assert referral_service.code_for(member) == first


def test_a_member_not_yet_active_has_no_code_to_share(portal, member):
    member.status = "pending"
    db.session.commit()
    page = text(portal.get("/referrals"))
    assert "appears here once your membership is active" in page and 'id="referral-code"' not in page
    assert 'id="invite-form"' not in page
    assert portal.get("/referrals/qr.png").status_code == 404


def test_signed_out_visitors_are_sent_to_sign_in(client):
    response = client.get("/referrals")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_inviting_reports_every_field_at_once_and_records_nothing(portal, member):
    response = post(portal, "/referrals", {"name": "", "phone": "12", "email": "not-an-email"})
    assert response.status_code == 422
    found = messages(text(response))
    assert set(found) == {"name", "phone", "email"}
    assert db.session.scalar(select(func.count()).select_from(Referral)) == 0


def test_inviting_with_an_email_records_a_pending_referral_and_queues_the_invitation(portal, member, app):
    response = post(portal, "/referrals", {"name": "Mary Tembo", "phone": "", "email": "Mary.Tembo@example.org"})
    assert response.status_code == 302
    page = text(portal.get("/referrals"))
    assert "Mary Tembo is on your list. We have emailed them your join link." in page
    [referral] = db.session.scalars(select(Referral)).all()
    assert (referral.status, referral.source, referral.prospect_email) == ("pending", "prospect",
                                                                           "mary.tembo@example.org")
    [mail] = db.session.scalars(select(MailMessage).where(MailMessage.kind == "referrals.invite")).all()
    assert mail.to_address == "mary.tembo@example.org"
    assert f"{app.config['PUBLIC_URL']}/join?ref={referral_service.code_for(member)}" in mail.body_text
    assert "Chanda" in mail.subject
    item = re.search(r'data-referral-id="%d" data-status="pending">(.*?)</li>' % referral.id, page, re.S).group(1)
    assert "Mary Tembo" in item and "Invited" in item and "Withdraw" in item

    again = post(portal, "/referrals", {"name": "Mary", "email": "mary.tembo@example.org"})
    assert again.status_code == 409 and "You have already recorded this person." in text(again)


def test_a_member_withdraws_their_own_pending_invitation_only(portal, member, other):
    mine = referral_service.record_prospect(member, "Mary Tembo", "0977555111", None)
    theirs = referral_service.record_prospect(other, "Joseph Banda", "0977555222", None)
    db.session.commit()
    assert post(portal, f"/referrals/{theirs.id}/withdraw").status_code == 404
    response = post(portal, f"/referrals/{mine.id}/withdraw")
    assert response.status_code == 302
    assert "The invitation of Mary Tembo is withdrawn." in text(portal.get("/referrals"))
    db.session.expire_all()
    assert (db.session.get(Referral, mine.id).status, db.session.get(Referral, theirs.id).status) == (
        "rejected", "pending")


# --- joining with a code -----------------------------------------------------------------


def join_page(client, query: str = "") -> str:
    db.session.commit()
    return text(client.get(f"/join{query}"))


def submit_join(client, tree, page: str, **fields):
    data = application(tree, **fields)
    data["csrf_token"] = csrf_token_from(page)
    db.session.commit()
    return client.post("/join", data=data)


def newcomer() -> Member:
    return db.session.scalar(select(Member).where(Member.email == "mutale.zulu@example.org"))


def test_a_join_link_fills_the_code_and_the_referral_counts_as_from_the_link(client, tree, member):
    code = referral_service.code_for(member)
    page = join_page(client, f"?ref={code.lower()}")
    assert f'id="referral_code" name="referral_code" type="text" value="{code}"' in page
    assert "Chanda" not in page  # the link may reach anyone: nothing about its holder is shown
    response = submit_join(client, tree, page, referral_code=code, referral_link=code)
    assert response.status_code == 302, text(response)
    referral = db.session.scalar(select(Referral).where(Referral.referred_member_id == newcomer().id))
    assert (referral.referrer_id, referral.status, referral.source, referral.code) == (
        member.id, "registered", "link", code)


def test_a_typed_code_counts_as_typed(client, tree, member):
    code = referral_service.code_for(member)
    page = join_page(client)
    response = submit_join(client, tree, page, referral_code=f" {code[:3].lower()}-{code[3:]} ")
    assert response.status_code == 302
    referral = db.session.scalar(select(Referral))
    assert (referral.source, referral.code, referral.referrer_id) == ("code", code, member.id)


def test_a_bad_link_code_is_explained_and_the_form_stays_usable(client, tree, member):
    page = join_page(client, "?ref=ZZZZZZ")
    assert "There is no referral code ZZZZZZ" in page
    assert 'name="referral_code" type="text" value=""' in page
    assert "is not a referral code" in join_page(client, "?ref=0OIl!!")
    response = submit_join(client, tree, page)  # joining without a code still works
    assert response.status_code == 302
    assert db.session.scalar(select(func.count()).select_from(Referral)) == 0


def test_unknown_malformed_and_expired_codes_are_field_messages_and_nothing_is_created(client, tree, member):
    code = referral_service.code_for(member)
    member.status = "lapsed"
    db.session.commit()
    for typed, words in (("ZZZZZZ", "There is no referral code ZZZZZZ"), ("abc", "is not a referral code"),
                         (code, "is no longer valid")):
        response = submit_join(client, tree, join_page(client), referral_code=typed, first_name="")
        assert response.status_code == 422
        found = messages(text(response))
        assert words in found["referral_code"].replace("&#39;", "'")
        assert "first_name" in found  # every field's message at once
    assert db.session.scalar(select(func.count()).select_from(Member).where(Member.email.like("mutale%"))) == 0


def test_a_self_referral_on_the_join_form_is_refused(client, tree, member):
    code = referral_service.code_for(member)
    response = submit_join(client, tree, join_page(client), referral_code=code, phone=member.phone)
    assert response.status_code == 422
    assert messages(text(response))["referral_code"] == "You cannot refer yourself: the phone number is the referrer&#39;s."
    assert db.session.scalar(select(func.count()).select_from(Referral)) == 0


def test_after_approval_the_referrer_sees_the_credit_points_and_rank(client, portal, tree, member, app):
    code = referral_service.code_for(member)
    db.session.commit()
    portal.post("/logout", data={"csrf_token": csrf_token_from(text(portal.get("/")))})
    assert submit_join(client, tree, join_page(client, f"?ref={code}"), referral_code=code,
                       referral_link=code).status_code == 302
    joining.approve(None, newcomer())
    db.session.commit()

    assert login(client, EMAIL).status_code == 302
    page = text(client.get("/referrals"))
    points = app.config["REFERRAL_POINTS"]
    assert re.search(r'id="points-balance">(\d+)<', page).group(1) == str(points)
    assert sum(db.session.scalars(select(PointsEntry.points).where(PointsEntry.member_id == member.id))) == points
    ranks = re.findall(r'data-unit-id="(\d+)">.*?<strong class="rank">rank (\d+)</strong> of (\d+)', page, re.S)
    assert [(int(u), int(r)) for u, r, _of in ranks] == [(tree["w1"].id, 1), (tree["c1"].id, 1)]
    item = re.search(r'data-status="credited">(.*?)</li>', page, re.S).group(1)
    assert "Mutale Zulu" in item and "Credited" in item and f"{points} points" in item
    notice = text(client.get("/notifications"))
    assert "Mutale is now a member" in notice
