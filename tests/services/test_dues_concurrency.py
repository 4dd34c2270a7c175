"""A payment completed by several deliveries at once extends the membership once (real commits, own connections).

The webhook, its replay and the success page may all call ``dues.fulfil``
on one completed payment at the same moment. On PostgreSQL the payment's row lock
(``lock_row``: SELECT ... FOR UPDATE) makes the others wait and then find
``fulfilled_at`` set; on SQLite each transaction takes the write lock up
front (``take_write_lock``, as the request and job paths do).
"""

from __future__ import annotations

import threading
import time

from sqlalchemy import func, select

from app.database import take_write_lock
from app.extensions import db
from app.models import CardTransaction, MembershipCard, Payment
from app.models.base import utcnow
from app.services import dues
from app.services.cards import add_months
from app.services.dues import tiers

DELIVERIES = 6


def test_concurrent_completions_of_one_payment_extend_the_membership_once(committing_app, tree, make_member,
                                                                          staff, monkeypatch):
    app = committing_app
    extend = dues.extend_for_payment

    def slow_extend(*args, **kwargs):  # widen the window between "not yet fulfilled" and the extension
        time.sleep(0.2)
        return extend(*args, **kwargs)

    monkeypatch.setattr(dues, "extend_for_payment", slow_extend)
    member = make_member(tree["w1"])
    tier = tiers.create_tier(staff["admin"], {"name": "Annual", "price": "120", "currency": "ZMW",
                                              "duration_months": "12"})
    payment = dues.new_payment(member, tier, "stripe")
    payment.status, payment.completed_at = "completed", utcnow()  # the money is in; nobody has fulfilled it yet
    db.session.commit()
    payment_id, member_id = payment.id, member.id
    db.session.remove()
    barrier = threading.Barrier(DELIVERIES)
    errors: list[BaseException] = []

    def deliver() -> None:
        with app.app_context():
            try:
                barrier.wait(timeout=30)
                take_write_lock()
                dues.fulfil(db.session.get(Payment, payment_id))
                db.session.commit()
            except BaseException as exc:  # reported to the main thread
                db.session.rollback()
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=deliver) for _ in range(DELIVERIES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors

    payment = db.session.get(Payment, payment_id)
    [card] = db.session.scalars(select(MembershipCard).where(MembershipCard.member_id == member_id)).all()
    assert payment.status == "completed" and payment.fulfilled_at is not None
    assert card.expires_on == add_months(payment.fulfilled_at.date(), 12)
    assert db.session.scalar(select(func.count()).select_from(CardTransaction).where(
        CardTransaction.card_id == card.id)) == 1
    assert db.session.scalar(select(func.count()).select_from(Payment).where(
        Payment.receipt_number.is_not(None))) == 1
