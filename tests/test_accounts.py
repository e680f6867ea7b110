"""Accounts over REST against a real hub: registration, login, refresh-token families,
logout, biometric login, the shared login rate limit, profiles and public keys."""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import nacl.signing
import orjson
import pytest
import pytest_asyncio

from hub.accounts.views import (
    BiometricChallengeView,
    BiometricKeyView,
    ProfileView,
    PublicKeyView,
    SessionView,
)
from tests.support import Account, Api, HubNode, Phone, seal, start_hub_node

PASSWORD = "correct horse battery"


@pytest.fixture
def api(hub_node: HubNode) -> Api:
    return Api(hub_node.url)


@pytest_asyncio.fixture
async def strict_api(test_env: Any, tmp_path: Path) -> AsyncIterator[Api]:
    """A hub without the refresh retry grace: a spent token is refused at once."""
    node = await start_hub_node(
        test_env.hub_env(REFRESH_REUSE_GRACE_SECONDS="0"), tmp_path / "strict", "strict"
    )
    try:
        yield Api(node.url)
    finally:
        await node.stop()


def unique_email(stem: str = "user") -> str:
    return f"{stem}-{uuid.uuid4().hex[:8]}@example.com"


def assert_session(body: Any, *, with_user: bool = True) -> None:
    SessionView.model_validate(body)
    assert ("user" in body) is with_user, body  # a refresh answers no user (not null)
    assert isinstance(body["accessToken"], str) and body["accessToken"]
    assert isinstance(body["refreshToken"], str) and body["refreshToken"]
    assert isinstance(body["expiresAt"], int) and body["expiresAt"] > time.time() * 1000
    if with_user:
        assert set(body["user"]) == {"id", "email", "name"}
        uuid.UUID(body["user"]["id"])


def assert_no_secrets(body: Any, *secrets: str) -> None:
    """No password, bcrypt hash or token digest ever leaves the hub."""
    text = orjson.dumps(body).decode()
    assert "$2b$" not in text and "$2a$" not in text and "$2y$" not in text
    assert "hash" not in text.lower()
    for secret in (PASSWORD, *secrets):
        assert secret not in text


def assert_invalid_payload(status: int, body: Any) -> None:
    assert status == 400, body
    assert body["error"]["code"] == "invalid_payload"
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]


async def register(api: Api, email: str, password: str = PASSWORD, name: str = "Ada") -> Any:
    return await api.request(
        "POST", "/api/auth/register", json={"email": email, "password": password, "name": name}
    )


async def login(api: Api, email: str, password: str = PASSWORD) -> tuple[int, Any]:
    return await api.request("POST", "/api/auth/login", json={"email": email, "password": password})


async def refresh(api: Api, token: str) -> tuple[int, Any]:
    return await api.request("POST", "/api/auth/refresh", json={"refreshToken": token})


async def login_with_headers(
    base_url: str, email: str, password: str
) -> tuple[int, Any, dict[str, str]]:
    async with (
        aiohttp.ClientSession() as http,
        http.post(
            base_url + "/api/auth/login", json={"email": email, "password": password}
        ) as response,
    ):
        return response.status, await response.json(), dict(response.headers)


# Registration and login.


async def test_register_returns_tokens_and_the_public_user(api: Api) -> None:
    email = unique_email("ada")
    status, body = await register(api, email, name="  Ada Lovelace ")
    assert status == 201, body
    assert_session(body)
    assert body["user"]["email"] == email and body["user"]["name"] == "Ada Lovelace"
    assert_no_secrets(body)
    status, me = await api.request(
        "GET", f"/api/users/{body['user']['id']}", token=body["accessToken"]
    )
    assert status == 200 and me["email"] == email
    assert_no_secrets(me)


async def test_duplicate_email_is_a_conflict_whatever_the_case(api: Api) -> None:
    email = unique_email("Dup")
    assert (await register(api, email))[0] == 201
    local, domain = email.split("@")
    status, body = await register(api, f"{local.lower()}@{domain.upper()}")
    assert status == 409 and body["error"]["code"] == "conflict"
    status, body = await register(api, email.upper())
    assert status == 409 and body["error"]["code"] == "conflict"


@pytest.mark.parametrize(
    "payload",
    [
        {"email": "not-an-email", "password": PASSWORD, "name": "Ada"},
        {"email": "a@example.com", "password": "short", "name": "Ada"},
        {"email": "a@example.com", "password": PASSWORD, "name": "   "},
        {"email": "a@example.com", "password": PASSWORD, "name": "Ada", "role": "admin"},
        {"email": 12345, "password": PASSWORD, "name": "Ada"},
        {"email": "a@example.com", "password": 12345678, "name": "Ada"},
        {"email": "a@example.com", "password": PASSWORD, "name": ["Ada"]},
        {"email": "a@example.com", "password": PASSWORD},
    ],
    ids=[
        "bad-email",
        "short-password",
        "blank-name",
        "unknown-key",
        "email-not-string",
        "password-not-string",
        "name-not-string",
        "missing-name",
    ],
)
async def test_register_refuses_a_bad_payload(api: Api, payload: dict[str, Any]) -> None:
    status, body = await api.request("POST", "/api/auth/register", json=payload)
    assert_invalid_payload(status, body)
    password = payload.get("password")
    assert_no_secrets(body, *([password] if isinstance(password, str) else []))


async def test_register_refuses_a_body_that_is_not_a_json_object(api: Api) -> None:
    assert_invalid_payload(*await api.request("POST", "/api/auth/register", json=["x"]))
    async with (
        aiohttp.ClientSession() as http,
        http.post(api.base_url + "/api/auth/register", data=b"{not json") as response,
    ):
        assert_invalid_payload(response.status, await response.json())


async def test_login_returns_tokens_and_accepts_any_email_case(api: Api) -> None:
    email = unique_email("grace")
    _, registered = await register(api, email, name="Grace")
    status, body = await login(api, email)
    assert status == 200, body
    assert_session(body)
    assert body["user"] == registered["user"]
    assert_no_secrets(body)
    status, body = await login(api, email.upper())
    assert status == 200 and body["user"]["id"] == registered["user"]["id"]


async def test_wrong_password_and_unknown_email_get_the_same_answer(api: Api) -> None:
    email = unique_email("ken")
    await register(api, email)
    wrong_status, wrong = await login(api, email, "not the password")
    unknown_status, unknown = await login(api, unique_email("nobody"))
    assert wrong_status == unknown_status == 401
    assert wrong == unknown
    assert wrong["error"]["code"] == "unauthorized"


# Refresh-token families.


async def test_refresh_rotates_and_the_spent_token_is_refused(strict_api: Api) -> None:
    api = strict_api
    _, first = await register(api, unique_email())
    status, second = await refresh(api, first["refreshToken"])
    assert status == 200, second
    assert_session(second, with_user=False)
    assert second["refreshToken"] != first["refreshToken"]
    status, me = await api.request(
        "GET", f"/api/users/{first['user']['id']}", token=second["accessToken"]
    )
    assert status == 200 and me["id"] == first["user"]["id"]
    status, third = await refresh(api, second["refreshToken"])
    assert status == 200, third
    status, refused = await refresh(api, second["refreshToken"])
    assert status == 401 and refused["error"]["code"] == "unauthorized"


async def test_replaying_a_spent_refresh_token_revokes_its_whole_family(
    strict_api: Api,
) -> None:
    api = strict_api
    email = unique_email()
    _, family_a = await register(api, email)
    _, family_b = await login(api, email)
    status, rotated = await refresh(api, family_a["refreshToken"])
    assert status == 200
    status, newest = await refresh(api, rotated["refreshToken"])
    assert status == 200

    status, replay = await refresh(api, family_a["refreshToken"])  # a stolen, spent token
    assert status == 401 and replay["error"]["details"]["reason"] == "token_reused"
    status, _ = await refresh(api, newest["refreshToken"])
    assert status == 401, "the family's newest token must die with it"

    status, other = await refresh(api, family_b["refreshToken"])
    assert status == 200, "another login's family is untouched"
    assert (await refresh(api, other["refreshToken"]))[0] == 200


async def test_access_and_refresh_tokens_are_not_interchangeable(api: Api) -> None:
    _, session = await register(api, unique_email())
    status, body = await refresh(api, session["accessToken"])
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await api.request(
        "GET", f"/api/users/{session['user']['id']}", token=session["refreshToken"]
    )
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await refresh(api, "garbage")
    assert status == 401


# Logout.


async def test_logout_closes_only_this_device(api: Api) -> None:
    email = unique_email()
    _, phone = await register(api, email)
    _, laptop = await login(api, email)
    status, _ = await api.request(
        "POST",
        "/api/auth/logout",
        token=phone["accessToken"],
        json={"refreshToken": laptop["refreshToken"]},  # ignored: older apps send their own
    )
    assert status == 204
    assert (await refresh(api, phone["refreshToken"]))[0] == 401
    assert (await refresh(api, laptop["refreshToken"]))[0] == 200


async def test_logout_all_closes_every_login(api: Api) -> None:
    email = unique_email()
    _, phone = await register(api, email)
    _, laptop = await login(api, email)
    _, laptop = await refresh(api, laptop["refreshToken"])
    status, _ = await api.request(
        "POST", "/api/auth/logout", token=phone["accessToken"], json={"all": True}
    )
    assert status == 204
    assert (await refresh(api, phone["refreshToken"]))[0] == 401
    assert (await refresh(api, laptop["refreshToken"]))[0] == 401


async def test_logout_needs_a_bearer_token_and_closes_only_its_own_session(api: Api) -> None:
    _, mine = await register(api, unique_email())
    _, theirs = await register(api, unique_email())
    status, body = await api.request(
        "POST", "/api/auth/logout", json={"refreshToken": mine["refreshToken"]}
    )
    assert status == 401 and body["error"]["code"] == "unauthorized"
    status, body = await api.request(
        "POST",
        "/api/auth/logout",
        token=theirs["accessToken"],
        json={"refreshToken": mine["refreshToken"]},
    )
    assert status == 204, body
    assert (await refresh(api, mine["refreshToken"]))[0] == 200, "nobody closes another's login"
    assert (await refresh(api, theirs["refreshToken"]))[0] == 401


# Biometric login.


async def add_biometric_key(api: Api, session: Any, key: nacl.signing.SigningKey) -> str:
    status, body = await api.request(
        "POST",
        "/api/auth/biometric/keys",
        token=session["accessToken"],
        json={
            "publicKey": base64.b64encode(bytes(key.verify_key)).decode(),
            "deviceName": "Pixel 9",
        },
    )
    assert status == 201, body
    BiometricKeyView.model_validate(body)
    return str(body["keyId"])


async def challenge_for(api: Api, key_id: str) -> Any:
    status, body = await api.request(
        "POST", "/api/auth/biometric/challenge", json={"keyId": key_id}
    )
    assert status == 200, body
    BiometricChallengeView.model_validate(body)
    assert set(body) == {"challengeId", "challenge", "expiresAt"}
    return body


def sign(key: nacl.signing.SigningKey, challenge: Any) -> str:
    signature = key.sign(base64.b64decode(challenge["challenge"])).signature
    return base64.b64encode(signature).decode()


async def biometric_login(api: Api, challenge_id: str, signature: str) -> tuple[int, Any]:
    return await api.request(
        "POST",
        "/api/auth/biometric",
        json={"challengeId": challenge_id, "signature": signature},
    )


async def test_biometric_login_with_a_signed_challenge(api: Api) -> None:
    _, session = await register(api, unique_email())
    key = nacl.signing.SigningKey.generate()
    key_id = await add_biometric_key(api, session, key)
    challenge = await challenge_for(api, key_id)
    assert len(base64.b64decode(challenge["challenge"])) == 32
    status, body = await biometric_login(api, challenge["challengeId"], sign(key, challenge))
    assert status == 200, body
    assert_session(body)
    assert body["user"]["id"] == session["user"]["id"]
    assert_no_secrets(body)
    assert (await refresh(api, body["refreshToken"]))[0] == 200

    status, _ = await biometric_login(api, challenge["challengeId"], sign(key, challenge))
    assert status == 401, "a challenge is single-use"


async def test_biometric_login_refuses_wrong_or_foreign_signatures(api: Api) -> None:
    _, session = await register(api, unique_email())
    key = nacl.signing.SigningKey.generate()
    key_id = await add_biometric_key(api, session, key)

    challenge = await challenge_for(api, key_id)
    wrong = base64.b64encode(key.sign(b"something else").signature).decode()
    status, body = await biometric_login(api, challenge["challengeId"], wrong)
    assert status == 401 and body["error"]["code"] == "unauthorized"

    challenge = await challenge_for(api, key_id)
    stranger = nacl.signing.SigningKey.generate()
    status, body = await biometric_login(api, challenge["challengeId"], sign(stranger, challenge))
    assert status == 401 and body["error"]["code"] == "unauthorized"

    status, body = await biometric_login(api, str(uuid.uuid4()), sign(key, challenge))
    assert status == 401, "an unknown challenge id"


async def test_biometric_keys_need_a_bearer_token_and_a_real_key(api: Api) -> None:
    _, session = await register(api, unique_email())
    key = nacl.signing.SigningKey.generate()
    public = base64.b64encode(bytes(key.verify_key)).decode()
    status, _ = await api.request(
        "POST", "/api/auth/biometric/keys", json={"publicKey": public, "deviceName": "x"}
    )
    assert status == 401
    status, body = await api.request(
        "POST",
        "/api/auth/biometric/keys",
        token=session["accessToken"],
        json={"publicKey": base64.b64encode(b"short").decode(), "deviceName": "x"},
    )
    assert_invalid_payload(status, body)
    await add_biometric_key(api, session, key)
    status, body = await api.request(
        "POST",
        "/api/auth/biometric/keys",
        token=session["accessToken"],
        json={"publicKey": public, "deviceName": "again"},
    )
    assert status == 409


async def test_a_removed_biometric_key_no_longer_logs_in(api: Api) -> None:
    _, session = await register(api, unique_email())
    _, other = await register(api, unique_email())
    key = nacl.signing.SigningKey.generate()
    key_id = await add_biometric_key(api, session, key)
    challenge = await challenge_for(api, key_id)
    status, _ = await api.request(
        "DELETE", f"/api/auth/biometric/keys/{key_id}", token=other["accessToken"]
    )
    assert status == 404, "only the owner may remove a key"
    status, body = await api.request(
        "DELETE", "/api/auth/biometric/keys/not-a-uuid", token=session["accessToken"]
    )
    assert_invalid_payload(status, body)
    status, _ = await api.request(
        "DELETE", f"/api/auth/biometric/keys/{key_id}", token=session["accessToken"]
    )
    assert status == 204
    status, _ = await biometric_login(api, challenge["challengeId"], sign(key, challenge))
    assert status == 401


async def test_an_expired_biometric_challenge_is_refused(test_env: Any, tmp_path: Path) -> None:
    node = await start_hub_node(
        test_env.hub_env(BIOMETRIC_CHALLENGE_SECONDS="5"), tmp_path / "node-a", "node-a"
    )
    try:
        api = Api(node.url)
        _, session = await register(api, unique_email())
        key = nacl.signing.SigningKey.generate()
        key_id = await add_biometric_key(api, session, key)
        fresh = await challenge_for(api, key_id)
        assert fresh["expiresAt"] - time.time() * 1000 <= 5_500
        status, _ = await biometric_login(api, fresh["challengeId"], sign(key, fresh))
        assert status == 200, "a challenge inside its lifetime works"

        stale = await challenge_for(api, key_id)
        await asyncio.sleep(max(0.0, stale["expiresAt"] / 1000 - time.time()) + 0.5)
        status, body = await biometric_login(api, stale["challengeId"], sign(key, stale))
        assert status == 401 and body["error"]["details"]["reason"] == "challenge"
    finally:
        await node.stop()


# The login rate limit is counted in Redis, so it holds on every node.


async def test_login_rate_limit_per_account_holds_across_nodes(
    test_env: Any, tmp_path: Path
) -> None:
    env = test_env.hub_env(LOGIN_ATTEMPTS_PER_ACCOUNT="3", LOGIN_ATTEMPTS_PER_IP="50")
    node_a, node_b = await asyncio.gather(
        start_hub_node(env, tmp_path / "node-a", "node-a"),
        start_hub_node(env, tmp_path / "node-b", "node-b"),
    )
    try:
        api = Api(node_a.url)
        email = unique_email("target")
        other = unique_email("bystander")
        assert (await register(api, email))[0] == 201
        assert (await register(api, other))[0] == 201
        for _ in range(3):
            assert (await login(api, email, "guess"))[0] == 401
        for node in (node_a, node_b):
            status, body, headers = await login_with_headers(node.url, email, PASSWORD)
            assert status == 429, (node.name, body)
            assert body["error"]["code"] == "rate_limited"
            assert int(headers["Retry-After"]) >= 1
            assert body["error"]["details"]["retryAfter"] == int(headers["Retry-After"])
        status, body, _ = await login_with_headers(node_b.url, email.upper(), PASSWORD)
        assert status == 429, "the account is counted whatever the email's case"
        status, _, _ = await login_with_headers(node_b.url, other, PASSWORD)
        assert status == 200, "other accounts from the same address still log in"
    finally:
        await asyncio.gather(node_a.stop(), node_b.stop())


async def test_a_successful_login_clears_the_account_counter(test_env: Any, tmp_path: Path) -> None:
    env = test_env.hub_env(LOGIN_ATTEMPTS_PER_ACCOUNT="3", LOGIN_ATTEMPTS_PER_IP="50")
    node = await start_hub_node(env, tmp_path / "node-a", "node-a")
    try:
        api = Api(node.url)
        email = unique_email()
        await register(api, email)
        for _ in range(2):
            assert (await login(api, email, "guess"))[0] == 401
        assert (await login(api, email))[0] == 200
        for _ in range(2):
            assert (await login(api, email, "guess"))[0] == 401
        assert (await login(api, email))[0] == 200
    finally:
        await node.stop()


# Profiles and public keys.


async def test_profile_shows_the_email_to_its_owner_only(api: Api) -> None:
    alice, bob = await api.register_many("alice", "bob")
    status, own = await api.request("GET", f"/api/users/{alice.id}", token=alice.access_token)
    assert status == 200
    assert own == {
        "id": alice.id,
        "name": alice.name,
        "email": alice.email,
        "publicKey": alice.public_key_b64,
    }
    status, seen = await api.request("GET", f"/api/users/{alice.id}", token=bob.access_token)
    assert status == 200
    assert seen == {"id": alice.id, "name": alice.name, "publicKey": alice.public_key_b64}
    ProfileView.model_validate(own)
    ProfileView.model_validate(seen)


async def test_only_the_owner_changes_a_profile(api: Api) -> None:
    alice, bob = await api.register_many("alice", "bob")
    status, body = await api.request(
        "PUT", f"/api/users/{alice.id}", token=bob.access_token, json={"name": "Mallory"}
    )
    assert status == 403 and body["error"]["code"] == "forbidden"
    status, body = await api.request(
        "PUT", f"/api/users/{alice.id}", token=alice.access_token, json={"name": " Alice B "}
    )
    assert status == 200 and body["name"] == "Alice B" and body["email"] == alice.email
    status, body = await api.request(
        "PUT", f"/api/users/{alice.id}", token=alice.access_token, json={"name": "   "}
    )
    assert_invalid_payload(status, body)
    status, body = await api.request(
        "PUT", f"/api/users/{alice.id}", token=alice.access_token, json={"role": "admin"}
    )
    assert_invalid_payload(status, body)


async def test_only_the_owner_sets_a_public_key_and_it_must_be_32_bytes(api: Api) -> None:
    alice, bob = await api.register_many("alice", "bob")
    key = base64.b64encode(bytes(32)).decode()
    status, body = await api.request(
        "PUT", f"/api/users/{alice.id}/public-key", token=bob.access_token, json={"publicKey": key}
    )
    assert status == 403 and body["error"]["code"] == "forbidden"
    for bad in (base64.b64encode(bytes(31)).decode(), "not base64 at all!", 32):
        status, body = await api.request(
            "PUT",
            f"/api/users/{alice.id}/public-key",
            token=alice.access_token,
            json={"publicKey": bad},
        )
        assert_invalid_payload(status, body)
    status, body = await api.request(
        "GET", f"/api/users/{alice.id}/public-key", token=bob.access_token
    )
    assert status == 200
    PublicKeyView.model_validate(body)
    assert body["userId"] == alice.id and body["publicKey"] == alice.public_key_b64
    assert isinstance(body["updatedAt"], int)


async def test_public_key_of_a_user_without_one_is_not_found(api: Api) -> None:
    alice = await api.register("alice")
    keyless = await api.register("keyless", with_key=False)
    status, body = await api.request(
        "GET", f"/api/users/{keyless.id}/public-key", token=alice.access_token
    )
    assert status == 404 and body["error"]["code"] == "not_found"
    status, body = await api.request("GET", f"/api/users/{uuid.uuid4()}", token=alice.access_token)
    assert status == 404 and body["error"]["code"] == "not_found"


async def test_user_routes_need_a_token_and_a_uuid(api: Api) -> None:
    alice = await api.register("alice")
    for method, path in (
        ("GET", f"/api/users/{alice.id}"),
        ("GET", f"/api/users/{alice.id}/public-key"),
        ("PUT", f"/api/users/{alice.id}"),
    ):
        status, body = await api.request(method, path, json={} if method == "PUT" else None)
        assert status == 401 and body["error"]["code"] == "unauthorized", path
    status, body = await api.request(
        "GET", f"/api/users/{alice.id}", token=alice.access_token + "x"
    )
    assert status == 401
    for path in ("/api/users/not-a-uuid", "/api/users/not-a-uuid/public-key"):
        status, body = await api.request("GET", path, token=alice.access_token)
        assert_invalid_payload(status, body)


async def change_key(api: Api, account: Account) -> str:
    account.keys = type(account.keys).generate()
    status, body = await api.request(
        "PUT",
        f"/api/users/{account.id}/public-key",
        token=account.access_token,
        json={"publicKey": account.public_key_b64},
    )
    assert status == 200, body
    return account.public_key_b64


async def test_key_change_reaches_conversation_partners_only(hub_node: HubNode, api: Api) -> None:
    alice, bob, stranger = await api.register_many("alice", "bob", "stranger")
    alice_phone = await Phone(alice).connect(hub_node.url)
    bob_phone = await Phone(bob).connect(hub_node.url)
    stranger_phone = await Phone(stranger).connect(hub_node.url)
    try:
        ack = await alice_phone.call(
            "message:send", {"id": str(uuid.uuid4()), "to": bob.id, **seal(alice, bob, "hey")}
        )
        assert ack["ok"], ack
        await bob_phone.next("message:new")
        # A request is not a contact yet: keys:changed flows once bob accepts it.
        status, _ = await api.request(
            "POST", f"/api/messages/requests/{alice.id}/accept", token=bob.access_token
        )
        assert status == 204
        await alice_phone.next("contact:accepted")

        new_key = await change_key(api, alice)
        changed = await bob_phone.next("keys:changed")
        assert changed["userId"] == alice.id and changed["publicKey"] == new_key
        status, stored = await api.request(
            "GET", f"/api/users/{alice.id}/public-key", token=bob.access_token
        )
        assert status == 200 and changed["ts"] == stored["updatedAt"]
        await asyncio.sleep(0.5)
        assert stranger_phone.pending("keys:changed") == 0
        assert bob_phone.pending("keys:changed") == 0
    finally:
        for phone in (alice_phone, bob_phone, stranger_phone):
            await phone.close()
