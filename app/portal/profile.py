"""``/profile``: the member's own data; contact details, photo, change requests, "my data", erasure; email links.

- ``/profile``: everything on record, and four forms: contact details
  (phone and address change at once; a new email is mailed a confirmation
  link and shown as pending), the photo (the console's content checks), a
  change request for name, date of birth, national ID or ward (pending
  until staff decide; one at a time, withdrawable), and links to "Download
  my data" and "Ask to delete my account".
- ``/profile/data``: the JSON attachment (``profile.my_data``).
- ``/profile/delete``: a confirmation step, then an erasure request (nothing
  is deleted here).
- ``/profile/email/confirm/<token>``: the mailed link. GET shows what it
  confirms and a button; the POST makes the change (a mail scanner that
  fetches links must not confirm an address by itself). No sign-in needed:
  the link is the proof.

No URL here names a member: it is always the signed-in user's own record.
Rules live in ``app.services.profile`` and ``app.services.change_requests``;
each POST commits once; a refused form comes back with every field's message
(422).
"""

from __future__ import annotations

import json

from flask import Response, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, SelectField, StringField, TextAreaField
from wtforms.fields import EmailField, TelField

from app.extensions import db
from app.portal.blueprint import actor, bp
from app.services import change_requests, links, self_service
from app.services import profile as profile_service
from app.services.errors import ServiceError, ValidationErrors

STATUS_LABELS = {"pending": "Waiting for a decision", "approved": "Approved", "rejected": "Not approved",
                 "withdrawn": "Withdrawn"}


class ContactForm(FlaskForm):
    phone = TelField("Phone")
    email = EmailField("Email")
    address = TextAreaField("Address")


class PhotoForm(FlaskForm):
    photo = FileField("New photo (JPEG or PNG)")


class ChangeForm(FlaskForm):
    first_name = StringField("First name")
    last_name = StringField("Last name")
    other_names = StringField("Other names")
    date_of_birth = StringField("Date of birth")
    national_id = StringField("National ID")
    unit_id = SelectField("Ward", validate_choice=False)
    note = TextAreaField("Anything staff should know (optional)")


class ErasureForm(FlaskForm):
    confirm = BooleanField("I understand and want my account deleted")
    reason = TextAreaField("Why (optional)")


def _place(form: FlaskForm, exc: ServiceError) -> None:
    """A service's messages under their fields (all at once); the rest above the form."""
    errors = exc.errors if isinstance(exc, ValidationErrors) else {exc.field: exc.message}
    for name, message in errors.items():
        if name and name in form:
            form[name].errors = [message]
        else:
            form.form_errors.append(message)


def _change_form(member, formdata=None) -> ChangeForm:
    form = ChangeForm(formdata=formdata, data=None if formdata else {
        "first_name": member.first_name, "last_name": member.last_name, "other_names": member.other_names or "",
        "date_of_birth": member.date_of_birth.isoformat() if member.date_of_birth else "",
        "national_id": member.national_id or "", "unit_id": str(member.unit_id)})
    form.unit_id.choices = [(str(u.id), f"{u.name} ({u.code})") for u in change_requests.unit_choices(member)]
    return form


def _page(*, contact: ContactForm | None = None, photo: PhotoForm | None = None, change: ChangeForm | None = None,
          status: int = 200):
    me = actor()
    member = self_service.own_member(me)
    contact = contact or ContactForm(formdata=None, data={"phone": member.phone or "", "email": member.email or "",
                                                          "address": member.address or ""})
    pending = change_requests.pending_change(member)
    return render_template(
        "portal/profile.html", member=member, contact=contact, photo_form=photo or PhotoForm(formdata=None),
        change=change or _change_form(member), photo=profile_service.photo_data_uri(member),
        pending_email=profile_service.pending_email(member), pending=pending,
        requests=change_requests.recent_changes(member), erasure=change_requests.pending_erasure(member),
        labels=change_requests.FIELD_LABELS, display=change_requests.display, status_labels=STATUS_LABELS,
        member_status=self_service.MEMBER_STATUS_LABELS.get(member.status, member.status), form=FlaskForm(),
    ), status


@bp.route("/profile")
@login_required
def profile():
    return _page()


@bp.route("/profile/contact", methods=["POST"])
@login_required
def profile_contact():
    me = actor()
    self_service.own_member(me, "profile.update_own")
    form = ContactForm()
    if not form.validate_on_submit():
        return _page(contact=form, status=400)
    try:
        member = profile_service.update_contact(me, {"phone": form.phone.data, "email": form.email.data or None,
                                                     "address": form.address.data})
        sent_to = profile_service.pending_email(member)
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        _place(form, exc)
        return _page(contact=form, status=exc.status)
    flash("Your contact details are saved.", "success")
    if sent_to and sent_to == (form.email.data or "").strip().lower():  # this submit asked for it
        flash(f"We sent a link to {sent_to}: your email changes once you follow it.", "info")
    return redirect(url_for("portal.profile"))


@bp.route("/profile/photo", methods=["POST"])
@login_required
def profile_photo():
    me = actor()
    self_service.own_member(me, "profile.update_own")
    form = PhotoForm()
    if not form.validate_on_submit():
        return _page(photo=form, status=400)
    try:
        if request.form.get("remove"):
            profile_service.remove_own_photo(me)
            message = "Your photo has been removed."
        else:
            upload = request.files.get("photo")
            profile_service.set_own_photo(me, upload.read() if upload is not None else b"")
            message = "Your new photo is saved."
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        _place(form, exc)
        return _page(photo=form, status=exc.status)
    flash(message, "success")
    return redirect(url_for("portal.profile"))


@bp.route("/profile/changes", methods=["POST"])
@login_required
def profile_change():
    me = actor()
    member = self_service.own_member(me, "profile.update_own")
    form = _change_form(member, request.form)
    if not form.validate_on_submit():
        return _page(change=form, status=400)
    data = {key: form[key].data for key in ("first_name", "last_name", "other_names", "date_of_birth",
                                             "national_id", "unit_id") if key in request.form}
    try:
        change_requests.request_change(me, data, form.note.data)
        db.session.commit()
    except ServiceError as exc:
        db.session.rollback()
        if change_requests.pending_change(member) is not None:  # the page shows the pending one, not a form
            flash(exc.message, "warning")
            return redirect(url_for("portal.profile") + "#changes")
        _place(form, exc)
        return _page(change=form, status=exc.status)
    flash("Your change request has been sent. Staff will look at it; you will get an email with their decision.",
          "success")
    return redirect(url_for("portal.profile") + "#changes")


@bp.route("/profile/changes/withdraw", methods=["POST"])
@login_required
def profile_change_withdraw():
    try:
        change_requests.withdraw_change(actor())
        db.session.commit()
        flash("Your change request has been withdrawn.", "success")
    except ServiceError as exc:
        db.session.rollback()
        flash(exc.message, "warning")
    return redirect(url_for("portal.profile") + "#changes")


@bp.route("/profile/data")
@login_required
def profile_data():
    data = profile_service.my_data(actor())
    body = json.dumps(data, indent=2, ensure_ascii=False, sort_keys=False)
    response = Response(body, mimetype="application/json")
    number = data["profile"]["membership_number"]
    response.headers["Content-Disposition"] = f'attachment; filename="my-data-{number}.json"'
    response.headers["Cache-Control"] = "private, no-store"
    return response


@bp.route("/profile/delete", methods=["GET", "POST"])
@login_required
def profile_delete():
    me = actor()
    member = self_service.own_member(me, "profile.read_own" if request.method == "GET" else "profile.update_own")
    form = ErasureForm()
    existing = change_requests.pending_erasure(member)
    if request.method == "POST" and form.validate_on_submit():
        if not form.confirm.data:
            form.confirm.errors = ["Tick the box to confirm that you want your account deleted."]
        else:
            try:
                _req, created = change_requests.request_erasure(me, form.reason.data)
                db.session.commit()
            except ServiceError as exc:
                db.session.rollback()
                _place(form, exc)
            else:
                flash("Your request to delete your account has been sent to staff. Nothing is deleted until they "
                      "have dealt with it." if created else "Your request to delete your account is already waiting "
                      "for staff.", "success")
                return redirect(url_for("portal.profile") + "#erasure")
    status = 422 if request.method == "POST" else 200
    return render_template("portal/profile_delete.html", member=member, form=form, existing=existing), status


@bp.route("/profile/email/confirm/<token>", methods=["GET", "POST"])
def confirm_email(token: str):
    form = FlaskForm()
    try:
        _link, member, email = profile_service.email_link(token)
    except links.LinkError as exc:
        return render_template("portal/profile_email.html", error=exc.message, reason=exc.reason), exc.status
    if request.method == "POST" and form.validate_on_submit():
        try:
            profile_service.confirm_email(token)
            db.session.commit()
        except ServiceError as exc:
            db.session.rollback()
            reason = exc.reason if isinstance(exc, links.LinkError) else "taken"
            return render_template("portal/profile_email.html", error=exc.message, reason=reason), exc.status
        flash(f"Your email address is now {email}." if email else "Your email address is confirmed.", "success")
        return redirect(url_for("portal.profile" if current_user.is_authenticated else "portal.home"))
    return render_template("portal/profile_email.html", email=email or member.email, form=form, token=token)
