"""Console pages for importing members: upload, map the columns, preview, import.

URLs (endpoint ``imports``, under /admin/imports/; all need members.create):

- ``/`` upload form (and the user's recent imports); POST stores the file under
  the instance folder (size limit IMPORT_MAX_BYTES) and inspects it;
- ``/<id>/mapping`` the column mapping (guessed from the headers, or a saved
  mapping), the ward for rows that name none, how dates are written; may save
  the mapping by name; POST starts the preview job;
- ``/<id>/preview`` (+ ``/<id>/preview/status``, polled with HTMX) the preview
  job's progress, then its counts, the first bad rows, the error report and
  the choice: import the valid rows, or all or nothing;
- ``/<id>/start`` (POST) starts the import job and shows its progress at
  /admin/jobs/<job id> (the generic background jobs page);
- ``/<id>/discard`` (POST) deletes a file waiting to be imported, freeing a
  place in the uploader's quota (IMPORT_PENDING_MAX, IMPORT_PENDING_MAX_BYTES).

An upload is visible to whoever uploaded it and to global importers (members.create
everywhere); anyone else gets 404, as for any object outside their scope.
Views stay thin: the rules are in ``app.services.imports``.
"""

from __future__ import annotations

from flask import abort, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import RadioField, SelectChoice, SelectField, StringField
from wtforms.validators import Length, Optional

from app.admin.base import SecureView, committing
from app.admin.widgets import unit_label, units_in_scope
from app.extensions import db
from app.models import ImportUpload, Job, Unit
from app.services import imports as import_service
from app.services import jobs
from app.services.errors import ServiceError

RECENT = 15


def _actor():
    return current_user._get_current_object()


def _upload_or_404(upload_id: int) -> ImportUpload:
    upload = db.session.scalar(import_service.visible_uploads(current_user).where(ImportUpload.id == upload_id))
    if upload is None:
        abort(404)
    return upload


class UploadForm(FlaskForm):
    file = FileField("Spreadsheet", validators=[FileRequired("Choose a CSV or Excel (.xlsx) file.")],
                     description="CSV (any delimiter; UTF-8, UTF-16 or Windows-1252) or Excel .xlsx.")
    saved_mapping = SelectField("Column mapping", coerce=str, validators=[Optional()])


class MappingForm(FlaskForm):
    default_unit = SelectField("Ward for rows that name none", coerce=str, validators=[Optional()])
    date_order = SelectField("Dates like 03/04/1990 mean", choices=[
        SelectChoice("DMY", "day/month/year (3 April 1990)"), SelectChoice("MDY", "month/day/year (4 March 1990)"),
        SelectChoice("YMD", "year/month/day")])
    default_status = SelectField("New members without a status start as", choices=[
        SelectChoice("pending", "Pending"), SelectChoice("active", "Active")])
    save_as = StringField("Save this mapping as", validators=[Optional(), Length(max=80)],
                          description="Optional: reuse it for the next file with the same columns.")


class StartForm(FlaskForm):
    mode = RadioField("What to import", default="valid", choices=[
        SelectChoice("valid", "Import the valid rows; skip the rows with problems (they are in the error report)"),
        SelectChoice("all", "All or nothing: import only if every row is valid"),
    ])


class ImportView(SecureView):
    """The import flow; every page needs members.create somewhere."""

    permission = "members.create"

    # -- upload ---------------------------------------------------------------------

    @expose("/", methods=("GET", "POST"))
    def index(self):
        actor = _actor()
        form = UploadForm()
        mappings = import_service.saved_mappings(actor)
        form.saved_mapping.choices = [SelectChoice("", "Guess from the column names")] + [
            SelectChoice(str(m.id), m.name) for m in mappings]
        if form.validate_on_submit():
            storage = form.file.data
            with committing(show=None) as outcome:
                upload = import_service.save_upload(actor, storage.stream, storage.filename or "upload.csv")
                chosen = next((m for m in mappings if str(m.id) == form.saved_mapping.data), None)
                if chosen is not None:
                    upload.mapping = import_service.mapping_from_saved(upload.headers, chosen)
                    upload.options = {**(chosen.options or {}), "saved_mapping_id": chosen.id}
            if outcome.ok:
                return redirect(url_for(".mapping", upload_id=upload.id))
            form.file.errors = list(form.file.errors or []) + [outcome.error.message]
        if import_service.cleanup_uploads():
            db.session.commit()
        recent = db.session.scalars(import_service.visible_uploads(actor).limit(RECENT)).all()
        return self.render("admin/imports/index.html", form=form, recent=recent,
                           max_mb=import_service.max_bytes() // (1024 * 1024))

    # -- mapping --------------------------------------------------------------------

    def _mapping_form(self, upload: ImportUpload, formdata=None) -> MappingForm:
        from flask import current_app

        options = upload.options or {}
        form = MappingForm(formdata=formdata, data={
            "default_unit": str(options.get("default_unit_id") or ""),
            "date_order": options.get("date_order") or current_app.config.get("IMPORT_DATE_ORDER", "DMY"),
            "default_status": options.get("default_status") or "pending",
        })
        units = units_in_scope("members.create")
        form.default_unit.choices = [SelectChoice("", "None: every row names its ward")] + [
            SelectChoice(str(u.id), unit_label(u)) for u in units]
        return form

    @expose("/<pk:upload_id>/mapping", methods=("GET", "POST"))
    def mapping(self, upload_id: int):
        upload = _upload_or_404(upload_id)
        if not upload.stored_name:
            flash("This file has been imported or has expired; upload it again to import it once more.", "info")
            return redirect(url_for(".index"))
        info = import_service.upload_info(upload)
        form = self._mapping_form(upload, request.form if request.method == "POST" else None)
        chosen = list(upload.mapping or import_service.guess_mapping(upload.headers))
        error = None
        if request.method == "POST":
            chosen = [request.form.get(f"col-{i}", "") for i in range(len(upload.headers))]
            if form.validate():
                actor = _actor()
                options = {
                    "default_unit_id": int(form.default_unit.data) if (form.default_unit.data or "").isdigit()
                    else None,
                    "date_order": form.date_order.data,
                    "default_status": form.default_status.data,
                }
                with committing(show=None) as outcome:
                    import_service.set_mapping(actor, upload, chosen, options)
                    if (form.save_as.data or "").strip():
                        import_service.save_mapping(actor, form.save_as.data, upload.headers, chosen, options)
                    job = import_service.start_preview(actor, upload)
                if outcome.ok:
                    jobs.submit(job)
                    return redirect(url_for(".preview", upload_id=upload.id))
                error = outcome.error.message
            else:
                error = "Please correct the marked fields."
        try:
            samples = upload.samples
            if samples is None:  # uploaded before samples were kept, or they could not be read then
                with import_service.local_upload(upload) as path:
                    samples = import_service.sample_rows(path, info)
        except ServiceError as exc:
            samples, error = [], exc.message
        columns = [
            {"index": i, "header": header, "field": chosen[i] if i < len(chosen) else "",
             "samples": [row[i] if i < len(row) else "" for row in samples]}
            for i, header in enumerate(upload.headers)
        ]
        return self.render("admin/imports/mapping.html", upload=upload, info=info, form=form, columns=columns,
                           fields=import_service.FIELDS, error=error)

    # -- preview and start ----------------------------------------------------------

    def _preview_context(self, upload: ImportUpload) -> dict:
        job = db.session.get(Job, upload.preview_job_id) if upload.preview_job_id else None
        import_job = db.session.get(Job, upload.import_job_id) if upload.import_job_id else None
        mapped = [(h, import_service.FIELD_LABELS[k]) for h, k in zip(upload.headers, upload.mapping or []) if k]
        default_unit = None
        if (upload.options or {}).get("default_unit_id"):
            unit = db.session.get(Unit, upload.options["default_unit_id"])
            default_unit = unit_label(unit) if unit else None
        result = (job.result or {}) if job is not None else {}
        return {"upload": upload, "job": job, "import_job": import_job, "mapped": mapped, "result": result,
                "bad_rows": result.get("bad_rows") or [], "default_unit": default_unit,
                "form": StartForm(), "info": import_service.upload_info(upload)}

    @expose("/<pk:upload_id>/preview")
    def preview(self, upload_id: int):
        upload = _upload_or_404(upload_id)
        if upload.preview_job_id is None:
            return redirect(url_for(".mapping", upload_id=upload.id))
        return self.render("admin/imports/preview.html", **self._preview_context(upload))

    @expose("/<pk:upload_id>/preview/status")
    def preview_status(self, upload_id: int):
        upload = _upload_or_404(upload_id)
        return self.render("admin/imports/_preview_status.html", **self._preview_context(upload))

    @expose("/<pk:upload_id>/start", methods=("POST",))
    def start(self, upload_id: int):
        upload = _upload_or_404(upload_id)
        form = StartForm()
        if not form.validate_on_submit():
            flash("Choose how to import, then try again.", "error")
            return redirect(url_for(".preview", upload_id=upload.id))
        with committing() as outcome:
            job = import_service.start_import(_actor(), upload, form.mode.data)
        if not outcome.ok:
            if not upload.mapping:
                return redirect(url_for(".mapping", upload_id=upload.id))
            return redirect(url_for(".preview", upload_id=upload.id) if upload.preview_job_id
                            else url_for(".index"))
        jobs.submit(job)
        return redirect(url_for("jobs.details", job_id=job.id))

    @expose("/<pk:upload_id>/discard", methods=("POST",))
    def discard(self, upload_id: int):
        """Delete a file waiting to be imported: it no longer counts against its uploader's quota."""
        upload = _upload_or_404(upload_id)
        with committing() as outcome:
            import_service.discard_upload(_actor(), upload)
        if outcome.ok:
            flash(f"Discarded {upload.filename}.", "success")
        return redirect(url_for(".index"))


def _raise_upload_limit():
    """Let import uploads through up to IMPORT_MAX_BYTES (the app-wide cap is smaller).

    Runs before CSRFProtect reads the form; an upload announced as too large is
    refused with a message instead of being read.
    """
    if request.endpoint != "imports.index" or request.method != "POST":
        return None
    limit = import_service.max_bytes()
    if request.content_length is not None and request.content_length > limit + 1024 * 1024:
        flash(f"The file is too large ({limit // (1024 * 1024):,} MB at most). Split it into smaller files.",
              "error")
        return redirect(url_for("imports.index"), code=303)
    request.max_content_length = limit + 1024 * 1024
    return None


def register(admin) -> None:
    admin.add_view(ImportView(name="Import members", endpoint="imports", url="/admin/imports"))
    app = admin.app
    if _raise_upload_limit not in app.before_request_funcs.get(None, []):
        app.before_request_funcs.setdefault(None, []).insert(0, _raise_upload_limit)
