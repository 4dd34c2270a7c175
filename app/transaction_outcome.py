"""Work that must wait for the caller's transaction to end: after its commit, or on its rollback.

Services flush and never commit, yet some of what they do lies outside the
database: a mail delivery to enqueue (the worker must find the committed
row), a stored object to delete once no row points at it, a just-stored
object to throw away if its row never lands. They say so here and the
caller's single commit (or rollback) settles it:

- ``on_commit(fn)``: ``fn()`` runs once the outermost transaction commits;
  if it rolls back, or a savepoint the request was made in rolls back, the
  request is dropped;
- ``on_rollback(fn)``: ``fn()`` runs when the transaction (or the savepoint)
  the request was made in rolls back, or the session closes without
  committing; a commit drops it.

A savepoint that is released hands its requests to the enclosing
transaction. A ``key`` makes a second request with the same key replace the
first (one enqueue per mail message however often it is asked for).

Callbacks run after the fact and must not raise: an error is logged, never
raised, because the caller's work did commit (or is already gone).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

from app.extensions import db

log = logging.getLogger(__name__)

_PENDING = "muster_outcome_pending"
_COMMITTED = "muster_outcome_committed"


@dataclass
class _Request:
    transaction: SessionTransaction
    when: str  # "commit" or "rollback"
    fn: Callable[[], None]
    key: Hashable | None


def on_commit(fn: Callable[[], None], key: Hashable | None = None) -> None:
    """Run ``fn()`` once the current transaction is committed for good."""
    _register("commit", fn, key)


def on_rollback(fn: Callable[[], None], key: Hashable | None = None) -> None:
    """Run ``fn()`` if the current transaction (or savepoint) does not commit."""
    _register("rollback", fn, key)


def _register(when: str, fn: Callable[[], None], key: Hashable | None) -> None:
    session = db.session()
    if not session.in_transaction():
        session.begin()
    transaction = session.get_nested_transaction() or session.get_transaction()
    pending: list[_Request] = session.info.setdefault(_PENDING, [])
    if key is not None:
        pending[:] = [r for r in pending if r.key != key]
    pending.append(_Request(transaction, when, fn, key))


def _run(requests: list[_Request]) -> None:
    for request in requests:
        try:
            request.fn()
        except Exception:  # noqa: BLE001 - see the module docstring
            log.exception("after-%s work failed: %r", request.when, request.fn)


def _within(transaction: SessionTransaction | None, ancestor: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is ancestor:
            return True
        transaction = transaction.parent
    return False


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.get(_PENDING):
        session.info[_COMMITTED] = session.get_nested_transaction() or session.get_transaction()


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: SessionTransaction) -> None:
    pending: list[_Request] | None = session.info.get(_PENDING)
    if not pending or not (transaction.parent is None or transaction.nested):
        return  # nothing asked, or the inner step of a flush
    committed = session.info.get(_COMMITTED) is transaction
    if committed:
        session.info.pop(_COMMITTED, None)
    if transaction.parent is None:
        session.info[_PENDING] = []
        _run([r for r in pending if r.when == ("commit" if committed else "rollback")])
        return
    if committed:
        return  # a released savepoint: its requests now wait for the enclosing transaction
    kept, settled = [], []
    for request in pending:
        (settled if _within(request.transaction, transaction) else kept).append(request)
    session.info[_PENDING] = kept
    _run([r for r in settled if r.when == "rollback"])
