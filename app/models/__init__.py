"""Models, one module per domain. Importing this package registers every table."""

from app.models.audit import AuditEntry
from app.models.counters import Counter
from app.models.geo import Unit
from app.models.jobs import Job, JobFile
from app.models.people import GENDERS, MEMBER_STATUSES, Member, MemberPhoto, MemberStatusChange, Tag
from app.models.rbac import ApiToken, Permission, Role, RoleAssignment, User

__all__ = [
    "ApiToken",
    "AuditEntry",
    "Counter",
    "GENDERS",
    "Job",
    "JobFile",
    "MEMBER_STATUSES",
    "Member",
    "MemberPhoto",
    "MemberStatusChange",
    "Permission",
    "Role",
    "RoleAssignment",
    "Tag",
    "Unit",
    "User",
]
