"""The Flask-Admin staff console, built per app inside init_admin()."""

from __future__ import annotations

from flask import Flask
from flask_admin import Admin, AdminIndexView, expose
from flask_admin.theme import Bootstrap4Theme


class ConsoleIndexView(AdminIndexView):
    @expose("/")
    def index(self):
        return self.render("admin/index.html")


def init_admin(app: Flask) -> Admin:
    admin = Admin(app, name="Muster", theme=Bootstrap4Theme(), index_view=ConsoleIndexView(url="/admin"))
    return admin
