"""A local stand-in for the few Stripe API calls Muster makes, for tests without the internet.

The app talks to it through the real stripe library (``STRIPE_API_BASE``
points ``StripeClient(base_addresses=...)`` here), so the tests cover the
library's form encoding, headers, retries and error handling too. It answers:

- ``POST /v1/checkout/sessions`` (honouring ``Idempotency-Key`` as Stripe
  does: the same key and parameters replay the first answer, other
  parameters are refused with an ``idempotency_error``),
- ``GET /v1/checkout/sessions/<id>``, ``GET /v1/payment_intents/<id>``
  (``expand[]=latest_charge`` honoured) and ``GET /v1/charges/<id>``,
- a hosted "checkout page" at the session's ``url`` (``/pay/<id>``: a Pay
  button that pays and redirects to ``success_url``, and a cancel link),
  so a browser test can go through the whole flow.

Test-side controls play Stripe's part: ``pay`` (optionally ``delayed``, then
``pay`` again to settle), ``decline``, ``expire``, ``refund``, ``fail_next``.
Each records the event Stripe would send in ``events`` (a snapshot of the
object at that moment, so tests can deliver events late, twice or out of
order); with ``webhook_url`` set they are also delivered, signed. Every API
request is recorded in ``requests``.

``sign`` and ``event`` build webhook payloads and ``Stripe-Signature``
headers exactly as Stripe does, so the app's real verification runs.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import html
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator
from urllib.parse import parse_qsl, urlsplit

import pytest

API_VERSION = "2026-10-28.endive"  # the version stripe 16.1 pins; events carry their endpoint's version
SECRET_KEY = "sk_test_standin"
WEBHOOK_SECRET = "whsec_standin"


def sign(payload: bytes, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` header Stripe sends: ``t=<ts>,v1=<HMAC-SHA256(secret, "<ts>.<body>")>``."""
    ts = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + payload, hashlib.sha256).hexdigest()
    return f"t={ts},v1={mac}"


def event(type: str, obj: dict, id: str | None = None, *, created: int | None = None) -> bytes:
    """A webhook body as Stripe sends it: one snapshot event carrying ``obj``."""
    return json.dumps({
        "id": id or _new_id("evt"), "object": "event", "type": type,
        "api_version": API_VERSION, "created": int(time.time()) if created is None else created,
        "data": {"object": obj}, "livemode": False, "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
    }).encode()


def deliver(url: str, payload: bytes, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> tuple[int, bytes]:
    """POST a signed event to a webhook URL, as Stripe does; answers (status, body), errors included."""
    request = urllib.request.Request(url, data=payload, method="POST", headers={
        "Content-Type": "application/json; charset=utf-8", "Stripe-Signature": sign(payload, secret, timestamp)})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def decode_form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    """Stripe's form encoding (``line_items[0][price_data][unit_amount]=500``) back into nested values.

    Values stay strings, as the server sees them; objects whose keys are all
    indexes become lists.
    """
    root: dict[str, Any] = {}
    for key, value in pairs:
        parts = re.findall(r"[^\[\]]+", key)
        node = root
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return _lists(root)


def _lists(value: Any) -> Any:
    if not isinstance(value, dict):
        return value
    if value and all(k.isdigit() for k in value):
        return [_lists(value[k]) for k in sorted(value, key=int)]
    return {k: _lists(v) for k, v in value.items()}


def _new_id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(12)}"


@dataclass
class Recorded:
    """One API request as the stand-in received it."""

    method: str
    path: str
    query: dict[str, Any]
    form: dict[str, Any]
    idempotency_key: str | None
    api_key: str | None
    stripe_version: str | None


class StandinError(Exception):
    """An error answer in Stripe's shape (``{"error": {...}}``)."""

    def __init__(self, status: int, type: str, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.body = status, {"error": {"type": type, "message": message, "code": code}}


class StripeStandin:
    """The stand-in's state and its HTTP server (start with ``running()`` or as a context manager)."""

    def __init__(self, *, webhook_url: str | None = None, webhook_secret: str = WEBHOOK_SECRET) -> None:
        self.sessions: dict[str, dict] = {}
        self.payment_intents: dict[str, dict] = {}
        self.charges: dict[str, dict] = {}
        self.requests: list[Recorded] = []
        self.events: list[bytes] = []
        self.webhook_url, self.webhook_secret = webhook_url, webhook_secret
        self._idempotent: dict[str, tuple[str, str, int, dict]] = {}
        self._failures: list[tuple[int, str]] = []
        self._outbox: list[bytes] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None

    # -- lifecycle -----------------------------------------------------------------------------
    def __enter__(self) -> StripeStandin:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), name="stripe-standin", daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    @property
    def base_url(self) -> str:
        """What ``STRIPE_API_BASE`` is set to."""
        assert self._server, "the stand-in is not running"
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- Stripe's side of a payment --------------------------------------------------------------
    def pay(self, session_id: str, *, delayed: bool = False) -> dict:
        """The customer pays: complete and paid (``delayed``: complete, unpaid, still processing)."""
        with self._changing():
            session = self._session(session_id)
            settling = session["status"] == "complete" and session["payment_status"] == "unpaid" \
                and not session.get("_declined")
            if session["status"] != "open" and not settling:
                raise ValueError(f"session {session_id} is {session['status']}")
            intent = self._intent_for(session)
            session.update(status="complete", url=None)
            if delayed:
                intent["status"] = "processing"
                self._emit("checkout.session.completed", session)
                return copy.deepcopy(session)
            charge = self._charge_for(intent)
            intent.update(status="succeeded", amount_received=intent["amount"], latest_charge=charge["id"])
            session["payment_status"] = "paid"
            self._emit("checkout.session.async_payment_succeeded" if settling else "checkout.session.completed",
                       session)
            return copy.deepcopy(session)

    def decline(self, session_id: str) -> dict:
        """A delayed payment (``pay(delayed=True)``) fails after all."""
        with self._changing():
            session = self._session(session_id)
            self.payment_intents[session["payment_intent"]]["status"] = "requires_payment_method"
            session["_declined"] = True
            self._emit("checkout.session.async_payment_failed", session)
            return copy.deepcopy(session)

    def expire(self, session_id: str) -> dict:
        """The session times out (or is expired) unpaid."""
        with self._changing():
            session = self._session(session_id)
            if session["status"] != "open":
                raise ValueError(f"session {session_id} is {session['status']}")
            session.update(status="expired", url=None)
            self._emit("checkout.session.expired", session)
            return copy.deepcopy(session)

    def refund(self, payment_intent_id: str, amount: int | None = None) -> dict:
        """Refund all (or ``amount`` more) of a paid intent's charge; answers the charge."""
        with self._changing():
            charge = self.charges[self.payment_intents[payment_intent_id]["latest_charge"]]
            charge["amount_refunded"] = min(charge["amount"], charge["amount_refunded"] + (amount or charge["amount"]))
            charge["refunded"] = charge["amount_refunded"] == charge["amount"]
            self._emit("charge.refunded", charge)
            return copy.deepcopy(charge)

    def fail_next(self, status: int = 500, times: int = 1, type: str = "api_error") -> None:
        """Answer the next ``times`` API requests with an error (500s are retried by the library)."""
        with self._lock:
            self._failures.extend([(status, type)] * times)

    def last_event(self, type: str | None = None) -> bytes:
        """The latest event recorded (of one type), as a webhook body."""
        return next(e for e in reversed(self.events) if type is None or json.loads(e)["type"] == type)

    def requests_to(self, method: str, path: str) -> list[Recorded]:
        """The recorded requests of one method whose path starts with ``path``."""
        return [r for r in self.requests if r.method == method and r.path.startswith(path)]

    # -- state helpers ---------------------------------------------------------------------------
    def _session(self, session_id: str) -> dict:
        if session_id not in self.sessions:
            raise StandinError(404, "invalid_request_error", f"No such checkout.session: '{session_id}'",
                               "resource_missing")
        return self.sessions[session_id]

    def _intent_for(self, session: dict) -> dict:
        if session["payment_intent"]:
            return self.payment_intents[session["payment_intent"]]
        intent = {"id": _new_id("pi"), "object": "payment_intent", "amount": session["amount_total"],
                  "amount_received": 0, "currency": session["currency"], "status": "requires_payment_method",
                  "latest_charge": None, "metadata": dict(session["_intent_metadata"]),
                  "created": int(time.time()), "livemode": False}
        self.payment_intents[intent["id"]] = intent
        session["payment_intent"] = intent["id"]
        return intent

    def _charge_for(self, intent: dict) -> dict:
        charge = {"id": _new_id("ch"), "object": "charge", "amount": intent["amount"],
                  "amount_captured": intent["amount"], "amount_refunded": 0, "refunded": False, "paid": True,
                  "captured": True, "status": "succeeded", "currency": intent["currency"],
                  "payment_intent": intent["id"], "metadata": dict(intent["metadata"]),
                  "created": int(time.time()), "livemode": False}
        self.charges[charge["id"]] = charge
        return charge

    def _emit(self, type: str, obj: dict) -> None:
        payload = event(type, _public(obj))
        self.events.append(payload)
        if self.webhook_url:
            self._outbox.append(payload)

    @contextmanager
    def _changing(self) -> Iterator[None]:
        """Change state under the lock, then deliver its events *outside* it.

        The app's webhook handler calls back into the stand-in (it re-reads
        the session), which needs the lock: delivering while holding it would
        deadlock.
        """
        with self._lock:
            yield
        with self._lock:
            outbox, self._outbox = self._outbox, []
        for payload in outbox:
            deliver(self.webhook_url, payload, self.webhook_secret)

    # -- the API -----------------------------------------------------------------------------------
    def handle_api(self, method: str, path: str, query: dict, form: dict, headers: Any) -> tuple[int, dict]:
        """Answer one API request (called by the HTTP handler, under the lock)."""
        key = headers.get("Idempotency-Key")
        auth = headers.get("Authorization") or ""
        self.requests.append(Recorded(method, path, query, form, key, auth.removeprefix("Bearer ") or None,
                                      headers.get("Stripe-Version")))
        if self._failures:
            status, type = self._failures.pop(0)
            raise StandinError(status, type, "The stand-in was told to fail this request.")
        if not auth.startswith("Bearer sk_"):
            raise StandinError(401, "invalid_request_error", "Invalid API Key provided.")
        if method == "POST" and path == "/v1/checkout/sessions":
            if key and key in self._idempotent:
                first_path, first_form, status, body = self._idempotent[key]
                if (first_path, first_form) != (path, json.dumps(form, sort_keys=True)):
                    raise StandinError(400, "idempotency_error", "Keys for idempotent requests can only be used "
                                       "with the same parameters they were first used with.")
                return status, body
            body = self._create_session(form)
            if key:
                self._idempotent[key] = (path, json.dumps(form, sort_keys=True), 200, body)
            return 200, body
        parts = path.strip("/").split("/")
        if method == "GET" and len(parts) == 4 and parts[1:3] == ["checkout", "sessions"]:
            return 200, _public(self._session(parts[3]))
        if method == "GET" and len(parts) == 3 and parts[1] in ("payment_intents", "charges"):
            store = self.payment_intents if parts[1] == "payment_intents" else self.charges
            if parts[2] not in store:
                raise StandinError(404, "invalid_request_error", f"No such {parts[1][:-1]}: '{parts[2]}'",
                                   "resource_missing")
            obj = copy.deepcopy(store[parts[2]])
            if "latest_charge" in query.get("expand", []) and obj.get("latest_charge"):
                obj["latest_charge"] = copy.deepcopy(self.charges[obj["latest_charge"]])
            return 200, obj
        raise StandinError(404, "invalid_request_error", f"Unrecognized request URL ({method}: {path}).")

    def _create_session(self, form: dict) -> dict:
        if form.get("mode") not in ("payment", "subscription", "setup"):
            raise StandinError(400, "invalid_request_error", "Missing required param: mode.", "parameter_missing")
        items = form.get("line_items") or []
        try:
            amounts = [int(i["price_data"]["unit_amount"]) * int(i.get("quantity", 1)) for i in items]
            currencies = {i["price_data"]["currency"] for i in items}
            assert all(i["price_data"]["product_data"]["name"] for i in items)
        except (KeyError, TypeError, ValueError, AssertionError):
            raise StandinError(400, "invalid_request_error", "Invalid line_items.", "parameter_invalid") from None
        if not amounts or len(currencies) != 1 or not form.get("success_url"):
            raise StandinError(400, "invalid_request_error", "Missing line_items or success_url.",
                               "parameter_missing")
        session_id = _new_id("cs")
        session = {
            "id": session_id, "object": "checkout.session", "mode": form["mode"], "status": "open",
            "payment_status": "unpaid", "amount_subtotal": sum(amounts), "amount_total": sum(amounts),
            "currency": currencies.pop(), "client_reference_id": form.get("client_reference_id"),
            "customer_email": form.get("customer_email"), "metadata": form.get("metadata") or {},
            "payment_intent": None, "success_url": form["success_url"], "cancel_url": form.get("cancel_url"),
            "url": f"{self.base_url}/pay/{session_id}", "created": int(time.time()),
            "expires_at": int(time.time()) + 86400, "livemode": False,
            "_intent_metadata": (form.get("payment_intent_data") or {}).get("metadata") or {},
        }
        self.sessions[session_id] = session
        return _public(session)


def _public(obj: dict) -> dict:
    """A deep copy of an object without the stand-in's private fields (``_...``)."""
    return {k: copy.deepcopy(v) for k, v in obj.items() if not k.startswith("_")}


def _handler(standin: StripeStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out as two writes: without TCP_NODELAY the body waits for the client's
        # delayed ACK (some 40 ms a call).
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def _dispatch(self, method: str) -> None:
            url = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode() if length else ""
            try:
                if url.path.startswith("/pay/"):
                    return self._checkout_page(method, url.path.split("/")[2:])
                with standin._lock:
                    status, answer = standin.handle_api(method, url.path, decode_form(parse_qsl(url.query)),
                                                        decode_form(parse_qsl(body)), self.headers)
            except StandinError as exc:
                status, answer = exc.status, exc.body
            self._send(status, json.dumps(answer).encode(), "application/json",
                       {"Request-Id": "req_" + secrets.token_hex(8)})

        def _checkout_page(self, method: str, parts: list[str]) -> None:
            with standin._lock:
                session = copy.deepcopy(standin._session(parts[0]))
            if len(parts) > 1 and parts[1] == "cancel":
                return self._send(303, b"", "text/plain", {"Location": session["cancel_url"]})
            if method == "POST" and session["status"] == "open":
                standin.pay(session["id"])  # delivers its webhook (if set) before the redirect
                location = session["success_url"].replace("{CHECKOUT_SESSION_ID}", session["id"])
                return self._send(303, b"", "text/plain", {"Location": location})
            amount = f"{session['amount_total'] / 100:.2f} {session['currency'].upper()}"
            page = (f"<!doctype html><title>Stand-in checkout</title><h1>Pay {html.escape(amount)}</h1>"
                    f"<p>Session {session['id']}: {session['status']}</p>"
                    f"<form method=post><button type=submit>Pay</button></form>"
                    f"<a href=/pay/{session['id']}/cancel>Cancel</a>")
            self._send(200 if session["status"] == "open" else 410, page.encode(), "text/html; charset=utf-8")

        def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def running(**kwargs: Any) -> Iterator[StripeStandin]:
    """A running stand-in for the duration of the block."""
    with StripeStandin(**kwargs) as standin:
        yield standin


def standin_fixture(*, secret_key: str = SECRET_KEY, webhook_secret: str = WEBHOOK_SECRET):
    """A pytest fixture: a running stand-in with the app's Stripe settings pointed at it.

    Use as ``stripe_standin = standin_fixture()`` in a test module (the
    shared conftest.py stays untouched). It needs the ``app`` fixture and
    undoes the settings after each test.
    """

    @pytest.fixture
    def _standin(app, monkeypatch) -> Iterator[StripeStandin]:
        with running(webhook_secret=webhook_secret) as standin:
            monkeypatch.setitem(app.config, "STRIPE_SECRET_KEY", secret_key)
            monkeypatch.setitem(app.config, "STRIPE_WEBHOOK_SECRET", webhook_secret)
            monkeypatch.setitem(app.config, "STRIPE_API_BASE", standin.base_url)
            yield standin

    return _standin
