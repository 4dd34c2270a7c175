"""/api/docs in a real browser: Swagger UI draws the generated document, offline, under the page's CSP."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.browser


def test_the_api_reference_renders_the_document(live_server, page):
    refused: list[str] = []
    page.on("console", lambda msg: refused.append(msg.text) if "Content Security Policy" in msg.text else None)
    elsewhere: list[str] = []
    page.on("request", lambda request: None if request.url.startswith(live_server)
            else elsewhere.append(request.url))

    page.goto(f"{live_server}/api/docs")
    page.wait_for_selector(".opblock-summary-path")

    paths = page.locator(".opblock-summary-path").all_inner_texts()
    assert "/members" in paths and "/events/{event_id}/checkin" in paths
    assert "Muster API" in page.locator(".info .title").inner_text()
    operation = page.locator(".opblock[id$='list_members']")  # Swagger UI's id: the tag and the operationId
    operation.locator(".opblock-summary").click()
    assert "per_page" in operation.locator(".parameters").inner_text()
    assert refused == [] and elsewhere == []
