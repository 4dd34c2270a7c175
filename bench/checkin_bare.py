"""The floor for the check-in benchmark: a bare Flask route doing only the two SQL statements
that record an attendance (insert the check-in, mark the registration), served the same way
(gunicorn, same workers) against the same database. ``gunicorn bench.checkin_bare:app``
with BENCH_DATABASE_URL set.
"""

from __future__ import annotations

import os
from datetime import datetime, timezone

from flask import Flask, jsonify, request
from sqlalchemy import create_engine, text

engine = create_engine(os.environ["BENCH_DATABASE_URL"], pool_size=8, max_overflow=0)
app = Flask(__name__)

INSERT = text(
    "INSERT INTO event_checkins (event_id, member_id, slot, at, gate, by_id, method) "
    "VALUES (:event_id, :member_id, 'once', :now, :gate, NULL, 'card') ON CONFLICT DO NOTHING RETURNING id"
)
UPDATE = text(
    "UPDATE event_registrations SET status = 'attended', checked_in_at = COALESCE(checked_in_at, :now), "
    "checkin_gate = COALESCE(checkin_gate, :gate), updated_at = :now "
    "WHERE event_id = :event_id AND member_id = :member_id"
)


@app.post("/events/<int:event_id>/checkin")
def checkin(event_id: int):
    data = request.get_json()
    values = {"event_id": event_id, "member_id": int(data["member_id"]), "gate": data.get("gate"),
              "now": datetime.now(timezone.utc)}
    with engine.begin() as conn:
        inserted = conn.execute(INSERT, values).scalar()
        if inserted is not None:
            conn.execute(UPDATE, values)
    return jsonify({"result": "admitted" if inserted is not None else "already_checked_in"})
