"""Console home: the dashboard (placeholder until the console helper fills it in)."""

from flask_admin import AdminIndexView, expose

from app.admin.base import AccessMixin


class DashboardView(AccessMixin, AdminIndexView):
    @expose("/")
    def index(self):
        return self.render("admin/index.html")
