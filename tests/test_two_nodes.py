"""Muster on two machines: a web node and a worker node sharing only PostgreSQL, Redis and S3.

Node A is gunicorn serving the app; node B is ``flask worker``. Each has an
instance folder of its own (nothing on one disk is seen by the other), and
they share what an operator would give them: DATABASE_URL (the test run's
PostgreSQL database), MUSTER_QUEUE_URL (Redis) and MUSTER_STORAGE_URL (a
bucket on moto's S3 server), with the same SECRET_KEY.

A caller uploads a sheet with a bad row to node A's API. The upload lands in
the bucket, node A only enqueues (the job is still queued when the 202
comes back, and no worker runs yet), node B starts, runs the import from
the bucket and writes its error report there, and the report downloads
from node A. Neither instance folder holds a file of the job.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
import redis
import requests

from app.extensions import db
from tests.conftest import PASSWORD
from tests.queue_support import ROOT, start_worker, stop
from tests.storage_fixtures import s3_client

REDIS_URL = "redis://127.0.0.1:6379/3"
SHEET = (b"first_name,last_name,ward,national_id\n"
         b"Ada,Banda,W1,123456/10/1\nBo,Phiri,W1,223456/10/1\nCy,,W1,323456/10/1\n")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _needs_postgres_and_redis() -> None:
    if db.engine.dialect.name != "postgresql":
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("REQUIRE_POSTGRES=1 but the tests do not run on PostgreSQL", pytrace=False)
        pytest.skip("two nodes share a real database: set TEST_DATABASE_URL to PostgreSQL")
    redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2).flushdb()  # fails loudly without Redis


def _node_env(app, tmp_path, name: str, bucket: str, moto: str, port: int) -> dict[str, str]:
    instance = tmp_path / name
    instance.mkdir()
    return {
        "MUSTER_INSTANCE_DIR": str(instance), "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "MUSTER_QUEUE_URL": REDIS_URL, "MUSTER_STORAGE_URL": f"s3://{bucket}/muster",
        "MUSTER_S3_ENDPOINT_URL": moto, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1", "SECRET_KEY": "two-nodes-shared-secret",
        "MUSTER_PUBLIC_URL": f"http://127.0.0.1:{port}",
    }


def _start_web(env: dict[str, str], port: int) -> subprocess.Popen:
    full = {**os.environ, "PYTHONUNBUFFERED": "1", **env}
    for name in ("FLASK_APP", "MUSTER_QUEUE_IMMEDIATE"):
        full.pop(name, None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--workers", "1", "--threads", "2", "--bind", f"127.0.0.1:{port}",
         "wsgi:app"], cwd=ROOT, env=full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError("the web node exited:\n" + proc.stdout.read())
        try:  # the first request builds the OpenAPI document: slow on a busy machine, so wait for it
            requests.get(f"http://127.0.0.1:{port}/api/v1/openapi.json", timeout=30)
            return proc
        except (requests.ConnectionError, requests.Timeout):
            time.sleep(0.2)
    stop(proc)
    raise AssertionError("the web node did not answer within a minute")


def _files_under(folder) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and "files" in p.parts)


def test_an_import_posted_to_the_web_node_runs_on_the_worker_node(committing_app, staff, tree, tmp_path,
                                                                   moto_server):
    _needs_postgres_and_redis()
    db.session.commit()  # the staff and the wards, for both nodes to see
    bucket = f"two-nodes-{uuid.uuid4().hex[:10]}"
    s3 = s3_client(moto_server)
    s3.create_bucket(Bucket=bucket)
    port = _free_port()
    web_env = _node_env(committing_app, tmp_path, "node-a", bucket, moto_server, port)
    worker_env = _node_env(committing_app, tmp_path, "node-b", bucket, moto_server, port)
    base = f"http://127.0.0.1:{port}/api/v1"

    web = _start_web(web_env, port)
    worker = None
    try:
        token = requests.post(f"{base}/auth/token", json={"email": "admin@test.org", "password": PASSWORD},
                              timeout=10).json()["token"]
        auth = {"Authorization": f"Bearer {token}"}
        posted = requests.post(f"{base}/members/imports", headers=auth, timeout=30,
                               files={"file": ("people with errors.csv", SHEET, "text/csv")})
        assert posted.status_code == 202, posted.text
        job = posted.json()["job"]
        assert job["status"] == "queued"  # the web node only enqueued: no worker is running yet
        assert posted.headers["Location"] == f"/api/v1/jobs/{job['id']}"
        uploaded = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
        assert uploaded and all(key.startswith("muster/") for key in uploaded)

        worker = start_worker(worker_env, "--workers", "1")
        deadline = time.monotonic() + 90
        while True:
            job = requests.get(f"{base}/jobs/{job['id']}", headers=auth, timeout=10).json()["job"]
            if job["status"] in ("done", "failed"):
                break
            assert worker.poll() is None, "the worker node exited:\n" + worker.stdout.read()
            assert time.monotonic() < deadline, f"the import did not finish on the worker node: {job}"
            time.sleep(0.2)
        assert job["status"] == "done", job
        assert (job["done"], job["errors"]) == (3, 1) and job["result"]["new"] == 2
        (report,) = job["files"]
        download = requests.get(f"{base}/jobs/{job['id']}/files/{report['name']}", headers=auth, timeout=10)
        assert download.status_code == 200 and download.headers["Content-Type"].startswith("text/csv")
        assert b"Cy" in download.content and b"last_name" in download.content
    finally:
        outputs = {"web": stop(web), "worker": stop(worker) if worker else ""}

    assert "Executing" not in outputs["web"], outputs["web"]  # web processes never execute tasks
    assert "Executing app.tasks.jobs.jobs.run" in outputs["worker"], outputs["worker"]
    assert _files_under(tmp_path / "node-a") == [] and _files_under(tmp_path / "node-b") == []
    stored = {o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])}
    assert any(key.startswith(f"muster/jobs/{job['id']}/") for key in stored), stored
