"""Fixtures for the file storage tests: a real S3 endpoint (moto's server mode) and both backends.

``moto_server`` serves S3 over HTTP on 127.0.0.1 (a free port) for the test
session. ``s3_storage`` creates a fresh bucket and makes it the app's
storage the way an operator would: MUSTER_STORAGE_URL, MUSTER_S3_ENDPOINT_URL
and the AWS_* variables in the environment, read by the Config, built by
``build_storage``. ``any_storage`` runs a test once on each backend.

tests/conftest.py loads this module as a plugin, so every test may ask for
these fixtures; ``object_bytes`` and ``object_keys`` read a backend around
Muster's interface (S3: boto3 directly) to check what it really holds.
"""

from __future__ import annotations

import uuid

import pytest

from app.config import TestConfig
from app.services import storage
from app.services.storage.local import LocalStorage


@pytest.fixture(scope="session")
def moto_server():
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


def s3_client(endpoint: str):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
                        aws_secret_access_key="testing")


@pytest.fixture()
def s3_storage(app, moto_server, monkeypatch):
    """The app's storage is a new bucket (with a prefix) on the moto server, for one test."""
    bucket = f"muster-{uuid.uuid4().hex[:12]}"
    s3_client(moto_server).create_bucket(Bucket=bucket)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("MUSTER_STORAGE_URL", f"s3://{bucket}/muster-files")
    monkeypatch.setenv("MUSTER_S3_ENDPOINT_URL", moto_server)
    backend = storage.build_storage(vars(TestConfig()), app.instance_path)
    monkeypatch.setitem(app.extensions, storage.EXTENSION, backend)
    backend.test_bucket = bucket
    backend.test_client = s3_client(moto_server)
    return backend


@pytest.fixture()
def local_storage(app, tmp_path, monkeypatch):
    """The app's storage is a fresh local folder, for one test."""
    backend = LocalStorage(tmp_path / "files", tmp_path / "scratch")
    monkeypatch.setitem(app.extensions, storage.EXTENSION, backend)
    return backend


@pytest.fixture(params=["local", "s3"])
def any_storage(request):
    """Each test using it runs twice: on a local folder, then on S3 (moto)."""
    return request.getfixturevalue("local_storage" if request.param == "local" else "s3_storage")


def object_bytes(backend, key: str) -> bytes:
    """What the backend itself holds under ``key``, read around Muster's interface (S3: boto3 directly)."""
    if isinstance(backend, LocalStorage):
        return (backend.root / key).read_bytes()
    answer = backend.test_client.get_object(Bucket=backend.test_bucket, Key=f"{backend.prefix}/{key}")
    return answer["Body"].read()


def object_keys(backend) -> set[str]:
    """Every key the backend holds."""
    if isinstance(backend, LocalStorage):
        if not backend.root.exists():
            return set()
        return {p.relative_to(backend.root).as_posix() for p in backend.root.rglob("*") if p.is_file()}
    answer = backend.test_client.list_objects_v2(Bucket=backend.test_bucket)
    prefix = f"{backend.prefix}/"
    return {o["Key"][len(prefix):] for o in answer.get("Contents", []) if o["Key"].startswith(prefix)}
