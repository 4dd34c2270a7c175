"""The table: one row per (endpoint, HTTP method) of the console and the API.

A row says what the route needs and what it acts on; ``rules.expected`` turns
that into the answer each principal must get on each side. Placeholders in
paths and bodies (``{member}``, ``{unit}``, ``{tag}``...) are filled from the
world fixture's objects for the side being tried (see ``conftest.py``).

``needs``: the permission the action takes ("console": any staff; "api": any
signed-in caller; "public": anyone, signed in or not). ``obj``: the kind of
object the URL (or, with ``in_body``, the body) names. ``reads``: what makes
that object visible (default: the resource's ``.read``). ``global_only``:
objects of no unit (roles) need the permission everywhere. ``form``: a
console form, where success is a redirect and a re-rendered page means
refused. ``own``: self-service (the member portal, ``/api/v1/me``): the
route acts on the caller's own member record only, so a login without one
gets 404, and an event it names must be open to the caller as a member.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from tests.conftest import PASSWORD

NEW_PASSWORD = PASSWORD + "-2"


@dataclass(frozen=True)
class Upload:
    """A file field of a multipart console form."""

    filename: str
    content: bytes


@dataclass(frozen=True)
class Row:
    endpoint: str
    method: str
    path: str
    needs: str
    obj: str | None = None
    body: dict[str, Any] | Callable[[dict[str, Any]], dict[str, Any]] = field(default_factory=dict)
    reads: str = ""
    global_only: bool = False
    in_body: bool = False
    form: bool = False
    own: bool = False
    # A 409 counts as through: the call passed every permission check and met the state of things (paying
    # online with Stripe switched off, as in the tests' config).
    conflict: bool = False

    def __post_init__(self) -> None:
        if not self.reads:
            resource = self.needs.split(".")[0]
            object.__setattr__(self, "reads", self.needs if "." not in self.needs else f"{resource}.read")

    @property
    def key(self) -> tuple[str, str]:
        return (self.endpoint, self.method)

    @property
    def console(self) -> bool:
        return self.path.startswith("/admin")

    @property
    def api(self) -> bool:
        return self.path.startswith("/api/")


def _mapping_form(values: dict[str, Any]) -> dict[str, Any]:
    return {**values["mapping_form"], "default_unit": "", "date_order": "DMY", "default_status": "pending"}


def _invitation(values: dict[str, Any]) -> dict[str, Any]:
    """Staff record an invitation for the side's member (a number nobody was invited with: invite_phone)."""
    return {"name": "Matrix invitee", "phone": values["invite_phone"], "referrer_id": values["member"]}


MEMBER_FORM = {"first_name": "Matrix", "last_name": "Person", "unit": "{unit}"}
EVENT_FORM = {"title": "Matrix event {tag}", "event_type": "meeting", "unit": "{unit}", "checkin_rule": "once",
              "start_at": "2031-01-01T10:00", "end_at": "2031-01-01T12:00"}
EVENT_JSON = {"title": "New", "start_at": "2031-01-01T10:00:00Z", "end_at": "2031-01-01T12:00:00Z", "unit_id": "{unit}"}
UNIT_READ = "members.read"  # a unit is visible with members.read (the geography tree, GET /api/v1/units/{id})

ROWS = [
    # --- console: members
    Row("admin.index", "GET", "/admin/", "console"),
    Row("member.index_view", "GET", "/admin/member/", "members.read"),
    Row("member.details_view", "GET", "/admin/member/details/?id={member}", "members.read", "member"),
    Row("member.photo_view", "GET", "/admin/member/photo/{member}", "members.read", "member"),
    Row("member.create_view", "GET", "/admin/member/new/", "members.create"),
    Row("member.create_view", "POST", "/admin/member/new/", "members.create", "unit",
        {**MEMBER_FORM, "status": "pending"}, in_body=True, form=True),
    Row("member.edit_view", "GET", "/admin/member/edit/?id={member}", "members.update", "member"),
    Row("member.edit_view", "POST", "/admin/member/edit/?id={member}", "members.update", "member", MEMBER_FORM,
        form=True),
    Row("member.status_view", "GET", "/admin/member/status/{member}", "members.update", "member"),
    Row("member.status_view", "POST", "/admin/member/status/{member}", "members.update", "member",
        {"status": "suspended", "reason": "matrix"}, form=True),
    Row("member.delete_view", "POST", "/admin/member/delete/", "members.delete", "member", {"id": "{member}"}),
    Row("member.deleted_view", "GET", "/admin/member/deleted/", "members.delete"),
    Row("member.restore_view", "POST", "/admin/member/restore/", "members.delete", "deleted_member",
        {"id": "{deleted_member}"}, reads="members.delete"),
    Row("member.export_view", "GET", "/admin/member/export/?format=csv", "members.export"),
    # pending approvals (issue 11): deciding on a pending member needs members.update over them
    Row("approvals.index", "GET", "/admin/approvals/", "members.update"),
    Row("approvals.approve", "POST", "/admin/approvals/{pending}/approve", "members.update", "pending"),
    Row("approvals.bulk_approve", "POST", "/admin/approvals/approve", "members.update", body={"ids": "{pending}"}),
    Row("approvals.reject", "GET", "/admin/approvals/{pending}/reject", "members.update", "pending"),
    Row("approvals.reject", "POST", "/admin/approvals/{pending}/reject", "members.update", "pending",
        {"reason": "matrix"}, form=True),
    # activation links (issue 11): one member (needs members.update over them), or the whole list as it stands
    Row("member.activation_view", "POST", "/admin/member/activation/{member}", "members.update", "member"),
    Row("member.activation_list_view", "POST", "/admin/member/activation/list", "members.update"),
    # profile change and erasure requests (issue 11): they live in their member's unit; deciding a change
    # needs members.update over the member, handling an erasure request members.delete
    Row("change_requests.index", "GET", "/admin/change-requests/", "members.read"),
    Row("change_requests.details", "GET", "/admin/change-requests/{change_request}", "members.read",
        "change_request"),
    Row("change_requests.approve", "POST", "/admin/change-requests/{change_request}/approve", "members.update",
        "change_request"),
    Row("change_requests.reject", "POST", "/admin/change-requests/{change_request}/reject", "members.update",
        "change_request", {"reason": "matrix"}, form=True),
    Row("erasure_requests.index", "GET", "/admin/erasure-requests/", "members.read"),
    Row("erasure_requests.details", "GET", "/admin/erasure-requests/{erasure_request}", "members.read",
        "erasure_request"),
    Row("erasure_requests.handle", "POST", "/admin/erasure-requests/{erasure_request}/handle", "members.delete",
        "erasure_request", {"note": "matrix"}, form=True),
    # --- console: geography
    Row("geo.index", "GET", "/admin/geography/", "members.read"),
    Row("geo.create", "GET", "/admin/geography/new", "units.create"),
    Row("geo.create", "POST", "/admin/geography/new", "units.create", "branch",
        {"parent": "{branch}", "name": "Matrix ward {tag}", "code": "MX-{tag}"}, reads=UNIT_READ, in_body=True,
        form=True),
    Row("geo.edit", "GET", "/admin/geography/{unit}/edit", "units.update", "unit", reads=UNIT_READ),
    Row("geo.edit", "POST", "/admin/geography/{unit}/edit", "units.update", "unit",
        {"name": "{unit_name}", "code": "{unit_code}"}, reads=UNIT_READ, form=True),
    Row("geo.move", "POST", "/admin/geography/{unit}/move", "units.update", "unit", {"parent": "{unit_parent}"},
        reads=UNIT_READ, form=True),
    Row("geo.delete", "GET", "/admin/geography/{unit}/delete", "units.delete", "unit", reads=UNIT_READ),
    Row("geo.delete", "POST", "/admin/geography/{empty_unit}/delete", "units.delete", "empty_unit", reads=UNIT_READ,
        form=True),
    # --- console: access
    Row("roles.index", "GET", "/admin/roles/", "roles.read"),
    Row("roles.create", "GET", "/admin/roles/new", "roles.create", global_only=True),
    Row("roles.create", "POST", "/admin/roles/new", "roles.create",
        body={"name": "matrix_new", "description": "x", "permissions": "members.read"}, global_only=True, form=True),
    Row("roles.edit", "GET", "/admin/roles/{role}/edit", "roles.update", global_only=True),
    Row("roles.edit", "POST", "/admin/roles/{role}/edit", "roles.update",
        body={"description": "x", "permissions": "members.read"}, global_only=True, form=True),
    Row("roles.delete", "GET", "/admin/roles/{role}/delete", "roles.delete", global_only=True),
    Row("roles.delete", "POST", "/admin/roles/{role}/delete", "roles.delete", global_only=True, form=True),
    Row("users.index", "GET", "/admin/users/", "users.read"),
    Row("users.create", "GET", "/admin/users/new", "users.create"),
    Row("users.create", "POST", "/admin/users/new", "users.create", "unit",
        {"email": "new-{tag}@test.org", "password": NEW_PASSWORD, "role_id": "{coord_role}", "unit_id": "{unit}"},
        reads="users.read", in_body=True, form=True),
    Row("users.details", "GET", "/admin/users/{user}/", "users.read", "user"),
    Row("users.permissions", "GET", "/admin/users/{user}/permissions", "users.read", "user"),
    Row("users.set_active", "POST", "/admin/users/{user}/active", "users.update", "user", {"active": "0"}),
    Row("users.unlock", "POST", "/admin/users/{user}/unlock", "users.update", "user"),
    Row("users.send_activation", "POST", "/admin/users/{user}/activation", "users.update", "user"),
    Row("users.assign", "POST", "/admin/users/{user}/assign", "users.update", "user",
        {"role_id": "{member_role}", "unit_id": "{unit}"}, form=True),
    Row("users.unassign", "POST", "/admin/users/{user}/assignments/{assignment}/remove", "users.update", "user"),
    # --- console: audit log
    Row("audit.index_view", "GET", "/admin/audit/", "reports.read"),
    Row("audit.details_view", "GET", "/admin/audit/details/?id={entry}", "reports.read", "entry"),
    # --- console: background jobs (their owner's, or everyone's for global report readers)
    Row("jobs.index", "GET", "/admin/jobs/", "console"),
    Row("jobs.details", "GET", "/admin/jobs/{job}", "console", "job"),
    Row("jobs.progress", "GET", "/admin/jobs/{job}/progress", "console", "job"),
    Row("jobs.download", "GET", "/admin/jobs/{job}/files/{job_file}", "console", "job"),
    Row("jobs.retry", "POST", "/admin/jobs/{job}/retry", "console", "job"),
    # --- console: outgoing mail (a message lies in its member's unit; sending needs members.update;
    # a test email concerns no member, so it needs members.update everywhere)
    Row("mail.index", "GET", "/admin/mail/", "members.read"),
    Row("mail.details", "GET", "/admin/mail/{mail}", "members.read", "mail"),
    Row("mail.html", "GET", "/admin/mail/{mail}/html", "members.read", "mail"),
    Row("mail.retry", "POST", "/admin/mail/{mail}/retry", "members.update", "mail"),
    Row("mail.send_test", "GET", "/admin/mail/test", "members.update", global_only=True),
    Row("mail.send_test", "POST", "/admin/mail/test", "members.update", body={"to": "matrix@example.org"},
        global_only=True, form=True),
    # --- console: reminders (issue 12): the schedule and log are member data; the settings apply everywhere
    Row("reminders.index", "GET", "/admin/reminders/", "members.read"),
    Row("reminders.log", "GET", "/admin/reminders/log", "members.read"),
    Row("reminders.settings", "GET", "/admin/reminders/settings", "members.update", global_only=True),
    Row("reminders.settings", "POST", "/admin/reminders/settings", "members.update",
        body={"renewal_offsets": "-30,-7,0,+14", "event_hours": "24"}, global_only=True, form=True),
    # --- console: the scheduler's sweeps and runs (issue 12; of no unit: reports.read everywhere)
    Row("scheduler.index", "GET", "/admin/scheduler/", "reports.read", global_only=True),
    # --- console: imports (an upload is its owner's, or any global importer's)
    Row("imports.index", "GET", "/admin/imports/", "members.create"),
    Row("imports.index", "POST", "/admin/imports/", "members.create",
        body={"file": "{csv_file}", "saved_mapping": ""}, form=True),
    Row("imports.mapping", "GET", "/admin/imports/{upload}/mapping", "members.create", "upload",
        reads="members.create"),
    Row("imports.mapping", "POST", "/admin/imports/{upload}/mapping", "members.create", "upload", _mapping_form,
        reads="members.create", form=True),
    Row("imports.preview", "GET", "/admin/imports/{upload}/preview", "members.create", "upload",
        reads="members.create"),
    Row("imports.preview_status", "GET", "/admin/imports/{upload}/preview/status", "members.create", "upload",
        reads="members.create"),
    Row("imports.discard", "POST", "/admin/imports/{upload}/discard", "members.create", "upload",
        reads="members.create"),
    Row("imports.start", "POST", "/admin/imports/{upload}/start", "members.create", "upload", {"mode": "valid"},
        reads="members.create"),
    # --- console: events
    Row("events.index", "GET", "/admin/events/", "events.read"),
    Row("events.feed", "GET", "/admin/events/feed", "events.read"),
    Row("events.create", "GET", "/admin/events/new", "events.create"),
    Row("events.create", "POST", "/admin/events/new", "events.create", "unit", {**EVENT_FORM, "status": "draft"},
        in_body=True, form=True),
    Row("events.details", "GET", "/admin/events/{event}/", "events.read", "event"),
    Row("events.counts", "GET", "/admin/events/{event}/counts", "events.read", "event"),
    Row("events.export", "GET", "/admin/events/{event}/export/xlsx", "events.read", "event"),
    Row("events.attachment", "GET", "/admin/events/{event}/attachments/{attachment}", "events.read", "event"),
    Row("events.edit", "GET", "/admin/events/{event}/edit", "events.update", "event"),
    Row("events.edit", "POST", "/admin/events/{event}/edit", "events.update", "event",
        {**EVENT_FORM, "status": "upcoming"}, form=True),
    Row("events.set_status", "POST", "/admin/events/{event}/status", "events.update", "event",
        {"status": "cancelled"}),
    Row("events.delete", "POST", "/admin/events/{event}/delete", "events.delete", "event"),
    Row("events.search", "GET", "/admin/events/{event}/search?q=Last", "events.update", "event"),
    Row("events.register", "POST", "/admin/events/{event}/register", "events.update", "event",
        {"member_id": "{member}"}),
    Row("events.attendance", "POST", "/admin/events/{event}/members/{member}/attendance", "events.update",
        "event", {"status": "attended"}),
    Row("events.cancel", "POST", "/admin/events/{event}/members/{member}/cancel", "events.update", "event"),
    Row("events.no_shows", "POST", "/admin/events/{event}/no-shows", "events.update", "event"),
    Row("events.upload", "POST", "/admin/events/{event}/attachments", "events.update", "event",
        {"kind": "agenda", "file": "{pdf_file}"}),
    Row("events.delete_attachment", "POST", "/admin/events/{event}/attachments/{attachment}/delete",
        "events.update", "event"),
    Row("events.checkin_page", "GET", "/admin/events/{event}/checkin", "events.update", "event"),
    Row("events.checkin", "POST", "/admin/events/{event}/checkin", "events.update", "event",
        {"member_id": "{member}", "nonce": "matrix-1"}),
    Row("events.lookup", "GET", "/admin/events/{event}/checkin/lookup?q=Last", "events.update", "event"),
    # --- console: membership cards (a card's unit is its member's)
    Row("cards.index_view", "GET", "/admin/cards/", "cards.read"),
    Row("cards.details_view", "GET", "/admin/cards/details/?id={card}", "cards.read", "card"),
    Row("cards.pdf_view", "GET", "/admin/cards/{card}/pdf", "cards.read", "card"),
    Row("cards.confirm_view", "GET", "/admin/cards/{card}/confirm/revoke", "cards.update", "card"),
    Row("cards.transition_view", "POST", "/admin/cards/{card}/do/suspend", "cards.update", "card",
        {"suspend-reason": "matrix"}, form=True),
    Row("cards.issue_view", "POST", "/admin/cards/issue/{cardless}", "cards.create", "cardless",
        {"card_type": "standard"}),
    Row("cards.batch_view", "GET", "/admin/cards/batch/", "cards.create"),
    Row("cards.batch_view", "POST", "/admin/cards/batch/", "cards.create", "unit",
        {"unit": "{unit}", "mode": "issue", "card_type": "standard", "member_ids": ""}, in_body=True, form=True),
    # --- API: members and units
    Row("api.list_members", "GET", "/api/v1/members", "members.read"),
    Row("api.create_member", "POST", "/api/v1/members", "members.create", "unit",
        {"first_name": "New", "last_name": "Person", "unit_id": "{unit}"}, in_body=True),
    Row("api.get_member", "GET", "/api/v1/members/{member}", "members.read", "member"),
    Row("api.update_member", "PUT", "/api/v1/members/{member}", "members.update", "member", {"notes": "seen"}),
    Row("api.delete_member", "DELETE", "/api/v1/members/{member}", "members.delete", "member"),
    Row("api.export_members", "GET", "/api/v1/members/export", "members.export"),
    Row("api.list_units", "GET", "/api/v1/units", "members.read"),
    Row("api.get_unit", "GET", "/api/v1/units/{unit}", "members.read", "unit"),
    # --- API: roles (global objects) and users' roles
    Row("api.list_permissions", "GET", "/api/v1/permissions", "roles.read", global_only=True),
    Row("api.list_roles", "GET", "/api/v1/roles", "roles.read", global_only=True),
    Row("api.create_role", "POST", "/api/v1/roles", "roles.create", body={"name": "fresh_role"}, global_only=True),
    Row("api.get_role", "GET", "/api/v1/roles/{role}", "roles.read", global_only=True),
    Row("api.update_role", "PUT", "/api/v1/roles/{role}", "roles.update", body={"description": "x"},
        global_only=True),
    Row("api.delete_role", "DELETE", "/api/v1/roles/{role}", "roles.delete", global_only=True),
    Row("api.get_role_permissions", "GET", "/api/v1/roles/{role}/permissions", "roles.read", global_only=True),
    Row("api.set_role_permissions", "PUT", "/api/v1/roles/{role}/permissions", "roles.update",
        body={"permissions": ["members.read"]}, global_only=True),
    Row("api.list_user_roles", "GET", "/api/v1/users/{user}/roles", "users.read", "user"),
    Row("api.assign_user_role", "POST", "/api/v1/users/{user}/roles", "users.update", "user",
        {"role": "member", "unit_id": "{unit}"}),
    Row("api.remove_user_role", "DELETE", "/api/v1/users/{user}/roles/{assignment}", "users.update", "user"),
    Row("api.user_permissions", "GET", "/api/v1/users/{user}/permissions", "users.read", "user"),
    Row("api.revoke_token", "DELETE", "/api/v1/auth/token", "api"),
    # --- API: events (members see the published events open to their unit; staff by scope)
    Row("api.list_events", "GET", "/api/v1/events", "events.read"),
    Row("api.create_event", "POST", "/api/v1/events", "events.create", "unit", EVENT_JSON, in_body=True),
    Row("api.get_event", "GET", "/api/v1/events/{event}", "events.read", "event"),
    Row("api.update_event", "PUT", "/api/v1/events/{event}", "events.update", "event", {"venue": "Hall"}),
    Row("api.delete_event", "DELETE", "/api/v1/events/{event}", "events.delete", "event"),
    Row("api.register_for_event", "POST", "/api/v1/events/{event}/register", "events.update", "event",
        {"member_id": "{member}"}),
    Row("api.cancel_registration", "DELETE", "/api/v1/events/{event}/register/{member}", "events.update", "event"),
    Row("api.list_attendees", "GET", "/api/v1/events/{event}/attendees", "members.read", "event",
        reads="events.read"),
    Row("api.set_attendance", "PUT", "/api/v1/events/{event}/attendance/{member}", "events.update", "event",
        {"status": "attended"}),
    Row("api.checkin", "POST", "/api/v1/events/{event}/checkin", "events.update", "event",
        {"member_id": "{member}", "nonce": "matrix-1"}),
    Row("api.member_events", "GET", "/api/v1/members/{member}/events", "members.read", "member"),
    Row("api.approve_member", "POST", "/api/v1/members/{pending}/approve", "members.update", "pending"),
    Row("api.reject_member", "POST", "/api/v1/members/{pending}/reject", "members.update", "pending",
        {"reason": "matrix"}),
    # --- API: long work (202 + Location) and its jobs (the starter's, or any for super admins)
    Row("api.start_member_import", "POST", "/api/v1/members/imports", "members.create",
        body={"file": "{csv_file}"}),
    Row("api.print_cards", "POST", "/api/v1/cards/print", "cards.create", "unit", {"unit_id": "{unit}"},
        in_body=True),
    Row("api.get_job", "GET", "/api/v1/jobs/{job}", "api", "api_job"),
    Row("api.get_job_file", "GET", "/api/v1/jobs/{job}/files/{job_file_name}", "api", "api_job"),
    # --- API: the scheduler's runs (issue 12; of no unit: reports.read everywhere)
    Row("api.list_scheduler_runs", "GET", "/api/v1/scheduler/runs", "reports.read", global_only=True),
    # --- API: membership cards
    Row("api.list_cards", "GET", "/api/v1/cards", "cards.read"),
    Row("api.create_card", "POST", "/api/v1/cards", "cards.create", "cardless", {"member_id": "{cardless}"},
        in_body=True),
    Row("api.get_card", "GET", "/api/v1/cards/{card}", "cards.read", "card"),
    Row("api.update_card", "PUT", "/api/v1/cards/{card}", "cards.update", "card",
        {"status": "suspended", "reason": "matrix"}),
    Row("api.revoke_card", "DELETE", "/api/v1/cards/{card}", "cards.update", "card"),
    Row("api.reissue_card", "POST", "/api/v1/cards/{card}/reissue", "cards.create", "card", {"reason": "lost"}),
    Row("api.card_qr", "GET", "/api/v1/cards/{card}/qr", "cards.read", "card"),
    Row("api.card_pdf_file", "GET", "/api/v1/cards/{card}/pdf", "cards.read", "card"),
    Row("api.member_card", "GET", "/api/v1/members/{member}/card", "cards.read", "member"),
    Row("api.renew_member_card", "POST", "/api/v1/members/{member}/card/renew", "cards.update", "member"),
    # referrals (issue 13): a referral lives where its referrer belongs; revoking and withdrawing need
    # referrals.update over it, exporting members.export as well as reading
    Row("referrals.index", "GET", "/admin/referrals/", "referrals.read"),
    Row("referrals.export", "GET", "/admin/referrals/export?format=csv", "members.export"),
    Row("referrals.details", "GET", "/admin/referrals/{referral}", "referrals.read", "referral"),
    Row("referrals.revoke", "GET", "/admin/referrals/{credited_referral}/revoke", "referrals.update",
        "credited_referral"),
    Row("referrals.revoke", "POST", "/admin/referrals/{credited_referral}/revoke", "referrals.update",
        "credited_referral", {"reason": "matrix"}, form=True),
    Row("referrals.withdraw", "GET", "/admin/referrals/{referral}/withdraw", "referrals.update", "referral"),
    Row("referrals.withdraw", "POST", "/admin/referrals/{referral}/withdraw", "referrals.update", "referral",
        {"reason": "matrix"}, form=True),
    Row("referral_stats.index", "GET", "/admin/referrals/statistics/?unit_id={unit}", "referrals.read", "unit"),
    # dues (issue 14): payments live where they were paid; refunding needs payments.refund over the payment;
    # tiers are managed with payments.refund everywhere; recording names the member by number in the form
    Row("dues_payments.index", "GET", "/admin/dues/payments/", "payments.read"),
    Row("dues_payments.refund", "GET", "/admin/dues/payments/{payment}/refund", "payments.refund", "payment",
        reads="payments.read"),
    Row("dues_payments.refund", "POST", "/admin/dues/payments/{payment}/refund", "payments.refund", "payment",
        {"reason": "matrix"}, reads="payments.read", form=True),
    Row("dues_payments.export", "GET", "/admin/dues/payments/export?format=csv", "payments.read"),
    Row("dues_payments.receipt", "GET", "/admin/dues/payments/{payment}/receipt", "payments.read", "payment"),
    # reconciliation: the payments awaiting fulfilment; the matrix's cash {payment} is checked (409: not online)
    # or renewed ("already renewed"), each a flash and a redirect
    # the dues report of a unit (payments below it roll up to its children); a unit is seen through any staff
    # grant over it (security's Unit rule), which here is members.read: the reader sees W2 but reads no payments
    Row("dues_report.index", "GET", "/admin/dues/report/?unit_id={unit}", "payments.read", "unit",
        reads="members.read"),
    Row("dues_reconcile.index", "GET", "/admin/dues/reconcile/", "payments.read"),
    Row("dues_reconcile.check", "POST", "/admin/dues/reconcile/{payment}/check", "payments.create", "payment",
        reads="payments.read"),
    Row("dues_reconcile.renew", "POST", "/admin/dues/reconcile/{payment}/renew", "payments.create", "payment",
        reads="payments.read"),
    Row("dues_record.index", "GET", "/admin/dues/record/", "payments.create"),
    Row("dues_record.index", "POST", "/admin/dues/record/", "payments.create", "member",
        {"membership_number": "{member_number}", "tier_id": "{tier}", "method": "cash"}, reads="payments.read",
        in_body=True, form=True),
    Row("dues_tiers.index", "GET", "/admin/dues/tiers/", "payments.read"),
    Row("dues_tiers.create", "GET", "/admin/dues/tiers/new", "payments.refund", global_only=True),
    Row("dues_tiers.create", "POST", "/admin/dues/tiers/new", "payments.refund", body={
        "name": "Matrix new", "price": "5", "currency": "ZMW", "duration_months": "6", "card_type": "standard"},
        global_only=True, form=True),
    Row("dues_tiers.edit", "GET", "/admin/dues/tiers/{tier}/edit", "payments.refund", global_only=True),
    Row("dues_tiers.edit", "POST", "/admin/dues/tiers/{tier}/edit", "payments.refund", body={
        "name": "Matrix tier", "price": "6", "currency": "ZMW", "duration_months": "12", "card_type": "standard",
        "active": "y"}, global_only=True, form=True),
    # --- API: dues (issue 14): a payment lives where it was paid; recording one names the member in the body
    Row("api.list_tiers", "GET", "/api/v1/tiers", "api"),
    Row("api.list_payments", "GET", "/api/v1/payments", "payments.read"),
    Row("api.record_payment", "POST", "/api/v1/payments", "payments.create", "member",
        {"member_id": "{member}", "tier_id": "{tier}", "method": "cash"}, reads="payments.read", in_body=True),
    Row("api.member_payments", "GET", "/api/v1/members/{member}/payments", "payments.read", "member",
        reads="members.read"),
    Row("api.my_payments", "GET", "/api/v1/me/payments", "profile.read_own", own=True),
    Row("api.my_checkout", "POST", "/api/v1/me/payments/checkout", "profile.read_own", body={"tier_id": "{tier}"},
        own=True, conflict=True),
    Row("api.payment_receipt", "GET", "/api/v1/payments/{payment}/receipt", "payments.read", "payment"),
    # --- API: referrals (issue 13): a referral lives where its referrer belongs; {referral} is a pending
    # invitation of the side's member, {credited_referral} a referral of theirs that earned points
    Row("api.list_referrals", "GET", "/api/v1/referrals?unit_id={unit}", "referrals.read", "unit"),
    Row("api.create_referral", "POST", "/api/v1/referrals", "referrals.update", "member", _invitation,
        reads="referrals.read", in_body=True),
    Row("api.get_referral", "GET", "/api/v1/referrals/{referral}", "referrals.read", "referral"),
    Row("api.update_referral", "PATCH", "/api/v1/referrals/{referral}", "referrals.update", "referral",
        {"name": "Matrix corrected"}),
    Row("api.withdraw_referral", "DELETE", "/api/v1/referrals/{referral}?reason=matrix", "referrals.update",
        "referral"),
    Row("api.revoke_referral", "POST", "/api/v1/referrals/{credited_referral}/revoke", "referrals.update",
        "credited_referral", {"reason": "matrix"}),
    Row("api.member_referrals", "GET", "/api/v1/members/{member}/referrals", "referrals.read", "member"),
    Row("api.referral_stats", "GET", "/api/v1/referrals/stats?unit_id={unit}", "referrals.read", "unit"),
    # public: the join form and the phone app check a code before anyone signs in (rate limited)
    Row("api.check_referral_code", "GET", "/api/v1/referrals/code/{referral_code}", "public"),
    Row("api.my_referrals", "GET", "/api/v1/me/referrals", "referrals.read_own", own=True),
    # --- API: self-service (the caller's own record; events open to them as a member)
    Row("api.get_me", "GET", "/api/v1/me", "profile.read_own", own=True),
    Row("api.update_me", "PATCH", "/api/v1/me", "profile.update_own", body={"address": "Matrix street"}, own=True),
    Row("api.my_card", "GET", "/api/v1/me/card", "cards.read_own", own=True),
    Row("api.my_card_qr", "GET", "/api/v1/me/card/qr", "cards.read_own", own=True),
    Row("api.my_card_pdf", "GET", "/api/v1/me/card/pdf", "cards.read_own", own=True),
    Row("api.my_events", "GET", "/api/v1/me/events", "events.register", own=True),
    Row("api.cancel_my_registration", "DELETE", "/api/v1/events/{event}/register", "events.register", "event",
        own=True),
    # --- the member portal (self-service pages; "/" is a landing page for anyone)
    # dues (issue 14): the member's own payments; paying online starts from their own record
    Row("portal.dues_page", "GET", "/dues", "profile.read_own", own=True),
    Row("portal.dues_pay", "POST", "/dues/pay", "profile.read_own", body={"tier_id": "{tier}"}, own=True),
    # {my_payment}: a receipted payment of the caller's own member record (calls.add_payments)
    Row("portal.dues_receipt", "GET", "/dues/{my_payment}/receipt", "profile.read_own", own=True),
    # referrals (issue 13): the member's own code, link and invitations
    Row("portal.referrals", "GET", "/referrals", "referrals.read_own", own=True),
    Row("portal.referrals", "POST", "/referrals", "referrals.create",
        body={"name": "Matrix Friend", "phone": "{invite_phone}"}, own=True),
    Row("portal.referral_qr_png", "GET", "/referrals/qr.png", "referrals.read_own", own=True),
    Row("portal.referral_qr_svg", "GET", "/referrals/qr.svg", "referrals.read_own", own=True),
    Row("portal.referral_print", "GET", "/referrals/print", "referrals.read_own", own=True),
    # {my_invitation}: a pending invitation of the caller's own member record (calls.add_invitations)
    Row("portal.referral_withdraw", "POST", "/referrals/{my_invitation}/withdraw", "referrals.create", own=True),
    Row("portal.home", "GET", "/", "public"),
    Row("portal.card", "GET", "/card", "cards.read_own", own=True),
    Row("portal.card_qr", "GET", "/card/qr.png", "cards.read_own", own=True),
    Row("portal.card_pdf_file", "GET", "/card/pdf", "cards.read_own", own=True),
    Row("portal.events", "GET", "/events", "events.register", own=True),
    Row("portal.events_calendar", "GET", "/events/calendar", "events.register", own=True),
    Row("portal.event", "GET", "/events/{event}", "events.register", "event", own=True),
    Row("portal.register", "POST", "/events/{event}/register", "events.register", "event", own=True),
    Row("portal.cancel", "POST", "/events/{event}/cancel", "events.register", "event", own=True),
    # --- the profile (issue 11): the caller's own record only; the email links are in PUBLIC
    Row("portal.profile", "GET", "/profile", "profile.read_own", own=True),
    Row("portal.profile_contact", "POST", "/profile/contact", "profile.update_own",
        body={"phone": "", "email": "", "address": "Matrix street"}, own=True),
    Row("portal.profile_photo", "POST", "/profile/photo", "profile.update_own", body={"remove": "1"}, own=True),
    Row("portal.profile_change", "POST", "/profile/changes", "profile.update_own", body={"first_name": "Matrix"},
        own=True),
    Row("portal.profile_change_withdraw", "POST", "/profile/changes/withdraw", "profile.update_own", own=True),
    Row("portal.profile_data", "GET", "/profile/data", "profile.read_own", own=True),
    Row("portal.profile_delete", "GET", "/profile/delete", "profile.read_own", own=True),
    Row("portal.profile_delete", "POST", "/profile/delete", "profile.update_own", body={"confirm": "y"}, own=True),
    # --- notifications (issue 12): the caller's own; {my_notification} is theirs (calls.add_notifications)
    Row("portal.notifications", "GET", "/notifications", "profile.read_own", own=True),
    Row("portal.notification_read", "POST", "/notifications/{my_notification}/read", "profile.update_own", own=True),
    Row("portal.notifications_read_all", "POST", "/notifications/read-all", "profile.update_own", own=True),
    Row("portal.notification_preferences", "GET", "/notifications/preferences", "profile.read_own", own=True),
    Row("portal.notification_preferences", "POST", "/notifications/preferences", "profile.update_own",
        body={"emailed": "card.issued"}, own=True),
    Row("api.my_notifications", "GET", "/api/v1/me/notifications", "profile.read_own", own=True),
    Row("api.read_notification", "POST", "/api/v1/me/notifications/{my_notification}/read", "profile.update_own",
        own=True),
    # --- joining (issue 11): public pages; the form's POST and the links are tested in tests/portal/
    Row("portal.join", "GET", "/join", "public"),
    Row("portal.join_units", "GET", "/join/units?unit_0={unit}", "public"),
    Row("portal.join_done", "GET", "/join/done", "public"),
    Row("portal.privacy", "GET", "/privacy", "public"),
    Row("portal.new_verification_link", "GET", "/join/new-link", "public"),
    Row("portal.new_verification_link", "POST", "/join/new-link", "public", body={"email": "matrix@example.org"}),
    # --- accounts (issue 11): forgot password is public; changing one's password needs any sign-in
    Row("accounts.forgot", "GET", "/password/forgot", "public"),
    Row("accounts.forgot", "POST", "/password/forgot", "public", body={"login": "matrix@example.org"}),
    Row("accounts.change_password", "GET", "/account/password", "api"),
    Row("accounts.change_password", "POST", "/account/password", "api",
        body={"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD}, form=True),
]

# Anyone may call these (they are tested in their own modules).
PUBLIC = {("api.issue_token", "POST"), ("api.openapi_document", "GET"), ("api.verify_card", "POST"),
          ("api.index", "GET"), ("api_reference.reference", "GET"),
          # one-time links (a token in the path): tests/test_accounts.py and tests/test_accounts_activation.py
          ("accounts.reset", "GET"), ("accounts.reset", "POST"), ("accounts.activate", "GET"),
          ("accounts.activate", "POST"),
          # joining: the form (tests/portal/test_join.py) and its one-time links (tests/portal/test_verify_email.py)
          ("portal.join", "POST"), ("portal.verify_email", "GET"), ("portal.verify_email", "POST"),
          # the profile's email-change link (a token in the path): tests/portal/test_profile.py
          ("portal.confirm_email", "GET"), ("portal.confirm_email", "POST"),
          # notifications (issue 12): the one-click unsubscribe link (a signed token in the path) and the bell's
          # htmx fragment (286 "stop polling" when signed out): tests/portal/test_notifications.py
          ("portal.unsubscribe", "GET"), ("portal.unsubscribe", "POST"), ("portal.notifications_bell", "GET"),
          # Stripe's webhook (issue 14): no session, a signed body instead: tests/services/test_dues_online.py
          ("webhooks.stripe_webhook", "POST"),
          # the return from Stripe names one member's Checkout Session: tests/portal/test_dues.py
          ("portal.dues_done", "GET"),
          # a renewal reminder's "Renew now" (a signed token in the path): tests/portal/test_renew_link.py
          ("portal.renew", "GET"), ("portal.renew", "POST"), ("portal.renew_done", "GET")}
# Outside the matrix: sign-in, the public verification pages (the QR's and the /verify/ index), static files.
EXCLUDED_BLUEPRINTS = {"auth", "verify", "verify_index"}
EXCLUDED_ENDPOINTS = {"static", "admin.static"}

# Flask-Admin's built-in routes that this console switches off: they must never act.
SWITCHED_OFF = {
    ("member.ajax_lookup", "GET"): "/admin/member/ajax/lookup/?name=unit&query=a",
    ("member.ajax_update", "POST"): "/admin/member/ajax/update/",
    ("member.export", "GET"): "/admin/member/export/csv/",
    ("audit.create_view", "GET"): "/admin/audit/new/",
    ("audit.create_view", "POST"): "/admin/audit/new/",
    ("audit.edit_view", "GET"): "/admin/audit/edit/?id={entry}",
    ("audit.edit_view", "POST"): "/admin/audit/edit/?id={entry}",
    ("audit.delete_view", "POST"): "/admin/audit/delete/",
    ("audit.action_view", "POST"): "/admin/audit/action/",
    ("audit.ajax_lookup", "GET"): "/admin/audit/ajax/lookup/?name=actor&query=a",
    ("audit.ajax_update", "POST"): "/admin/audit/ajax/update/",
    ("audit.export", "GET"): "/admin/audit/export/csv/",
    ("cards.create_view", "GET"): "/admin/cards/new/",
    ("cards.create_view", "POST"): "/admin/cards/new/",
    ("cards.edit_view", "GET"): "/admin/cards/edit/?id={card}",
    ("cards.edit_view", "POST"): "/admin/cards/edit/?id={card}",
    ("cards.delete_view", "POST"): "/admin/cards/delete/",
    ("cards.action_view", "POST"): "/admin/cards/action/",
    ("cards.ajax_lookup", "GET"): "/admin/cards/ajax/lookup/?name=member&query=a",
    ("cards.ajax_update", "POST"): "/admin/cards/ajax/update/",
    ("cards.export", "GET"): "/admin/cards/export/csv/",
}
# The member list's bulk action has its own test (test_bulk_delete_only_touches_rows_in_scope).
BULK = Row("member.action_view", "POST", "/admin/member/action/", "members.delete")
