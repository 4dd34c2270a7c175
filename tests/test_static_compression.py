"""Static CSS and scripts are compressed for browsers that accept it (the portal's page weight); pages never are."""

from __future__ import annotations

import gzip
from pathlib import Path

STATIC = Path(__file__).resolve().parent.parent / "app" / "static"
CSS = "/static/vendor/bootstrap/bootstrap.min.css"
GZIP = {"Accept-Encoding": "gzip, deflate"}
BROWSER = {"Accept-Encoding": "gzip, deflate, br, zstd"}


def test_a_stylesheet_is_gzipped_for_a_browser_that_asks(client):
    response = client.get(CSS, headers=GZIP)
    assert response.status_code == 200 and response.headers["Content-Encoding"] == "gzip"
    body = response.get_data()
    original = (STATIC / "vendor/bootstrap/bootstrap.min.css").read_bytes()
    assert gzip.decompress(body) == original and len(body) < len(original) / 5
    assert int(response.headers["Content-Length"]) == len(body)
    assert "Accept-Encoding" in response.headers["Vary"] and response.mimetype == "text/css"
    etag = response.headers["ETag"]
    assert etag.endswith(':gzip"')

    # Revalidating the gzipped copy: 304, nothing sent again.
    again = client.get(CSS, headers={**GZIP, "If-None-Match": etag})
    assert again.status_code == 304 and again.get_data() == b""


def test_without_gzip_the_file_goes_as_it_is(client):
    response = client.get(CSS)
    assert response.status_code == 200 and "Content-Encoding" not in response.headers
    assert response.get_data() == (STATIC / "vendor/bootstrap/bootstrap.min.css").read_bytes()
    assert "Accept-Encoding" in response.headers["Vary"] and not response.headers["ETag"].endswith(':gzip"')
    refused = client.get(CSS, headers={"Accept-Encoding": "gzip;q=0, identity"})
    assert "Content-Encoding" not in refused.headers


def test_scripts_too_but_not_tiny_files_or_pages(client):
    script = client.get("/static/vendor/bootstrap/bootstrap.bundle.min.js", headers=GZIP)
    assert script.headers["Content-Encoding"] == "gzip"
    assert (STATIC / "js/api-reference.js").stat().st_size < 1024
    tiny = client.get("/static/js/api-reference.js", headers=GZIP)  # under 1 KB: not worth it
    assert tiny.status_code == 200 and "Content-Encoding" not in tiny.headers
    page = client.get("/", headers=GZIP)  # pages carry CSRF tokens: never compressed (BREACH)
    assert page.status_code == 200 and "Content-Encoding" not in page.headers
    assert client.get("/static/nothing-here.css", headers=GZIP).status_code == 404


def test_a_browser_that_takes_brotli_gets_brotli(client):
    import brotli

    response = client.get(CSS, headers=BROWSER)
    assert response.headers["Content-Encoding"] == "br" and response.headers["ETag"].endswith(':br"')
    assert brotli.decompress(response.get_data()) == (STATIC / "vendor/bootstrap/bootstrap.min.css").read_bytes()
    assert client.get(CSS, headers=BROWSER).get_data() == response.get_data()  # the kept copy
