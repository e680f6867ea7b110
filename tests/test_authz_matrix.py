"""Authorization matrix (issue 7): every REST route and every socket event, tried by a
stranger (registered, no relation), a former band member (removed over REST), and with bad
tokens (expired, forged, ``alg: none``, a refresh token, garbage).

Each attempt is refused with the documented status or code, and no answer (nor any event the
stranger or former member receives) carries anything of the others: no email, name, amount,
message, call, key, token or id they did not send themselves. REST routes come from the live
``/api/openapi.json`` and socket events from the hub's own tables, so a new route or event
fails ``test_every_route_and_event_has_a_case`` until it gets a row here, and is tried with
bad tokens at once.
"""

from __future__ import annotations

import base64
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlparse

import aiohttp
import jwt
import nacl.signing
import orjson
import pytest
import pytest_asyncio

from hub.app import SOCKET_TABLES
from tests.support import Account, Api, HubNode, Phone, seal
from tests.support.bands import create_band, create_gig
from tests.support.clients import PASSWORD
from tests.support.gateways import (
    BRAINTREE_PRIVATE_KEY,
    STRIPE_SECRET_KEY,
    STRIPE_WEBHOOK_SECRET,
    FakeGateways,
)
from tests.support.module_hub import shared_hub
from tests.support.servers import Servers
from tests.support.servers import TestEnv as HubEnv

ROLES = ("stranger", "former")
CODE_OF_STATUS = {400: "invalid_payload", 401: "unauthorized", 403: "forbidden", 404: "not_found"}
FEE = 7_654_321
OWNER_DEVICE = "owner-tablet"
PAID = 4_321_987


@dataclass
class Scene:
    """A band with its owner, a member and a removed member; its gig, split, payment, calls,
    messages and keys; and, apart, a stranger and a bystander."""

    env: HubEnv
    node: HubNode
    http: aiohttp.ClientSession
    owner: Account
    member: Account
    former: Account
    stranger: Account
    bystander: Account
    band_id: str = ""
    gig_id: str = ""
    payment_id: str = ""
    key_id: str = ""
    dm_id: str = ""
    band_message_id: str = ""
    live_call_id: str = ""
    attachment_id: str = ""  # bound to the direct message: the owner's and the member's
    band_attachment_id: str = ""  # the owner's upload for the band, not bound yet
    invitation_id: str = ""  # the bystander's pending invitation to the band
    dead_link: str = ""  # an invite link the owner withdrew
    signer: nacl.signing.SigningKey | None = None
    phones: dict[str, Phone] = field(default_factory=dict)
    # A second session (device "spare") of each actor, for the cases that end a session.
    spare_tokens: dict[str, str] = field(default_factory=dict)
    # What each of them must never see: label -> text.
    secrets: dict[str, dict[str, str]] = field(default_factory=dict)

    def actor(self, role: str) -> Account:
        return self.stranger if role == "stranger" else self.former


@dataclass(frozen=True)
class Answer:
    status: int
    text: str
    body: Any


async def rest(
    scene: Scene,
    method: str,
    path: str,
    *,
    token: str | None = None,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> Answer:
    sent = dict(headers or {})
    if token is not None:
        sent["Authorization"] = f"Bearer {token}"
    async with scene.http.request(
        method, scene.node.url + path, json=json, headers=sent
    ) as response:
        text = await response.text()
        text += "\n" + "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        body = await response.json() if response.content_type == "application/json" else None
        return Answer(response.status, text, body)


def leaks(answer_text: str, secrets: dict[str, str], request_text: str) -> list[str]:
    return [
        label
        for label, value in secrets.items()
        if value and value not in request_text and value in answer_text
    ]


def assert_no_leak(
    answer_text: str, secrets: dict[str, str], request_text: str, *, schema: bool = False
) -> None:
    """Nothing the caller did not send may come back; no password or hash field ever (the
    OpenAPI document, ``schema``, names the password field of the login body)."""
    leaked = leaks(answer_text, secrets, request_text)
    assert not leaked, f"leaked {leaked}: {answer_text[:2000]}"
    lowered = answer_text.lower()
    for key in (
        "passwordhash",
        "password_hash",
        "$2b$",
        "token_hash",
        *(() if schema else ('"password"',)),
    ):
        assert key not in lowered, answer_text[:2000]


# The scene.


async def send_band_message(phone: Phone, sender: Account, band_id: str, to: list[Account]) -> Any:
    envelopes = [{"to": r.id, **seal(sender, r, "band news")} for r in to]
    ack = await phone.call(
        "message:send", {"id": str(uuid.uuid4()), "band": band_id, "envelopes": envelopes}
    )
    assert ack["ok"] is True, ack
    return ack["id"], [e["ciphertext"] for e in envelopes]


async def upload_attachment(scene: Scene, uploader: Account, conversation: str, data: bytes) -> str:
    slot = await rest(
        scene,
        "POST",
        "/api/attachments",
        token=uploader.access_token,
        json={"size": len(data), "conversationId": conversation},
    )
    assert slot.status == 201, slot.text
    async with scene.http.put(
        slot.body["uploadUrl"], data=data, headers=slot.body["headers"]
    ) as response:
        assert response.status == 204, await response.text()
    return str(slot.body["id"])


async def build_scene(scene: Scene) -> None:
    api = Api(scene.node.url)
    owner, member, former = scene.owner, scene.member, scene.former
    tag = uuid.uuid4().hex[:10]
    band = await create_band(api, owner, member, former, name=f"Old Name {tag}")
    scene.band_id = band["id"]
    first_calendar = band["calendarUrl"]
    old_gig = await create_gig(api, owner, band["id"], venueName=f"Old Venue {tag}")
    owner_phone = await Phone(owner).connect(scene.node.url)
    member_phone = await Phone(member).connect(scene.node.url)
    scene.phones.update(owner=owner_phone, member=member_phone)
    old_message_id, old_ciphertexts = await send_band_message(
        owner_phone, owner, band["id"], [member, former]
    )

    # The former member leaves the scene; everything from here on is news to them.
    removed = await rest(
        scene, "DELETE", f"/api/bands/{band['id']}/members/{former.id}", token=owner.access_token
    )
    assert removed.status == 204, removed.text
    renamed = await rest(
        scene,
        "PUT",
        f"/api/bands/{band['id']}",
        token=owner.access_token,
        json={"name": f"Secret Name {tag}", "genre": f"Secret Genre {tag}"},
    )
    assert renamed.status == 200, renamed.text
    gig = await create_gig(
        api,
        owner,
        band["id"],
        venueName=f"Secret Venue {tag}",
        notes=f"Secret notes {tag}",
        locationAddress=f"Secret Street {tag}",
        feeAmount=FEE,
        currency="EUR",
    )
    scene.gig_id = gig["id"]
    invited = await rest(
        scene,
        "POST",
        f"/api/bands/{band['id']}/members",
        token=owner.access_token,
        json={"userId": scene.bystander.id},
    )
    assert invited.status == 201, invited.text
    scene.invitation_id = invited.body["invitation"]["id"]
    links = f"/api/bands/{band['id']}/invite-links"
    live_link = await rest(scene, "POST", links, token=owner.access_token, json={})
    dead_link = await rest(scene, "POST", links, token=owner.access_token, json={"maxUses": 1})
    assert live_link.status == dead_link.status == 201, dead_link.text
    scene.dead_link = dead_link.body["token"]
    withdrawn = await rest(scene, "DELETE", f"{links}/{scene.dead_link}", token=owner.access_token)
    assert withdrawn.status == 204, withdrawn.text
    dm = {"id": str(uuid.uuid4()), "to": member.id, **seal(owner, member, "just us")}
    assert (await owner_phone.call("message:send", dm))["ok"] is True
    scene.dm_id = dm["id"]
    scene.attachment_id = await upload_attachment(scene, owner, member.id, b"secret riff")
    attached = {
        "id": str(uuid.uuid4()),
        "to": member.id,
        **seal(owner, member, "riff attached"),
        "attachments": [scene.attachment_id],
    }
    assert (await owner_phone.call("message:send", attached))["ok"] is True
    scene.band_attachment_id = await upload_attachment(scene, owner, band["id"], b"setlist")
    scene.band_message_id, new_ciphertexts = await send_band_message(
        owner_phone, owner, band["id"], [member]
    )
    signer = scene.signer = nacl.signing.SigningKey.generate()
    verify_key = base64.b64encode(bytes(signer.verify_key)).decode()
    key = await rest(
        scene,
        "POST",
        "/api/auth/biometric/keys",
        token=owner.access_token,
        json={"publicKey": verify_key, "deviceName": "owner's phone"},
    )
    assert key.status == 201, key.text
    scene.key_id = key.body["keyId"]
    paid = await rest(
        scene,
        "POST",
        "/api/payments/stripe",
        token=member.access_token,
        json={"gigId": gig["id"], "amount": PAID, "currency": "EUR"},
        headers={"Idempotency-Key": f"pay-{tag}"},
    )
    assert paid.status == 201, paid.text
    scene.payment_id = paid.body["payment"]["id"]
    split = await rest(
        scene,
        "PUT",
        f"/api/gigs/{gig['id']}/split",
        token=owner.access_token,
        json={"mode": "equal"},
    )
    assert split.status == 200, split.text
    rotated = await rest(
        scene, "POST", f"/api/bands/{band['id']}/calendar-token", token=owner.access_token
    )
    assert rotated.status == 200, rotated.text
    calendar_token = parse_qs(urlparse(rotated.body["calendarUrl"]).query)["token"][0]
    old_calendar_token = parse_qs(urlparse(first_calendar).query)["token"][0]

    declined = await owner_phone.call(
        "call:invite", {"to": member.id, "instance": "main", "media": "audio"}
    )
    assert declined["ok"] is True, declined
    await member_phone.next("call:incoming")
    assert (await member_phone.call("call:decline", {"call": declined["call"]["id"]}))["ok"]
    ring = await owner_phone.call(
        "call:invite", {"to": member.id, "instance": "main", "media": "video"}
    )
    assert ring["ok"] is True and ring["call"]["status"] == "ringing", ring
    await member_phone.next("call:incoming")
    accepted = await member_phone.call("call:accept", {"call": ring["call"]["id"]})
    assert accepted["ok"] is True, accepted
    scene.live_call_id = ring["call"]["id"]
    watching = await member_phone.call("presence:subscribe", {"users": [owner.id]})
    assert watching["presence"][0]["status"] == "online"

    for role in ROLES:
        scene.phones[role] = await Phone(scene.actor(role)).connect(scene.node.url)

    news = {
        "owner email": owner.email,
        "member email": member.email,
        "bystander email": scene.bystander.email,
        "band name": f"Secret Name {tag}",
        "genre": f"Secret Genre {tag}",
        "venue": f"Secret Venue {tag}",
        "notes": f"Secret notes {tag}",
        "address": f"Secret Street {tag}",
        "fee": str(FEE),
        "payment amount": str(PAID),
        "payment id": paid.body["payment"]["id"],
        "client secret": paid.body["clientSecret"],
        "transaction id": paid.body["payment"]["transactionId"] or "",
        "declined call": declined["call"]["id"],
        "live call": ring["call"]["id"],
        "owner's call token": ring["call"]["token"],
        "member's call token": accepted["token"],
        "direct message id": dm["id"],
        "attachment id": scene.attachment_id,
        "band attachment id": scene.band_attachment_id,
        "direct ciphertext": dm["ciphertext"],
        "band message id": scene.band_message_id,
        "band ciphertext": new_ciphertexts[0],
        "calendar token": calendar_token,
        "invite link": live_link.body["token"],
        "invitation id": scene.invitation_id,
        "first calendar token": old_calendar_token,
        "biometric key id": scene.key_id,
        "biometric verify key": verify_key,
        "owner access token": owner.access_token,
        "owner refresh token": owner.refresh_token,
        "member access token": member.access_token,
        "member refresh token": member.refresh_token,
        "JWT secret": scene.env.jwt_secret,
        "Stripe secret key": STRIPE_SECRET_KEY,
        "Stripe webhook secret": STRIPE_WEBHOOK_SECRET,
        "Braintree private key": BRAINTREE_PRIVATE_KEY,
    }
    scene.secrets["former"] = dict(news)
    scene.secrets["stranger"] = {
        **news,
        "former email": former.email,
        "owner id": owner.id,
        "member id": member.id,
        "former id": former.id,
        "band id": band["id"],
        "gig id": gig["id"],
        "old gig id": old_gig["id"],
        "old band name": f"Old Name {tag}",
        "old venue": f"Old Venue {tag}",
        "old band message id": old_message_id,
        "old band ciphertext": old_ciphertexts[0],
    }
    scene.secrets["former"]["old band message id"] = ""  # theirs: they received it


@pytest_asyncio.fixture(scope="module")
async def scene(servers: Servers) -> AsyncIterator[Scene]:
    fakes = await FakeGateways().start()
    try:
        env_vars = {**fakes.hub_env(), "CALL_RING_SECONDS": "900"}
        async with shared_hub(servers, **env_vars) as (env, node), aiohttp.ClientSession() as http:
            api = Api(node.url)
            people = await api.register_many("owner", "member", "former", "stranger", "bystander")
            scene = Scene(env, node, http, *people)
            await build_scene(scene)
            owner_device = await api.request(
                "POST",
                "/api/auth/login",
                json={
                    "email": scene.owner.email,
                    "password": PASSWORD,
                    "device": {"id": OWNER_DEVICE},
                },
            )
            assert owner_device[0] == 200, owner_device
            for actor in (scene.stranger, scene.former):
                status, body = await api.request(
                    "POST",
                    "/api/auth/login",
                    json={"email": actor.email, "password": PASSWORD, "device": {"id": "spare"}},
                )
                assert status == 200, body
                scene.spare_tokens[actor.id] = body["accessToken"]
            try:
                yield scene
            finally:
                for phone in scene.phones.values():
                    await phone.close()
    finally:
        await fakes.stop()


# REST: one or more cases per route, each with what the stranger and the former member get.


@dataclass(frozen=True)
class Case:
    method: str
    route: str  # as in the OpenAPI document
    status: int  # for the stranger and the former member alike
    params: Callable[[Scene, Account], dict[str, str]] = lambda s, a: {}
    body: Callable[[Scene, Account], Any] = lambda s, a: None
    query: Callable[[Scene, Account], str] = lambda s, a: ""
    headers: dict[str, str] = field(default_factory=dict)
    check: Callable[[Scene, Account, Any], None] | None = None
    name: str = ""
    # The actor's token to send, when not their main one.
    token: Callable[[Scene, Account], str] | None = None

    @property
    def id(self) -> str:
        return f"{self.method} {self.route}{' ' + self.name if self.name else ''}"


def band(s: Scene, a: Account) -> dict[str, str]:
    return {"band_id": s.band_id}


def gig(s: Scene, a: Account) -> dict[str, str]:
    return {"gig_id": s.gig_id}


def owner_id(s: Scene, a: Account) -> dict[str, str]:
    return {"user_id": s.owner.id}


def new_key() -> str:
    return base64.b64encode(bytes(nacl.signing.SigningKey.generate().verify_key)).decode()


def items_without(*ids: Callable[[Scene], str]) -> Callable[[Scene, Account, Any], None]:
    def check(s: Scene, a: Account, body: Any) -> None:
        found = orjson.dumps(body["items"]).decode()
        for pick in ids:
            assert pick(s) not in found, body

    return check


def no_items(s: Scene, a: Account, body: Any) -> None:
    assert body["items"] == [], body


def no_owner_device(s: Scene, a: Account, body: Any) -> None:
    assert OWNER_DEVICE not in {d["id"] for d in body["items"]}, body


def own_old_band_copies_only(s: Scene, a: Account, body: Any) -> None:
    """The former member keeps the copies they received while a member; nothing newer."""
    expected = [] if a is s.stranger else [s.band_id]
    assert [m["band"] for m in body["items"]] == expected, body


def own_conversations(s: Scene, a: Account, body: Any) -> None:
    """The former member's old band conversation, and the one they may have started with the
    bystander (another case does that); nothing else."""
    allowed = {s.bystander.id} | (set() if a is s.stranger else {s.band_id})
    assert {c["conversationId"] for c in body["items"]} <= allowed, body


def public_profile(s: Scene, a: Account, body: Any) -> None:
    assert set(body) == {"id", "name", "publicKey"}, body


def pay(s: Scene, a: Account) -> dict[str, Any]:
    return {"gigId": s.gig_id, "amount": 100, "currency": "EUR"}


CASES = [
    # Auth: what anyone may do, and what they may not do to another's account.
    Case(
        "POST",
        "/api/auth/register",
        201,
        body=lambda s, a: {
            "email": f"new-{uuid.uuid4().hex[:8]}@example.com",
            "password": "correct horse battery",
            "name": "Newcomer",
        },
    ),
    Case(
        "POST",
        "/api/auth/login",
        401,
        body=lambda s, a: {"email": s.owner.email, "password": "not the password"},
    ),
    Case("POST", "/api/auth/refresh", 401, body=lambda s, a: {"refreshToken": a.access_token}),
    Case(
        "POST",
        "/api/auth/logout",
        204,
        name="closes only the caller's own (spare) session, whatever refreshToken says",
        body=lambda s, a: {"refreshToken": s.owner.refresh_token},
        token=lambda s, a: s.spare_tokens[a.id],
    ),
    Case("POST", "/api/auth/reauth", 401, body=lambda s, a: {"password": "not it"}),
    Case("GET", "/api/auth/biometric/keys", 200, check=no_items),
    # Devices: your own only; another's device id is not found.
    Case("GET", "/api/devices", 200, check=no_owner_device),
    Case(
        "PATCH",
        "/api/devices/{device_id}",
        404,
        params=lambda s, a: {"device_id": OWNER_DEVICE},
        body=lambda s, a: {"name": "Pwned"},
    ),
    Case(
        "DELETE", "/api/devices/{device_id}", 404, params=lambda s, a: {"device_id": OWNER_DEVICE}
    ),
    # Push: only the device itself registers; another user's device is not found.
    Case(
        "PUT",
        "/api/devices/{device_id}/push",
        404,
        params=lambda s, a: {"device_id": OWNER_DEVICE},
        body=lambda s, a: {"provider": "apns", "token": "ab" * 32},
    ),
    Case(
        "DELETE",
        "/api/devices/{device_id}/push",
        404,
        params=lambda s, a: {"device_id": OWNER_DEVICE},
    ),
    # A band you are not (or no longer) in looks like no conversation at all.
    Case(
        "PUT",
        "/api/conversations/{conversation_id}/notifications",
        404,
        params=lambda s, a: {"conversation_id": s.band_id},
        body=lambda s, a: {"level": "none"},
    ),
    Case(
        "GET",
        "/api/conversations/{conversation_id}/notifications",
        404,
        params=lambda s, a: {"conversation_id": s.band_id},
    ),
    Case(
        "POST",
        "/api/auth/password",
        401,
        name="with a wrong current password",
        body=lambda s, a: {"currentPassword": "not it", "newPassword": "a new long password"},
    ),
    Case(
        "POST",
        "/api/auth/biometric/keys",
        201,
        body=lambda s, a: {"publicKey": new_key(), "deviceName": "mine"},
    ),
    Case(
        "DELETE", "/api/auth/biometric/keys/{key_id}", 404, params=lambda s, a: {"key_id": s.key_id}
    ),
    Case("POST", "/api/auth/biometric/challenge", 200, body=lambda s, a: {"keyId": s.key_id}),
    Case(
        "POST",
        "/api/auth/biometric",
        401,
        body=lambda s, a: {
            "challengeId": str(uuid.uuid4()),
            "signature": base64.b64encode(bytes(64)).decode(),
        },
    ),
    # Users: a profile and a public key are public; changing them is the owner's.
    Case("GET", "/api/users/{user_id}", 200, params=owner_id, check=public_profile),
    Case("PUT", "/api/users/{user_id}", 403, params=owner_id, body=lambda s, a: {"name": "Pwned"}),
    Case("GET", "/api/users/{user_id}/public-key", 200, params=owner_id),
    Case(
        "PUT",
        "/api/users/{user_id}/public-key",
        403,
        params=owner_id,
        body=lambda s, a: {"publicKey": a.public_key_b64},
    ),
    # Messages: only your own copies.
    Case("GET", "/api/messages", 200, check=own_conversations),
    Case(
        "POST",
        "/api/messages",
        201,
        name="to a bystander",
        body=lambda s, a: {
            "id": str(uuid.uuid4()),
            "to": s.bystander.id,
            **seal(a, s.bystander, "hello"),
        },
    ),
    Case(
        "GET",
        "/api/messages/{conversation_id}",
        200,
        name="with the owner",
        params=lambda s, a: {"conversation_id": s.owner.id},
        check=no_items,
    ),
    Case(
        "GET",
        "/api/messages/{conversation_id}",
        200,
        name="of the band",
        params=lambda s, a: {"conversation_id": s.band_id},
        check=own_old_band_copies_only,
    ),
    Case(
        "PUT",
        "/api/messages/{message_id}/read",
        403,
        name="a direct message",
        params=lambda s, a: {"message_id": s.dm_id},
    ),
    Case(
        "PUT",
        "/api/messages/{message_id}/read",
        403,
        name="a band message",
        params=lambda s, a: {"message_id": s.band_message_id},
    ),
    # Operations: open, and nothing of anyone in them.
    Case("GET", "/healthz", 200),
    Case("GET", "/metrics", 200),
    Case("GET", "/api/openapi.json", 200),
    # Bands: a non-member gets 404 for the band and everything in it.
    Case("GET", "/api/bands", 200, check=items_without(lambda s: s.band_id)),
    Case("POST", "/api/bands", 201, body=lambda s, a: {"name": "My Own Band"}),
    Case("GET", "/api/bands/{band_id}", 404, params=band),
    Case("PUT", "/api/bands/{band_id}", 404, params=band, body=lambda s, a: {"name": "Pwned"}),
    Case("DELETE", "/api/bands/{band_id}", 404, params=band),
    Case(
        "POST",
        "/api/bands/{band_id}/members",
        404,
        name="joining",
        params=band,
        body=lambda s, a: {"userId": a.id, "role": "admin"},
    ),
    Case(
        "PUT",
        "/api/bands/{band_id}/members/{user_id}",
        404,
        name="the member's role",
        params=lambda s, a: {"band_id": s.band_id, "user_id": s.member.id},
        body=lambda s, a: {"role": "member"},
    ),
    Case(
        "PUT",
        "/api/bands/{band_id}/members/{user_id}",
        404,
        name="taking ownership",
        params=lambda s, a: {"band_id": s.band_id, "user_id": a.id},
        body=lambda s, a: {"role": "owner"},
    ),
    Case(
        "DELETE",
        "/api/bands/{band_id}/members/{user_id}",
        404,
        name="removing the member",
        params=lambda s, a: {"band_id": s.band_id, "user_id": s.member.id},
    ),
    Case(
        "DELETE",
        "/api/bands/{band_id}/members/{user_id}",
        404,
        name="leaving again",
        params=lambda s, a: {"band_id": s.band_id, "user_id": a.id},
    ),
    Case("POST", "/api/bands/{band_id}/calendar-token", 404, params=band),
    Case(
        "GET",
        "/api/bands/{band_id}/calendar.ics",
        404,
        params=band,
        query=lambda s, a: "?token=" + "A" * 43,
    ),
    # Gigs, splits and payments of the band.
    Case("GET", "/api/gigs", 200, check=items_without(lambda s: s.gig_id)),
    Case("GET", "/api/gigs", 404, name="of the band", query=lambda s, a: f"?bandId={s.band_id}"),
    Case(
        "POST",
        "/api/gigs",
        404,
        body=lambda s, a: {"bandId": s.band_id, "venueName": "Fake", "date": "2031-01-01"},
    ),
    Case("GET", "/api/gigs/{gig_id}", 404, params=gig),
    Case("PUT", "/api/gigs/{gig_id}", 404, params=gig, body=lambda s, a: {"feeAmount": 1}),
    Case(
        "PUT",
        "/api/gigs/{gig_id}/status",
        404,
        params=gig,
        body=lambda s, a: {"status": "cancelled"},
    ),
    Case("PUT", "/api/gigs/{gig_id}/split", 404, params=gig, body=lambda s, a: {"mode": "equal"}),
    Case("GET", "/api/gigs/{gig_id}/split", 404, params=gig),
    Case("GET", "/api/payments/methods", 200),
    Case("GET", "/api/payments/ledger", 200, check=no_items),
    Case(
        "GET",
        "/api/payments/ledger",
        200,
        name="of the gig",
        check=no_items,
        query=lambda s, a: f"?gigId={s.gig_id}&bandId={s.band_id}",
    ),
    # Paying for a gig of a band you are not in is 404, as for a gig that does not exist.
    Case("POST", "/api/payments/stripe", 404, body=pay, headers={"Idempotency-Key": "k-stripe"}),
    Case(
        "POST",
        "/api/payments/paypal",
        404,
        headers={"Idempotency-Key": "k-paypal"},
        body=lambda s, a: {**pay(s, a), "paymentMethodNonce": "fake-valid-nonce"},
    ),
    # Refunding a payment of a band you are not in is 404, as for a missing payment.
    Case(
        "POST",
        "/api/payments/{payment_id}/refund",
        404,
        params=lambda s, a: {"payment_id": s.payment_id},
        body=lambda s, a: {},
        headers={"Idempotency-Key": "k-refund"},
    ),
    Case("POST", "/api/payments/webhooks/stripe", 400, body=lambda s, a: {"type": "x"}),
    Case("POST", "/api/payments/webhooks/braintree", 400, body=lambda s, a: {"bt_payload": "x"}),
    # Attachments: a stranger or former member can neither reserve one for the band nor get
    # a link to one they hold no message of; the hub's own signed URLs refuse a forged one.
    Case(
        "POST",
        "/api/attachments",
        404,
        name="for the band",
        body=lambda s, a: {"size": 10, "conversationId": s.band_id},
    ),
    Case(
        "GET",
        "/api/attachments/{attachment_id}",
        404,
        name="of a message they do not hold",
        params=lambda s, a: {"attachment_id": s.attachment_id},
    ),
    Case(
        "GET",
        "/api/attachments/{attachment_id}",
        404,
        name="the owner's unbound upload",
        params=lambda s, a: {"attachment_id": s.band_attachment_id},
    ),
    Case(
        "PUT",
        "/api/attachments/{attachment_id}/content",
        403,
        name="with a forged signature",
        params=lambda s, a: {"attachment_id": s.band_attachment_id},
        query=lambda s, a: "?size=7&expires=4102444800000&sig=" + "A" * 43,
    ),
    Case(
        "GET",
        "/api/attachments/{attachment_id}/content",
        403,
        name="with a forged signature",
        params=lambda s, a: {"attachment_id": s.attachment_id},
        query=lambda s, a: "?expires=4102444800000&sig=" + "A" * 43,
    ),
    # Calls and LiveKit rooms.
    Case("GET", "/api/calls", 200, check=no_items),
    Case(
        "POST",
        "/api/livekit/token",
        403,
        name="the live call",
        body=lambda s, a: {"instance": "main", "room": f"call-{s.live_call_id}"},
    ),
    Case(
        "POST",
        "/api/livekit/token",
        403,
        name="the band's room",
        body=lambda s, a: {"instance": "main", "room": f"band-{s.band_id}"},
    ),
    Case(
        "POST",
        "/api/livekit/token",
        403,
        name="the owner's room",
        body=lambda s, a: {"instance": "main", "room": f"user-{s.owner.id}"},
    ),
    Case(
        "POST", "/api/livekit/room", 404, body=lambda s, a: {"instance": "main", "band": s.band_id}
    ),
    Case(
        "POST",
        "/api/livekit/webhook/{instance}",
        401,
        params=lambda s, a: {"instance": "main"},
        body=lambda s, a: {"event": "room_finished"},
    ),
    # Consent: requests and blocks are the caller's own; invitations the invitee's.
    Case("GET", "/api/messages/requests", 200, check=no_items),
    Case(
        "POST",
        "/api/messages/requests/{user_id}/accept",
        404,
        name="no request from the owner",
        params=owner_id,
    ),
    Case(
        "POST",
        "/api/messages/requests/{user_id}/decline",
        404,
        name="no request from the owner",
        params=owner_id,
    ),
    Case("GET", "/api/invitations", 200, check=no_items),
    Case(
        "POST",
        "/api/invitations/{invitation_id}/accept",
        404,
        name="the bystander's invitation",
        params=lambda s, a: {"invitation_id": s.invitation_id},
    ),
    Case(
        "POST",
        "/api/invitations/{invitation_id}/decline",
        404,
        name="the bystander's invitation",
        params=lambda s, a: {"invitation_id": s.invitation_id},
    ),
    Case(
        "DELETE",
        "/api/bands/{band_id}/invitations/{invitation_id}",
        404,
        params=lambda s, a: {"band_id": s.band_id, "invitation_id": s.invitation_id},
    ),
    Case(
        "POST",
        "/api/bands/{band_id}/invite-links",
        404,
        params=band,
        body=lambda s, a: {"role": "admin"},
    ),
    Case(
        "DELETE",
        "/api/bands/{band_id}/invite-links/{token}",
        404,
        params=lambda s, a: {"band_id": s.band_id, "token": s.dead_link},
    ),
    Case(
        "POST",
        "/api/invite-links/{token}/accept",
        404,
        name="a withdrawn link",
        params=lambda s, a: {"token": s.dead_link},
    ),
    Case("GET", "/api/blocks", 200, check=items_without(lambda s: s.owner.id)),
    Case(
        "PUT",
        "/api/blocks/{user_id}",
        204,
        name="the bystander (the caller's own decision)",
        params=lambda s, a: {"user_id": s.bystander.id},
    ),
    Case(
        "DELETE",
        "/api/blocks/{user_id}",
        204,
        name="the bystander again",
        params=lambda s, a: {"user_id": s.bystander.id},
    ),
]


def fill(route: str, values: dict[str, str]) -> str:
    for name, value in values.items():
        route = route.replace("{" + name + "}", value)
    assert "{" not in route, f"no value for a parameter of {route}"
    return route


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
async def test_rest_route_refuses_strangers_and_former_members(
    scene: Scene, role: str, case: Case
) -> None:
    actor = scene.actor(role)
    path = fill(case.route, case.params(scene, actor)) + case.query(scene, actor)
    body = case.body(scene, actor)
    token = case.token(scene, actor) if case.token is not None else actor.access_token
    answer = await rest(scene, case.method, path, token=token, json=body, headers=case.headers)
    assert answer.status == case.status, answer.text
    if case.status in CODE_OF_STATUS:
        assert answer.body["error"]["code"] == CODE_OF_STATUS[case.status], answer.text
    if case.check is not None:
        case.check(scene, actor, answer.body)
    request_text = path + orjson.dumps(body).decode() + str(case.headers)
    schema = case.route == "/api/openapi.json"
    assert_no_leak(answer.text, scene.secrets[role], request_text, schema=schema)


async def test_the_leak_check_sees_what_members_see(scene: Scene) -> None:
    """The secrets are real: members' own answers carry them, and the check would say so."""
    owner, member = scene.owner, scene.member
    seen = [
        await rest(scene, "GET", f"/api/bands/{scene.band_id}", token=owner.access_token),
        await rest(scene, "GET", f"/api/gigs/{scene.gig_id}", token=member.access_token),
        await rest(scene, "GET", "/api/payments/ledger", token=member.access_token),
        await rest(scene, "GET", f"/api/messages/{owner.id}", token=member.access_token),
        await rest(scene, "GET", f"/api/users/{owner.id}", token=owner.access_token),
    ]
    found = leaks("\n".join(a.text for a in seen), scene.secrets["former"], "")
    for label in ("band name", "venue", "notes", "fee", "payment amount", "payment id"):
        assert label in found, found
    for label in ("direct message id", "direct ciphertext", "owner email", "calendar token"):
        assert label in found, found


NOT_FOUND_CASES = [c for c in CASES if c.status == 404]


@pytest.mark.parametrize("case", NOT_FOUND_CASES, ids=lambda c: c.id)
async def test_an_outsider_cannot_tell_the_band_from_a_missing_one(
    scene: Scene, case: Case
) -> None:
    """The same answer, word for word, as for ids that exist nowhere."""
    actor = scene.stranger
    real = case.params(scene, actor)
    invented = {k: str(uuid.uuid4()) if k in ("band_id", "gig_id") else v for k, v in real.items()}
    query = case.query(scene, actor)
    invented_query = query.replace(scene.band_id, invented.get("band_id", str(uuid.uuid4())))
    body = case.body(scene, actor)
    invented_body = orjson.loads(
        orjson.dumps(body)
        .decode()
        .replace(scene.band_id, str(uuid.uuid4()))
        .replace(scene.gig_id, str(uuid.uuid4()))
    )
    answers = [
        await rest(
            scene,
            case.method,
            fill(case.route, params) + q,
            token=actor.access_token,
            json=b,
            headers=case.headers,
        )
        for params, q, b in ((real, query, body), (invented, invented_query, invented_body))
    ]
    assert answers[0].status == answers[1].status == 404, [a.text for a in answers]
    assert answers[0].body == answers[1].body


# Bad tokens: every route the document marks as needing one.

BAD_TOKENS = ("expired", "forged", "alg none", "refresh token", "garbage")


def bad_token(kind: str, scene: Scene) -> str:
    now = int(time.time())
    claims = {"sub": scene.owner.id, "typ": "access", "iat": now - 7200, "exp": now + 3600}
    if kind == "expired":
        return jwt.encode({**claims, "exp": now - 60}, scene.env.jwt_secret, algorithm="HS256")
    if kind == "forged":
        return jwt.encode(claims, "another secret that is long enough to sign", algorithm="HS256")
    if kind == "alg none":

        def part(obj: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(orjson.dumps(obj)).rstrip(b"=").decode()

        return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."
    if kind == "refresh token":
        return scene.owner.refresh_token
    return "not.a.jwt"


def parameter_values(scene: Scene) -> dict[str, str]:
    return {
        "band_id": scene.band_id,
        "gig_id": scene.gig_id,
        "user_id": scene.owner.id,
        "key_id": scene.key_id,
        "conversation_id": scene.member.id,
        "message_id": scene.dm_id,
        "attachment_id": scene.attachment_id,
        "instance": "main",
        "device_id": OWNER_DEVICE,
    }


async def documented_routes(scene: Scene) -> list[tuple[str, str, dict[str, Any]]]:
    answer = await rest(scene, "GET", "/api/openapi.json")
    assert answer.status == 200
    return [
        (method.upper(), path, operation)
        for path, operations in answer.body["paths"].items()
        for method, operation in operations.items()
    ]


@pytest.mark.parametrize("kind", BAD_TOKENS)
async def test_every_protected_route_refuses_a_bad_token(scene: Scene, kind: str) -> None:
    token = bad_token(kind, scene)
    bodies = {(c.method, c.route): c for c in CASES}
    values = parameter_values(scene)
    protected = [(m, p) for m, p, op in await documented_routes(scene) if op.get("security")]
    assert len(protected) >= 30, protected
    for method, route in protected:
        names = [part[1:-1] for part in route.split("/") if part.startswith("{")]
        path = fill(route, {n: values.get(n, str(uuid.uuid4())) for n in names})
        case = bodies.get((method, route))
        body = case.body(scene, scene.stranger) if case else {}
        answer = await rest(
            scene, method, path, token=token, json=body, headers=case.headers if case else None
        )
        assert answer.status == 401, (method, route, answer.text)
        assert answer.body["error"]["code"] == "unauthorized", (method, route, answer.text)
        assert_no_leak(answer.text, scene.secrets["stranger"], path + orjson.dumps(body).decode())


async def test_a_bad_token_refreshes_no_socket_session(scene: Scene) -> None:
    phone = scene.phones["stranger"]
    for kind in BAD_TOKENS:
        ack = await phone.call("session:refresh", {"token": bad_token(kind, scene)})
        # Checked as a token before as someone else's: unauthorized, not forbidden.
        assert ack["ok"] is False and ack["error"]["code"] == "unauthorized", (kind, ack)
        assert_no_leak(orjson.dumps(ack).decode(), scene.secrets["stranger"], "")
    assert (await phone.call("message:sync", {"after": 0}))["ok"] is True


# Socket events.


@dataclass(frozen=True)
class EventCase:
    event: str
    payload: Callable[[Scene, Account], Any]
    code: str | None  # None: answered ok
    name: str = ""
    check: Callable[[Scene, Account, Any], None] | None = None

    @property
    def id(self) -> str:
        return f"{self.event}{' ' + self.name if self.name else ''}"


def call_case(event: str) -> EventCase:
    return EventCase(event, lambda s, a: {"call": s.live_call_id}, "forbidden")


def own_sync(s: Scene, a: Account, ack: Any) -> None:
    """Their own messages (to the bystander, from another case) and, for the former member,
    the band message they received while still a member; nothing since."""
    band_copies = [m for m in ack["messages"] if m.get("band") is not None]
    assert [m["band"] for m in band_copies] == ([] if a is s.stranger else [s.band_id]), ack
    others = [m for m in ack["messages"] if m.get("band") is None]
    assert all(m["from"] == a.id for m in others), ack


def presence_withheld(s: Scene, a: Account, ack: Any) -> None:
    assert sorted(ack["error"]["details"]["users"]) == sorted([s.owner.id, s.member.id]), ack


EVENT_CASES = [
    EventCase(
        "message:send",
        lambda s, a: {
            "id": str(uuid.uuid4()),
            "band": s.band_id,
            "envelopes": [{"to": s.member.id, **seal(a, s.member, "let me in")}],
        },
        "not_found",
    ),
    EventCase(
        "message:send",
        lambda s, a: {
            "id": str(uuid.uuid4()),
            "to": s.owner.id,
            **seal(a, s.owner, "👍"),
            "relatesTo": {"type": "reaction", "id": s.dm_id},
        },
        "not_found",
        name="reacting to someone else's message",
    ),
    EventCase(
        "message:send",
        lambda s, a: {
            "id": str(uuid.uuid4()),
            "to": s.owner.id,
            **seal(a, s.owner, "that riff is mine"),
            "attachments": [s.band_attachment_id],
        },
        "not_found",
        name="with the owner's upload",
    ),
    EventCase(
        "message:edit",
        lambda s, a: {
            "id": str(uuid.uuid4()),
            "replaces": s.dm_id,
            **seal(a, s.member, "mine now"),
        },
        "not_found",
    ),
    EventCase("message:delete", lambda s, a: {"id": s.dm_id}, "not_found", name="a dm"),
    EventCase(
        "message:delete", lambda s, a: {"id": s.band_message_id}, "not_found", name="the band's"
    ),
    EventCase("message:sync", lambda s, a: {"after": 0}, None, check=own_sync),
    EventCase("message:delivered", lambda s, a: {"ids": [s.dm_id]}, "forbidden"),
    EventCase("message:read", lambda s, a: {"ids": [s.band_message_id]}, "forbidden"),
    EventCase(
        "typing",
        lambda s, a: {"to": s.owner.id, "state": "start"},
        "forbidden",
        name="to the owner",
    ),
    EventCase(
        "typing",
        lambda s, a: {"band": s.band_id, "state": "start"},
        "not_found",
        name="to the band",
    ),
    EventCase(
        "presence:subscribe",
        lambda s, a: {"users": [s.owner.id, s.member.id]},
        "forbidden",
        check=presence_withheld,
    ),
    EventCase(
        "presence:unsubscribe",
        lambda s, a: {"users": [s.owner.id]},
        None,
        check=lambda s, a, ack: None if ack == {"ok": True} else pytest.fail(str(ack)),
    ),
    EventCase("session:refresh", lambda s, a: {"token": s.owner.access_token}, "forbidden"),
    EventCase(
        "call:invite",
        lambda s, a: {"to": s.owner.id, "instance": "main", "media": "audio"},
        "forbidden",
        name="the owner",
    ),
    EventCase(
        "call:invite",
        lambda s, a: {"band": s.band_id, "instance": "main", "media": "audio"},
        "not_found",
        name="the band",
    ),
    call_case("call:accept"),
    call_case("call:decline"),
    call_case("call:cancel"),
    call_case("call:hangup"),
]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("case", EVENT_CASES, ids=lambda c: c.id)
async def test_socket_event_refuses_strangers_and_former_members(
    scene: Scene, role: str, case: EventCase
) -> None:
    actor = scene.actor(role)
    payload = case.payload(scene, actor)
    ack = await scene.phones[role].call(case.event, payload)
    if case.code is None:
        assert ack["ok"] is True, ack
    else:
        assert ack["ok"] is False and ack["error"]["code"] == case.code, ack
    if case.check is not None:
        case.check(scene, actor, ack)
    assert_no_leak(orjson.dumps(ack).decode(), scene.secrets[role], orjson.dumps(payload).decode())


async def test_every_documented_route_and_registered_event_has_a_case(scene: Scene) -> None:
    """New routes and events fail here until the matrix says what outsiders get."""
    documented = {(m, p) for m, p, _ in await documented_routes(scene)}
    cased = {(c.method, c.route) for c in CASES}
    assert documented - cased == set(), "routes without a case"
    assert cased - documented == set(), "cases for routes the hub does not serve"
    registered = {spec.name for table in SOCKET_TABLES for spec in table.specs}
    assert registered - {c.event for c in EVENT_CASES} == set(), "events without a case"


async def test_outsiders_received_nothing_of_the_others_and_nothing_changed(scene: Scene) -> None:
    """Runs last: what the outsiders' sockets received, and the scene is as it was."""
    for role in ROLES:
        phone, actor = scene.phones[role], scene.actor(role)
        for event in list(phone._queues):
            while phone.pending(event):
                payload = await phone.next(event)
                # Only echoes of their own doings: the message they sent over REST, the band
                # they created.
                own = (
                    (event == "message:new" and payload["from"] == actor.id)
                    or (event == "band:updated" and payload["band"]["ownerId"] == actor.id)
                    # Their own device list (the spare login, their logout of it).
                    or (
                        event == "devices:changed"
                        and OWNER_DEVICE not in {d["id"] for d in payload["devices"]}
                    )
                )
                assert own, (role, event, payload)
                assert_no_leak(orjson.dumps(payload).decode(), scene.secrets[role], "")
    owner = scene.owner
    band = await rest(scene, "GET", f"/api/bands/{scene.band_id}", token=owner.access_token)
    assert band.status == 200
    assert sorted(m["userId"] for m in band.body["members"]) == sorted([owner.id, scene.member.id])
    assert band.body["name"] == scene.secrets["former"]["band name"]
    gig_now = await rest(scene, "GET", f"/api/gigs/{scene.gig_id}", token=owner.access_token)
    assert gig_now.body["status"] == "inquiry" and gig_now.body["feeAmount"] == FEE
    me = await rest(scene, "GET", f"/api/users/{owner.id}", token=owner.access_token)
    assert me.body["name"] == "owner" and me.body["publicKey"] == owner.public_key_b64
    ledger = await rest(scene, "GET", "/api/payments/ledger", token=scene.member.access_token)
    assert [p["amount"] for p in ledger.body["items"]] == [PAID]
    call_token = await rest(
        scene,
        "POST",
        "/api/livekit/token",
        token=owner.access_token,
        json={"instance": "main", "room": f"call-{scene.live_call_id}"},
    )
    assert call_token.status == 200, call_token.text
    # The owner's refresh token was offered to every route and to logout: still good.
    refreshed = await rest(
        scene, "POST", "/api/auth/refresh", json={"refreshToken": owner.refresh_token}
    )
    assert refreshed.status == 200, refreshed.text
    # The owner's biometric key, which the outsiders tried to delete, still logs in (as the
    # key's device: checked last, since that login replaces the device's session).
    challenge = await rest(
        scene, "POST", "/api/auth/biometric/challenge", json={"keyId": scene.key_id}
    )
    assert challenge.status == 200 and scene.signer is not None
    signature = scene.signer.sign(base64.b64decode(challenge.body["challenge"])).signature
    login = await rest(
        scene,
        "POST",
        "/api/auth/biometric",
        json={
            "challengeId": challenge.body["challengeId"],
            "signature": base64.b64encode(signature).decode(),
        },
    )
    assert login.status == 200 and login.body["user"]["id"] == owner.id, login.text
