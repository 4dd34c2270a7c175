"""Models, one module per domain. Importing this package registers every table."""

from app.models.audit import AuditEntry
from app.models.cards import CARD_STATUSES, CARD_TYPES, CardTransaction, MembershipCard
from app.models.counters import Counter
from app.models.dues import (  # tiers, payments, handled Stripe events (issue 14)
    MANUAL_METHODS, PAYMENT_METHODS, PAYMENT_STATUSES, MembershipTier, Payment, StripeEvent,
)
from app.models.events import (
    CHECKIN_RULES, EVENT_STATUSES, EVENT_TYPES, REGISTRATION_STATUSES, Event, EventAttachment, EventCheckin,
    EventCheckinNonce, EventRegistration,
)
from app.models.geo import Unit
from app.models.imports import ImportMapping, ImportUpload
from app.models.jobs import Job, JobFile
from app.models.links import LINK_PURPOSES, OneTimeLink
from app.models.mail import MAIL_STATUSES, MailMessage
from app.models.notifications import MailPreference, Notification  # portal notifications (issue 12)
from app.models.people import GENDERS, MEMBER_STATUSES, Member, MemberPhoto, MemberStatusChange, Tag
from app.models.referrals import (  # referrals and the points ledger (issue 13)
    REFERRAL_SOURCES, REFERRAL_STATUSES, PointsEntry, Referral, ReferralCode, ReferralReward,
)
from app.models.reminders import REMINDER_OUTCOMES, ReminderLog, ReminderSetting  # issue 12
from app.models.rbac import ApiToken, LoginFailure, Permission, Role, RoleAssignment, User
from app.models.scheduler import RUN_STATUSES, RUN_TRIGGERS, SchedulerLease, SchedulerRun  # issue 12
from app.models.requests import (  # profile change and erasure requests (issue 11)
    CHANGE_REQUEST_STATUSES, ERASURE_STATUSES, REQUESTABLE_FIELDS, ErasureRequest, MemberChangeRequest,
)

__all__ = [
    "ApiToken",
    "AuditEntry",
    "CARD_STATUSES",
    "CARD_TYPES",
    "CardTransaction",
    "Counter",
    "CHECKIN_RULES",
    "EVENT_STATUSES",
    "EVENT_TYPES",
    "Event",
    "EventAttachment",
    "EventCheckin",
    "EventCheckinNonce",
    "EventRegistration",
    "REGISTRATION_STATUSES",
    "GENDERS",
    "ImportMapping",
    "ImportUpload",
    "Job",
    "JobFile",
    "LINK_PURPOSES",
    "LoginFailure",
    "MAIL_STATUSES",
    "MailMessage",
    "RUN_STATUSES",
    "RUN_TRIGGERS",
    "SchedulerLease",
    "SchedulerRun",
    "MailPreference",
    "Notification",
    "OneTimeLink",
    "MEMBER_STATUSES",
    "Member",
    "MemberPhoto",
    "MemberStatusChange",
    "MemberChangeRequest",
    "ErasureRequest",
    "CHANGE_REQUEST_STATUSES",
    "ERASURE_STATUSES",
    "REQUESTABLE_FIELDS",
    "MANUAL_METHODS",
    "MembershipCard",
    "MembershipTier",
    "PAYMENT_METHODS",
    "PAYMENT_STATUSES",
    "Payment",
    "StripeEvent",
    "Permission",
    "PointsEntry",
    "REFERRAL_SOURCES",
    "REFERRAL_STATUSES",
    "Referral",
    "ReferralCode",
    "ReferralReward",
    "REMINDER_OUTCOMES",
    "ReminderLog",
    "ReminderSetting",
    "Role",
    "RoleAssignment",
    "Tag",
    "Unit",
    "User",
]
