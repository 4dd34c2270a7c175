"""A chunked body (no Content-Length) over the size limit answers 413, as a declared one does (issue 8).

Tried three ways: the test client (with ``wsgi.input_terminated``, which real
servers set for chunked bodies), werkzeug's server in a thread, and gunicorn
in a subprocess, both spoken to with http.client sending real chunks. A body
at the limit is still read whole: a JSON array of exactly the limit's size is
parsed (and refused as "not an object"), where a cut one would be "not valid JSON".
"""

from __future__ import annotations

import http.client
import io
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from werkzeug.serving import make_server

API_LIMIT = 2000
FORM_LIMIT = 4000
ROOT = Path(__file__).resolve().parent.parent


def _json_array(size: int) -> bytes:
    """A valid JSON array of exactly ``size`` bytes."""
    return b"[" + b'"' + b"a" * (size - 4) + b'"' + b"]"


def _chunks(body: bytes, size: int = 700):
    for start in range(0, len(body), size):
        yield body[start:start + size]


@pytest.fixture()
def small_limits(app, monkeypatch):
    monkeypatch.setitem(app.config, "API_MAX_BODY_BYTES", API_LIMIT)
    monkeypatch.setitem(app.config, "MAX_CONTENT_LENGTH", FORM_LIMIT)


def _chunked(client, path: str, body: bytes, content_type: str):
    return client.post(path, input_stream=io.BytesIO(body), content_type=content_type,
                       headers={"Transfer-Encoding": "chunked"},
                       environ_overrides={"wsgi.input_terminated": True})


def test_test_client_chunked_api_body_over_the_limit_is_413(client, small_limits):
    response = _chunked(client, "/api/v1/auth/token", _json_array(API_LIMIT + 1), "application/json")
    assert response.status_code == 413
    assert response.get_json()["error"] == "The request body is too large."


def test_test_client_chunked_api_body_at_the_limit_is_read_whole(client, small_limits):
    response = _chunked(client, "/api/v1/auth/token", _json_array(API_LIMIT), "application/json")
    assert response.status_code == 400
    assert response.get_json()["error"] == "The request body must be a JSON object."


def test_test_client_chunked_form_over_the_limit_is_413(client, small_limits):
    response = _chunked(client, "/login", b"email=" + b"a" * FORM_LIMIT, "application/x-www-form-urlencoded")
    assert response.status_code == 413


def _post_chunked(port: int, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        # An iterable body without Content-Length goes out as Transfer-Encoding: chunked.
        conn.request("POST", path, body=_chunks(body), headers={"Content-Type": content_type}, encode_chunked=True)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def _check_server(port: int) -> None:
    status, body = _post_chunked(port, "/api/v1/auth/token", _json_array(API_LIMIT + 500), "application/json")
    assert status == 413, body
    assert b"too large" in body
    status, body = _post_chunked(port, "/api/v1/auth/token", _json_array(API_LIMIT), "application/json")
    assert (status, b"must be a JSON object" in body) == (400, True), body
    status, body = _post_chunked(port, "/login", b"email=" + b"a" * (FORM_LIMIT + 500),
                                 "application/x-www-form-urlencoded")
    assert status == 413, body


def test_werkzeug_server_answers_413_to_chunked_bodies_over_the_limit(committing_app, small_limits):
    server = make_server("127.0.0.1", 0, committing_app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _check_server(server.server_port)
    finally:
        server.shutdown()
        thread.join(10)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_gunicorn_answers_413_to_chunked_bodies_over_the_limit(tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{tmp_path / 'muster.db'}",  # never reached: the body is refused first
        "MUSTER_INSTANCE_DIR": str(tmp_path / "instance"),
        "SECRET_KEY": "gunicorn-test",
        "MUSTER_API_MAX_BODY_BYTES": str(API_LIMIT),
        "MUSTER_MAX_UPLOAD_BYTES": str(FORM_LIMIT),
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    process = subprocess.Popen([str(gunicorn), "--bind", f"127.0.0.1:{port}", "--workers", "1", "wsgi:app"],
                               cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "gunicorn did not start"
                time.sleep(0.2)
        _check_server(port)
    finally:
        process.terminate()
        process.wait(10)
        process.stderr.close()
