import re
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from billing.gateways.stripe import API_VERSION, WEBHOOK_EVENTS
from billing.models import Plan
from billing.tests.factories import plan
from billing.tests.stripe_fakes import fake_stripe, form, query, stripe_list, stripe_object

pytestmark = pytest.mark.django_db

WEBHOOK_URL = "https://panel.example.com/billing/webhooks/stripe/"


@pytest.fixture
def stripe_api(settings):
    with fake_stripe(settings) as api:
        yield api


def run(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


class PriceCatalog:
    """Stripe's prices and products, enough of them for the sync command: list by lookup
    key (with the product expanded), create (optionally with a new product, optionally
    taking over the lookup key), rename a product."""

    def __init__(self, api):
        self.prices: dict[str, dict] = {}
        self.products: dict[str, dict] = {}
        api.handle("GET", "/v1/prices", self.list_prices)
        api.handle("POST", "/v1/prices", self.create_price)
        api.handle("POST", re.compile(r"/v1/products/[^/]+"), self.update_product)

    def list_prices(self, request):
        params = query(request)
        keys = {v[0] for k, v in params.items() if k.startswith("lookup_keys[")}
        found = [p for p in self.prices.values() if p["lookup_key"] in keys]
        expand = "data.product" in params.get("expand[0]", [])
        data = [{**p, "product": self.products[p["product"]]} if expand else p for p in found]
        return stripe_list(data, "/v1/prices")

    def create_price(self, request):
        params = {k: v[0] for k, v in form(request).items()}
        key = params["lookup_key"]
        holder = next((p for p in self.prices.values() if p["lookup_key"] == key), None)
        if holder is not None:
            if params.get("transfer_lookup_key") != "true":
                return 400, {"error": {"type": "invalid_request_error", "message": "taken"}}
            holder["lookup_key"] = None
        if "product_data[name]" in params:
            product = stripe_object("product", name=params["product_data[name]"])
            self.products[product["id"]] = product
            product_id = product["id"]
        else:
            product_id = params["product"]
        price = stripe_object(
            "price",
            active=True,
            currency=params["currency"],
            unit_amount=int(params["unit_amount"]),
            lookup_key=key,
            product=product_id,
            recurring={"interval": params["recurring[interval]"], "interval_count": 1},
        )
        self.prices[price["id"]] = price
        return price

    def update_product(self, request):
        product = self.products[request.url.rsplit("/", 1)[1]]
        product.update({k: v[0] for k, v in form(request).items()})
        return product


def test_sync_plans_refuses_without_a_key(settings):
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(CommandError, match="simulator needs no prices"):
        run("stripe_sync_plans")


def test_sync_plans_creates_once_then_changes_nothing(stripe_api):
    catalog = PriceCatalog(stripe_api)

    out = run("stripe_sync_plans")

    creates = stripe_api.calls("POST", "/v1/prices")
    assert len(stripe_api.posts()) == len(creates) == Plan.objects.count() == 3
    basic = plan("basic")
    (create_basic,) = [c for c in creates if form(c)["lookup_key"] == ["hosting-basic-monthly"]]
    assert form(create_basic) == {
        "currency": ["usd"],
        "unit_amount": [str(basic.price_cents)],
        "recurring[interval]": ["month"],
        "lookup_key": ["hosting-basic-monthly"],
        "nickname": ["Basic monthly"],
        "product_data[name]": ["Basic"],
        "product_data[metadata][plan]": ["basic"],
    }
    assert (
        create_basic.request.headers["Idempotency-Key"] == f"price-basic-{basic.price_cents}usd-new"
    )
    assert create_basic.request.headers["Stripe-Version"] == API_VERSION
    lookups = stripe_api.calls("GET", "/v1/prices")
    assert query(lookups[0])["expand[0]"] == ["data.product"]
    for row in Plan.objects.all():
        price = catalog.prices[row.stripe_price_id]
        assert price["lookup_key"] == f"hosting-{row.slug}-monthly"
        assert price["unit_amount"] == row.price_cents
    assert "created product and price" in out

    before = dict(Plan.objects.values_list("slug", "stripe_price_id"))
    out = run("stripe_sync_plans")

    assert len(stripe_api.posts()) == 3  # none more
    assert dict(Plan.objects.values_list("slug", "stripe_price_id")) == before
    assert "nothing changed" in out


def test_sync_plans_moves_the_lookup_key_to_a_new_price_when_the_amount_changes(stripe_api):
    catalog = PriceCatalog(stripe_api)
    run("stripe_sync_plans")
    pro = plan("pro")
    old_price_id = pro.stripe_price_id
    product_id = catalog.prices[old_price_id]["product"]
    posts_before = len(stripe_api.posts())

    Plan.objects.filter(pk=pro.pk).update(price_cents=3400)
    out = run("stripe_sync_plans")

    new_posts = stripe_api.posts()[posts_before:]
    assert len(new_posts) == 1
    params = form(new_posts[0])
    assert params["unit_amount"] == ["3400"]
    assert params["product"] == [product_id]
    assert params["transfer_lookup_key"] == ["true"]
    assert params["lookup_key"] == ["hosting-pro-monthly"]
    assert "product_data[name]" not in params
    assert (
        new_posts[0].request.headers["Idempotency-Key"] == f"price-pro-3400usd-from-{old_price_id}"
    )
    pro.refresh_from_db()
    assert pro.stripe_price_id not in ("", old_price_id)
    assert catalog.prices[pro.stripe_price_id]["lookup_key"] == "hosting-pro-monthly"
    assert catalog.prices[old_price_id]["lookup_key"] is None
    assert "new price" in out

    run("stripe_sync_plans")
    assert len(stripe_api.posts()) == posts_before + 1


def test_sync_plans_renames_the_product(stripe_api):
    catalog = PriceCatalog(stripe_api)
    run("stripe_sync_plans")
    premium = plan("premium")
    product_id = catalog.prices[premium.stripe_price_id]["product"]
    posts_before = len(stripe_api.posts())

    Plan.objects.filter(pk=premium.pk).update(name="Premium Plus")
    run("stripe_sync_plans")

    (rename,) = stripe_api.posts()[posts_before:]
    assert rename.request.url.endswith(f"/v1/products/{product_id}")
    assert form(rename) == {"name": ["Premium Plus"]}
    assert catalog.products[product_id]["name"] == "Premium Plus"
    premium.refresh_from_db()
    assert catalog.prices[premium.stripe_price_id]["product"] == product_id


def test_sync_plans_reports_a_stripe_failure(stripe_api):
    stripe_api.error(
        "GET", "/v1/prices", status=401, message="Invalid API Key provided: sk_test_****"
    )
    with pytest.raises(CommandError, match="Invalid API Key"):
        run("stripe_sync_plans")


def test_webhook_endpoint_is_created_and_its_secret_printed(stripe_api):
    stripe_api.reply("GET", "/v1/webhook_endpoints", stripe_list([], "/v1/webhook_endpoints"))
    stripe_api.reply(
        "POST",
        "/v1/webhook_endpoints",
        stripe_object(
            "webhook_endpoint",
            id="we_123",
            url=WEBHOOK_URL,
            secret="whsec_shown_once",
            enabled_events=list(WEBHOOK_EVENTS),
            api_version=API_VERSION,
        ),
    )

    out = run("stripe_webhook_endpoint", WEBHOOK_URL)

    (create,) = stripe_api.calls("POST", "/v1/webhook_endpoints")
    params = form(create)
    assert params["url"] == [WEBHOOK_URL]
    assert params["api_version"] == ["2026-10-28.endive"]
    events = [params[f"enabled_events[{i}]"][0] for i in range(len(WEBHOOK_EVENTS))]
    assert events == list(WEBHOOK_EVENTS)
    assert "charge.dispute.created" in events and "invoice.paid" in events
    assert create.request.headers["Idempotency-Key"].startswith("webhook-endpoint-")
    assert "we_123" in out
    assert "whsec_shown_once" in out
    assert "STRIPE_WEBHOOK_SECRET" in out


def test_webhook_endpoint_already_there_is_not_created_again(stripe_api):
    existing = stripe_object(
        "webhook_endpoint",
        id="we_old",
        url=WEBHOOK_URL,
        enabled_events=list(WEBHOOK_EVENTS),
        api_version=API_VERSION,
    )
    other = stripe_object("webhook_endpoint", id="we_other", url="https://elsewhere.example/")
    stripe_api.reply(
        "GET", "/v1/webhook_endpoints", stripe_list([other, existing], "/v1/webhook_endpoints")
    )

    out = run("stripe_webhook_endpoint", WEBHOOK_URL)

    assert stripe_api.posts() == []
    assert "already exists" in out
    assert "we_old" in out
    assert "whsec_" not in out
    assert "not subscribed" not in out


def test_webhook_endpoint_refuses_without_a_key(settings):
    settings.STRIPE_SECRET_KEY = ""
    with pytest.raises(CommandError, match="STRIPE_SECRET_KEY"):
        run("stripe_webhook_endpoint", WEBHOOK_URL)
