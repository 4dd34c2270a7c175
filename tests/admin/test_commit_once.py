"""``committing``, the one commit-once block of console POST handlers: what a refused change leaves and shows."""

from __future__ import annotations

from flask import get_flashed_messages
from sqlalchemy import func, select
from wtforms import Form, StringField

from app.admin.base import committing
from app.extensions import db
from app.models import Unit
from app.services import geo
from app.services.errors import ServiceError, ValidationErrors


class NameForm(Form):
    name = StringField()
    unit = StringField()


def units() -> int:
    return db.session.scalar(select(func.count()).select_from(Unit))


def test_a_refusal_rolls_back_and_lands_under_its_fields(app):
    with app.test_request_context("/admin/", method="POST"):
        form = NameForm()
        before = units()
        with committing(form, {"unit_id": "unit"}) as outcome:
            geo.create_unit(None, "Eastern", "P9", None)  # flushed, then refused below
            raise ValidationErrors({"name": "Give a name.", "unit_id": "Choose a unit.", "other": "Not allowed."})
        assert not outcome.ok and outcome.status == 422
        assert units() == before  # the flushed unit went with the rollback
        assert form.name.errors == ["Give a name."] and form.unit.errors == ["Choose a unit."]
        assert get_flashed_messages(with_categories=True) == [("error", "Not allowed.")]


def test_messages_without_a_field_go_where_the_page_shows_them(app):
    with app.test_request_context("/admin/", method="POST"):
        form = NameForm()
        with committing(form, show="form") as outcome:
            raise ServiceError("This conflicts.", status=409)
        assert outcome.status == 409 and form.form_errors == ["This conflicts."]
        with committing(show=None) as outcome:
            raise ServiceError("Left to the page.")
        assert outcome.error.message == "Left to the page."
        with committing(prefix="The card was not issued: ") as outcome:
            raise ServiceError("the member is not active.")
        assert get_flashed_messages() == ["The card was not issued: the member is not active."]


def test_a_block_that_finishes_is_committed_once(app):
    with app.test_request_context("/admin/", method="POST"):
        with committing() as outcome:
            unit = geo.create_unit(None, "Eastern", "P9", None)
        assert outcome.ok and outcome.status == 200
        db.session.rollback()  # nothing left to undo: the block committed
        assert db.session.get(Unit, unit.id) is not None
