"""Console "Referrals" (issue 13): the scoped list and its filters, one referral, revoke, withdraw, export, statistics.

What a staff user sees: a global admin every referral, the coordinator of
W1 only those made by W1's members (another ward's answers 404); filters
narrow the list and a bad one shows its message (400, never a 500); the
statistics page's figures equal counts made here from the rows themselves;
revoking a credit needs a reason, reverses the points in the ledger (the
balance stays the ledger's sum) and is audited, and a coordinator (no
``referrals.update``) is refused with 403; the CSV export holds exactly the
filtered, scoped rows and the XLSX opens with openpyxl.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter, defaultdict
from datetime import UTC, date, datetime, time, timedelta

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from app.admin import referrals as referrals_view
from app.extensions import db
from app.models import AuditEntry, Member, PointsEntry, Referral, Unit
from app.models.base import utcnow
from app.services import rbac
from app.services import referrals as ref
from app.services.referrals import stats as ref_stats
from tests.conftest import csrf_token_from, login

LIST = "/admin/referrals/"
STATS = "/admin/referrals/statistics/"


def text(response) -> str:
    return response.get_data(as_text=True)


def get_ok(client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return text(response)


def listed(html: str) -> set[int]:
    return {int(i) for i in re.findall(r'<tr data-referral-id="(\d+)">', html)}


def cells(html: str, row_attr: str, cell_attr: str) -> dict[int, int]:
    """``{row id: the number in its data-<cell_attr> cell}`` for table rows marked ``data-<row_attr>="id"``."""
    out = {}
    for row_id, body in re.findall(rf'<tr data-{row_attr}="(\d+)"[^>]*>(.*?)</tr>', html, re.DOTALL):
        match = re.search(rf'data-{cell_attr}[^>]*>([\d,]+)<', body)
        assert match, (row_attr, row_id, cell_attr)
        out[int(row_id)] = int(match.group(1).replace(",", ""))
    return out


def ledger_sum(member: Member) -> int:
    return sum(db.session.scalars(select(PointsEntry.points).where(PointsEntry.member_id == member.id)))


TODAY = utcnow().date()


def at(days_ago: int) -> datetime:
    """Noon UTC some days ago (noon: the same calendar day in any session time zone near UTC)."""
    return datetime.combine(TODAY - timedelta(days=days_ago), time(12), tzinfo=UTC)


@pytest.fixture()
def book(tree, make_member, staff):
    """Referrals made by members of W1 (Ada, Bea), W2 (Cid), W3 (Eve) and W4 (Dan), in every status.

    Points (10 a credit): Ada 20, Cid 20, Bea 10, Dan 10, Eve 10, so the ranks are 1, 1, 3, 3, 3.
    """
    ada = make_member(tree["w1"], first_name="Ada", last_name="Banda")
    bea = make_member(tree["w1"], first_name="Bea", last_name="Phiri")
    cid = make_member(tree["w2"], first_name="Cid", last_name="Tembo")
    eve = make_member(tree["w3"], first_name="Eve", last_name="Mumba")
    dan = make_member(tree["w4"], first_name="Dan", last_name="Sakala")
    made: dict[str, Referral] = {}

    def join(key, referrer, ward, joined, credited=None, source="code", first="New"):
        newcomer = make_member(tree[ward], first_name=first, last_name=f"Joiner{key}", status="pending")
        referral = ref.record_join(newcomer, ref.code_for(referrer), source=source, now=at(joined))
        if credited is not None:
            newcomer.status = "active"
            db.session.flush()
            ref.on_member_activated(newcomer, now=at(credited))
        made[key] = referral
        return newcomer

    join("ada1", ada, "w1", 20, 18, first="Nia")
    join("ada2", ada, "w3", 5, 3, source="link")
    made["ada_prospect"] = ref.record_prospect(ada, "Pat Zulu", "0971000003", None, now=at(2))
    join("bea1", bea, "w1", 10, 9)
    join("bea2", bea, "w2", 1)  # joined, waiting for approval
    join("cid1", cid, "w2", 30, 28, source="link")
    join("cid2", cid, "w2", 12, 11)
    rejected = join("cid3", cid, "w2", 8)
    ref.on_member_rejected(rejected, "Not resident in the ward.", now=at(7))
    join("eve1", eve, "w3", 15, 14)
    join("dan1", dan, "w4", 40, 35)
    made["dan_prospect"] = ref.record_prospect(dan, "Old Lead", "0971000004", None, now=at(70))
    ref.expire_sweep(utcnow())
    db.session.commit()
    return {"made": made, "ada": ada, "bea": bea, "cid": cid, "eve": eve, "dan": dan}


@pytest.fixture()
def admin(client, staff):
    login(client, "admin@test.org")
    return client


@pytest.fixture()
def coordinator(client, staff):
    login(client, "coord@test.org")
    return client


def in_units(unit_ids: list[int] | None) -> list[Referral]:
    """Every referral whose referrer is a live member of these units (None: everywhere), read here from the rows."""
    stmt = select(Referral).join(Member, Member.id == Referral.referrer_id).where(Member.deleted_at.is_(None))
    if unit_ids is not None:
        stmt = stmt.where(Member.unit_id.in_(unit_ids))
    return list(db.session.scalars(stmt))


def subtree(unit: Unit) -> list[int]:
    return list(db.session.scalars(select(Unit.id).where(Unit.path.startswith(unit.path))))


# --- the list -------------------------------------------------------------------------------


def test_an_admin_sees_every_referral_and_a_coordinator_only_their_wards(client, staff, book, tree):
    login(client, "admin@test.org")
    html = get_ok(client, LIST)
    assert listed(html) == {r.id for r in book["made"].values()}
    assert f'{len(book["made"])} referrals' in html
    assert "Pat Zulu" in html and 'data-status="credited"' in html and ">Credited</span>" in html
    assert 'id="export-csv"' in html and 'id="export-xlsx"' in html
    # The referrer links to the member record; the points column is the referral's ledger.
    ada1 = book["made"]["ada1"]
    row = re.search(rf'<tr data-referral-id="{ada1.id}">(.*?)</tr>', html, re.DOTALL).group(1)
    assert f'href="/admin/member/details/?id={book["ada"].id}"' in row and "data-points>10<" in row

    client.post("/logout", data={"csrf_token": csrf_token_from(html)})
    login(client, "coord@test.org")
    html = get_ok(client, LIST)
    w1 = {r.id for r in in_units(subtree(tree["w1"]))}
    assert listed(html) == w1 == {book["made"][k].id for k in ("ada1", "ada2", "ada_prospect", "bea1", "bea2")}
    assert "Tembo" not in html and "Sakala" not in html and "5 referrals" in html
    # Another ward's referral does not exist for them, nor do its actions.
    for key in ("cid1", "dan1"):
        other = book["made"][key].id
        assert client.get(f"{LIST}{other}").status_code == 404
        assert client.get(f"{LIST}{other}/revoke").status_code == 404
    # Units offered in the filter are their own only.
    assert f'value="{tree["w1"].id}"' in html and f'value="{tree["w4"].id}"' not in html


def test_filters_narrow_the_list(admin, book, tree):
    made = book["made"]
    every = in_units(None)
    assert listed(get_ok(admin, LIST + "?status=credited")) == {r.id for r in every if r.status == "credited"}
    assert listed(get_ok(admin, LIST + "?status=expired")) == {made["dan_prospect"].id}
    assert listed(get_ok(admin, LIST + "?source=prospect")) == {made["ada_prospect"].id, made["dan_prospect"].id}
    assert listed(get_ok(admin, LIST + "?source=link&status=credited")) == {made["ada2"].id, made["cid1"].id}
    assert listed(get_ok(admin, f"{LIST}?unit_id={tree['w2'].id}")) == {made[k].id for k in ("cid1", "cid2", "cid3")}
    assert listed(get_ok(admin, f"{LIST}?unit_id={tree['c1'].id}")) == {
        r.id for r in in_units(subtree(tree["c1"]))}
    assert listed(get_ok(admin, LIST + "?q=tembo")) == {made[k].id for k in ("cid1", "cid2", "cid3")}
    assert listed(get_ok(admin, LIST + "?q=zulu")) == {made["ada_prospect"].id}  # the prospect's name
    since, until = TODAY - timedelta(days=13), TODAY - timedelta(days=4)
    html = get_ok(admin, f"{LIST}?since={since.isoformat()}&until={until.isoformat()}")
    assert listed(html) == {r.id for r in every if since <= r.created_at.date() <= until} == {
        made[k].id for k in ("ada2", "bea1", "cid2", "cid3")}
    assert "4 referrals match" in html
    empty = get_ok(admin, LIST + "?q=nobody-is-called-this")
    assert listed(empty) == set() and 'id="no-referrals"' in empty and "No referral matches" in empty


def test_the_list_pages(admin, book, monkeypatch):
    monkeypatch.setattr(referrals_view, "PAGE_SIZE", 4)
    pages = [get_ok(admin, f"{LIST}?page={n}") for n in range(3)]
    seen = [listed(p) for p in pages]
    assert [len(s) for s in seen] == [4, 4, 3] and set().union(*seen) == {r.id for r in book["made"].values()}
    assert "Page 1 of 3" in pages[0] and "showing 1–4" in pages[0]
    assert "past the end" in get_ok(admin, f"{LIST}?page=7")
    assert admin.get(f"{LIST}?page=-1").status_code == 400


def test_bad_filters_show_every_message_at_once(admin, book):
    response = admin.get(LIST + "?status=bogus&source=fax&unit_id=abc&since=2024-13-01&until=soon")
    html = text(response)
    assert response.status_code == 400
    for field in ("status", "source", "unit_id", "since", "until"):
        assert f'data-error="{field}"' in html, field
    assert "Choose a status" in html and "Enter a date as YYYY-MM-DD." in html
    assert listed(html) == set() and 'id="export-csv"' not in html
    backwards = admin.get(LIST + "?since=2025-05-02&until=2025-05-01")
    assert backwards.status_code == 400 and "The end date is before the start date." in text(backwards)
    too_long = admin.get(LIST + "?q=" + "x" * 101)
    assert too_long.status_code == 400 and "at most 100 characters" in text(too_long)


def test_a_unit_outside_the_coordinators_area_is_a_message(coordinator, book, tree):
    for unit in (tree["w4"].id, 99999999):
        response = coordinator.get(f"{LIST}?unit_id={unit}")
        assert response.status_code == 400
        assert referrals_view.UNIT_UNSEEN in text(response) and listed(text(response)) == set()


# --- one referral ---------------------------------------------------------------------------


def test_the_detail_page_shows_the_referral_and_its_ledger(admin, book, staff):
    ada1 = book["made"]["ada1"]
    html = get_ok(admin, f"{LIST}{ada1.id}")
    assert "Referral of Nia Joinerada1" in html and "Ada Banda" in html
    assert 'id="referral-status" data-status="credited"' in html
    assert re.search(r'id="referrer-balance">20<', html)
    assert re.findall(r'data-entry-kind="(\w+)"', html) == ["award"]
    assert 'id="revoke"' in html and 'id="withdraw"' not in html
    pending = get_ok(admin, f"{LIST}{book['made']['ada_prospect'].id}")
    assert 'id="withdraw"' in pending and 'id="revoke"' not in pending and 'id="no-ledger"' in pending
    assert "Pat Zulu" in pending and "+260971000003" in pending


def test_revoking_with_a_reason_reverses_the_points_and_is_audited(admin, book, staff):
    ada, ada1 = book["ada"], book["made"]["ada1"]
    page = get_ok(admin, f"{LIST}{ada1.id}/revoke")
    assert 'data-confirm="Revoke the credit?"' in page and 'id="confirm-warning"' in page
    response = admin.post(f"{LIST}{ada1.id}/revoke", data={"csrf_token": csrf_token_from(page),
                                                           "reason": "Paid to join by the referrer."})
    assert response.status_code == 302 and response.headers["Location"].endswith(f"{LIST}{ada1.id}")
    db.session.expire_all()
    referral = db.session.get(Referral, ada1.id)
    assert referral.status == "rejected" and referral.reason == "Paid to join by the referrer."
    assert ref.balance(ada) == 10 == ledger_sum(ada)
    kinds = db.session.execute(select(PointsEntry.kind, PointsEntry.points, PointsEntry.actor_id)
                               .where(PointsEntry.referral_id == ada1.id).order_by(PointsEntry.id)).all()
    assert [tuple(k) for k in kinds] == [("award", 10, None), ("reversal", -10, staff["admin"].id)]
    entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "referral.revoke"))
    assert entry.actor_id == staff["admin"].id and entry.object_id == str(ada1.id)
    assert entry.summary == "Credit reversed: Paid to join by the referrer."
    after = get_ok(admin, f"{LIST}{ada1.id}")
    assert "Credit revoked" in after and "whose balance is now 10" in after
    assert re.findall(r'data-entry-kind="(\w+)"', after) == ["award", "reversal"]
    ledger = re.search(r'id="referral-ledger">(.*?)</table>', after, re.DOTALL).group(1)
    assert "Paid to join by the referrer." in ledger and "admin@test.org" in ledger and "-10" in ledger
    assert 'id="revoke"' not in after  # nothing left to revoke
    again = admin.post(f"{LIST}{ada1.id}/revoke", data={"csrf_token": csrf_token_from(after), "reason": "Again."})
    assert again.status_code == 409 and 'id="not-allowed"' in text(again)  # the page says so, nothing changes
    assert ref.balance(ada) == 10 == ledger_sum(ada)


def test_revoking_without_a_reason_changes_nothing(admin, book):
    ada1 = book["made"]["ada1"]
    token = csrf_token_from(get_ok(admin, f"{LIST}{ada1.id}/revoke"))
    response = admin.post(f"{LIST}{ada1.id}/revoke", data={"csrf_token": token, "reason": "   "})
    assert response.status_code == 422
    assert 'data-error="reason"' in text(response) and "Give a reason for reversing the credit." in text(response)
    db.session.expire_all()
    assert db.session.get(Referral, ada1.id).status == "credited"
    assert ref.balance(book["ada"]) == 20 == ledger_sum(book["ada"])
    assert db.session.scalar(select(func.count()).select_from(AuditEntry)
                             .where(AuditEntry.action == "referral.revoke")) == 0


def test_a_coordinator_may_not_revoke_or_withdraw(coordinator, book):
    made = book["made"]
    html = get_ok(coordinator, f"{LIST}{made['ada1'].id}")
    assert 'id="revoke"' not in html and 'id="referral-actions"' not in html
    token = csrf_token_from(get_ok(coordinator, LIST))
    assert coordinator.get(f"{LIST}{made['ada1'].id}/revoke").status_code == 403
    assert coordinator.post(f"{LIST}{made['ada1'].id}/revoke",
                            data={"csrf_token": token, "reason": "Mine to decide."}).status_code == 403
    assert coordinator.post(f"{LIST}{made['ada_prospect'].id}/withdraw",
                            data={"csrf_token": token, "reason": "No."}).status_code == 403
    db.session.expire_all()
    assert db.session.get(Referral, made["ada1"].id).status == "credited"
    assert db.session.get(Referral, made["ada_prospect"].id).status == "pending"
    assert ref.balance(book["ada"]) == 20


def test_revoking_needs_the_csrf_token(admin, book):
    ada1 = book["made"]["ada1"]
    response = admin.post(f"{LIST}{ada1.id}/revoke", data={"reason": "No token."})
    assert response.status_code == 400
    db.session.expire_all()
    assert db.session.get(Referral, ada1.id).status == "credited" and ref.balance(book["ada"]) == 20


def test_withdrawing_an_open_referral(admin, book, staff):
    made = book["made"]
    url = f"{LIST}{made['bea2'].id}/withdraw"
    page = get_ok(admin, url)
    missing = admin.post(url, data={"csrf_token": csrf_token_from(page), "reason": ""})
    assert missing.status_code == 422 and "Give a reason for withdrawing the referral." in text(missing)
    done = admin.post(url, data={"csrf_token": csrf_token_from(page), "reason": "A duplicate application."},
                      follow_redirects=True)
    assert done.status_code == 200 and "Referral withdrawn" in text(done)
    db.session.expire_all()
    referral = db.session.get(Referral, made["bea2"].id)
    assert (referral.status, referral.reason) == ("rejected", "A duplicate application.")
    assert db.session.scalar(select(AuditEntry.actor_id).where(AuditEntry.action == "referral.withdraw")) == \
        staff["admin"].id
    # A credited one is revoked, not withdrawn: the page says so and offers nothing to submit.
    credited = get_ok(admin, f"{LIST}{made['cid1'].id}/withdraw")
    assert 'id="not-allowed"' in credited and 'id="withdraw-form"' not in credited


# --- export ---------------------------------------------------------------------------------


def _csv_ids(response) -> list[int]:
    assert response.status_code == 200 and response.mimetype == "text/csv"
    rows = list(csv.reader(io.StringIO(response.get_data().decode("utf-8-sig"))))
    assert rows[0][:3] == ["Referral", "Status", "Source"]
    return [int(r[0]) for r in rows[1:]]


def test_the_csv_export_holds_exactly_the_filtered_scoped_rows(client, staff, book, tree):
    login(client, "admin@test.org")
    credited = sorted(r.id for r in in_units(None) if r.status == "credited")
    assert sorted(_csv_ids(client.get(LIST + "export?format=csv&status=credited"))) == credited
    html = get_ok(client, LIST + "?status=credited&source=link")
    link = re.search(r'id="export-csv" href="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert sorted(_csv_ids(client.get(link))) == sorted([book["made"]["ada2"].id, book["made"]["cid1"].id])
    audit = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "referrals.export")
                              .order_by(AuditEntry.id.desc()))
    assert audit.actor_id == staff["admin"].id and audit.changes["rows"] == 2

    client.post("/logout", data={"csrf_token": csrf_token_from(html)})
    login(client, "coord@test.org")
    mine = sorted(r.id for r in in_units(subtree(tree["w1"])))
    assert sorted(_csv_ids(client.get(LIST + "export?format=csv"))) == mine
    assert sorted(_csv_ids(client.get(LIST + "export?format=csv&status=credited"))) == sorted(
        r.id for r in in_units(subtree(tree["w1"])) if r.status == "credited")


def test_the_xlsx_export_opens_with_openpyxl(admin, book):
    response = admin.get(LIST + "export?format=xlsx&status=credited")
    assert response.status_code == 200 and response.headers["Content-Disposition"].endswith('.xlsx"')
    sheet = load_workbook(io.BytesIO(response.get_data())).active
    rows = list(sheet.iter_rows(values_only=True))
    assert rows[0][0] == "Referral" and sorted(int(r[0]) for r in rows[1:]) == sorted(
        r.id for r in in_units(None) if r.status == "credited")
    assert {r[1] for r in rows[1:]} == {"Credited"}


def test_export_refusals_go_back_to_the_list(admin, book):
    bad = admin.get(LIST + "export?format=pdf&status=credited", follow_redirects=True)
    assert bad.status_code == 200 and "Export as csv or xlsx." in text(bad)
    bad = admin.get(LIST + "export?format=csv&since=yesterday")
    assert bad.status_code == 302 and "since=yesterday" in bad.headers["Location"]


def test_export_needs_members_export(client, staff, book, tree, make_user):
    role = rbac.create_role(None, "referral_reader", "Reads referrals", ["referrals.read"])
    rbac.assign_role(None, make_user("reader@test.org"), role, tree["w1"])
    db.session.commit()
    login(client, "reader@test.org")
    html = get_ok(client, LIST)
    assert listed(html) and 'id="export-csv"' not in html
    assert client.get(LIST + "export?format=csv").status_code == 403


# --- statistics -----------------------------------------------------------------------------


def expected_figures(unit_ids: list[int] | None) -> dict:
    """The statistics page's numbers, counted here from the rows (referrals and the ledger) with plain Python."""
    rows = in_units(unit_ids)
    points: dict[int, int] = defaultdict(int)
    stmt = select(PointsEntry.member_id, PointsEntry.points).join(Member, Member.id == PointsEntry.member_id)
    if unit_ids is not None:
        stmt = stmt.where(Member.unit_id.in_(unit_ids))
    for member_id, value in db.session.execute(stmt):
        points[member_id] += value
    positive = {m: p for m, p in points.items() if p > 0}
    ranks = {m: 1 + sum(1 for q in positive.values() if q > p) for m, p in positive.items()}
    monday = TODAY - timedelta(days=TODAY.weekday())
    first = monday - timedelta(weeks=ref_stats.WEEKS - 1)

    def week_of(moment: datetime | None) -> date | None:
        if moment is None:
            return None
        day = moment.date()
        return day - timedelta(days=day.weekday())

    recorded = Counter(week_of(r.created_at) for r in rows if r.created_at.date() >= first)
    credited = Counter(week_of(r.credited_at) for r in rows if r.credited_at and r.credited_at.date() >= first)
    return {
        "funnel": {"recorded": len(rows), "registered": sum(1 for r in rows if r.registered_at),
                   "credited": sum(1 for r in rows if r.credited_at)},
        "by_status": Counter(r.status for r in rows),
        "points": positive, "ranks": ranks,
        "weeks": {(first + timedelta(weeks=k)).isoformat(): (recorded[first + timedelta(weeks=k)],
                                                              credited[first + timedelta(weeks=k)])
                  for k in range(ref_stats.WEEKS)},
    }


def check_page(html: str, expected: dict) -> None:
    for stage, n in expected["funnel"].items():
        assert re.search(rf'data-funnel="{stage}">{n:,}<', html), (stage, n)
    recorded = expected["funnel"]["recorded"]
    credited_rate = f'{100 * expected["funnel"]["credited"] / recorded:.1f}%' if recorded else "—"
    assert re.search(rf'data-rate="credited">{re.escape(credited_rate)}<', html)
    for status in ("pending", "registered", "credited", "expired", "rejected"):
        assert re.search(rf'data-by-status="{status}">{expected["by_status"][status]}<', html), status
    assert cells(html, "recruiter", "points") == expected["points"]
    assert cells(html, "recruiter", "rank") == expected["ranks"]
    # Top recruiters per ward: each ward's best, by points (ties by id), with competition ranks in the ward.
    by_ward: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for member_id, points in expected["points"].items():
        by_ward[db.session.get(Member, member_id).unit_id].append((member_id, points))
    wanted = {}
    for ward, people in by_ward.items():
        for member_id, points in sorted(people, key=lambda mp: (-mp[1], mp[0]))[:ref_stats.TOP_PER_UNIT]:
            wanted[(ward, member_id)] = (points, 1 + sum(1 for _m, q in people if q > points))
    shown = {}
    for ward, member_id, row in re.findall(r'<tr data-ward="(\d+)" data-member="(\d+)">(.*?)</tr>', html, re.DOTALL):
        rank = re.search(r"data-rank>(\d+)<", row).group(1)
        shown[(int(ward), int(member_id))] = (int(re.search(r"data-points>([\d,]+)<", row).group(1).replace(",", "")),
                                              int(rank))
    assert shown == wanted
    weeks = {week: (int(r), int(c)) for week, r, c in re.findall(
        r'<tr data-week="([\d-]+)">.*?data-recorded>(\d+)<.*?data-credited>(\d+)<', html, re.DOTALL)}
    assert weeks == expected["weeks"]


def test_statistics_equal_counts_made_from_the_rows(admin, book, tree):
    html = get_ok(admin, STATS)
    expected = expected_figures(None)
    check_page(html, expected)
    assert expected["ranks"] == {book["ada"].id: 1, book["cid"].id: 1, book["bea"].id: 3, book["eve"].id: 3,
                                 book["dan"].id: 3}  # competition ranks: equal points share one
    assert sum(r for r, _c in expected["weeks"].values()) == len(book["made"]) and "referral-weeks-data" in html
    # The unit leaderboard of the first level below the organisation (provinces), summed here by province.
    by_province: dict[int, int] = defaultdict(int)
    for member_id, points in expected["points"].items():
        unit = db.session.get(Member, member_id).unit
        by_province[int(unit.path.strip("/").split("/")[0])] += points
    shown = cells(html, "unit", "points")
    assert shown == {tree["p1"].id: by_province[tree["p1"].id], tree["p2"].id: by_province[tree["p2"].id]}
    # The constituencies, asked for by level: each one's points and credits, counted here.
    html = get_ok(admin, STATS + "?level=2")
    for c in ("c1", "c2", "c3"):
        wards = subtree(tree[c])
        assert cells(html, "unit", "points")[tree[c].id] == sum(
            p for m, p in expected["points"].items() if db.session.get(Member, m).unit_id in wards)
        assert cells(html, "unit", "credited")[tree[c].id] == sum(1 for r in in_units(wards) if r.credited_at)
    # Top recruiters per ward: W1 has Ada then Bea, W2 Cid, W3 Eve, W4 Dan.
    assert re.findall(rf'<tr data-ward="{tree["w1"].id}" data-member="(\d+)"', html) == [
        str(book["ada"].id), str(book["bea"].id)]
    assert set(cells(html, "ward", "points")) == {tree[w].id for w in ("w1", "w2", "w3", "w4")}


def test_a_coordinators_statistics_cover_only_their_wards(coordinator, book, tree):
    html = get_ok(coordinator, STATS)
    expected = expected_figures(subtree(tree["w1"]))
    check_page(html, expected)
    assert set(cells(html, "recruiter", "points")) == {book["ada"].id, book["bea"].id}
    assert "Tembo" not in html and "Sakala" not in html
    assert set(re.findall(r'<tr data-ward="(\d+)"', html)) == {str(tree["w1"].id)}
    assert coordinator.get(f"{STATS}?unit_id={tree['w4'].id}").status_code == 404
    assert coordinator.get(f"{STATS}?unit_id={tree['w1'].id}").status_code == 200


def test_statistics_for_one_unit_and_bad_choices(admin, book, tree):
    html = get_ok(admin, f"{STATS}?unit_id={tree['c1'].id}")
    check_page(html, expected_figures(subtree(tree["c1"])))
    assert cells(html, "unit", "points") == {tree["w1"].id: 30, tree["w2"].id: 20}  # wards of C1
    bad_level = admin.get(f"{STATS}?level=province")
    assert bad_level.status_code == 400 and 'data-error="level"' in text(bad_level)
    assert admin.get(f"{STATS}?unit_id=abc").status_code == 404
    assert admin.get(f"{STATS}?unit_id=99999999").status_code == 404
    ward = get_ok(admin, f"{STATS}?unit_id={tree['w4'].id}")
    assert 'id="units-none"' in ward


def test_statistics_page_the_leaderboard(admin, book, monkeypatch):
    from app.admin import referral_stats

    monkeypatch.setattr(referral_stats, "PAGE_SIZE", 2)
    first, second = get_ok(admin, STATS), get_ok(admin, STATS + "?page=1")
    assert list(cells(first, "recruiter", "rank").values()) == [1, 1]
    assert list(cells(second, "recruiter", "rank").values()) == [3, 3]  # ranks run across pages
    assert 'data-pager="page">Page 1 of 3' in first
    assert 'data-past-end="page"' in get_ok(admin, STATS + "?page=9")


def test_empty_states_and_the_chart_needs_no_inline_script(client, staff, tree):
    login(client, "admin@test.org")
    html = get_ok(client, LIST)
    assert 'id="no-referrals"' in html and "No referrals in your area yet" in html
    response = client.get(STATS)
    html = text(response)
    assert response.status_code == 200
    for marker in ("funnel-empty", "weeks-empty", "leaderboard-empty", "wards-empty"):
        assert f'id="{marker}"' in html, marker
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    # Every script is a file of this site or a JSON data block, never inline code.
    for attrs, body in re.findall(r"<script([^>]*)>(.*?)</script>", html, re.DOTALL):
        assert "src=" in attrs or 'type="application/json"' in attrs or not body.strip(), attrs


def test_the_chart_loads_the_vendored_chartjs_and_its_own_script(admin, book):
    html = get_ok(admin, STATS)
    assert '<script type="application/json" id="referral-weeks-data">' in html
    assert "/static/vendor/chartjs/chart.umd.min.js" in html and "/static/js/referral-stats.js" in html
    assert admin.get("/static/js/referral-stats.js").status_code == 200


def test_the_menu_has_the_referrals_entries(admin, book):
    html = get_ok(admin, "/admin/")
    assert "Referrals" in html and 'href="/admin/referrals/"' in html and f'href="{STATS}"' in html


def test_hostile_ids_and_arguments_never_500(admin, book):
    for bad in ("abc", "0", "-1", "007", "1e3", "99999999999999999999999"):
        for suffix in ("", "/revoke", "/withdraw"):
            assert admin.get(f"{LIST}{bad}{suffix}").status_code == 404, (bad, suffix)
    for query in ("page=abc", "page=1e9", "unit_id=%27%20OR%201=1", "unit_id=99999999999999999999999",
                  "since=0000-00-00", "until=2025-02-30", "q=%00", "q=a%00b", "status=%F0%9F%92%A5", "q=%25_%5C"):
        assert admin.get(f"{LIST}?{query}").status_code in (200, 400), query
        assert admin.get(f"{LIST}export?format=csv&{query}").status_code in (200, 302, 400), query
    for query in ("page=abc", "units_page=-3", "wards_page=x", "level=99", "level=-1", "unit_id=-5",
                  "unit_id=%00"):
        assert admin.get(f"{STATS}?{query}").status_code in (400, 404), query


def test_a_members_page_shows_their_referrals_and_who_brought_them(admin, book, tree):
    ada = book["ada"]
    page = get_ok(admin, f"/admin/member/details/?id={ada.id}")
    panel = page.split('id="member-referral-panel"', 1)[1].split("</div>\n</div>", 1)[0]
    assert f'id="member-referral-points">{ledger_sum(ada)}<' in panel
    made = in_units(None)
    mine = [r for r in made if r.referrer_id == ada.id]
    assert f"{len(mine)} referrals</a>" in panel
    listing = get_ok(admin, f"/admin/referrals/?referrer_id={ada.id}")
    assert listed(listing) == {r.id for r in mine}
    assert "Only the referrals made by member Ada Banda." in listing

    newcomer = book["made"]["ada1"].referred_member
    theirs = get_ok(admin, f"/admin/member/details/?id={newcomer.id}")
    assert f'/admin/referrals/{book["made"]["ada1"].id}">Ada Banda</a>' in theirs and "(credited)" in theirs


def test_the_referral_panel_needs_referrals_read(client, book, make_user):
    from app.services import rbac

    reader = make_user("reader@test.org")
    rbac.assign_role(None, reader, rbac.create_role(None, "members_only", "", ["members.read"]), None)
    db.session.commit()
    login(client, "reader@test.org")
    page = get_ok(client, f"/admin/member/details/?id={book['ada'].id}")
    assert "Ada Banda" in page and 'id="member-referral-panel"' not in page
