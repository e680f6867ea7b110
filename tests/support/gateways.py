"""Stripe and Braintree as the hub's official client libraries see them, on 127.0.0.1.

Only the HTTP boundary is faked: the hub runs ``stripe`` and ``braintree`` unchanged, pointed
here by ``STRIPE_API_BASE`` and ``BRAINTREE_ENVIRONMENT``. Each fake records what it was
asked, behaves as its gateway does where the hub relies on it (Stripe replays an
``Idempotency-Key``; Braintree answers sales in its XML), and can be told to fail or to hold
a request (to crash the hub mid-call).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qsl
from xml.sax.saxutils import escape

import braintree
import stripe
from aiohttp import web

from tests.support import free_port

STRIPE_SECRET_KEY = "sk_test_hubfake"
STRIPE_PUBLISHABLE_KEY = "pk_test_hubfake"
STRIPE_WEBHOOK_SECRET = "whsec_hubfake"
BRAINTREE_MERCHANT_ID = "hubmerchant"
BRAINTREE_PUBLIC_KEY = "hubpublic"
BRAINTREE_PRIVATE_KEY = "hubprivate"
VALID_NONCE = "fake-valid-nonce"
DECLINED_NONCE = "fake-processor-declined-visa-nonce"


@dataclass
class Hold:
    """Hold the next matching request after recording it (the gateway did the work, the
    answer never reaches the hub): ``arrived`` is set when it comes."""

    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)


def _xml_fields(body: str) -> ET.Element:
    """Braintree's library writes tags with underscores, its docs with hyphens: accept both."""
    root = ET.fromstring(body)
    for element in root.iter():
        element.tag = element.tag.replace("-", "_")
    return root


def _flatten_form(body: str) -> dict[str, str]:
    return dict(parse_qsl(body, keep_blank_values=True))


class FakeStripe:
    """``POST /v1/payment_intents``. A repeated Idempotency-Key gets the first answer and
    creates nothing, as Stripe does."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.intents: dict[str, dict[str, Any]] = {}
        self.answers_by_key: dict[str, tuple[int, dict[str, Any]]] = {}
        self.fail_with: int | None = None  # 500: api_error; 402: card_error
        # 500 after creating the PaymentIntent: Stripe did the work, the answer is an error.
        self.fail_after_create = False
        self.searches = 0
        self.refunds: list[dict[str, Any]] = []
        self.delay = 0.0
        self.hold: Hold | None = None
        self.held: list[Hold] = []

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/payment_intents", self.create_payment_intent),
            web.get("/v1/payment_intents/search", self.search_payment_intents),
            web.get("/v1/payment_intents/{intent_id}", self.retrieve_payment_intent),
            web.post("/v1/refunds", self.create_refund),
        ]

    async def create_refund(self, request: web.Request) -> web.Response:
        """A Refund of a PaymentIntent's charge; a repeated key gets the first answer."""
        if not self._authorized(request):
            return web.json_response({"error": {"type": "invalid_request_error"}}, status=401)
        params = _flatten_form(await request.text())
        key = request.headers.get("Idempotency-Key")
        if key is not None and key in self.answers_by_key:
            status, body = self.answers_by_key[key]
            return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
        intent = self.intents.get(params.get("payment_intent", ""))
        amount = int(params.get("amount", "0"))
        if intent is None or intent["amount_refunded"] + amount > intent["amount"]:
            status, body = (
                400,
                {"error": {"type": "invalid_request_error", "code": "charge_already_refunded"}},
            )
        else:
            intent["amount_refunded"] += amount
            refund = {
                "id": "re_" + uuid.uuid4().hex[:24],
                "object": "refund",
                "amount": amount,
                "payment_intent": intent["id"],
                "status": "succeeded",
            }
            self.refunds.append(refund)
            status, body = 200, refund
        if key is not None:
            self.answers_by_key[key] = (status, body)
        return web.json_response(body, status=status, headers={"Stripe-Should-Retry": "false"})

    def charge_refunded(self, intent_id: str) -> dict[str, Any]:
        """``charge.refunded`` as Stripe sends it after a refund: full or partial, by the
        charge's ``amount_refunded`` so far."""
        intent = self.intents[intent_id]
        charge = {
            "id": "ch_" + intent_id[3:],
            "object": "charge",
            "amount": intent["amount"],
            "amount_refunded": intent["amount_refunded"],
            "currency": intent["currency"],
            "payment_intent": intent_id,
            "refunded": intent["amount_refunded"] == intent["amount"],
            "metadata": {},
        }
        return self.event("charge.refunded", charge)

    def dispute(self, kind: str, intent_id: str, status: str) -> dict[str, Any]:
        """``charge.dispute.created`` / ``charge.dispute.closed`` (status won or lost)."""
        intent = self.intents[intent_id]
        dispute = {
            "id": "dp_" + uuid.uuid4().hex[:24],
            "object": "dispute",
            "amount": intent["amount"],
            "charge": "ch_" + intent_id[3:],
            "payment_intent": intent_id,
            "status": status,
            "metadata": {},
        }
        return self.event(kind, dispute)

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {STRIPE_SECRET_KEY}"

    async def search_payment_intents(self, request: web.Request) -> web.Response:
        """Only the query the hub makes: ``metadata['paymentId']:'<id>'``."""
        if not self._authorized(request):
            return web.json_response({"error": {"type": "invalid_request_error"}}, status=401)
        self.searches += 1
        query = request.query.get("query", "")
        prefix = "metadata['paymentId']:'"
        if not (query.startswith(prefix) and query.endswith("'")):
            return web.json_response({"error": {"type": "invalid_request_error"}}, status=400)
        wanted = query[len(prefix) : -1]
        data = [i for i in self.intents.values() if i["metadata"].get("paymentId") == wanted]
        return web.json_response(
            {"object": "search_result", "data": data, "has_more": False, "url": request.path}
        )

    async def retrieve_payment_intent(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error": {"type": "invalid_request_error"}}, status=401)
        intent = self.intents.get(request.match_info["intent_id"])
        if intent is None:
            return web.json_response(
                {"error": {"type": "invalid_request_error", "code": "resource_missing"}},
                status=404,
            )
        return web.json_response(intent)

    async def create_payment_intent(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {STRIPE_SECRET_KEY}":
            return web.json_response(
                {"error": {"type": "invalid_request_error", "message": "Invalid API Key"}},
                status=401,
            )
        params = _flatten_form(await request.text())
        key = request.headers.get("Idempotency-Key")
        self.requests.append({"idempotency_key": key, "params": params})
        if key is not None and key in self.answers_by_key:
            status, body = self.answers_by_key[key]
            return web.json_response(body, status=status, headers={"Idempotent-Replayed": "true"})
        status, body = self._answer(params)
        if self.fail_after_create:
            status, body = 500, {"error": {"type": "api_error", "message": "An error occurred"}}
        if key is not None:
            self.answers_by_key[key] = (status, body)
        hold, self.hold = self.hold, None
        if hold is not None:
            self.held.append(hold)
            hold.arrived.set()
            await hold.release.wait()
        if self.delay:
            await asyncio.sleep(self.delay)
        return web.json_response(body, status=status, headers={"Stripe-Should-Retry": "false"})

    def _answer(self, params: dict[str, str]) -> tuple[int, dict[str, Any]]:
        if self.fail_with == 500:
            return 500, {"error": {"type": "api_error", "message": "An unknown error occurred"}}
        if self.fail_with == 402:
            return 402, {
                "error": {
                    "type": "card_error",
                    "code": "card_declined",
                    "decline_code": "generic_decline",
                    "message": "Your card was declined.",
                }
            }
        intent_id = "pi_" + uuid.uuid4().hex[:24]
        metadata = {
            k[len("metadata[") : -1]: v for k, v in params.items() if k.startswith("metadata[")
        }
        intent = {
            "id": intent_id,
            "object": "payment_intent",
            "amount": int(params["amount"]),
            "currency": params["currency"],
            "client_secret": f"{intent_id}_secret_{uuid.uuid4().hex[:16]}",
            "status": "requires_payment_method",
            "amount_refunded": 0,
            "metadata": metadata,
            "livemode": False,
            "created": int(time.time()),
        }
        self.intents[intent_id] = intent
        return 200, intent

    @property
    def created(self) -> int:
        return len(self.intents)

    def event(self, kind: str, subject: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "evt_" + uuid.uuid4().hex[:24],
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "livemode": False,
            "data": {"object": subject},
        }

    def succeeded(self, intent_id: str) -> dict[str, Any]:
        return self.event(
            "payment_intent.succeeded", {**self.intents[intent_id], "status": "succeeded"}
        )

    def payment_failed(self, intent_id: str) -> dict[str, Any]:
        subject = {
            **self.intents[intent_id],
            "status": "requires_payment_method",
            "last_payment_error": {"code": "card_declined", "message": "Your card was declined."},
        }
        return self.event("payment_intent.payment_failed", subject)

    def refunded(self, intent_id: str) -> dict[str, Any]:
        intent = self.intents[intent_id]
        charge = {
            "id": "ch_" + uuid.uuid4().hex[:24],
            "object": "charge",
            "amount": intent["amount"],
            "amount_refunded": intent["amount"],
            "currency": intent["currency"],
            "payment_intent": intent_id,
            "refunded": True,
            "metadata": {},
        }
        return self.event("charge.refunded", charge)


def signed_stripe_webhook(
    event: dict[str, Any], secret: str = STRIPE_WEBHOOK_SECRET
) -> tuple[bytes, dict[str, str]]:
    """The body and headers Stripe would send: ``Stripe-Signature: t=…,v1=HMAC(t.payload)``."""
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret)
    return payload.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


# The fake's merchant accounts and the currency each charges in (what the hub is told).
BRAINTREE_ACCOUNT_CURRENCIES = (
    ("band_eur", "EUR"),
    ("band_usd", "USD"),
    ("band_jpy", "JPY"),
    ("band_kwd", "KWD"),
)


class FakeBraintree:
    """``/merchants/{id}/…`` as Braintree's XML API answers the calls the hub makes: sales,
    client tokens, the order-id search and a transaction by id."""

    def __init__(self) -> None:
        self.sales: list[dict[str, Any]] = []
        self.transactions: dict[str, dict[str, str]] = {}
        self.searches = 0
        self.fail_with: int | None = None
        self.hold: Hold | None = None
        self.held: list[Hold] = []
        self.voided: list[str] = []
        self.refunded: dict[str, list[str]] = {}  # sale id -> refunded amounts (decimals)
        # Braintree charges in the merchant account's currency; a sale without an account
        # goes to the default one (EUR here). ``charge_in`` forces a currency (a wrong
        # account setup at Braintree).
        self.account_currencies = dict(BRAINTREE_ACCOUNT_CURRENCIES)
        self.charge_in: str | None = None
        base = f"/merchants/{BRAINTREE_MERCHANT_ID}"
        self._routes = [
            web.post(base + "/transactions", self.sale),
            web.put(base + "/transactions/{transaction_id}/void", self.void),
            web.post(base + "/transactions/{transaction_id}/refund", self.refund),
            web.post(base + "/transactions/advanced_search_ids", self.search_ids),
            web.get(base + "/transactions/{transaction_id}", self.find),
            web.post(base + "/client_token", self.client_token),
        ]

    def routes(self) -> list[web.RouteDef]:
        return self._routes

    def _authorized(self, request: web.Request) -> bool:
        expected = base64.b64encode(
            f"{BRAINTREE_PUBLIC_KEY}:{BRAINTREE_PRIVATE_KEY}".encode()
        ).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    @staticmethod
    def _xml(body: str, status: int = 200) -> web.Response:
        return web.Response(
            text='<?xml version="1.0" encoding="UTF-8"?>\n' + body,
            status=status,
            content_type="application/xml",
        )

    async def sale(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401)
        if self.fail_with is not None:
            return web.Response(status=self.fail_with)
        root = _xml_fields(await request.text())
        sale = {
            "amount": root.findtext("amount"),
            "nonce": root.findtext("payment_method_nonce"),
            "order_id": root.findtext("order_id"),
            "type": root.findtext("type"),
            "submit_for_settlement": root.findtext("options/submit_for_settlement"),
        }
        account = root.findtext("merchant_account_id")
        if account is not None:
            sale["merchant_account_id"] = account
        self.sales.append(sale)
        transaction = {
            "id": uuid.uuid4().hex[:8],
            "amount": sale["amount"] or "0",
            "order_id": sale["order_id"] or "",
            "status": "submitted_for_settlement",
            "processor_response_text": "Approved",
            "currency": self.charge_in or self.account_currencies.get(account or "", "EUR"),
        }
        if sale["nonce"] == DECLINED_NONCE:
            transaction["status"] = "processor_declined"
            transaction["processor_response_text"] = "Do Not Honor"
        self.transactions[transaction["id"]] = transaction
        hold, self.hold = self.hold, None
        if hold is not None:
            self.held.append(hold)
            hold.arrived.set()
            await hold.release.wait()
        if transaction["status"] == "processor_declined":
            return self._xml(
                '<api-error-response><errors><errors type="array"/></errors>'
                "<message>Do Not Honor</message>"
                f"{self._transaction_xml(transaction)}</api-error-response>",
                status=422,
            )
        return self._xml(self._transaction_xml(transaction), status=201)

    async def void(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401)
        transaction = self.transactions.get(request.match_info["transaction_id"])
        if transaction is None:
            return web.Response(status=404)
        transaction["status"] = "voided"
        self.voided.append(transaction["id"])
        return self._xml(self._transaction_xml(transaction))

    async def refund(self, request: web.Request) -> web.Response:
        """A credit for part or all of a settled sale; never more than is left of it."""
        if not self._authorized(request):
            return web.Response(status=401)
        sale = self.transactions.get(request.match_info["transaction_id"])
        if sale is None:
            return web.Response(status=404)
        root = _xml_fields(await request.text())
        amount = Decimal(root.findtext("amount") or sale["amount"])
        refunded = sum((Decimal(a) for a in self.refunded.get(sale["id"], [])), Decimal(0))
        if sale["status"] != "settled" or refunded + amount > Decimal(sale["amount"]):
            return self._xml(
                '<api-error-response><errors><errors type="array"/></errors>'
                "<message>Refund amount is too large.</message></api-error-response>",
                status=422,
            )
        self.refunded.setdefault(sale["id"], []).append(str(amount))
        credit = {
            **sale,
            "id": uuid.uuid4().hex[:8],
            "amount": str(amount),
            "status": "submitted_for_settlement",
        }
        self.transactions[credit["id"]] = {**credit, "order_id": ""}
        return self._xml(self._transaction_xml(credit), status=201)

    async def search_ids(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401)
        self.searches += 1
        root = _xml_fields(await request.text())
        wanted = root.findtext("order_id/is")
        ids = [t["id"] for t in self.transactions.values() if t["order_id"] == wanted]
        items = "".join(f"<item>{escape(i)}</item>" for i in ids)
        return self._xml(
            '<search-results><page-size type="integer">50</page-size>'
            f'<ids type="array">{items}</ids></search-results>'
        )

    async def find(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401)
        transaction = self.transactions.get(request.match_info["transaction_id"])
        if transaction is None:
            return web.Response(status=404)
        return self._xml(self._transaction_xml(transaction))

    async def client_token(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.Response(status=401)
        return self._xml("<client-token><value>fake-client-token</value></client-token>", 201)

    @staticmethod
    def _transaction_xml(t: dict[str, str]) -> str:
        return (
            "<transaction>"
            f"<id>{escape(t['id'])}</id><type>sale</type>"
            f"<amount>{escape(t['amount'])}</amount>"
            f"<status>{escape(t['status'])}</status>"
            f"<order-id>{escape(t['order_id'])}</order-id>"
            f"<processor-response-text>{escape(t['processor_response_text'])}"
            "</processor-response-text>"
            f"<currency-iso-code>{escape(t['currency'])}</currency-iso-code>"
            "</transaction>"
        )


def braintree_webhook(kind: str, transaction_id: str) -> dict[str, str]:
    """A notification signed with the hub's keys, by Braintree's own test helper."""
    gateway = braintree.BraintreeGateway(
        braintree.Configuration(
            environment=braintree.Environment.Sandbox,
            merchant_id=BRAINTREE_MERCHANT_ID,
            public_key=BRAINTREE_PUBLIC_KEY,
            private_key=BRAINTREE_PRIVATE_KEY,
        )
    )
    sample = gateway.webhook_testing.sample_notification(kind, transaction_id)
    payload = sample["bt_payload"]
    return {
        "bt_signature": sample["bt_signature"],
        "bt_payload": payload.decode() if isinstance(payload, bytes) else payload,
    }


class FakeGateways:
    """Both fakes on one loopback server, and the hub settings that point at them."""

    def __init__(self) -> None:
        self.stripe = FakeStripe()
        self.braintree = FakeBraintree()
        self.port = 0
        self._runner: web.AppRunner | None = None

    async def start(self) -> FakeGateways:
        app = web.Application()
        app.add_routes(self.stripe.routes() + self.braintree.routes())
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        for hold in self.stripe.held + self.braintree.held:
            hold.release.set()
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def hub_env(self) -> dict[str, str]:
        return {
            "STRIPE_SECRET_KEY": STRIPE_SECRET_KEY,
            "STRIPE_WEBHOOK_SECRET": STRIPE_WEBHOOK_SECRET,
            "STRIPE_PUBLISHABLE_KEY": STRIPE_PUBLISHABLE_KEY,
            "STRIPE_API_BASE": self.url,
            "BRAINTREE_MERCHANT_ID": BRAINTREE_MERCHANT_ID,
            "BRAINTREE_PUBLIC_KEY": BRAINTREE_PUBLIC_KEY,
            "BRAINTREE_PRIVATE_KEY": BRAINTREE_PRIVATE_KEY,
            "BRAINTREE_ENVIRONMENT": self.url,
            "BRAINTREE_MERCHANT_ACCOUNTS": ",".join(
                f"{currency}:{account}" for account, currency in BRAINTREE_ACCOUNT_CURRENCIES
            ),
        }
