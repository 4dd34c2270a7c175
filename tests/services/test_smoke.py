from tests.conftest import login


def test_member_login_lands_on_portal(client, staff):
    response = login(client, "member@test.org")
    assert response.status_code == 302
    assert response.headers["Location"] == "/"
    assert "member@test.org" in client.get("/").get_data(as_text=True)


def test_console_requires_login_and_staff(client, staff):
    anonymous = client.get("/admin/")
    assert anonymous.status_code == 302 and "/login" in anonymous.headers["Location"]
    login(client, "member@test.org")
    assert client.get("/admin/").status_code == 403


def test_staff_login_lands_on_console(client, staff):
    response = login(client, "coord@test.org")
    assert response.headers["Location"] == "/admin/"
    assert client.get("/admin/").status_code == 200
