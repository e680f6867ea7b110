"""FCM HTTP v1: ``POST {FCM_URL}/v1/projects/<project_id>/messages:send`` with an OAuth 2.0
access token that google-auth obtains from the service account (its ``token_uri``, signed
with its ``private_key``), cached until shortly before it expires (google-auth's own margin).

google-auth's token exchange is synchronous: it runs in a thread, one at a time, and only
when the token is missing or about to expire (about once an hour).
"""

from __future__ import annotations

import asyncio
import ssl
import time

import orjson
import urllib3
from google.auth.transport.urllib3 import Request as GoogleRequest
from google.oauth2 import service_account

from hub.push.http import HttpAnswer, NoAnswer, ProviderHttp
from hub.push.payloads import Push, fcm_message
from hub.push.providers import Answer, Target, answer_for_status
from hub.settings.push import PushSettings

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
# Error codes of ``FcmError`` that mean the registration token is dead: forget it.
DEAD_TOKEN_CODES = frozenset({"UNREGISTERED", "INVALID_ARGUMENT"})


class FcmProvider:
    name = "fcm"

    def __init__(
        self, settings: PushSettings, client: ProviderHttp, context: ssl.SSLContext
    ) -> None:
        assert settings.fcm_credentials_file
        self._credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
            settings.fcm_credentials_file, scopes=[SCOPE]
        )
        project = self._credentials.project_id
        if not project:
            raise ValueError("FCM_CREDENTIALS_FILE has no project_id")
        self._url = f"{settings.fcm_url}/v1/projects/{project}/messages:send"
        self._client = client
        self._token_request = GoogleRequest(urllib3.PoolManager(ssl_context=context))  # type: ignore[no-untyped-call]
        self._refreshing = asyncio.Lock()

    async def access_token(self) -> str:
        if not self._credentials.valid:
            async with self._refreshing:
                if not self._credentials.valid:
                    await asyncio.to_thread(self._credentials.refresh, self._token_request)
        return str(self._credentials.token)

    async def send(self, push: Push, target: Target) -> Answer:
        try:
            token = await self.access_token()
        except Exception as exc:  # the token endpoint did not answer or refused
            return Answer("retry", None, f"oauth: {type(exc).__name__}: {str(exc)[:200]}")
        body = orjson.dumps({"message": fcm_message(push, target.token, int(time.time() * 1000))})
        headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        try:
            response = await self._client.post(self._url, headers, body)
        except NoAnswer as exc:
            return Answer("retry", None, str(exc))
        code = _error_code(response)
        if code in DEAD_TOKEN_CODES:
            return Answer("token_gone", response.status, code)
        if response.status == 401:
            self._credentials.token = None  # fetched again for the retry
            return Answer("retry", 401, code, 0)
        return answer_for_status(response.status, code, response.headers.get("retry-after"))

    async def close(self) -> None:
        await self._client.close()


def _error_code(response: HttpAnswer) -> str:
    """The ``FcmError`` code of an error answer (else the status text), "" for a success."""
    if response.status < 400:
        return ""
    body = response.json()
    error = body.get("error", {}) if isinstance(body, dict) else {}
    if not isinstance(error, dict):
        return ""
    for detail in error.get("details", ()):
        if isinstance(detail, dict) and detail.get("errorCode"):
            return str(detail["errorCode"])
    return str(error.get("status", ""))
