"""Events: scheduling, registrations with capacity and a waiting list, attendance and door check-in.

Rules kept here (views, the API and jobs only call these functions), one
module per concern:

- ``times``: stored in UTC, shown and cut into days in the organisation's time zone.
- ``fields``: what each field may hold (``clean_event``).
- ``visibility``: staff see and manage events through the scoping helper
  (``events.read`` / ``.create`` / ``.update`` / ``.delete``); members using
  the portal or the API see the published events of their own unit and the
  units above it (the events they may attend). Only members of the event's
  unit subtree may register or be checked in.
- ``crud``: creating, changing and deleting events.
- ``registrations``: capacity counts registered and attended members. A full
  event puts new registrations on the waiting list; a cancellation (or a
  larger capacity) promotes the first waitlisted members, in registration
  order. Changes to one event's registrations are serialised by locking the
  event's row, so the count cannot be raced past the capacity.
- ``attendance``: attendance by hand; after an event, registered members who
  never came become ``no_show`` (``mark_no_shows``; the console calls it for
  one event, a scheduled job for all finished events).
- ``checkin``: ``check_in`` admits a member at the door, from a card
  credential or a member id. Its answer is ``admitted``, ``already_checked_in``
  or ``rejected`` with a reason; it never raises on bad input. One attendance
  per member and slot is guaranteed by the unique key of ``event_checkins``
  (INSERT ... ON CONFLICT DO NOTHING), so simultaneous scans at several gates
  count once, and a request carrying a nonce that was seen before gets the
  stored answer instead of a second record.
- ``attachments``: agenda and flyer files, checked by content, kept in the file storage.

Callers import from here (``from app.services import events``). Services
flush; the caller commits.
"""

from app.services.events.attachments import add_attachment, delete_attachment, open_attachment
from app.services.events.attendance import ATTENDANCE_STATUSES, mark_no_shows, set_attendance
from app.services.events.checkin import MAX_GATE_CHARS, REASONS, check_in, checkin_window, member_summary, \
    slot_for, valid_nonce
from app.services.events.crud import create_event, delete_event, set_event_status, update_event
from app.services.events.fields import MAX_CAPACITY, clean_event
from app.services.events.registrations import attendee_query, cancel_registration, counts, counts_for, \
    find_members, promote_waitlist, register, registration_for
from app.services.events.times import local, org_timezone
from app.services.events.visibility import events_between, load_event, status_clause, visible_events

__all__ = [
    "ATTENDANCE_STATUSES", "MAX_CAPACITY", "MAX_GATE_CHARS", "REASONS", "add_attachment", "attendee_query",
    "cancel_registration", "check_in", "checkin_window", "clean_event", "counts", "counts_for", "create_event",
    "delete_attachment", "delete_event", "events_between", "find_members", "load_event", "local", "mark_no_shows",
    "member_summary", "open_attachment", "org_timezone", "promote_waitlist", "register", "registration_for", "set_attendance",
    "set_event_status", "slot_for", "status_clause", "update_event", "valid_nonce", "visible_events",
]
