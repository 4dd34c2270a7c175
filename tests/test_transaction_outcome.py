"""Work that waits for the caller's transaction: after its commit, or on its rollback (app/transaction_outcome.py)."""

from __future__ import annotations

from app.extensions import db
from app.transaction_outcome import on_commit, on_rollback


def test_commit_runs_the_commit_work_only(app):
    ran = []
    on_commit(lambda: ran.append("commit"))
    on_rollback(lambda: ran.append("rollback"))
    assert ran == []
    db.session.commit()
    assert ran == ["commit"]
    db.session.commit()
    assert ran == ["commit"]  # once


def test_rollback_runs_the_rollback_work_only(app):
    ran = []
    on_commit(lambda: ran.append("commit"))
    on_rollback(lambda: ran.append("rollback"))
    db.session.rollback()
    assert ran == ["rollback"]


def test_a_savepoint_rolled_back_settles_what_was_asked_inside_it(app):
    ran = []
    on_commit(lambda: ran.append("outer commit"))
    savepoint = db.session.begin_nested()
    on_commit(lambda: ran.append("inner commit"))
    on_rollback(lambda: ran.append("inner rollback"))
    savepoint.rollback()
    assert ran == ["inner rollback"]
    db.session.commit()
    assert ran == ["inner rollback", "outer commit"]


def test_a_released_savepoint_hands_its_work_to_the_enclosing_transaction(app):
    ran = []
    with db.session.begin_nested():
        on_commit(lambda: ran.append("commit"))
    assert ran == []
    db.session.commit()
    assert ran == ["commit"]


def test_a_key_keeps_the_last_request_only(app):
    ran = []
    on_commit(lambda: ran.append(1), key="same")
    on_commit(lambda: ran.append(2), key="same")
    on_commit(lambda: ran.append(3), key="other")
    db.session.commit()
    assert ran == [2, 3]


def test_a_failing_callback_is_logged_and_the_others_still_run(app, caplog):
    ran = []
    on_commit(lambda: 1 / 0)
    on_commit(lambda: ran.append("second"))
    db.session.commit()
    assert ran == ["second"] and "after-commit work failed" in caplog.text
