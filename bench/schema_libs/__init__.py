"""Choosing the schema library of issue 9: the door check-in operation under each candidate.

Three tiny Flask apps expose the same contract as Muster's
``POST /api/v1/events/<id>/checkin`` (body ``{token | member_id, gate, nonce}``,
answer shaped like ``events.check_in``'s, errors ``{"error", "details"}`` with
400 for a wrong JSON type and 422 for a broken rule), with the business work
replaced by a constant answer so that only the library's cost is measured:

- ``baseline``: plain Flask and today's hand validation (``services.checkin_input.parse_checkin``)
  and a hand-built answer dict;
- ``smorest``: flask-smorest (marshmallow 4 + webargs + apispec), ``@blp.arguments`` / ``@blp.response``;
- ``spectree``: spectree with pydantic 2, ``@spec.validate(json=..., resp=...)``.

Each library app also serves its generated OpenAPI 3.1 document, and a
console-like route outside the API answers Flask's HTML 404, to show whether
the library turns non-API errors into JSON (flask-smorest issue 640).

Measured, all in one run so the ratios compare like with like:
``schema_only_us`` (JSON bytes in -> validated input, answer -> JSON bytes,
no Flask), ``in_process_us`` (a whole request through the Flask test client),
both in this process's CPU time (the machine is shared), medians over
BENCH_SCHEMA_ROUNDS rounds, the apps alternating in batches within each round;
then, unless BENCH_SCHEMA_HTTP=0, the same load as ``bench/checkin.py`` over
gunicorn (2 gthread workers), two passes in opposite orders. ``checks``
records each app's answer to the same good and bad bodies, compared with the
baseline's; ``openapi`` what each document says about the operation. Knobs: BENCH_SCHEMA_REQUESTS,
BENCH_SCHEMA_ROUNDS, BENCH_SCHEMA_HTTP, BENCH_SCHEMA_HTTP_REQUESTS.

Modules: ``contract`` (the shared contract and the baseline), ``with_smorest``,
``with_spectree``; this one checks and measures. Serve one app:
``gunicorn "bench.schema_libs:create_app('spectree')"``.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from typing import Any, Callable

from flask import Flask

from bench.schema_libs.contract import PREFIX, baseline_app, baseline_round_trip
from bench.schema_libs.with_smorest import smorest_app, smorest_round_trip
from bench.schema_libs.with_spectree import spectree_app, spectree_round_trip

APPS: dict[str, Callable[[], Flask]] = {"baseline": baseline_app, "smorest": smorest_app, "spectree": spectree_app}
ROUND_TRIPS = {"baseline": baseline_round_trip, "smorest": smorest_round_trip, "spectree": spectree_round_trip}
DOCS = {"smorest": f"{PREFIX}/openapi.json", "spectree": f"{PREFIX}/apidoc/openapi.json"}
TOKEN = "AQEIMjAyNzAwMDAxMjM0NTY3OAAAe5Vf" + "x" * 74  # a credential's length (~106 characters)


def create_app(name: str) -> Flask:
    """``gunicorn "bench.schema_libs:create_app('smorest')"``."""
    return APPS[name]()


def _bodies(n: int) -> list[bytes]:
    return [json.dumps({"token": TOKEN, "gate": f"Gate {i % 6}", "nonce": f"n{i}"}).encode() for i in range(n)]


CASES: dict[str, Any] = {
    "token": {"token": TOKEN, "gate": "  North gate  ", "nonce": "a-1"},
    "member_id": {"member_id": 4211},
    "gate_61_chars": {"token": TOKEN, "gate": "g" * 61},
    "gate_60_chars_padded": {"token": TOKEN, "gate": "g" * 60 + "   "},
    "bad_nonce": {"token": TOKEN, "nonce": "not ok!"},
    "both": {"token": TOKEN, "member_id": 1},
    "neither": {"gate": "North"},
    "unknown_field": {"token": TOKEN, "colour": "red"},
    "member_id_string": {"member_id": "12"},
    "member_id_true": {"member_id": True},
    "member_id_too_big": {"member_id": 2 ** 31},
    "gate_not_string": {"token": TOKEN, "gate": 5},
    "nul_in_token": {"token": "ab\x00c"},
    "array_body": [1, 2],
    "malformed_json": "{not json",
}


def _checks(apps: dict[str, Flask]) -> dict[str, Any]:
    """Every app's answer to the same bodies (status, details.field), and where it differs from the baseline."""
    answers: dict[str, dict[str, Any]] = {}
    for name, app in apps.items():
        client = app.test_client()
        mine: dict[str, Any] = {}
        for case, body in CASES.items():
            data = body if isinstance(body, str) else json.dumps(body)
            response = client.post(f"{PREFIX}/events/7/checkin", data=data, content_type="application/json")
            payload = response.get_json(silent=True) or {}
            if response.status_code == 200:
                mine[case] = [200, payload]
            else:
                shaped = set(payload) == {"error", "details"}
                mine[case] = [response.status_code, (payload.get("details") or {}).get("field"),
                              "shaped" if shaped else payload]
        console = client.get("/console/nowhere")
        mine["console_404"] = [console.status_code, console.mimetype]
        answers[name] = mine
    legacy = smorest_app(keep_app_error_handler=True).test_client().get("/console/nowhere")
    differs = {
        name: {case: {"baseline": answers["baseline"][case], name: answer}
               for case, answer in mine.items() if answer != answers["baseline"][case]}
        for name, mine in answers.items() if name != "baseline"
    }
    return {"baseline_answers": {case: " ".join(str(x) for x in answer[:2]) if answer[0] != 200 else "200"
                                 for case, answer in answers["baseline"].items()},
            "differs_from_baseline": differs,
            "smorest_default_api_console_404": [legacy.status_code, legacy.mimetype, legacy.get_json(silent=True)]}


def _walk(node: Any):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from _walk(value)


def _openapi(apps: dict[str, Flask]) -> dict[str, Any]:
    """What each generated document says about the check-in operation."""
    out: dict[str, Any] = {}
    for name, path in DOCS.items():
        doc = apps[name].test_client().get(path).get_json()
        schemas = doc.get("components", {}).get("schemas", {})

        def find(*names: str) -> dict[str, Any]:
            return next((schemas[n] for n in names if n in schemas), {})

        body, result = find("CheckinIn"), find("CheckinResult")
        operation = doc["paths"].get(f"{PREFIX}/events/{{event_id}}/checkin", {}).get("post", {})
        out[name] = {
            "openapi": doc.get("openapi"),
            "schema_names": sorted(schemas),
            "uses_3_0_nullable": any("nullable" in node for node in _walk(doc)),
            "request_body": body,
            "result_reason": result.get("properties", {}).get("reason"),
            "result_member": result.get("properties", {}).get("member"),
            "result_time": result.get("properties", {}).get("first_checked_in_at"),
            "responses": {code: r.get("$ref") or r.get("content", {}).get("application/json", {}).get("schema")
                          for code, r in operation.get("responses", {}).items()},
            "path_parameters": operation.get("parameters") or doc["paths"].get(
                f"{PREFIX}/events/{{event_id}}/checkin", {}).get("parameters"),
        }
    return out


BATCH = 250  # requests per timed batch; batches of the three apps alternate


def _cpu_us(fn: Callable[[], Any], n: int) -> float:
    """CPU microseconds per call of this process: time other processes take on the shared CPUs is left out."""
    started = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - started) * 1e6 / n


def _summary(samples: dict[str, list[float]]) -> dict[str, Any]:
    med = {name: statistics.median(values) for name, values in samples.items()}
    base = med["baseline"]
    return {name: {"us": round(value, 1), "ratio_vs_baseline": round(value / base, 2),
                   "added_us": round(value - base, 1),
                   "spread_us": [round(min(samples[name]), 1), round(max(samples[name]), 1)]}
            for name, value in med.items()}


def _in_process(apps: dict[str, Flask], requests_: int, rounds: int) -> dict[str, Any]:
    """Per round: ``requests_`` calls of each app, in alternating batches; a round's figure is its mean."""
    clients = {name: app.test_client() for name, app in apps.items()}
    bodies = _bodies(BATCH)
    path = f"{PREFIX}/events/7/checkin"
    for name, client in clients.items():  # warm-up: imports, schema caches, first-request work
        for body in bodies:
            assert client.post(path, data=body, content_type="application/json").status_code == 200, name
    schema: dict[str, list[float]] = {name: [] for name in apps}
    whole: dict[str, list[float]] = {name: [] for name in apps}
    batches = max(1, requests_ // BATCH)
    for _ in range(rounds):
        spent_schema = {name: 0.0 for name in apps}
        spent_whole = {name: 0.0 for name in apps}
        for _ in range(batches):
            for name in apps:  # a burst of other load on the machine hits every app alike
                trip, client = ROUND_TRIPS[name], clients[name]
                it = iter(bodies * 4)
                spent_schema[name] += _cpu_us(lambda: trip(next(it), 7), BATCH * 4)
                it = iter(bodies)
                spent_whole[name] += _cpu_us(lambda: client.post(path, data=next(it),
                                                                 content_type="application/json"), BATCH)
        for name in apps:
            schema[name].append(spent_schema[name] / batches)
            whole[name].append(spent_whole[name] / batches)
    return {"requests_per_round": batches * BATCH, "rounds": rounds, "clock": "process CPU time",
            "schema_only_us": _summary(schema), "in_process_us": _summary(whole)}


def _over_gunicorn(count: int) -> dict[str, Any]:
    """The load of bench/checkin.py (6 keep-alive clients) on each app under gunicorn, in two passes
    (A B C, then C B A) so that neither order nor a burst of other load favours one app."""
    from bench.checkin import CLIENTS, SERVER_OPTIONS, _load, _measured  # the checkin bench's own load
    from bench.servers import Gunicorn

    passes: dict[str, list[dict[str, Any]]] = {name: [] for name in APPS}
    headers = {"Content-Type": "application/json"}
    path = f"{PREFIX}/events/7/checkin"
    for order in (list(APPS), list(reversed(APPS))):
        for name in order:
            server = Gunicorn(f"bench.schema_libs:create_app('{name}')", {}, SERVER_OPTIONS)
            try:
                server.wait("/console/ready")
                _load(server.port, path, _bodies(300), lambda i: headers, CLIENTS)
                passes[name].append(_measured(server, lambda: _load(server.port, path, _bodies(count),
                                                                    lambda i: headers, CLIENTS)))
            finally:
                server.stop()
    out: dict[str, Any] = {}
    for name, runs in passes.items():
        out[name] = {
            "per_second": round(statistics.fmean(r["per_second"] for r in runs), 1),
            "p50_ms": round(statistics.fmean(r["p50_ms"] for r in runs), 2),
            "p95_ms": round(statistics.fmean(r["p95_ms"] for r in runs), 2),
            "app_cpu_ms_per_request": round(statistics.fmean(
                r.get("cpu_ms_per_request", {}).get("app_workers", 0.0) for r in runs), 3),
            "results": [r["results"] for r in runs], "errors": sum(r["errors"] for r in runs),
            "load_average_after": [r.get("load_average_after") for r in runs],
        }
    base = out["baseline"]
    for result in out.values():
        result["throughput_ratio_vs_baseline"] = round(base["per_second"] / result["per_second"], 2)
        if base["app_cpu_ms_per_request"]:
            result["app_cpu_ratio_vs_baseline"] = round(result["app_cpu_ms_per_request"]
                                                        / base["app_cpu_ms_per_request"], 2)
    return {"server": " ".join(SERVER_OPTIONS), "clients": CLIENTS, "requests_per_pass": count, **out}


def _versions() -> dict[str, str]:
    from importlib.metadata import version

    return {pkg: version(pkg) for pkg in ("flask", "flask-smorest", "marshmallow", "webargs", "apispec",
                                         "spectree", "pydantic", "pydantic-core")}


def run(scale: float) -> dict:
    requests_ = max(BATCH, int(int(os.environ.get("BENCH_SCHEMA_REQUESTS", "3000")) * scale))
    rounds = int(os.environ.get("BENCH_SCHEMA_ROUNDS", "9"))
    apps = {name: make() for name, make in APPS.items()}
    result: dict[str, Any] = {"versions": _versions(), "checks": _checks(apps), "openapi": _openapi(apps)}
    result["in_process"] = _in_process(apps, requests_, rounds)
    if os.environ.get("BENCH_SCHEMA_HTTP", "1") != "0":
        count = max(2000, int(int(os.environ.get("BENCH_SCHEMA_HTTP_REQUESTS", "15000")) * scale))
        result["gunicorn"] = _over_gunicorn(count)
    result["note"] = ("schema_only_us: JSON body -> validated input and answer -> JSON bytes, no Flask. "
                      "in_process_us: a whole request through the Flask test client. Both in CPU time of "
                      "this process, medians over rounds. gunicorn: app_cpu_ms_per_request is the figure "
                      "that other load on the shared machine disturbs least.")
    return result


if __name__ == "__main__":  # python -m bench.schema_libs
    print(json.dumps(run(float(os.environ.get("BENCH_SCALE", "1"))), indent=2, default=str))
