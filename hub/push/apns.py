"""APNs provider API: HTTP/2 (httpcore, see ``http.py``), token-based authentication (an
ES256 JWT signed with the team's ``.p8`` key by PyJWT).

One client, so one HTTP/2 connection per host is reused for every push. The provider token
is made once and reused until it is 50 minutes old (Apple refuses one older than an hour and
throttles renewing more often than every 20 minutes); an ``ExpiredProviderToken`` answer
renews it at once.
"""

from __future__ import annotations

import time
from pathlib import Path

import jwt

from hub.push.http import HttpAnswer, NoAnswer, ProviderHttp
from hub.push.payloads import Push, apns_request
from hub.push.providers import Answer, Target, answer_for_status
from hub.settings.push import PushSettings

TOKEN_RENEW_SECONDS = 50 * 60
# 400/410 reasons that mean the device token is dead (Apple's "Handling notification
# responses from APNs"): forget it.
DEAD_TOKEN_REASONS = frozenset({"BadDeviceToken", "DeviceTokenNotForTopic", "Unregistered"})
STALE_PROVIDER_TOKEN = frozenset({"ExpiredProviderToken", "InvalidProviderToken"})


class ApnsProvider:
    name = "apns"

    def __init__(self, settings: PushSettings, client: ProviderHttp) -> None:
        assert settings.apns_key_file and settings.apns_key_id and settings.apns_team_id
        assert settings.apns_topic
        self._settings = settings
        self._key = Path(settings.apns_key_file).read_text(encoding="ascii")
        self._key_id = settings.apns_key_id
        self._team_id = settings.apns_team_id
        self._topic = settings.apns_topic
        self._client = client
        self._jwt = ""
        self._jwt_made_at = 0.0

    def provider_token(self) -> str:
        now = time.time()
        if not self._jwt or now - self._jwt_made_at >= TOKEN_RENEW_SECONDS:
            self._jwt = jwt.encode(
                {"iss": self._team_id, "iat": int(now)},
                self._key,
                algorithm="ES256",
                headers={"kid": self._key_id},
            )
            self._jwt_made_at = now
        return self._jwt

    async def send(self, push: Push, target: Target) -> Answer:
        request = apns_request(push, self._topic, int(time.time() * 1000))
        url = f"{self._settings.apns_base_url(target.environment)}/3/device/{target.token}"
        headers = {**request.headers, "authorization": f"bearer {self.provider_token()}"}
        try:
            response = await self._client.post(url, headers, request.body)
        except NoAnswer as exc:
            return Answer("retry", None, str(exc))
        reason = _reason(response)
        if response.status == 410 or (response.status == 400 and reason in DEAD_TOKEN_REASONS):
            return Answer("token_gone", response.status, reason)
        if response.status == 403 and reason in STALE_PROVIDER_TOKEN:
            self._jwt = ""  # made again for the retry
            return Answer("retry", 403, reason, 0)
        return answer_for_status(response.status, reason, response.headers.get("retry-after"))

    async def close(self) -> None:
        await self._client.close()


def _reason(response: HttpAnswer) -> str:
    if response.status == 200:
        return ""
    body = response.json()
    reason = body.get("reason", "") if isinstance(body, dict) else ""
    return reason if isinstance(reason, str) else ""
