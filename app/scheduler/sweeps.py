"""The scheduled sweeps: what runs when, by name. The one list the scheduler reads.

Each sweep is a function ``(now: datetime) -> dict[str, int]`` in a service
module: it finds everything due at ``now`` with set-based statements and
acts on it (or enqueues the work on the queue), flushes, never commits, and
returns counts for the run record. Being a sweep ("every card past its
date", "every reminder due and not yet in the sent log"), running it twice,
late, or after a crash does no harm.

``trigger`` holds APScheduler cron fields (UTC).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Sweep:
    name: str
    target: str  # "module:function"
    trigger: dict[str, str] = field(default_factory=dict)
    description: str = ""


SWEEPS: tuple[Sweep, ...] = (
    Sweep("cards.expire", "app.services.lifecycle:expire_sweep", {"minute": "5"},
          "Cards past their date go into grace, then expire; members whose card expired past grace lapse."),
    Sweep("events.no_shows", "app.services.lifecycle:no_show_sweep", {"minute": "20"},
          "Registrations of events that ended without a check-in become no-shows."),
    Sweep("imports.cleanup", "app.services.lifecycle:upload_cleanup_sweep", {"hour": "3", "minute": "40"},
          "Import uploads abandoned before they were run are deleted with their files."),
    Sweep("reminders.renewal", "app.services.reminders:renewal_sweep", {"minute": "*/15"},
          "Renewal reminders due at their offsets from card expiry, each sent once."),
    Sweep("reminders.events", "app.services.reminders:event_sweep", {"minute": "*/5"},
          "Event reminders to registered members before the start, each sent once."),
    Sweep("referrals.expire", "app.services.referrals:expire_sweep", {"minute": "35"},
          "Invitations nobody joined through within the referral expiry period expire."),
)
