# Muster: `make run` serves the app, `make test` runs the suite. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export FLASK_APP := wsgi.py
# Printed links (card QR codes) point at the address `make run` serves.
export MUSTER_PUBLIC_URL ?= http://127.0.0.1:$(PORT)

.PHONY: run test bench setup setup-dev clean

$(BIN)/.runtime: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(BIN)/.dev: requirements.txt requirements-dev.txt $(BIN)/.runtime
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@

setup: $(BIN)/.runtime

setup-dev: $(BIN)/.dev

run: setup
	$(BIN)/flask db upgrade heads
	$(BIN)/flask seed-demo --if-empty
	@echo ""
	@echo "Muster is running at http://127.0.0.1:$(PORT)/  (staff console: http://127.0.0.1:$(PORT)/admin/)"
	@echo "Demo logins, password 'demo-password': superadmin@demo.test, admin@demo.test, coordinator@demo.test, member@demo.test"
	@echo ""
	@echo "Starting the web server, the background worker and the scheduler (Procfile); Ctrl-C stops them all."
	$(BIN)/honcho start -f Procfile -p $(PORT)

test: setup-dev
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup-dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .pytest_cache
