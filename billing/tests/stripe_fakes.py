"""Stripe faked at the HTTP layer with `responses`, so the SDK code production runs is the code
under test. Nothing here reaches the network: a request with no registered reply fails.

    @pytest.fixture
    def stripe_api(settings):
        with fake_stripe(settings) as api:   # sets STRIPE_SECRET_KEY, yields a FakeStripe
            yield api

    def test_something(stripe_api):
        stripe_api.reply("POST", "/v1/refunds", stripe_object("refund", id="re_1"))
        ...  # code that calls Stripe
        (call,) = stripe_api.calls("POST", "/v1/refunds")
        assert form(call) == {"payment_intent": ["pi_1"]}
        assert call.request.headers["Idempotency-Key"] == "refund-..."

Stripe's form encoding flattens nesting: `metadata[payment_uuid]`, `line_items[0][price]`,
`expand[0]`; `form()` and `query()` return those keys as `parse_qs` gives them.
"""

from __future__ import annotations

import itertools
import json
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock
from urllib.parse import parse_qs, urlsplit

import responses
import stripe
from requests import PreparedRequest
from responses import matchers
from stripe._http_client import HTTPClient

API = "https://api.stripe.com"
SECRET_KEY = "sk_test_fake_51Hosting000000000000"
CREATED = 1_767_225_600  # 2026-01-01T00:00:00Z: a fixed `created` for built objects

_ID_PREFIXES = {
    "checkout.session": "cs_test",
    "charge": "ch",
    "customer": "cus",
    "event": "evt",
    "invoice": "in",
    "invoice_payment": "inpay",
    "payment_intent": "pi",
    "price": "price",
    "product": "prod",
    "refund": "re",
    "subscription": "sub",
    "webhook_endpoint": "we",
}
_serial = itertools.count(1)


class FakeStripe:
    """Registered replies and recorded calls for the Stripe API."""

    def __init__(self, requests_mock: responses.RequestsMock):
        self.mock = requests_mock

    def reply(
        self,
        method: str,
        path: str,
        body: dict,
        *,
        status: int = 200,
        query: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> responses.BaseResponse:
        """Answer `method path` (e.g. "GET", "/v1/prices") with `body` as JSON. Several
        replies for one request are used in order, the last one repeating (a list's pages,
        a 500 then a 200). `query` narrows the match to requests carrying those query
        parameters (others allowed), e.g. {"lookup_keys[0]": "hosting-pro-monthly"}."""
        match = [matchers.query_param_matcher(query, strict_match=False)] if query else []
        return self.mock.add(
            method.upper(),
            API + path,
            json=body,
            status=status,
            headers=headers,
            match=match,
        )

    def error(
        self,
        method: str,
        path: str,
        *,
        status: int = 400,
        code: str | None = None,
        message: str = "Simulated Stripe error",
        type: str = "invalid_request_error",
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> responses.BaseResponse:
        """Answer with a Stripe error body; the SDK turns it into the matching exception
        (400/404: InvalidRequestError, 429: RateLimitError, 5xx: APIError, ...)."""
        body = {"error": {"type": type, "code": code, "message": message, "param": param}}
        return self.reply(method, path, body, status=status, headers=headers)

    def handle(
        self,
        method: str,
        path: str | re.Pattern,
        handler: Callable[[PreparedRequest], dict | tuple[int, dict]],
    ) -> responses.BaseResponse:
        """Answer `method path` with what `handler(request)` returns: a JSON body, or
        (status, body). For stateful fakes; `path` may be a regex matched against the
        path (e.g. re.compile(r"/v1/products/[^/]+")). Read the request with `form()` and
        `query()`."""

        def callback(request: PreparedRequest):
            result = handler(request)
            status, body = result if isinstance(result, tuple) else (200, result)
            return status, {}, json.dumps(body)

        url = (
            re.compile(re.escape(API) + path.pattern + "$")
            if isinstance(path, re.Pattern)
            else API + path
        )
        return self.mock.add_callback(
            method.upper(), url, callback, content_type="application/json"
        )

    def calls(self, method: str | None = None, path: str | None = None) -> list[responses.Call]:
        """Recorded calls, optionally only those to `method` and/or `path` (no query)."""
        return [
            call
            for call in self.mock.calls
            if (method is None or call.request.method == method.upper())
            and (path is None or urlsplit(call.request.url).path == path)
        ]

    def posts(self) -> list[responses.Call]:
        """Every call that could change something at Stripe (POST and DELETE)."""
        return [c for c in self.mock.calls if c.request.method in ("POST", "DELETE")]


@contextmanager
def fake_stripe(settings, *, secret_key: str = SECRET_KEY) -> Iterator[FakeStripe]:
    """Point the gateway at a faked api.stripe.com: sets STRIPE_SECRET_KEY (via pytest-django's
    `settings` fixture), and makes the SDK's retries immediate so a retried 500 costs no
    time. Unregistered requests raise ConnectionError (the SDK's APIConnectionError)."""
    settings.STRIPE_SECRET_KEY = secret_key
    settings.STRIPE_API_BASE = ""
    with (
        mock.patch.object(HTTPClient, "INITIAL_DELAY", 0),
        mock.patch.object(HTTPClient, "MAX_DELAY", 0),
        responses.RequestsMock(assert_all_requests_are_fired=False) as requests_mock,
    ):
        yield FakeStripe(requests_mock)


def stripe_object(object_type: str, id: str | None = None, **fields: Any) -> dict:
    """A Stripe API object: `id`, `object`, `livemode`, `created`, then `fields`. Only the
    fields the code under test reads need to be given."""
    if id is None:
        id = f"{_ID_PREFIXES.get(object_type, 'obj')}_fake{next(_serial):06d}"
    return {"id": id, "object": object_type, "livemode": False, "created": CREATED, **fields}


def stripe_list(data: list[dict], url: str, *, has_more: bool = False) -> dict:
    """A list object. `url` is the list's own path (e.g. "/v1/checkout/sessions"): the SDK
    requests the next page from it when `has_more` is true."""
    return {"object": "list", "data": data, "has_more": has_more, "url": url}


def form(call: responses.Call | PreparedRequest) -> dict[str, list[str]]:
    """The form-encoded body of a recorded POST (a call, or a request in a handler)."""
    request = call.request if isinstance(call, responses.Call) else call
    body = request.body or ""
    if isinstance(body, bytes):
        body = body.decode()
    return parse_qs(body)


def query(call: responses.Call | PreparedRequest) -> dict[str, list[str]]:
    """The query parameters of a recorded GET or DELETE (a call, or a request)."""
    request = call.request if isinstance(call, responses.Call) else call
    return parse_qs(urlsplit(request.url).query)


def invoice_payment(invoice_id: str, pi: str, charge: str) -> dict:
    """An `invoice_payment` saying `invoice_id` was paid by payment intent `pi` (charge
    `charge`): what the gateway reads to link a renewal's invoice to its payment."""
    return stripe_object(
        "invoice_payment",
        invoice=invoice_id,
        status="paid",
        payment={
            "type": "payment_intent",
            "payment_intent": stripe_object("payment_intent", id=pi, latest_charge=charge),
        },
    )


def signed(event: dict, secret: str, *, timestamp: int | None = None) -> tuple[bytes, str]:
    """`event` as a webhook body and its `Stripe-Signature` header, as Stripe would post it
    (now, or at `timestamp` to test the tolerance)."""
    payload = json.dumps(event).encode()
    header = stripe.WebhookSignature.generate_signature_header(
        payload.decode(), secret, timestamp=timestamp
    )
    return payload, header
