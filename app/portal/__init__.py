"""The member portal (self-service). For now a home page; the portal issue fills it in."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import current_user

bp = Blueprint("portal", __name__)


@bp.route("/")
def home():
    member = current_user.member if current_user.is_authenticated else None
    return render_template("portal/home.html", member=member)
