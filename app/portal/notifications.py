"""``/notifications``: the member's notifications, the bell, mail preferences; ``/unsubscribe/<token>``.

- ``/notifications``: newest first, 10 a page (``?unread=1`` for unread
  only), an empty state; "Open" marks one read and follows its link, "Mark
  read" and "Mark all read" are POSTs with the CSRF token.
- ``/notifications/bell``: the bell alone, the fragment htmx asks for every
  MUSTER_NOTIFICATIONS_POLL_SECONDS (one indexed count). Signed out, it
  answers 286 (htmx's "stop polling") instead of a sign-in redirect, so a
  page left open after the session ended never swaps a login form into the
  navigation bar.
- ``/notifications/preferences``: which optional kinds come by email;
  required kinds are shown ticked and cannot be changed.
- ``/unsubscribe/<token>``: the link in every optional mail, no sign-in (the
  signature is the proof). GET shows one button (a mail scanner fetching
  links unsubscribes nobody); the POST, or a mail program's RFC 8058
  one-click POST (``List-Unsubscribe=One-Click``, which carries no CSRF
  token, so the route is exempt) switches that kind off.

No URL names a member: it is always the signed-in user's own record, and a
notification id of another member's answers 404. Rules live in
``app.services.notifications``; each POST commits once.
"""

from __future__ import annotations

from flask import current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import SelectMultipleField
from wtforms.widgets import CheckboxInput, ListWidget

from app.extensions import csrf, db
from app.portal.blueprint import PER_PAGE, actor, bp, page_arg, pages
from app.services import notifications as notes
from app.services import self_service
from app.services.errors import ServiceError
from app.services.inputs import parse_page

READ = "profile.read_own"
WRITE = "profile.update_own"


class PreferencesForm(FlaskForm):
    emailed = SelectMultipleField("Email me about", option_widget=CheckboxInput(), widget=ListWidget(prefix_label=False),
                                  validate_choice=False)


@bp.app_context_processor
def notification_bell():
    """``unread_notifications()`` for the layout's bell (asked only where the bell is drawn)."""

    def unread() -> int:
        member = getattr(current_user, "member", None) if current_user.is_authenticated else None
        return notes.unread_count(member) if member is not None and member.deleted_at is None else 0

    return {"unread_notifications": unread, "notifications_poll": lambda: current_app.config.get(
        "NOTIFICATIONS_POLL_SECONDS", 60)}


@bp.route("/notifications")
@login_required
def notifications():
    member = self_service.own_member(actor(), READ)
    unread_only = request.args.get("unread", "") == "1"
    page = page_arg()
    items, total = notes.page(member, (page - 1) * PER_PAGE, PER_PAGE, unread_only=unread_only)
    return render_template("portal/notifications.html", items=items, p=pages(total, page), unread_only=unread_only,
                           unread_total=notes.unread_count(member), form=FlaskForm(), kinds=notes.KINDS)


@bp.route("/notifications/bell")
def notifications_bell():
    if not current_user.is_authenticated:
        return "", 286  # htmx: stop polling (signed out meanwhile)
    self_service.own_member(actor(), READ)
    return render_template("portal/_bell.html")


@bp.route("/notifications/<pk:notification_id>/read", methods=["POST"])
@login_required
def notification_read(notification_id: int):
    member = self_service.own_member(actor(), WRITE)
    form = FlaskForm()
    if not form.validate_on_submit():
        flash("The form had expired; please try again.", "warning")
        return redirect(url_for("portal.notifications"))
    note = notes.mark_read(notes.load_own(member, notification_id))
    link = note.link
    db.session.commit()
    if request.form.get("open") and link:
        return redirect(link)
    return redirect(_back())


@bp.route("/notifications/read-all", methods=["POST"])
@login_required
def notifications_read_all():
    member = self_service.own_member(actor(), WRITE)
    form = FlaskForm()
    if not form.validate_on_submit():
        flash("The form had expired; please try again.", "warning")
        return redirect(url_for("portal.notifications"))
    count = notes.mark_all_read(member)
    db.session.commit()
    flash("All notifications are marked read." if count else "Nothing was unread.", "success")
    return redirect(url_for("portal.notifications"))


def _back() -> str:
    """Back to the list as it was (page, filter), never to another site."""
    page = parse_page(request.form.get("page", ""), 1)
    values: dict[str, object] = {"page": page} if page and page > 1 else {}
    if request.form.get("unread") == "1":
        values["unread"] = "1"
    return url_for("portal.notifications", **values)


@bp.route("/notifications/preferences", methods=["GET", "POST"])
@login_required
def notification_preferences():
    me = actor()
    member = self_service.own_member(me, READ)
    form = PreferencesForm()
    form.emailed.choices = [(k, notes.KINDS[k].label) for k in notes.OPTIONAL_KINDS]
    status = 200
    if request.method == "POST":
        self_service.own_member(me, WRITE)
        if form.validate_on_submit():
            try:
                notes.set_preferences(member, form.emailed.data or [], source="portal")
                db.session.commit()
            except ServiceError as exc:
                db.session.rollback()
                form.form_errors.append(exc.message)
                status = exc.status
            else:
                flash("Your email preferences are saved.", "success")
                return redirect(url_for("portal.notification_preferences"))
        else:
            status = 400
    return render_template("portal/notification_preferences.html", form=form,
                           prefs=notes.preferences(member)), status


@bp.route("/unsubscribe/<token>", methods=["GET", "POST"])
@csrf.exempt
def unsubscribe(token: str):
    try:
        target = notes.read_unsubscribe_token(token)
    except ServiceError as exc:
        return render_template("portal/unsubscribe.html", problem=exc.message, done=False), exc.status
    if request.method == "POST":
        notes.unsubscribe(token)
        db.session.commit()
        if request.form.get("List-Unsubscribe") == "One-Click":
            return "", 204  # a mail program's one-click POST: nobody reads the page
        return render_template("portal/unsubscribe.html", target=target, done=True)
    return render_template("portal/unsubscribe.html", target=target, done=False,
                           already=not notes.wants_email(target.member, target.kind))
