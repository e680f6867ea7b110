"""Band invitations and invite links over two hub nodes: nobody is a member before saying
yes; and leaving is leaving, LiveKit room included."""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from typing import Any

import asyncpg

from hub.bands.invitation_views import InvitationList, InviteLinkView
from tests.support import Account, Api, seal
from tests.support.bands import create_band, invite, join_band, roles
from tests.support.calls import (
    CallPhone,
    FakeLiveKit,
    StartNodes,
    call_nodes,  # noqa: F401  (fixture)
    fake_livekit,  # noqa: F401  (fixture)
    no_event,
)


def envelopes(sender: Account, *to: Account) -> list[dict[str, Any]]:
    return [{"to": r.id, **seal(sender, r, "band news")} for r in to]


async def pending(api: Api, who: Account) -> list[dict[str, Any]]:
    status, page = await api.request("GET", "/api/invitations", token=who.access_token)
    assert status == 200, page
    InvitationList.model_validate(page)
    return list(page["items"])


async def test_an_invitee_sees_nothing_until_accepting_then_is_a_member_everywhere(
    call_nodes: StartNodes,  # noqa: F811
) -> None:
    node_a, node_b = await call_nodes()
    api, api_b = Api(node_a.url), Api(node_b.url)
    owner, member, invitee, other, third = await api.register_many(
        "owner", "member", "invitee", "other", "third"
    )
    band = await create_band(api, owner, member)
    owner_phone = await CallPhone(owner).connect(node_a.url)
    invitee_phone = await CallPhone(invitee).connect(node_b.url)
    try:
        invitation = await invite(api, owner, band["id"], invitee, "admin")
        assert invitation["band"] == {"id": band["id"], "name": band["name"]}
        assert (invitation["userId"], invitation["role"]) == (invitee.id, "admin")
        assert invitation["invitedBy"] == owner.id
        assert invitation["expiresAt"] - invitation["createdAt"] == 7 * 86_400_000
        assert (await invitee_phone.next("band:invited")) == {"invitation": invitation}
        assert await pending(api_b, invitee) == [invitation]
        status, again = await api.request(
            "POST",
            f"/api/bands/{band['id']}/members",
            token=owner.access_token,
            json={"userId": invitee.id},
        )
        assert status == 409, again

        # Not a member yet: no band, no band messages, no presence, no band calls.
        assert (await api_b.request("GET", f"/api/bands/{band['id']}", token=invitee.access_token))[
            0
        ] == 404
        refused = await owner_phone.call(
            "message:send",
            {
                "id": str(uuid.uuid4()),
                "band": band["id"],
                "envelopes": envelopes(owner, member, invitee),
            },
        )
        assert refused["error"]["code"] == "conflict"
        assert refused["error"]["details"]["extra"] == [invitee.id]
        watch = await invitee_phone.call("presence:subscribe", {"users": [owner.id]})
        assert watch["error"]["code"] == "forbidden"
        ring = await owner_phone.call(
            "call:invite", {"band": band["id"], "instance": "main", "media": "audio"}
        )
        assert ring["ok"] is True, ring
        await no_event(invitee_phone, "call:incoming", wait=1.0)
        assert (await owner_phone.call("call:cancel", {"call": ring["call"]["id"]}))["ok"]
        assert invitee_phone.pending("band:updated") == 0

        status, joined = await api_b.request(
            "POST", f"/api/invitations/{invitation['id']}/accept", token=invitee.access_token
        )
        assert status == 200 and roles(joined)[invitee.id] == "admin", joined
        added = await owner_phone.next("band:updated")
        assert added["change"] == "member_added" and added["userId"] == invitee.id
        assert (await invitee_phone.next("band:updated"))["change"] == "member_added"
        assert await pending(api, invitee) == []
        status, _ = await api.request(
            "POST", f"/api/invitations/{invitation['id']}/accept", token=invitee.access_token
        )
        assert status == 404  # no longer pending

        # A member on every node: band messages reach the invitee on node B.
        sent = await owner_phone.call(
            "message:send",
            {
                "id": str(uuid.uuid4()),
                "band": band["id"],
                "envelopes": envelopes(owner, member, invitee),
            },
        )
        assert sent["ok"] is True, sent
        assert (await invitee_phone.next("message:new"))["band"] == band["id"]
        assert (await invitee_phone.call("presence:subscribe", {"users": [owner.id]}))["ok"]

        # Decline and withdraw: the invitation is gone for its invitee.
        declined = await invite(api, owner, band["id"], other)
        status, _ = await api.request(
            "POST", f"/api/invitations/{declined['id']}/decline", token=other.access_token
        )
        assert status == 204 and await pending(api, other) == []
        withdrawn = await invite(api, owner, band["id"], third)
        status, _ = await api.request(
            "POST", f"/api/invitations/{withdrawn['id']}/accept", token=other.access_token
        )
        assert status == 404  # not theirs
        status, _ = await api.request(
            "DELETE",
            f"/api/bands/{band['id']}/invitations/{withdrawn['id']}",
            token=owner.access_token,
        )
        assert status == 204
        status, _ = await api.request(
            "POST", f"/api/invitations/{withdrawn['id']}/accept", token=third.access_token
        )
        assert status == 404
        status, final = await api.request(
            "GET", f"/api/bands/{band['id']}", token=owner.access_token
        )
        assert set(roles(final)) == {owner.id, member.id, invitee.id}
    finally:
        await owner_phone.close()
        await invitee_phone.close()


async def test_invitations_expire_and_are_limited_per_day(
    call_nodes: StartNodes,  # noqa: F811
) -> None:
    (node,) = await call_nodes(count=1, BAND_INVITATION_SECONDS="1", INVITATIONS_PER_DAY="2")
    api = Api(node.url)
    owner, first, second, third = await api.register_many("owner", "first", "second", "third")
    band = await create_band(api, owner)
    late = await invite(api, owner, band["id"], first)
    await asyncio.sleep(1.2)  # past BAND_INVITATION_SECONDS
    assert await pending(api, first) == []
    status, _ = await api.request(
        "POST", f"/api/invitations/{late['id']}/accept", token=first.access_token
    )
    assert status == 404
    await invite(api, owner, band["id"], second)
    status, body = await api.request(
        "POST",
        f"/api/bands/{band['id']}/members",
        token=owner.access_token,
        json={"userId": third.id},
    )
    assert status == 429 and body["error"]["code"] == "rate_limited", body


async def test_invite_links_join_until_expired_used_up_or_withdrawn(
    call_nodes: StartNodes,  # noqa: F811
    test_env: Any,
) -> None:
    (node,) = await call_nodes(count=1)
    api = Api(node.url)
    owner, first, second, third = await api.register_many("owner", "first", "second", "third")
    band = await create_band(api, owner)
    links = f"/api/bands/{band['id']}/invite-links"

    async def make(**body: Any) -> dict[str, Any]:
        status, link = await api.request("POST", links, token=owner.access_token, json=body)
        assert status == 201, link
        InviteLinkView.model_validate(link)
        return dict(link)

    async def use(who: Account, token: str) -> tuple[int, Any]:
        return await api.request(
            "POST", f"/api/invite-links/{token}/accept", token=who.access_token
        )

    once = await make(maxUses=1, role="admin")
    assert len(once["token"]) >= 43 and once["url"].endswith(once["token"])  # 256 random bits
    status, joined = await use(first, once["token"])
    assert status == 200 and roles(joined)[first.id] == "admin", joined
    assert (await use(first, once["token"]))[0] == 404  # used up, even for a member
    assert (await use(second, once["token"]))[0] == 404

    brief = await make(expiresInSeconds=1)
    await asyncio.sleep(1.2)
    assert (await use(second, brief["token"]))[0] == 404

    withdrawn = await make()
    status, _ = await api.request(
        "DELETE", f"{links}/{withdrawn['token']}", token=owner.access_token
    )
    assert status == 204
    assert (await use(second, withdrawn["token"]))[0] == 404
    assert (await use(second, "not-a-token"))[0] == 404
    open_link = await make()
    assert (await use(third, open_link["token"]))[0] == 200
    assert (await use(third, open_link["token"]))[0] == 409  # already a member
    status, body = await api.request(
        "POST", links, token=owner.access_token, json={"expiresInSeconds": 10**9}
    )
    assert status == 400 and body["error"]["details"]["field"] == "expiresInSeconds"

    conn = await asyncpg.connect(test_env.database_url)
    try:
        rows = await conn.fetch("SELECT * FROM band_invite_links")
    finally:
        await conn.close()
    stored = repr([dict(r) for r in rows])
    assert once["token"] not in stored  # only digests are kept
    digests = {bytes(r["digest"]) for r in rows}
    assert hashlib.sha256(once["token"].encode()).digest() in digests


async def test_a_removed_member_leaves_the_band_call_and_its_livekit_room(
    call_nodes: StartNodes,  # noqa: F811
    fake_livekit: FakeLiveKit,  # noqa: F811
) -> None:
    node_a, node_b = await call_nodes()
    api = Api(node_a.url)
    owner, member, ringing = await api.register_many("owner", "member", "ringing")
    band = await create_band(api, owner, member)
    await join_band(api, owner, band["id"], ringing)
    owner_phone = await CallPhone(owner).connect(node_a.url)
    member_phone = await CallPhone(member).connect(node_b.url)
    ringing_phone = await CallPhone(ringing).connect(node_a.url)
    try:
        ring = await owner_phone.call(
            "call:invite", {"band": band["id"], "instance": "main", "media": "video"}
        )
        assert ring["ok"] is True, ring
        call_id, room = ring["call"]["id"], ring["call"]["room"]
        await member_phone.next("call:incoming")
        await ringing_phone.next("call:incoming")
        assert (await member_phone.call("call:accept", {"call": call_id}))["ok"] is True

        async def token_for(who: Account, room_name: str) -> int:
            status, _ = await api.request(
                "POST",
                "/api/livekit/token",
                token=who.access_token,
                json={"instance": "main", "room": room_name},
            )
            return status

        assert await token_for(member, room) == 200
        for leaver in (member, ringing):
            status, _ = await api.request(
                "DELETE",
                f"/api/bands/{band['id']}/members/{leaver.id}",
                token=owner.access_token,
            )
            assert status == 204
        assert await token_for(member, room) == 403
        assert await token_for(member, f"band-{band['id']}") == 403
        late = await ringing_phone.call("call:accept", {"call": call_id})
        assert late["ok"] is False and late["error"]["code"] == "not_found", late
        removed = {(r.room, r.identity) for r, _ in fake_livekit.removed}
        assert (room, member.id) in removed
        assert (f"band-{band['id']}", member.id) in removed
        assert all(c.video is not None and c.video.room_admin for _, c in fake_livekit.removed)
    finally:
        for phone in (owner_phone, member_phone, ringing_phone):
            await phone.close()


async def test_hostile_bodies_and_paths_of_the_consent_routes_are_refused_cleanly(
    call_nodes: StartNodes,  # noqa: F811
) -> None:
    (node,) = await call_nodes(count=1)
    api = Api(node.url)
    owner, other = await api.register_many("owner", "other")
    band = await create_band(api, owner)
    links = f"/api/bands/{band['id']}/invite-links"
    for body in (
        {"role": "owner"},
        {"maxUses": 0},
        {"maxUses": 10**6},
        {"expiresInSeconds": 0},
        {"expiresInSeconds": "60"},
        {"maxUses": 1.5},
        {"role": "member", "extra": 1},
        [],
    ):
        status, answer = await api.request("POST", links, token=owner.access_token, json=body)
        assert status == 400 and answer["error"]["code"] == "invalid_payload", (body, answer)
    for method, path in (
        ("POST", "/api/messages/requests/not-a-uuid/accept"),
        ("POST", "/api/messages/requests/not-a-uuid/decline"),
        ("PUT", "/api/blocks/not-a-uuid"),
        ("DELETE", "/api/blocks/%00"),
        ("POST", "/api/invitations/not-a-uuid/accept"),
        ("POST", "/api/invitations/1/decline"),
        ("DELETE", f"/api/bands/{band['id']}/invitations/nope"),
    ):
        status, answer = await api.request(method, path, token=other.access_token)
        assert status == 400 and answer["error"]["code"] == "invalid_payload", (path, answer)
    for token in ("x" * 43, "%27%20OR%201=1", "a" * 500, "../../etc"):
        status, answer = await api.request(
            "POST", f"/api/invite-links/{token}/accept", token=other.access_token
        )
        assert status == 404 and answer["error"]["code"] == "not_found", (token, answer)
    assert (await api.request("GET", "/api/bands", token=other.access_token))[1]["items"] == []
