#!/bin/sh
# Schemathesis `--checks all` against the generated OpenAPI document, as a ward coordinator and a super admin.
#
#   SCHEMATHESIS=/path/to/venv/bin/schemathesis bench/schemathesis.sh
#
# Schemathesis is a tool, not a dependency: install it in a venv of its own
# (python3 -m venv /tmp/st && /tmp/st/bin/pip install schemathesis==4.32.5).
# Serves the app with gunicorn (as in production: its request-line limit is part of the contract) on a fresh,
# seeded SQLite database in a temporary directory, runs both roles, stops the server. Exit status: 0 when both
# runs pass. Settings: bench/schemathesis.toml (what the document cannot say, and why).
# PORT (5079), MAX_EXAMPLES (40), WORKERS (2), OUT (the temporary directory) and SEED may be set.
set -u
cd "$(dirname "$0")/.."
ROOT=$(pwd)
ST=${SCHEMATHESIS:-schemathesis}
PORT=${PORT:-5079}
OUT=${OUT:-$(mktemp -d /tmp/muster-schemathesis.XXXXXX)}
BASE="http://127.0.0.1:$PORT/api/v1"
command -v "$ST" >/dev/null 2>&1 || { echo "schemathesis not found: set SCHEMATHESIS" >&2; exit 2; }

export MUSTER_INSTANCE_DIR="$OUT/instance" DATABASE_URL="sqlite:///$OUT/instance/st.db" FLASK_APP=wsgi.py
export MUSTER_PUBLIC_URL="http://127.0.0.1:$PORT" MUSTER_LOGIN_RATE_LIMIT="100000 per minute"
mkdir -p "$MUSTER_INSTANCE_DIR"
.venv/bin/flask db upgrade heads >"$OUT/setup.log" 2>&1 && .venv/bin/flask seed-demo --if-empty >>"$OUT/setup.log" 2>&1 \
    || { cat "$OUT/setup.log" >&2; exit 2; }
.venv/bin/gunicorn -w 2 --threads 4 -b "127.0.0.1:$PORT" -p "$OUT/gunicorn.pid" --error-logfile "$OUT/gunicorn.log" \
    -D wsgi:app || exit 2
trap 'kill "$(cat "$OUT/gunicorn.pid")" 2>/dev/null' EXIT
for _ in $(seq 50); do curl -sf "$BASE/" >/dev/null && break; sleep 0.2; done

status=0
for who in coordinator superadmin; do
    token=$(curl -sf -X POST "$BASE/auth/token" -H "Content-Type: application/json" \
        -d "{\"email\": \"$who@demo.test\", \"password\": \"demo-password\"}" \
        | .venv/bin/python -c "import json, sys; print(json.load(sys.stdin)['token'])") || exit 2
    # DELETE /auth/token would revoke the run's own token (every later request a 401).
    "$ST" --config-file "$ROOT/bench/schemathesis.toml" run "$BASE/openapi.json" --url "$BASE" \
        -H "Authorization: Bearer $token" --checks all --exclude-operation-id api.revoke_token \
        --max-examples "${MAX_EXAMPLES:-40}" --workers "${WORKERS:-2}" --request-timeout 30 --no-color \
        ${SEED:+--seed "$SEED"} >"$OUT/$who.log" 2>&1 || status=1
    echo "$who: $(grep -E '^ *[0-9]+ generated' "$OUT/$who.log" | sed 's/^ *//'); $(tail -n 1 "$OUT/$who.log" | tr -d '=')"
done
echo "logs: $OUT"
exit $status
