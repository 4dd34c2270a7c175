"""Reading requests that also write, under concurrent use: not one server error (issue 8).

On SQLite a reading transaction cannot become a writing one while another
connection writes ("database is locked" at once, no waiting): before the fix
64 of the 95 requests below answered 500 (every export). Here a real threaded HTTP server (werkzeug)
serves the committing database, and real clients, released together, run the
issue's mix: 50 member exports (API and console, each writing its audit
entry), 30 member updates, and 15 first reads with newly issued API tokens
(each writing the token's ``last_used_at``). Every answer must be 2xx, every
export complete, every update applied. The same tests run on PostgreSQL
(TEST_DATABASE_URL).
"""

from __future__ import annotations

import csv
import io
import random
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import requests
from sqlalchemy import func, insert, select, update

from app.extensions import db
from app.models import ApiToken, AuditEntry, Member
from app.models.base import utcnow
from app.services import auth as auth_service
from tests.conftest import PASSWORD, csrf_token_from

MEMBERS = 120
API_EXPORTS, CONSOLE_EXPORTS = 35, 15
UPDATES = 30
NEW_TOKEN_READS = 15


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def console_cookies(base: str, email: str) -> dict[str, str]:
    """Log in through the real form once; the console clients share the session cookie."""
    with requests.Session() as http:
        token = csrf_token_from(http.get(f"{base}/login", timeout=30).text)
        answer = http.post(f"{base}/login", data={"email": email, "password": PASSWORD, "csrf_token": token},
                           allow_redirects=False, timeout=30)
        assert answer.status_code == 302, answer.text
        return http.cookies.get_dict()


def exported_numbers(body: bytes) -> list[str]:
    """The membership numbers of an exported CSV, in file order (BOM and header dropped)."""
    rows = list(csv.reader(io.StringIO(body.decode("utf-8-sig"))))
    assert rows[0][0] == "Membership number"
    return [row[0] for row in rows[1:]]


def test_exports_updates_and_new_tokens_at_once_never_fail(live_server, tree, staff, make_member):
    members = [make_member(tree["w1"] if i % 2 else tree["w2"]) for i in range(MEMBERS)]
    numbers = sorted(m.membership_number for m in members)
    in_w1 = sum(1 for m in members if m.unit_id == tree["w1"].id)
    ids = [m.id for m in members]
    admin_token, _row = auth_service.issue_token(staff["admin"])
    fresh = [auth_service.issue_token(staff["coordinator"], name=f"gate {i}") for i in range(NEW_TOKEN_READS)]
    db.session.commit()
    cookies = console_cookies(live_server, "super@test.org")

    def export_api(i: int):
        answer = requests.get(f"{live_server}/api/v1/members/export", headers=bearer(admin_token), timeout=120)
        return answer, lambda: sorted(exported_numbers(answer.content)) == numbers

    def export_console(i: int):
        answer = requests.get(f"{live_server}/admin/member/export/?format=csv", cookies=cookies, timeout=120)
        return answer, lambda: sorted(exported_numbers(answer.content)) == numbers

    def update(i: int):
        answer = requests.put(f"{live_server}/api/v1/members/{ids[i]}", json={"notes": f"updated {i}"},
                              headers=bearer(admin_token), timeout=120)
        return answer, lambda: answer.json()["notes"] == f"updated {i}"

    def read_with_new_token(i: int):
        answer = requests.get(f"{live_server}/api/v1/members?per_page=10", headers=bearer(fresh[i][0]), timeout=120)
        return answer, lambda: answer.json()["total"] == in_w1  # the coordinator's ward only

    work = ([(export_api, i) for i in range(API_EXPORTS)] + [(export_console, i) for i in range(CONSOLE_EXPORTS)]
            + [(update, i) for i in range(UPDATES)] + [(read_with_new_token, i) for i in range(NEW_TOKEN_READS)])
    random.Random(8).shuffle(work)
    start = threading.Barrier(len(work))

    def run(item):
        fn, i = item
        start.wait(timeout=60)
        answer, right = fn(i)
        return fn.__name__, answer.status_code, 200 <= answer.status_code < 300 and right()

    with ThreadPoolExecutor(max_workers=len(work)) as pool:
        results = list(pool.map(run, work))

    assert Counter((name, status) for name, status, _ok in results) == {
        ("export_api", 200): API_EXPORTS, ("export_console", 200): CONSOLE_EXPORTS,
        ("update", 200): UPDATES, ("read_with_new_token", 200): NEW_TOKEN_READS}
    assert [name for name, _status, ok in results if not ok] == []
    db.session.expire_all()
    notes = dict(db.session.execute(select(Member.id, Member.notes).where(Member.id.in_(ids[:UPDATES]))).all())
    assert notes == {ids[i]: f"updated {i}" for i in range(UPDATES)}
    exports = db.session.scalars(select(AuditEntry).where(AuditEntry.action == "members.export")).all()
    assert sorted(entry.changes["source"] for entry in exports) == ["api"] * API_EXPORTS + ["console"] * CONSOLE_EXPORTS
    assert {entry.changes["rows"] for entry in exports} == {MEMBERS}
    used = db.session.scalars(select(ApiToken.last_used_at).where(ApiToken.id.in_([row.id for _t, row in fresh])))
    assert None not in list(used)


def test_token_use_is_written_at_most_once_a_minute(live_server, staff):
    """``last_used_at`` moves only once the recorded use is a minute old."""
    token, row = auth_service.issue_token(staff["coordinator"])
    recent = utcnow() - timedelta(seconds=30)
    row.last_used_at = recent
    db.session.commit()

    assert requests.get(f"{live_server}/api/v1/units", headers=bearer(token), timeout=30).status_code == 200
    db.session.expire_all()
    assert db.session.get(ApiToken, row.id).last_used_at == recent

    db.session.execute(update(ApiToken).where(ApiToken.id == row.id).values(last_used_at=recent - timedelta(minutes=1)))
    db.session.commit()
    assert requests.get(f"{live_server}/api/v1/units", headers=bearer(token), timeout=30).status_code == 200
    db.session.expire_all()
    assert db.session.get(ApiToken, row.id).last_used_at > recent


def test_an_export_being_downloaded_holds_no_write_lock(committing_app, tree, staff):
    """Halfway through a download another connection writes without waiting, and the file stays one snapshot.

    The export is paused after its first piece (2,000 rows) by reading the
    response lazily; meanwhile a writer on its own connection, which on SQLite
    would fail at once if the lock were taken (busy_timeout 0), adds a member.
    """
    count = 2500
    db.session.execute(insert(Member), [
        {"membership_number": f"S{i:06d}", "first_name": "Snap", "last_name": f"Shot{i}", "unit_id": tree["w1"].id,
         "status": "active"} for i in range(count)])
    token, _row = auth_service.issue_token(staff["admin"])
    db.session.commit()
    unit_id = tree["w1"].id

    download = committing_app.test_client().get("/api/v1/members/export", headers=bearer(token), buffered=False)
    assert download.status_code == 200
    pieces = iter(download.response)
    body = next(pieces)  # the export is now paused with its reading transaction open
    assert 0 < len(exported_numbers(body)) < count

    failures: list[str] = []

    def write_meanwhile() -> None:
        with committing_app.app_context(), db.engine.connect() as conn:
            try:
                if conn.dialect.name == "sqlite":
                    conn.exec_driver_sql("PRAGMA busy_timeout=0")  # never wait for the lock: fail instead
                conn.execute(insert(Member).values(membership_number="LATE1", first_name="Late", last_name="Comer",
                                                   unit_id=unit_id, status="active"))
                conn.commit()
            except Exception as exc:  # reported below
                failures.append(repr(exc))
            finally:
                conn.invalidate()  # not back into the pool with that setting

    writer = threading.Thread(target=write_meanwhile)
    writer.start()
    writer.join(timeout=60)
    assert failures == []

    body += b"".join(pieces)
    download.close()
    assert len(exported_numbers(body)) == count  # the member added meanwhile is not in this file
    db.session.rollback()  # the test client shared this session: end the export's snapshot
    assert db.session.scalar(select(func.count()).select_from(Member)) == count + 1
