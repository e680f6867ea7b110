"""What the schemathesis run (tests/test_openapi.py) found, kept as plain regression tests."""

from __future__ import annotations

from tests.support import Api


async def test_login_with_a_password_longer_than_bcrypt_reads_is_refused_not_a_500(hub_node):
    api = Api(hub_node.url)
    account = await api.register("alice", with_key=False)
    for password in ("p" * 73, "é" * 40, "correct horse battery" + "x" * 60):
        status, body = await api.request(
            "POST", "/api/auth/login", json={"email": account.email, "password": password}
        )
        assert status == 401 and body["error"]["code"] == "unauthorized", (password, body)
    status, _ = await api.request(
        "POST",
        "/api/auth/login",
        json={"email": account.email, "password": "correct horse battery"},
    )
    assert status == 200


async def test_nul_characters_are_refused_before_they_reach_postgresql(hub_node):
    api = Api(hub_node.url)
    alice = await api.register("alice", with_key=False)
    status, body = await api.request(
        "PUT", f"/api/users/{alice.id}", token=alice.access_token, json={"name": "a\u0000b"}
    )
    assert status == 400 and body["error"]["code"] == "invalid_payload"
    status, body = await api.request("GET", "/api/bands?cursor=%00", token=alice.access_token)
    assert status == 400
