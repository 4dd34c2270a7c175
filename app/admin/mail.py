"""Console "Outgoing mail": the outbox, one message's rendering, retry, and a test email.

Staff see the mail about members they may read (app/services/mail says why
and how; mail about no member only staff who read members everywhere). The
HTML body is shown in a sandboxed iframe from a route of its own, whose
response carries a CSP with ``sandbox`` and no script or remote source: a
message's HTML (written by templates, but holding what members typed) can
neither run script nor load a tracking pixel in the console. Its source is
shown escaped too.
"""

from __future__ import annotations

from math import ceil

from flask import Response, flash, redirect, request, url_for
from flask_admin import expose
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from wtforms import EmailField

from app.admin.base import SecureView, committing, current_actor, page_arg
from app.extensions import db
from app.models import MAIL_STATUSES, MailMessage
from app.security import can, permits
from app.services import mail

PAGE_SIZE = 25
# The framed HTML body: nothing runs, nothing loads from elsewhere, only this console may frame it.
BODY_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; sandbox; frame-ancestors 'self'"


class TestMailForm(FlaskForm):
    to = EmailField("Send to")


class MailView(SecureView):
    permission = mail.READ

    @expose("/")
    def index(self):
        actor = current_actor()
        page = page_arg()
        status = request.args.get("status", "")
        kind = request.args.get("kind", "").strip()
        q = request.args.get("q", "").strip()
        stmt = mail.visible_messages(actor)
        visible = stmt.order_by(None).subquery()
        kinds = sorted(db.session.scalars(select(visible.c.kind).distinct()))
        if status in MAIL_STATUSES:
            stmt = stmt.where(MailMessage.status == status)
        if kind:
            stmt = stmt.where(MailMessage.kind == kind)
        if q:
            stmt = stmt.where(func.lower(MailMessage.to_address).contains(q.lower(), autoescape=True))
        total = db.session.scalar(select(func.count()).select_from(stmt.order_by(None).subquery())) or 0
        rows = db.session.scalars(stmt.limit(PAGE_SIZE).offset(page * PAGE_SIZE)).all()
        return self.render(
            "admin/mail/list.html", rows=rows, total=total, page=page, page_size=PAGE_SIZE,
            pages=ceil(total / PAGE_SIZE), statuses=MAIL_STATUSES, kinds=kinds, status=status, kind=kind, q=q,
            can_send_test=can(actor, mail.SEND), backend=mail.backend_label(),
        )

    @expose("/<pk:message_id>")
    def details(self, message_id: int):
        actor = current_actor()
        message = mail.load_message(actor, message_id)
        return self.render(
            "admin/mail/details.html", message=message, form=FlaskForm(),
            can_retry=message.status == "failed" and permits(actor, mail.SEND, message),
        )

    @expose("/<pk:message_id>/html")
    def html(self, message_id: int):
        message = mail.load_message(current_actor(), message_id)
        body = "" if message.sensitive else message.body_html
        response = Response(body or "<p>(no HTML body)</p>", mimetype="text/html")
        response.headers["Content-Security-Policy"] = BODY_CSP
        return response

    @expose("/<pk:message_id>/retry", methods=("POST",))
    def retry(self, message_id: int):  # CSRFProtect has checked the token before this runs
        actor = current_actor()
        message = mail.load_message(actor, message_id)
        with committing() as outcome:
            mail.retry(actor, message)
        if outcome.ok:
            flash(f"Queued again: {message.subject} to {message.to_address}.", "success")
        return redirect(url_for(".details", message_id=message_id))

    @expose("/test", methods=("GET", "POST"))
    def send_test(self):
        actor = current_actor()
        mail.check_may_send_test(actor)
        form = TestMailForm()
        if request.method == "GET":
            form.to.data = actor.email
        elif form.validate_on_submit():
            with committing(form, show="form") as outcome:
                message = mail.send_test(actor, form.to.data or "")
            if outcome.ok:
                flash(f"Test email queued for {message.to_address}. Its status shows below.", "success")
                return redirect(url_for(".details", message_id=message.id))
        return self.render("admin/mail/test.html", form=form, backend=mail.backend_label())


def register(admin) -> None:
    admin.add_view(MailView(name="Outgoing mail", endpoint="mail", url="/admin/mail"))
