"""Long work through the API: start an import or a card print run, then follow its job.

- ``POST /members/imports`` (multipart: the file and options) and ``POST /cards/print``
  (``{"member_ids": [...]}`` or ``{"unit_id": N}``) answer ``202 {"job": ...}`` with
  ``Location: /api/v1/jobs/{id}``: the work runs in a worker (``flask worker``), never
  in the web process;
- ``GET /jobs/{id}``: its status, progress, result and files; ``GET /jobs/{id}/files/{name}``
  downloads one file (an import's error report, the print sheet).

The work is the console's: ``services.imports`` (save the upload, map its columns by
their names or a saved mapping, start the import job) and ``services.card_batches``
(the bulk print run). A job is seen by whoever started it and by super admins
(``security.load_started``); anyone else gets 404, as for an id that does not exist.
"""

from __future__ import annotations

from typing import Annotated, Any

from flask import current_app, url_for
from pydantic import Field, WithJsonSchema, field_validator

from app.api.context import actor, bp
from app.api.errors import ApiError
from app.api.schema import Body, Choice, Count, Id, Out, OutId, Query, QueryChoice, QueryId, QueryText, Timestamp
from app.api.spec import BINARY, Content, operation
from app.downloads import send_stream
from app.extensions import db
from app.models import CARD_TYPES, Job, JobFile
from app.security import load_started, unit_choice
from app.services import card_batches, jobs
from app.services import imports as import_service
from app.services.errors import ServiceError

# What clients see: the job table's states, with "succeeded" said as "done".
STATUSES = ("queued", "running", "done", "failed", "interrupted")
STATUS_OF_STATE = {"succeeded": "done"}
MAX_PRINT_MEMBERS = 10_000


# --- schemas -----------------------------------------------------------------------------


class JobFileOut(Out):
    """A file the job produced."""

    name: str = Field(description="Download it at /jobs/{id}/files/{name}.")
    size: Count = Field(description="Bytes.")
    content_type: str


class JobOut(Out):
    """A background job: what it is doing, how far it got, what it left."""

    id: OutId
    kind: str = Field(description="members.import, members.import_preview, cards.batch, ...")
    title: str
    status: Choice(STATUSES, exact=True) = Field(description=(
        "queued (waiting for a worker), running, done, failed (see message), or interrupted "
        "(stopped before this API version; start it again from the console)."))
    done: Count = Field(description="Units of work done (rows, members, cards).")
    total: Count | None = Field(description="Units of work in all, once known.")
    errors: Count = Field(description="Rows or members with problems so far.")
    message: str = Field(description="What it is doing, or why it failed.")
    attempts: Count = Field(description="How many times a worker started it (a worker that died counts).")
    result: dict[str, Any] | None = Field(description="What it did, once done (counts; kind-specific).")
    files: list[JobFileOut]
    created_at: Timestamp
    started_at: Timestamp | None
    finished_at: Timestamp | None


class JobEnvelope(Out):
    job: JobOut


def job_out(job: Job) -> JobEnvelope:
    """The API's view of a job; internal bookkeeping (result keys starting with "_") stays out."""
    result = job.result if job.state == "succeeded" or job.state == "failed" else None
    if isinstance(result, dict):
        result = {k: v for k, v in result.items() if not str(k).startswith("_")} or None
    return JobEnvelope(job=JobOut(
        id=job.id, kind=job.kind, title=job.title, status=STATUS_OF_STATE.get(job.state, job.state),
        done=job.done or 0, total=job.total, errors=job.errors or 0, message=job.message or "",
        attempts=job.attempts or 0, result=result,
        files=[JobFileOut(name=f.name, size=f.size or 0, content_type=f.content_type) for f in job.files],
        created_at=job.created_at, started_at=job.started_at, finished_at=job.finished_at,
    ))


def _accepted(job: Job):
    """202 with the job and where to follow it; the job is committed and on the queue."""
    jobs.submit(job)
    db.session.refresh(job)  # immediate mode (tests) may have run it already
    return job_out(job), 202, {"Location": url_for("api.get_job", job_id=job.id)}


UploadFile = Annotated[Any, WithJsonSchema({**BINARY, "description": "A CSV or Excel (.xlsx) file."})]


class MemberImportForm(Query):
    """A spreadsheet of members and how to import it (multipart/form-data)."""

    file: UploadFile
    mode: QueryChoice(import_service.MODES) = Field("valid", description=(
        "valid: import the valid rows and report the others (errors file); all: import only if every "
        "row is valid."))
    mapping_id: QueryId | None = Field(None, description=(
        "A saved column mapping of yours (from the console); by default columns are mapped by their names."))
    default_unit_id: QueryId | None = Field(None, description="The ward of rows that name none.")
    date_order: QueryText(3) | None = Field(None, description=(
        "How dates like 03/04/1990 are written: DMY, MDY or YMD (default: the organisation's)."))
    default_status: QueryChoice(("pending", "active")) = Field(
        "pending", description="The status of new members whose row gives none.")


def _import_limit() -> int:
    return int(current_app.config.get("IMPORT_MAX_BYTES", 200 * 1024 * 1024)) + 1024 * 1024  # the form's parts too


@bp.post("/members/imports")
@operation("members", permission="members.create", errors=(404, 409), location=True, max_body=_import_limit,
           responses={202: (JobEnvelope, "The import is queued; follow it at Location.")})
def start_member_import(form: MemberImportForm):
    """Import members from a file

    The file is stored and checked (format, size, your quota of files waiting), its columns mapped
    by name (or by `mapping_id`), and an import job queued, as in the console. Rows only create
    members where you hold members.create and change members where you hold members.update; the
    others are listed in the job's errors file.
    """
    who = actor()
    upload_file = form.file
    if not hasattr(upload_file, "stream"):
        raise ApiError(422, "'file' must be a file (multipart/form-data).", {"field": "file"})
    saved = None
    if form.mapping_id is not None:
        saved = next((m for m in import_service.saved_mappings(who) if m.id == form.mapping_id), None)
        if saved is None:
            raise ApiError(404, "No such saved mapping of yours.", {"field": "mapping_id"})
    date_order = (form.date_order or "").upper() or None
    upload = import_service.save_upload(who, upload_file.stream, upload_file.filename or "upload.csv")
    if saved is not None:
        mapping = import_service.mapping_from_saved(upload.headers, saved)
        options = {**(saved.options or {})}
    else:
        mapping = import_service.guess_mapping(upload.headers)
        options = {}
    options = {
        "default_unit_id": form.default_unit_id if form.default_unit_id is not None
        else options.get("default_unit_id"),
        "date_order": date_order or options.get("date_order") or current_app.config.get("IMPORT_DATE_ORDER", "DMY"),
        "default_status": form.default_status if "default_status" in form.model_fields_set
        else options.get("default_status") or form.default_status,
    }
    try:
        import_service.set_mapping(who, upload, mapping, options)
    except ServiceError as exc:
        if exc.field == "default_unit":  # the console's field name; the API's is default_unit_id
            exc.field = "default_unit_id"
        raise
    job = import_service.start_import(who, upload, form.mode)
    db.session.commit()
    return _accepted(job)


class CardPrint(Body):
    """Whose cards to print: picked members, or everyone active in a unit (with the units below it)."""

    member_ids: Annotated[list[Id], Field(min_length=1, max_length=MAX_PRINT_MEMBERS)] | None = Field(
        None, description="Members to print cards for (those outside your area are left out).")
    unit_id: Id | None = Field(None, description="Every active member of this unit and the units below it.")
    card_type: Choice(CARD_TYPES) = Field("standard", description="The type of the cards issued on the way.")

    @field_validator("member_ids")
    @classmethod
    def _distinct(cls, ids: list[int] | None) -> list[int] | None:
        return sorted(set(ids)) if ids is not None else ids


@bp.post("/cards/print")
@operation("cards", permission="cards.create", location=True,
           responses={202: (JobEnvelope, "The print run is queued; follow it at Location.")})
def print_cards(json: CardPrint):
    """Print cards (A4 sheet), issuing where needed

    One print sheet (PDF, the job's file) of the members' active cards; a member without a current
    card gets one on the way, as the console's bulk action does. Members who are not active, or
    whose card is suspended, are listed in the job's problems.csv.
    """
    if (json.member_ids is None) == (json.unit_id is None):
        raise ServiceError("Send member_ids or unit_id (one of the two).", field="member_ids")
    who = actor()
    unit = unit_choice(who, json.unit_id, "cards.create") if json.unit_id is not None else None
    job = card_batches.start_batch(who, mode="print_or_issue", card_type=json.card_type,
                                   member_ids=json.member_ids, unit=unit)
    db.session.commit()
    return _accepted(job)


@bp.get("/jobs/<pk:job_id>")
@operation("jobs", errors=(404,), responses={200: (JobEnvelope, "The job.")})
def get_job(job_id: int):
    """A background job

    Yours, or anyone's for super admins. Poll it until status is done or failed.
    """
    return job_out(load_started(actor(), Job, job_id))


@bp.get("/jobs/<pk:job_id>/files/<string:name>")
@operation("jobs", errors=(404,), responses={200: (Content({
    "application/pdf": BINARY, "text/csv": {"type": "string"}, "application/octet-stream": BINARY,
}), "The file (a print sheet, an error report), streamed, as an attachment.")})
def get_job_file(job_id: int, name: str):
    """Download a job's file"""
    job = load_started(actor(), Job, job_id)
    row = next((f for f in job.files if f.name == name), None)
    if row is None:
        raise ApiError(404, "The job has no file of that name.")
    return _send(row)


def _send(row: JobFile):
    """Streamed from the file storage (StoredFileMissing answers 404), after the access check above."""
    response = send_stream(jobs.open_file(row), filename=row.name, content_type=row.content_type)
    response.headers["Cache-Control"] = "private, no-store"
    return response
