"""The OpenAPI description of the events endpoints (``app/api/events.py``).

Kept next to the views and merged into the document by ``app/api/openapi.py``;
the helpers come from ``openapi_parts``. ``tests/api/test_openapi.py`` checks
it against the routes.
"""

from __future__ import annotations

from app.api.events import DEFAULT_PER_PAGE, MAX_PER_PAGE
from app.api.openapi_parts import (
    DATETIME, ID, INTEGER, LOCATION, STRING, Schema, errors, json_body, nullable, obj, ok, operation, path_param,
    query_param, ref,
)
from app.models import CHECKIN_RULES, EVENT_STATUSES, EVENT_TYPES, REGISTRATION_STATUSES
from app.models.events import REGISTRATION_SOURCES
from app.services.events import REASONS

BOOLEAN: Schema = {"type": "boolean"}

EVENT_INPUT: dict[str, Schema] = {
    "title": {"type": "string", "maxLength": 200},
    "description": nullable({"type": "string", "maxLength": 10000}),
    "event_type": {"type": "string", "enum": list(EVENT_TYPES), "default": "meeting"},
    "start_at": DATETIME,
    "end_at": {**DATETIME, "description": "After start_at; an event lasts 31 days at most."},
    "location": nullable({"type": "string", "maxLength": 200}),
    "venue": nullable({"type": "string", "maxLength": 200}),
    "unit_id": {**ID, "description": "The unit the event belongs to; must be within your events.create area."},
    "capacity": nullable({"type": "integer", "minimum": 1, "description": "Empty: no limit. Registrations "
                          "beyond it go on the waiting list."}),
    "registration_required": {**BOOLEAN, "default": True,
                              "description": "false: an open event; members in its area are admitted at the "
                                             "door without registering."},
    "registration_deadline": nullable({**DATETIME, "description": "Before start_at; applies to members "
                                                                   "registering themselves."}),
    "status": {"type": "string", "enum": ["draft", "upcoming", "cancelled"], "default": "draft",
               "description": "upcoming publishes the event; ongoing and completed then follow the dates."},
    "checkin_rule": {"type": "string", "enum": list(CHECKIN_RULES), "default": "once",
                     "description": "once; once_per_day (days in MUSTER_TIMEZONE); multiple entries."},
    "walk_ins_allowed": {**BOOLEAN, "default": False,
                         "description": "Admit unregistered members of the event's area at the door."},
}

COUNTS = obj({"registered": INTEGER, "waitlisted": INTEGER, "attended": INTEGER},
             ["registered", "waitlisted", "attended"])

MEMBER_SUMMARY = obj(
    {"id": ID, "membership_number": STRING, "first_name": STRING, "last_name": STRING, "full_name": STRING,
     "status": STRING, "unit": nullable(STRING)},
    ["id", "membership_number", "first_name", "last_name", "full_name", "status", "unit"],
    description="Enough to recognise a person; no contact details.",
)

EVENT_SCHEMAS: dict[str, Schema] = {
    "Event": obj(
        {"id": ID, "title": STRING, "description": nullable(STRING),
         "event_type": {"type": "string", "enum": list(EVENT_TYPES)},
         "start_at": DATETIME, "end_at": DATETIME, "location": nullable(STRING), "venue": nullable(STRING),
         "unit_id": ID, "capacity": nullable(INTEGER), "registration_required": BOOLEAN,
         "registration_deadline": nullable(DATETIME),
         "status": {"type": "string", "enum": list(EVENT_STATUSES)},
         "checkin_rule": {"type": "string", "enum": list(CHECKIN_RULES)}, "walk_ins_allowed": BOOLEAN,
         "created_by_id": nullable(ID), "created_at": DATETIME, "updated_at": DATETIME, "counts": COUNTS},
        ["id", "title", "event_type", "start_at", "end_at", "unit_id", "status", "checkin_rule", "counts"],
    ),
    "EventCreate": obj(EVENT_INPUT, ["title", "start_at", "end_at", "unit_id"], closed=True),
    "EventUpdate": obj(EVENT_INPUT, closed=True, description="A partial update: only the fields sent change."),
    "EventPage": obj(
        {"items": {"type": "array", "items": ref("Event")}, "page": INTEGER, "per_page": INTEGER,
         "total": INTEGER, "links": obj({"self": STRING, "next": nullable(STRING), "prev": nullable(STRING)})},
        ["items", "page", "per_page", "total", "links"],
    ),
    "MemberSummary": MEMBER_SUMMARY,
    "Registration": obj(
        {"id": ID, "event_id": ID, "member_id": ID,
         "status": {"type": "string", "enum": list(REGISTRATION_STATUSES)},
         "source": {"type": "string", "enum": list(REGISTRATION_SOURCES)},
         "registered_at": DATETIME, "checked_in_at": nullable(DATETIME), "checkin_gate": nullable(STRING),
         "cancelled_at": nullable(DATETIME), "notes": nullable(STRING), "member": ref("MemberSummary"),
         "promoted_member_ids": {"type": "array", "items": ID,
                                 "description": "After a cancellation: who moved up from the waiting list."}},
        ["id", "event_id", "member_id", "status", "registered_at"],
    ),
    "RegistrationCreate": obj(
        {"member_id": nullable({**ID, "description": "Omit (or give your own) to register yourself."}),
         "notes": nullable({"type": "string", "maxLength": 2000})},
        closed=True,
    ),
    "AttendeePage": obj(
        {"items": {"type": "array", "items": ref("Registration")}, "page": INTEGER, "per_page": INTEGER,
         "total": INTEGER, "links": {"type": "object"},
         "counts": obj({**{s: INTEGER for s in REGISTRATION_STATUSES}, "capacity": nullable(INTEGER),
                        "places_left": nullable(INTEGER)})},
        ["items", "page", "per_page", "total", "links", "counts"],
    ),
    "AttendanceUpdate": obj(
        {"status": {"type": "string", "enum": ["attended", "registered", "no_show"]},
         "gate": nullable({"type": "string", "maxLength": 60})},
        ["status"], closed=True,
    ),
    "MemberEventPage": obj(
        {"items": {"type": "array", "items": {"allOf": [ref("Registration"),
                                                        obj({"event": ref("Event")}, ["event"])]}},
         "page": INTEGER, "per_page": INTEGER, "total": INTEGER, "links": {"type": "object"}},
        ["items", "page", "per_page", "total", "links"],
    ),
    "CheckinRequest": obj(
        {"token": nullable({"type": "string", "description": "What the card's QR holds: the signed credential, "
                                                              "or a verification URL ending in it."}),
         "member_id": nullable({**ID, "description": "Instead of a token: a member found by name or number."}),
         "gate": nullable({"type": "string", "maxLength": 60, "description": "Which door, e.g. 'North gate'."}),
         "nonce": nullable({"type": "string", "pattern": "^[A-Za-z0-9._:-]{1,64}$",
                            "description": "A fresh id per scan (a UUID). Retrying with the same nonce returns "
                                          "the same answer and records nothing twice."})},
        closed=True, description="Exactly one of token and member_id.",
    ),
    "CheckinResult": obj(
        {"result": {"type": "string", "enum": ["admitted", "already_checked_in", "rejected"]},
         "reason": nullable({"type": "string", "enum": sorted(REASONS),
                             "description": "Why a check-in was rejected."}),
         "message": {"type": "string", "description": "What to tell the person at the gate."},
         "member": {"oneOf": [ref("MemberSummary"), {"type": "null"}],
                    "description": "Null when unknown or outside the event's area."},
         "first_checked_in_at": nullable(DATETIME), "first_gate": nullable(STRING),
         "checked_in_at": nullable({**DATETIME, "description": "This admission."}),
         "gate": nullable(STRING), "walk_in": BOOLEAN,
         "registration_status": nullable({"type": "string", "enum": list(REGISTRATION_STATUSES)}),
         "event_id": ID,
         "replayed": {**BOOLEAN, "description": "Present (true) when this answer was stored for the nonce."}},
        ["result", "reason", "message", "member", "first_checked_in_at", "event_id"],
    ),
}

EVENT_ID = path_param("event_id", "The event's id.")
MEMBER_ID = path_param("member_id", "The member's id.")
PAGING = [
    query_param("page", {"type": "integer", "minimum": 1, "default": 1}, "Page number."),
    query_param("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE,
                             "default": DEFAULT_PER_PAGE}, "Page size."),
]

EVENT_PATHS: dict[str, dict[str, Schema]] = {
    "/events": {
        "get": operation(
            "api.list_events", "List events", "events",
            {"200": ok("A page of events, soonest first.", ref("EventPage")), **errors(400, 403, 422)},
            description="Staff: events within their events.read scope (drafts included). Members: the "
                        "published events of their unit and the units above it.",
            parameters=[
                {**query_param("status", {"type": "array", "items": {"type": "string",
                                                                     "enum": list(EVENT_STATUSES)}},
                               "Only these statuses (repeat or separate with commas)."),
                 "style": "form", "explode": True},
                query_param("unit_id", ID, "Only events of this unit and the units below it."),
                query_param("from", DATETIME, "Only events ending after this time."),
                query_param("to", DATETIME, "Only events starting before this time."),
                query_param("q", {"type": "string", "maxLength": 200}, "Words in the title."),
                *PAGING,
            ],
        ),
        "post": operation(
            "api.create_event", "Create an event", "events",
            {"201": ok("The new event.", ref("Event"), LOCATION), **errors(400, 403, 422)},
            description="Needs events.create over the event's unit (a unit outside your area is a 422). "
                        "New events are drafts unless status is upcoming.",
            body=json_body(ref("EventCreate")),
        ),
    },
    "/events/{event_id}": {
        "get": operation("api.get_event", "Read an event", "events",
                         {"200": ok("The event.", ref("Event")), **errors(403, 404)}, parameters=[EVENT_ID]),
        "put": operation(
            "api.update_event", "Change an event (partial)", "events",
            {"200": ok("The event after the change.", ref("Event")), **errors(400, 403, 404, 422)},
            description="Raising the capacity moves waitlisted members up.",
            parameters=[EVENT_ID], body=json_body(ref("EventUpdate")),
        ),
        "delete": operation(
            "api.delete_event", "Delete an event", "events",
            {"204": ok("Deleted."), **errors(403, 404, 409)},
            description="Needs events.delete. An event with attendance cannot be deleted (409): cancel it.",
            parameters=[EVENT_ID],
        ),
    },
    "/events/{event_id}/register": {
        "post": operation(
            "api.register_for_event", "Register for an event", "events",
            {"200": ok("Already registered (or waitlisted or attended): unchanged.", ref("Registration")),
             "201": ok("Registered, or put on the waiting list when the event is full.", ref("Registration")),
             **errors(400, 403, 404, 409, 422)},
            description="Without member_id (or with your own): register yourself (events.register; your "
                        "account must be linked to a member of the event's area; the deadline applies). "
                        "With another member_id: staff with events.update over the event register a member "
                        "of their area. Cancelled or finished events answer 409.",
            parameters=[EVENT_ID], body=json_body(ref("RegistrationCreate")),
        ),
    },
    "/events/{event_id}/register/{member_id}": {
        "delete": operation(
            "api.cancel_registration", "Cancel a registration", "events",
            {"200": ok("The cancelled registration; promoted_member_ids lists who moved up.",
                       ref("Registration")), **errors(403, 404, 409)},
            description="Your own (events.register) or, as staff, anyone's in your area. An attended "
                        "registration cannot be cancelled (409).",
            parameters=[EVENT_ID, MEMBER_ID],
        ),
    },
    "/events/{event_id}/attendees": {
        "get": operation(
            "api.list_attendees", "The event's registrations", "events",
            {"200": ok("A page of registrations (by surname) and the counts.", ref("AttendeePage")),
             **errors(400, 403, 404, 422)},
            description="Staff with members.read; only members within that scope are listed.",
            parameters=[EVENT_ID, query_param("status", {"type": "string", "enum": list(REGISTRATION_STATUSES)},
                                              "Only this registration status."), *PAGING],
        ),
    },
    "/events/{event_id}/attendance/{member_id}": {
        "put": operation(
            "api.set_attendance", "Mark attendance by hand", "events",
            {"200": ok("The registration after the change.", ref("Registration")),
             **errors(400, 403, 404, 409, 422)},
            description="attended (registers the member if needed), registered (undo) or no_show. "
                        "Needs events.update over the event.",
            parameters=[EVENT_ID, MEMBER_ID], body=json_body(ref("AttendanceUpdate")),
        ),
    },
    "/events/{event_id}/checkin": {
        "post": operation(
            "api.checkin", "Check a member in at the door", "events",
            {"200": ok("The answer: admitted, already_checked_in (with the first time and gate) or rejected "
                       "with a reason, for anything presented.", ref("CheckinResult")),
             **errors(400, 403, 404, 422)},
            description="Needs events.update over the event. Present the scanned token (or a member_id). "
                        "Two gates scanning the same card at once record one attendance; a retry with the "
                        "same nonce gets the same answer. Reasons: " + ", ".join(sorted(REASONS)) + ".",
            parameters=[EVENT_ID], body=json_body(ref("CheckinRequest")),
        ),
    },
    "/members/{member_id}/events": {
        "get": operation(
            "api.member_events", "A member's events", "events",
            {"200": ok("The member's registrations with their events, latest first.", ref("MemberEventPage")),
             **errors(400, 403, 404, 422)},
            description="Your own member always; others within your members.read scope (events you may see).",
            parameters=[MEMBER_ID, *PAGING],
        ),
    },
}

