"""Calling a row as a principal, and reading the answer in the vocabulary of ``rules.expected``."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from sqlalchemy import select

from app.extensions import db
from app.models import Job, Member, MembershipTier, Referral, User
from app.services import imports as import_service
from app.services import jobs
from tests.conftest import PASSWORD, csrf_token_from, login
from tests.permission_matrix.routes import Upload
from tests.permission_matrix.rules import PRINCIPALS

CSV = Path(__file__).resolve().parent.parent / "data" / "members_utf8.csv"
PDF = b"%PDF-1.4\n%%EOF\n"


@jobs.handler("matrix.noop")
def _noop_job(ctx):
    ctx.add_file("out.txt", "text/plain", b"done")
    return {}


def _owners(principal: str) -> dict[str, User]:
    """The principal's own login (the super admin's for anonymous) and another user's."""
    email = PRINCIPALS[principal].email or PRINCIPALS["super"].email
    return {"in": db.session.scalar(select(User).where(User.email == email)),
            "out": db.session.scalar(select(User).where(User.email == "out@test.org"))}


def add_jobs(world, principal: str) -> None:
    for side, owner in _owners(principal).items():
        job = jobs.create_job(owner, "matrix.noop")
        db.session.commit()
        jobs.run(job.id)
        world[side]["job"] = job.id
        world[side]["job_file"] = db.session.get(Job, job.id).files[0].id
        world[side]["job_file_name"] = db.session.get(Job, job.id).files[0].name


def add_uploads(world, principal: str) -> None:
    """A checked upload (mapping set, preview run) of each owner."""
    for side, owner in _owners(principal).items():
        with open(CSV, "rb") as fh:
            upload = import_service.save_upload(owner, fh, "members.csv")
        mapping = import_service.guess_mapping(upload.headers)
        import_service.set_mapping(None, upload, mapping,
                                   {"default_unit_id": None, "date_order": "DMY", "default_status": "pending"})
        preview = import_service.start_preview(owner, upload)
        db.session.commit()
        jobs.run(preview.id)
        world[side]["upload"] = upload.id
        world[side]["mapping_form"] = {f"col-{i}": key for i, key in enumerate(mapping)}


def add_notifications(world, principal: str) -> None:
    """A notification of the principal's own member record ({my_notification}); another member's without one."""
    from app.services import notifications

    user = db.session.scalar(select(User).where(User.email == PRINCIPALS[principal].email)) \
        if PRINCIPALS[principal].email else None
    for side in world:
        member = user.member if user is not None and user.member is not None else \
            db.session.get(Member, world[side]["member"])
        world[side]["my_notification"] = notifications.notify(member, "card.issued", "Matrix").id
    db.session.commit()


def add_invitations(world, principal: str) -> None:
    """A pending invitation of the principal's own member record ({my_invitation}); another member's without one."""
    from app.services import referrals

    user = db.session.scalar(select(User).where(User.email == PRINCIPALS[principal].email)) \
        if PRINCIPALS[principal].email else None
    for side in world:
        member = user.member if user is not None and user.member is not None else \
            db.session.get(Member, world[side]["member"])
        existing = db.session.scalar(select(Referral.id).where(Referral.referrer_id == member.id,
                                                               Referral.prospect_name == "Matrix invitation",
                                                               Referral.status == "pending"))
        world[side]["my_invitation"] = existing or referrals.record_prospect(
            member, "Matrix invitation", f"+26097{member.id:07d}", None).id
    db.session.commit()


def add_payments(world, principal: str) -> None:
    """A receipted payment of the principal's own member record ({my_payment}); another member's without one."""
    from app.services import dues

    user = db.session.scalar(select(User).where(User.email == PRINCIPALS[principal].email)) \
        if PRINCIPALS[principal].email else None
    tier = db.session.get(MembershipTier, world["in"]["tier"])
    for side in world:
        member = user.member if user is not None and user.member is not None else \
            db.session.get(Member, world[side]["member"])
        world[side]["my_payment"] = dues.record_manual(None, member, {"tier_id": tier.id, "method": "cash"}).id
    db.session.commit()


# --- calling a route ------------------------------------------------------------------


def fill(value: Any, values: dict[str, Any]) -> Any:
    """Placeholders in a path or body value; a value that is one whole placeholder keeps its type."""
    if isinstance(value, str) and "{" in value:
        if value.startswith("{") and value.endswith("}") and value.count("{") == 1:
            return values[value[1:-1]]
        return value.format(**values)
    if isinstance(value, list):
        return [fill(v, values) for v in value]
    return value


class Caller:
    """Signs one principal in (session for the console and the portal, bearer token for the API) and calls rows."""

    def __init__(self, client, principal: str, token: str | None = None) -> None:
        self.client = client
        self.principal = principal
        self.email = PRINCIPALS[principal].email
        self._token = token
        self._csrf: str | None = None
        self._signed_in = False

    def sign_in(self) -> None:
        """The console session (once; API rows use a token instead)."""
        if self.email is not None and not self._signed_in:
            login(self.client, self.email)
            self._signed_in = True

    def token(self) -> str:
        if self._token is None:
            response = self.client.post("/api/v1/auth/token", json={"email": self.email, "password": PASSWORD})
            self._token = response.get_json()["token"]
        return self._token

    def csrf(self) -> str:
        """The session's CSRF token (read once: it holds for the whole session)."""
        self.sign_in()
        if self._csrf is None:
            self._csrf = csrf_token_from(self.client.get("/login").get_data(as_text=True))
        return self._csrf

    def call(self, row, values: dict[str, Any]):
        path = row.path.format(**values)
        body = row.body(values) if callable(row.body) else {k: fill(v, values) for k, v in row.body.items()}
        if row.api:
            headers = {"Authorization": f"Bearer {self.token()}"} if self.email else {}
            db.session.commit()
            if any(isinstance(value, Upload) for value in body.values()):  # a multipart upload (imports)
                data = {k: (io.BytesIO(v.content), v.filename) if isinstance(v, Upload) else str(v)
                        for k, v in body.items()}
                return self.client.open(path, method=row.method, headers=headers, data=data,
                                        content_type="multipart/form-data")
            return self.client.open(path, method=row.method, headers=headers,
                                    json=body if row.method in ("POST", "PUT", "PATCH") else None)
        self.sign_in()
        if row.method != "POST":
            db.session.commit()
            return self.client.open(path, method=row.method)
        data: dict[str, Any] = {"csrf_token": self.csrf()}
        files = any(isinstance(value, Upload) for value in body.values())
        for key, value in body.items():
            data[key] = (io.BytesIO(value.content), value.filename) if isinstance(value, Upload) else str(value)
        db.session.commit()
        return self.client.post(path, data=data, content_type="multipart/form-data" if files else None)


def verdict(response, row) -> Any:
    """What a response amounts to, in the vocabulary of ``rules.expected``."""
    code = response.status_code
    redirect = code in (301, 302, 303)
    if redirect and "/login" in response.headers.get("Location", ""):
        return "login"
    if code >= 500:
        return f"server error {code}"
    if code in (401, 403, 404):
        return code
    if code == 409 and row.conflict:
        return "ok"
    if row.form and row.method == "POST":
        return "ok" if redirect else ("form" if code in (200, 400, 422) else code)
    if code in (200, 201, 202, 204) or redirect:
        return "ok"
    return code

