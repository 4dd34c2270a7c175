from tests.conftest import login


def test_login_page_then_portal(client, staff):
    response = login(client, "member@test.org")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "member@test.org" in client.get("/").get_data(as_text=True)
