"""Console: roles and staff users (menu "Access").

Roles need roles.read to view and roles.create/update/delete to change; they
are global (a role is placed at a unit only when it is assigned). Staff users
are listed through the scoping helper with users.read; changing an account or
its roles needs users.update, and the services refuse anything beyond the
actor's own area or permissions (a province admin cannot hand out roles.* or
assign outside the province). Views only parse input, call a service, commit
once and render.
"""

from __future__ import annotations

from datetime import datetime, time, timezone
from math import ceil

from flask import abort, current_app, flash, redirect, request, url_for
from flask_admin import expose
from flask_login import current_user
from flask_wtf import FlaskForm
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from wtforms import DateField, EmailField, HiddenField, PasswordField, SelectField, SelectMultipleField, StringField
from wtforms.validators import Optional

from app.admin.base import SecureView, committing, page_arg, staff_can
from app.admin.geo import TOP_LEVEL, ConfirmForm, unit_choices, unit_from_choice
from app.extensions import db
from app.models import Permission, Role, RoleAssignment, User
from app.models.rbac import role_permissions
from app.security import can, load_for, permits, scoped
from app.services import accounts, rbac, users
from app.services.errors import ServiceError
from app.services.inputs import parse_id

# --- forms -------------------------------------------------------------------------


class RoleForm(FlaskForm):
    name = StringField("Name")
    description = StringField("Description")
    # Rendered as a checkbox grid; the service rejects unknown names.
    permissions = SelectMultipleField("Permissions", choices=[], validate_choice=False)


class NewUserForm(FlaskForm):
    email = EmailField("Email")
    password = PasswordField("Password")
    role_id = SelectField("First role", choices=[], validate_choice=False)
    unit_id = SelectField("At unit", choices=[], validate_choice=False)


class AssignForm(FlaskForm):
    role_id = SelectField("Role", choices=[], validate_choice=False)
    unit_id = SelectField("At unit", choices=[], validate_choice=False)
    expires_on = DateField("Expires on", validators=[Optional()])


class ActiveForm(FlaskForm):
    active = HiddenField()


def _require(permission: str) -> None:
    if not staff_can(permission):
        abort(403)


def _can_manage_roles(action: str) -> bool:
    """Roles belong to no unit, so changing them needs the permission everywhere."""
    return staff_can(f"roles.{action}") and can(current_user, f"roles.{action}")


def _require_roles(action: str) -> None:
    if not _can_manage_roles(action):
        abort(403)


def _role_from_choice(value: str | None, field: str, *, required: bool = True) -> Role | None:
    if not value:
        if required:
            raise ServiceError("Choose a role.", field=field)
        return None
    pk = parse_id(value)
    role = db.session.get(Role, pk) if pk is not None else None
    if role is None:
        raise ServiceError("Choose a role from the list.", field=field)
    return role


def _expiry(day) -> datetime | None:
    """An 'expires on' date means the role lapses as that day starts (UTC)."""
    return datetime.combine(day, time.min, tzinfo=timezone.utc) if day else None


def _role_choices(empty_label: str | None = None) -> list[tuple[str, str]]:
    roles = db.session.scalars(select(Role).order_by(Role.name)).all()
    choices = [(TOP_LEVEL, empty_label)] if empty_label else []
    return choices + [(str(r.id), r.name) for r in roles]


# --- roles -------------------------------------------------------------------------


class RolesView(SecureView):
    permission = "roles.read"

    def _permission_groups(self) -> list[tuple[str, list[Permission]]]:
        groups: dict[str, list[Permission]] = {}
        for perm in db.session.scalars(select(Permission).order_by(Permission.resource, Permission.action)):
            groups.setdefault(perm.resource, []).append(perm)
        # "*" first: it stands for everything and is what super_admin holds.
        return sorted(groups.items(), key=lambda item: (item[0] != "*", item[0]))

    def _render_form(self, form: RoleForm, role: Role | None, status: int = 200):
        return self.render(
            "admin/rbac/role_form.html", form=form, role=role, groups=self._permission_groups(),
            ticked=set(form.permissions.data or []),
        ), status

    @expose("/")
    def index(self):
        perm_count = (
            select(func.count()).select_from(role_permissions)
            .where(role_permissions.c.role_id == Role.id).scalar_subquery()
        )
        user_count = (
            select(func.count(RoleAssignment.id)).where(RoleAssignment.role_id == Role.id).scalar_subquery()
        )
        rows = db.session.execute(
            select(Role, perm_count, user_count).order_by(Role.is_system.desc(), Role.name)
        ).all()
        everything = set(
            db.session.scalars(
                select(role_permissions.c.role_id)
                .join(Permission, Permission.id == role_permissions.c.permission_id)
                .where(Permission.resource == "*")
            )
        )
        return self.render(
            "admin/rbac/roles.html", rows=rows, everything=everything,
            can_create=_can_manage_roles("create"), can_update=_can_manage_roles("update"),
            can_delete=_can_manage_roles("delete"),
        )

    @expose("/new", methods=("GET", "POST"))
    def create(self):
        _require_roles("create")
        form = RoleForm()
        if form.validate_on_submit():
            with committing(form, show="form") as outcome:
                role = rbac.create_role(current_user, form.name.data, form.description.data,
                                        form.permissions.data or [])
            if not outcome.ok:
                return self._render_form(form, None, outcome.status)
            flash(f"Created role {role.name} with {len(role.permissions)} permission(s).", "success")
            return redirect(url_for(".index"))
        return self._render_form(form, None, 400 if form.errors else 200)

    @expose("/<pk:role_id>/edit", methods=("GET", "POST"))
    def edit(self, role_id: int):
        _require_roles("update")
        role = db.get_or_404(Role, role_id)
        if request.method == "GET":
            form = RoleForm(formdata=None, name=role.name, description=role.description,
                            permissions=[p.name for p in role.permissions])
            return self._render_form(form, role)
        form = RoleForm()
        form.name.data = role.name  # names are fixed once created
        if not form.validate_on_submit():
            return self._render_form(form, role, 400)
        with committing(form, show="form") as outcome:
            rbac.update_role(current_user, role, description=form.description.data or "",
                             permissions=form.permissions.data or [])
        if not outcome.ok:
            return self._render_form(form, db.session.get(Role, role_id), outcome.status)
        flash(f"Saved role {role.name}: {len(role.permissions)} permission(s).", "success")
        return redirect(url_for(".index"))

    @expose("/<pk:role_id>/delete", methods=("GET", "POST"))
    def delete(self, role_id: int):
        _require_roles("delete")
        role = db.get_or_404(Role, role_id)
        form = ConfirmForm()
        error, status = None, 200
        if form.validate_on_submit():
            name = role.name
            with committing(show=None) as outcome:
                rbac.delete_role(current_user, role)
            if outcome.ok:
                flash(f"Deleted role {name}.", "success")
                return redirect(url_for(".index"))
            role = db.session.get(Role, role_id)
            error, status = outcome.error.message, outcome.status
        in_use = db.session.scalar(
            select(func.count(RoleAssignment.id)).where(RoleAssignment.role_id == role.id)
        )
        return self.render("admin/rbac/role_delete.html", role=role, form=form, error=error, in_use=in_use), status


# --- staff users -------------------------------------------------------------------


class UsersView(SecureView):
    permission = "users.read"

    def _user(self, user_id: int) -> User:
        return load_for(current_user, User, user_id, "users.read")

    @expose("/")
    def index(self):
        q = (request.args.get("q") or "").strip().lower()
        page = page_arg(first=1)
        per_page = current_app.config.get("ADMIN_PAGE_SIZE", 20)
        stmt = scoped(select(User), current_user, "users.read", User)
        count_stmt = scoped(select(func.count(User.id)), current_user, "users.read", User)
        if q:
            stmt = stmt.where(User.email.contains(q, autoescape=True))
            count_stmt = count_stmt.where(User.email.contains(q, autoescape=True))
        total = db.session.scalar(count_stmt) or 0
        pages = max(1, ceil(total / per_page))
        page = min(page, pages)
        rows = db.session.scalars(
            stmt.options(
                selectinload(User.assignments).selectinload(RoleAssignment.role),
                selectinload(User.assignments).selectinload(RoleAssignment.unit),
                selectinload(User.login_failures),
            )
            .order_by(User.email)
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
        return self.render(
            "admin/rbac/users.html", users=rows, q=q, page=page, pages=pages, total=total,
            visible_assignments=lambda u: rbac.visible_assignments(current_user, u),
            can_create=staff_can("users.create"), now=datetime.now(timezone.utc),
        )

    # Create ---------------------------------------------------------------------------

    def _new_form(self, form: NewUserForm | None = None) -> NewUserForm:
        form = form or NewUserForm()
        form.role_id.choices = _role_choices("(no role yet)")
        form.unit_id.choices = unit_choices("users.create", top_label="Everywhere (global)")
        return form

    @expose("/new", methods=("GET", "POST"))
    def create(self):
        _require("users.create")
        form = self._new_form()
        if form.validate_on_submit():
            with committing(form, show="form") as outcome:
                role = _role_from_choice(form.role_id.data, "role_id", required=False)
                unit = unit_from_choice(form.unit_id.data, "unit_id") if role else None
                # No password given: the person chooses it through an activation link (services.accounts).
                password = form.password.data or None
                user = users.create_user(current_user, form.email.data, password, role=role, unit=unit)
                if password is None:
                    accounts.send_user_activation(current_user, user)
            if not outcome.ok:
                return self.render("admin/rbac/user_new.html", form=form), outcome.status
            flash(f"Created {user.email}." + ("" if password else " An activation link is on its way to them."),
                  "success")
            return redirect(url_for(".details", user_id=user.id))
        return self.render("admin/rbac/user_new.html", form=form), 400 if form.errors else 200

    # Details and account actions ---------------------------------------------------

    def _assign_form(self, form: AssignForm | None = None) -> AssignForm:
        form = form or AssignForm(formdata=None)
        form.role_id.choices = _role_choices()
        form.unit_id.choices = unit_choices("users.update", top_label="Everywhere (global)")
        return form

    def _render_details(self, user: User, assign_form: AssignForm | None = None, status: int = 200):
        shown, hidden = rbac.visible_assignments(current_user, user)
        member_visible = user.member is not None and permits(current_user, "users.read", user.member.unit)
        return self.render(
            "admin/rbac/user.html", user=user, assignments=shown, hidden_assignments=hidden,
            member_visible=member_visible, assign_form=self._assign_form(assign_form),
            can_update=staff_can("users.update"), now=datetime.now(timezone.utc),
        ), status

    @expose("/<pk:user_id>/")
    def details(self, user_id: int):
        return self._render_details(self._user(user_id))

    def _account_action(self, user_id: int, action):
        _require("users.update")
        user = self._user(user_id)
        form = ActiveForm()
        if form.validate_on_submit():
            with committing() as outcome:
                message = action(user, form)
            if outcome.ok:
                flash(message, "success")
        return redirect(url_for(".details", user_id=user_id))

    @expose("/<pk:user_id>/active", methods=("POST",))
    def set_active(self, user_id: int):
        def action(user, form):
            active = form.active.data == "1"
            users.set_active(current_user, user, active)
            return f"{user.email} is now {'active' if active else 'deactivated: they cannot log in'}."

        return self._account_action(user_id, action)

    @expose("/<pk:user_id>/activation", methods=("POST",))
    def send_activation(self, user_id: int):
        def action(user, form):
            accounts.send_user_activation(current_user, user)
            return f"An activation link is on its way to {user.email}."

        return self._account_action(user_id, action)

    @expose("/<pk:user_id>/unlock", methods=("POST",))
    def unlock(self, user_id: int):
        def action(user, form):
            users.unlock(current_user, user)
            return f"{user.email} is unlocked and may log in again."

        return self._account_action(user_id, action)

    # Role assignments -------------------------------------------------------------

    @expose("/<pk:user_id>/assign", methods=("POST",))
    def assign(self, user_id: int):
        _require("users.update")
        user = self._user(user_id)
        form = self._assign_form(AssignForm())
        if not form.validate_on_submit():
            return self._render_details(user, form, 400)
        with committing(form, show="form") as outcome:
            role = _role_from_choice(form.role_id.data, "role_id")
            unit = unit_from_choice(form.unit_id.data, "unit_id")
            rbac.assign_role(current_user, user, role, unit, _expiry(form.expires_on.data))
        if not outcome.ok:
            return self._render_details(db.session.get(User, user_id), form, outcome.status)
        flash(f"Gave {user.email} the role {role.name} at {unit.name if unit else 'all units'}.", "success")
        return redirect(url_for(".details", user_id=user_id))

    @expose("/<pk:user_id>/assignments/<pk:assignment_id>/remove", methods=("POST",))
    def unassign(self, user_id: int, assignment_id: int):
        _require("users.update")
        user = self._user(user_id)
        assignment = load_for(current_user, RoleAssignment, assignment_id, "users.update")
        if assignment.user_id != user.id:
            abort(404)
        form = ConfirmForm()
        if form.validate_on_submit():
            label = f"{assignment.role.name} at {assignment.unit.name if assignment.unit else 'all units'}"
            with committing() as outcome:
                rbac.unassign_role(current_user, assignment)
            if outcome.ok:
                flash(f"Removed {label} from {user.email}.", "success")
        return redirect(url_for(".details", user_id=user_id))

    # Effective permissions ---------------------------------------------------------

    @expose("/<pk:user_id>/permissions")
    def permissions(self, user_id: int):
        user = self._user(user_id)
        rows = rbac.effective_permissions(user, viewer=current_user)
        return self.render("admin/rbac/user_permissions.html", user=user, rows=rows)


def register(admin) -> None:
    admin.add_view(RolesView(name="Roles", endpoint="roles", url="/admin/roles", category="Access"))
    admin.add_view(UsersView(name="Staff users", endpoint="users", url="/admin/users", category="Access"))
