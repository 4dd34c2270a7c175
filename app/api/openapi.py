"""The hand-written OpenAPI descriptions of the API modules not yet described by their schemas.

Transitional (issue 9): ``app/api/spec.py`` generates the document from the
operations' pydantic models and merges these parts in for the modules that
have not moved yet. Each module that moves takes its part out of here; the
file goes with the last one.
"""

from __future__ import annotations


from app.api.cards_openapi import CARD_PATHS, CARD_SCHEMAS
from app.api.events_openapi import EVENT_PATHS, EVENT_SCHEMAS
from app.api.members import DEFAULT_PER_PAGE, MAX_PER_PAGE
from app.api.openapi_parts import (
    DATE, DATETIME, ERROR_RESPONSES, ID, LOCATION, STRING, STRING_LIST, Schema, errors, json_body, nullable, obj, ok,
    operation, path_param, query_param, ref,
)
from app.models import GENDERS, MEMBER_STATUSES
from app.services.exports import EXPORT_COLUMNS

# --- schemas --------------------------------------------------------------------------

MEMBER_INPUT_PROPERTIES: dict[str, Schema] = {
    "first_name": {"type": "string", "maxLength": 80},
    "last_name": {"type": "string", "maxLength": 80},
    "other_names": nullable({"type": "string", "maxLength": 120}),
    "gender": nullable({"type": "string", "enum": list(GENDERS)}),
    "date_of_birth": nullable(DATE),
    "national_id": nullable({"type": "string", "description": "4-40 letters, digits, '/' or '-'; unique."}),
    "phone": nullable({"type": "string", "description": "Any common spelling; stored as E.164. Unique."}),
    "email": nullable({"type": "string", "format": "email", "description": "Unique (case-insensitive)."}),
    "address": nullable({"type": "string", "maxLength": 500}),
    "unit_id": {**ID, "description": "The member's unit (usually a ward); must be within your area."},
    "joined_on": nullable({**DATE, "description": "Defaults to today."}),
    "notes": nullable({"type": "string", "maxLength": 5000}),
    "tags": nullable({**STRING_LIST, "description": "Tag names (50 different ones at most); replaces the member's tags."}),
}

SCHEMAS: dict[str, Schema] = {
    "Error": obj(
        {"error": {"type": "string", "description": "A message a person can read."},
         "details": {"type": ["object", "null"], "description": "Machine-readable specifics, e.g. "
                     "{\"field\": \"phone\"} for a validation error; null when there are none."}},
        ["error", "details"],
    ),
    "TokenRequest": obj(
        {"email": {"type": "string", "format": "email"}, "password": {"type": "string", "format": "password"},
         "name": nullable({"type": "string", "maxLength": 80, "description": "A label for the token."})},
        ["email", "password"], closed=True,
    ),
    "Token": obj(
        {"token": {"type": "string", "description": "Send as 'Authorization: Bearer <token>'. Shown once."},
         "token_type": {"type": "string", "enum": ["Bearer"]},
         "expires_at": DATETIME},
        ["token", "token_type", "expires_at"],
    ),
    "Member": obj(
        {
            "id": ID,
            "membership_number": {"type": "string", "readOnly": True},
            "first_name": STRING,
            "last_name": STRING,
            "other_names": nullable(STRING),
            "gender": nullable({"type": "string", "enum": list(GENDERS)}),
            "date_of_birth": nullable(DATE),
            "national_id": nullable(STRING),
            "phone": nullable({"type": "string", "description": "E.164"}),
            "email": nullable(STRING),
            "address": nullable(STRING),
            "unit_id": ID,
            "status": {"type": "string", "enum": list(MEMBER_STATUSES)},
            "joined_on": DATE,
            "notes": nullable(STRING),
            "tags": STRING_LIST,
            "created_at": DATETIME,
            "updated_at": DATETIME,
        },
        ["id", "membership_number", "first_name", "last_name", "unit_id", "status", "joined_on", "tags",
         "created_at", "updated_at"],
    ),
    "MemberCreate": obj(
        {**MEMBER_INPUT_PROPERTIES,
         "status": {"type": "string", "enum": ["pending", "active"], "default": "pending"},
         "status_reason": nullable(STRING)},
        ["first_name", "last_name", "unit_id"], closed=True,
    ),
    "MemberUpdate": obj(
        {**MEMBER_INPUT_PROPERTIES,
         "status": nullable({"type": "string", "enum": list(MEMBER_STATUSES),
                             "description": "Changes status through the lifecycle (409 if not allowed)."}),
         "status_reason": nullable({"type": "string", "description": "Required with a status change."})},
        closed=True, description="A partial update: only the fields sent change.",
    ),
    "MemberPage": obj(
        {"items": {"type": "array", "items": ref("Member")},
         "page": {"type": "integer", "minimum": 1},
         "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
         "total": {"type": "integer", "minimum": 0, "description": "Members matching the filters in your scope."},
         "links": obj({"self": STRING, "next": nullable(STRING), "prev": nullable(STRING)},
                      ["self", "next", "prev"],
                      description="Paths (with the same filters) of this, the next and the previous "
                                  "page; null where there is none.")},
        ["items", "page", "per_page", "total", "links"],
    ),
    "Permission": obj(
        {"name": {"type": "string", "examples": ["members.read", "*"]}, "resource": STRING, "action": STRING,
         "description": STRING},
        ["name", "resource", "action", "description"],
    ),
    "PermissionList": obj({"items": {"type": "array", "items": ref("Permission")}}, ["items"]),
    "Role": obj(
        {"id": ID, "name": STRING, "description": STRING,
         "is_system": {"type": "boolean", "description": "System roles cannot be deleted."},
         "permissions": STRING_LIST, "created_at": DATETIME},
        ["id", "name", "description", "is_system", "permissions", "created_at"],
    ),
    "RoleList": obj({"items": {"type": "array", "items": ref("Role")}}, ["items"]),
    "RoleCreate": obj(
        {"name": {"type": "string", "pattern": "^[a-z][a-z0-9_]{1,59}$"},
         "description": nullable({"type": "string", "maxLength": 200}),
         "permissions": nullable(STRING_LIST)},
        ["name"], closed=True,
    ),
    "RoleUpdate": obj(
        {"name": {"type": "string", "description": "Accepted only unchanged: roles cannot be renamed."},
         "description": nullable({"type": "string", "maxLength": 200}),
         "permissions": {**STRING_LIST, "description": "Replaces the whole set."}},
        closed=True,
    ),
    "RolePermissions": obj({"role_id": ID, "role": STRING, "permissions": STRING_LIST},
                           ["role_id", "role", "permissions"]),
    "RolePermissionsUpdate": obj({"permissions": STRING_LIST}, ["permissions"], closed=True),
    "UserRef": obj({"id": ID, "email": STRING}, ["id", "email"]),
    "RoleAssignment": obj(
        {"id": ID, "user_id": ID, "role": STRING, "role_id": ID,
         "unit_id": nullable({**ID, "description": "null: the role applies everywhere."}),
         "assigned_by": {"oneOf": [ref("UserRef"), {"type": "null"}]},
         "assigned_at": DATETIME, "expires_at": nullable(DATETIME)},
        ["id", "user_id", "role", "role_id", "unit_id", "assigned_by", "assigned_at", "expires_at"],
    ),
    "RoleAssignmentList": obj(
        {"user_id": ID, "items": {"type": "array", "items": ref("RoleAssignment")},
         "hidden": {"type": "integer", "minimum": 0,
                    "description": "Assignments outside your users.read scope, not listed."}},
        ["user_id", "items", "hidden"],
    ),
    "RoleAssignmentCreate": obj(
        {"role": nullable({"type": "string", "description": "Role name (or give role_id)."}),
         "role_id": nullable(ID),
         "unit_id": nullable({**ID, "description": "Where the role applies (its whole subtree); null for "
                                                   "everywhere."}),
         "expires_at": nullable(DATETIME)},
        closed=True,
    ),
    "UnitRef": obj({"id": ID, "name": STRING, "code": STRING}, ["id", "name", "code"]),
    "EffectivePermission": obj(
        {"permission": STRING, "scope": {"type": "string", "enum": ["global", "units"]},
         "units": {"type": "array", "items": ref("UnitRef")},
         "hidden": {"type": "integer", "minimum": 0,
                    "description": "Units outside your users.read scope, not listed."}},
        ["permission", "scope", "units", "hidden"],
    ),
    "EffectivePermissionList": obj(
        {"user_id": ID, "items": {"type": "array", "items": ref("EffectivePermission")}}, ["user_id", "items"]
    ),
    "UnitNode": obj(
        {"id": ID, "name": STRING, "code": STRING,
         "level": {"type": "string", "description": "Level name, e.g. ward."},
         "parent_id": nullable(ID), "children": {"type": "array", "items": ref("UnitNode")}},
        ["id", "name", "code", "level", "parent_id", "children"],
    ),
    "UnitTree": obj({"items": {"type": "array", "items": ref("UnitNode")}}, ["items"]),
    "Unit": obj(
        {"id": ID, "name": STRING, "code": STRING, "level": STRING,
         "depth": {"type": "integer", "minimum": 0, "description": "0 for the top level."},
         "parent_id": nullable(ID),
         "ancestors": {"type": "array", "items": ref("UnitRef"), "description": "From the top down."},
         "children": {"type": "array", "items": ref("UnitRef")},
         "created_at": DATETIME},
        ["id", "name", "code", "level", "depth", "parent_id", "ancestors", "children", "created_at"],
    ),
}

# --- paths ----------------------------------------------------------------------------

MEMBER_ID = path_param("member_id", "The member's id.")
ROLE_ID = path_param("role_id", "The role's id.")
USER_ID = path_param("user_id", "The user's id.")
ASSIGNMENT_ID = path_param("assignment_id", "The role assignment's id.")
UNIT_ID = path_param("unit_id", "The unit's id.")

PATHS: dict[str, dict[str, Schema]] = {
    "/auth/token": {
        "post": operation(
            "api.issue_token", "Get a bearer token", "auth",
            {"200": ok("A new token.", ref("Token")), **errors(400, 422, 429)},
            description="Checks email and password like the login page, sharing its lockout (repeated "
                        "failures from one address lock that address out of the account; a locked "
                        "address answers 401 like a wrong password) and its per-IP rate limit (429).",
            body=json_body(ref("TokenRequest")), authenticated=False,
        ),
        "delete": operation(
            "api.revoke_token", "Revoke the token used for this request", "auth",
            {"204": ok("Revoked.")},
        ),
    },
    "/members": {
        "get": operation(
            "api.list_members", "List members", "members",
            {"200": ok("A page of members.", ref("MemberPage")), **errors(400, 403, 422)},
            description="Live (not deleted) members within your members.read scope, ordered by id.",
            parameters=[
                query_param("q", {"type": "string", "maxLength": 200},
                            "Search: email, phone, membership or ID number exactly; words match surname "
                            "prefixes ('jo smi': first name Jo..., surname Smi...)."),
                {**query_param("status", {"type": "array", "items": {"type": "string",
                                                                     "enum": list(MEMBER_STATUSES)}},
                               "Only these statuses (repeat the parameter or separate with commas)."),
                 "style": "form", "explode": True},
                query_param("unit_id", ID, "Only members of this unit and the units below it."),
                query_param("page", {"type": "integer", "minimum": 1, "default": 1}, "Page number."),
                query_param("per_page", {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE,
                                         "default": DEFAULT_PER_PAGE}, "Page size."),
            ],
        ),
        "post": operation(
            "api.create_member", "Register a member", "members",
            {"201": ok("The new member.", ref("Member"), LOCATION), **errors(400, 403, 409, 422)},
            description="Needs members.create over the member's unit (a unit outside your area is a 422).",
            body=json_body(ref("MemberCreate")),
        ),
    },
    "/members/export": {
        "get": operation(
            "api.export_members", "Export members (CSV or XLSX)", "members",
            {"200": {"description": "Every live member matching the filters (no paging), streamed.",
                     "content": {"text/csv": {"schema": {"type": "string"}},
                                 "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":
                                     {"schema": {"type": "string", "format": "binary"}}}},
             **errors(400, 403, 422)},
            description="Needs members.export; holds the members.read list narrowed to where you may export. "
                        "Same filters as GET /members. CSV cells starting with =, +, -, @ get a leading ' so "
                        "spreadsheets never run them (phone numbers read '+260...). Recorded in the audit log.",
            parameters=[
                query_param("format", {"type": "string", "enum": ["csv", "xlsx"], "default": "csv"}, "File format."),
                {**query_param("columns", {"type": "array", "items": {"type": "string", "enum": list(EXPORT_COLUMNS)}},
                               "Columns, in the file's order (repeat or separate with commas; default: all but "
                               "notes and created_at)."), "style": "form", "explode": True},
                query_param("q", {"type": "string", "maxLength": 200}, "Search, as for GET /members."),
                {**query_param("status", {"type": "array", "items": {"type": "string",
                                                                     "enum": list(MEMBER_STATUSES)}},
                               "Only these statuses."), "style": "form", "explode": True},
                query_param("unit_id", ID, "Only members of this unit and the units below it."),
            ],
        ),
    },
    "/members/{member_id}": {
        "get": operation(
            "api.get_member", "Read a member", "members",
            {"200": ok("The member.", ref("Member")), **errors(403, 404)},
            parameters=[MEMBER_ID],
        ),
        "put": operation(
            "api.update_member", "Change a member (partial)", "members",
            {"200": ok("The member after the change.", ref("Member")), **errors(400, 403, 404, 409, 422)},
            description="Only the fields sent change. Send status with status_reason to move the member "
                        "through the status lifecycle.",
            parameters=[MEMBER_ID], body=json_body(ref("MemberUpdate")),
        ),
        "delete": operation(
            "api.delete_member", "Delete a member (soft)", "members",
            {"204": ok("Deleted: the member no longer appears in lists or here."), **errors(403, 404)},
            description="Needs members.delete in the member's unit.",
            parameters=[MEMBER_ID],
        ),
    },
    "/permissions": {
        "get": operation(
            "api.list_permissions", "The permission catalogue", "roles",
            {"200": ok("Every permission.", ref("PermissionList")), **errors(403)},
        ),
    },
    "/roles": {
        "get": operation(
            "api.list_roles", "List roles", "roles",
            {"200": ok("Every role.", ref("RoleList")), **errors(403)},
        ),
        "post": operation(
            "api.create_role", "Create a role", "roles",
            {"201": ok("The new role.", ref("Role"), LOCATION), **errors(400, 403, 409, 422)},
            body=json_body(ref("RoleCreate")),
        ),
    },
    "/roles/{role_id}": {
        "get": operation(
            "api.get_role", "Read a role", "roles",
            {"200": ok("The role.", ref("Role")), **errors(403, 404)}, parameters=[ROLE_ID],
        ),
        "put": operation(
            "api.update_role", "Change a role's description or permissions", "roles",
            {"200": ok("The role after the change.", ref("Role")), **errors(400, 403, 404, 422)},
            parameters=[ROLE_ID], body=json_body(ref("RoleUpdate")),
        ),
        "delete": operation(
            "api.delete_role", "Delete a role", "roles",
            {"204": ok("Deleted."), **errors(403, 404, 409)},
            description="System roles, and roles still assigned to someone, cannot be deleted (409).",
            parameters=[ROLE_ID],
        ),
    },
    "/roles/{role_id}/permissions": {
        "get": operation(
            "api.get_role_permissions", "A role's permissions", "roles",
            {"200": ok("The permission names.", ref("RolePermissions")), **errors(403, 404)},
            parameters=[ROLE_ID],
        ),
        "put": operation(
            "api.set_role_permissions", "Replace a role's permissions", "roles",
            {"200": ok("The new permission set.", ref("RolePermissions")), **errors(400, 403, 404, 422)},
            parameters=[ROLE_ID], body=json_body(ref("RolePermissionsUpdate")),
        ),
    },
    "/users/{user_id}/roles": {
        "get": operation(
            "api.list_user_roles", "A user's role assignments", "users",
            {"200": ok("The assignments.", ref("RoleAssignmentList")), **errors(403, 404)},
            description="Your own always; others within your users.read scope.",
            parameters=[USER_ID],
        ),
        "post": operation(
            "api.assign_user_role", "Give a user a role", "users",
            {"201": ok("The new assignment.", ref("RoleAssignment"), LOCATION),
             **errors(400, 403, 404, 409, 422)},
            description="Needs users.update where the role applies, and every permission the role "
                        "carries (you cannot hand out more than you hold).",
            parameters=[USER_ID], body=json_body(ref("RoleAssignmentCreate")),
        ),
    },
    "/users/{user_id}/roles/{assignment_id}": {
        "delete": operation(
            "api.remove_user_role", "Take a role away", "users",
            {"204": ok("Removed."), **errors(403, 404)}, parameters=[USER_ID, ASSIGNMENT_ID],
        ),
    },
    "/users/{user_id}/permissions": {
        "get": operation(
            "api.user_permissions", "A user's effective permissions", "users",
            {"200": ok("Each permission with where it applies.", ref("EffectivePermissionList")),
             **errors(403, 404)},
            description="Your own always; others within your users.read scope.",
            parameters=[USER_ID],
        ),
    },
    "/units": {
        "get": operation(
            "api.list_units", "The geography tree", "units",
            {"200": ok("The part of the tree where you may read members (with its ancestors).",
                       ref("UnitTree")), **errors(403)},
        ),
    },
    "/units/{unit_id}": {
        "get": operation(
            "api.get_unit", "Read a unit", "units",
            {"200": ok("The unit.", ref("Unit")), **errors(403, 404)}, parameters=[UNIT_ID],
        ),
    },
}


# Events and door check-in, and membership cards (issue #4), describe themselves next to their views.
SCHEMAS.update(EVENT_SCHEMAS)
PATHS.update(EVENT_PATHS)
SCHEMAS.update(CARD_SCHEMAS)
PATHS.update(CARD_PATHS)


RESPONSES: dict[str, Schema] = {
    name: {"description": description, "content": {"application/json": {"schema": ref("Error")}}}
    for name, description in ERROR_RESPONSES.values()
}
