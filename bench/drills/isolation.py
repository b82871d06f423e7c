"""Isolation drill: every customer-facing URL, found by walking Django's URL resolver (so a
new one cannot slip past), its path filled with customer A's objects (server,
deployment, domain, ticket, payment, subscription, simulated Stripe session), requested
with GET and POST (plausible form data, so a view that forgot its owner check would act)
by customer B, logged in, and by an anonymous visitor, through the whole middleware
stack (row-level security's TenantScopeMiddleware included), as Django's test client
runs it.

Allowed answers to a URL naming A's object: 404 (its existence is not B's to learn),
405 for a method the view does not take, and for the anonymous visitor a redirect to the
login page. 403 would say the object exists: a leak. A URL naming none of A's objects is
the requester's own page (dashboard, billing, new ticket ...): B may be served, the
anonymous visitor is sent to log in. No answer to either may show any of A's names or
addresses, and A's rows (every table that is A's, hashed before and after each request)
must not change.

The requests are made twice: as deployed, and with row-level security off, so each of
the two layers, the views' own owner checks and the database's policies, is shown to
hold on its own."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.db import connection
from django.test import Client, override_settings
from django.urls import URLResolver, get_resolver, reverse

from bench.drills import Outcome
from bench.drills.customers import Customer, customers_make, logged_in, refusals_quiet
from bench.drills.rows import changed, owned_fingerprint
from hosting.database.rls import role_bypasses

NAME = "isolation"

# Nothing of a customer's lives under these: staff only, behind their own login.
NOT_CUSTOMER_FACING = ("admin/",)

# URLs anyone may open, each with why that leaks nothing. They are requested too, and
# their answers must not show A's names or change A's rows.
PUBLIC = {
    "landing": "the landing page",
    "pricing": "the plans and their prices",
    "healthz": "liveness, for the load balancer",
    "readyz": "readiness, for the load balancer",
    "account_login": "the login form",
    "account_logout": "ends the requester's own session, if any",
    "account_signup": "the signup form",
    "account_inactive": "says an account is inactive, naming none",
    "account_email_verification_sent": "says a confirmation was sent, naming no address",
    "account_confirm_email": "the emailed key is the authority; a wrong key confirms nothing",
    "account_confirm_login_code": "a login in progress in the requester's own session",
    "account_reset_password": "the reset form, which says the same whether an account exists",
    "account_reset_password_done": "says a reset email was sent, naming no address",
    "account_reset_password_from_key": "the emailed key is the authority; a wrong one is refused",
    "account_reset_password_from_key_done": "says a password was changed, naming no account",
    "mfa_authenticate": "the second step of a login in progress in the requester's session",
    "two_factor_lost": "help for someone stuck halfway through logging in",
    "servers:tls_ask": "Caddy's question, answered yes or no for a server's secret token",
    "billing:stripe_webhook": "Stripe's events, refused unless signed (the fuzz drill tries)",
}

# How each path parameter naming one of A's objects is filled.
OWNED_PARAMETERS = {
    "server_uuid": lambda a: a.server.uuid,
    "deployment_uuid": lambda a: a.deployment.uuid,
    "domain_uuid": lambda a: a.domain.uuid,
    "ticket_uuid": lambda a: a.ticket.uuid,
    "payment_uuid": lambda a: a.payment.uuid,
    "subscription_pk": lambda a: a.subscription.pk,
    "session_id": lambda a: a.payment.stripe_checkout_session_id,
    "subscription_id": lambda a: a.subscription.stripe_subscription_id,
}
# Parameters that name nothing of anyone's: the page is the requester's own.
NEUTRAL_PARAMETERS = {
    "plan_slug": lambda a: a.payment.plan.slug,  # the plans are public
}
# Parameters of public URLs: made-up values (each stands for a secret the requester
# would have to hold: a server's TLS ask token, once forgotten by us; an emailed key).
PUBLIC_PARAMETERS = {
    "token": lambda a: "made-up-token",
    "key": lambda a: "made-up-key",
    "uidb36": lambda a: "1",
}

# What each POST carries, beyond nothing at all: enough that a view which forgot whose
# object it was handed would act on it (and sometimes A's objects named in the body).
POST_BODIES = {
    "servers:power": [{"action": "reboot"}],
    "servers:deployments": [{"git_url": "https://github.com/intruder/app.git", "branch": "main"}],
    "servers:domains": [{"name": "intruder-site.example.org"}],
    "support:ticket": [{"body": "A reply from someone else."}],
    "billing:subscription_renewal": [{"cancel": "1"}, {"cancel": "0"}],
    "billing:simulator_checkout": [{"action": "pay"}, {"action": "decline"}],
    "billing:simulator_subscription": [{"action": "fail_next"}, {"action": "renew_now"}],
    "support:ticket_new": [
        lambda a: {
            "subject": "About your server",
            "description": "Whose server is this?",
            "priority": "low",
            "server": a.server.pk,
        }
    ],
    "account_overview": [{"name": "Someone else"}],
    "account_email": [
        lambda a: {"email": a.email, "action_remove": ""},
        lambda a: {"email": a.email, "action_primary": ""},
        lambda a: {"email": a.email, "action_send": ""},
        lambda a: {"email": a.email, "action_add": ""},
    ],
    "account_reset_password": [lambda a: {"email": a.email}],
}


@dataclass(frozen=True)
class Route:
    name: str
    pattern: str  # as written in the URLconf, for the report
    parameters: tuple[str, ...]


@dataclass
class Probe:
    """One URL to request, and which rule its answers are held to."""

    route: Route
    url: str
    kind: str  # "theirs": names A's object; "own": the requester's own page; "public"


def customer_facing_routes() -> list[Route]:
    """Every named URL but the staff's, once each (a path that another shadows resolves
    to the first, which is what a request reaches)."""
    found: dict[str, Route] = {}

    def walk(patterns, prefix: str, namespace: str, parameters: tuple[str, ...]):
        for entry in patterns:
            own = _parameters(entry.pattern)
            if isinstance(entry, URLResolver):
                inner = ":".join(part for part in (namespace, entry.namespace) if part)
                walk(entry.url_patterns, prefix + str(entry.pattern), inner, parameters + own)
                continue
            pattern = prefix + str(entry.pattern)
            if pattern.startswith(NOT_CUSTOMER_FACING):
                continue
            if not entry.name:
                raise LookupError(f"{pattern} has no name: the drill cannot reverse it")
            name = f"{namespace}:{entry.name}" if namespace else entry.name
            found.setdefault(name, Route(name, pattern, parameters + own))

    walk(get_resolver().url_patterns, "", "", ())
    return list(found.values())


def _parameters(pattern) -> tuple[str, ...]:
    # A route's converters and a regex's named groups both end up as named groups.
    return tuple(pattern.regex.groupindex)


def probes_for(routes: list[Route], a: Customer, outcome: Outcome) -> list[Probe]:
    """The URL of each route filled with A's objects, and its rule. A parameter the
    drill cannot fill is a violation: a new URL must be taught here, not skipped."""
    probes = []
    for route in routes:
        if route.name in PUBLIC:
            kind, fillers = "public", PUBLIC_PARAMETERS
        elif any(name in OWNED_PARAMETERS for name in route.parameters):
            kind, fillers = "theirs", {**OWNED_PARAMETERS, **NEUTRAL_PARAMETERS}
        else:
            kind, fillers = "own", NEUTRAL_PARAMETERS
        unknown = [name for name in route.parameters if name not in fillers]
        if unknown:
            outcome.violations.append(
                f"{route.pattern} ({route.name}): cannot fill {', '.join(unknown)} with "
                "customer A's objects; teach the isolation drill what they name, or list "
                "the URL in PUBLIC with the reason"
            )
            continue
        values = {name: fillers[name](a) for name in route.parameters}
        probes.append(Probe(route, reverse(route.name, kwargs=values), kind))
    known = {route.name for route in routes}
    for stale in sorted(set(PUBLIC) - known):
        outcome.violations.append(f"PUBLIC lists {stale}, which no URL is named any more")
    return probes


def post_bodies(name: str, a: Customer, *, short: bool) -> list[dict]:
    bodies = [{}] + [body(a) if callable(body) else body for body in POST_BODIES.get(name, [])]
    return bodies[:2] if short else bodies


class Visitor:
    """Customer B's browser, or an anonymous one. B is logged in again whenever a request
    ended the session (the logout URL, say)."""

    def __init__(self, customer: Customer | None):
        self.customer = customer
        self.client = logged_in(customer) if customer else Client(raise_request_exception=False)
        self.name = "customer B" if customer else "anonymous"

    def request(self, method: str, url: str, data: dict):
        response = self.client.get(url) if method == "GET" else self.client.post(url, data)
        if self.customer and "_auth_user_id" not in self.client.session:
            self.client = logged_in(self.customer)
        return response


def body_of(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def leak(probe: Probe, visitor: Visitor, response, a: Customer) -> str | None:
    """Why the answer leaks, or None when it is one the rules allow."""
    status = response.status_code
    location = response.get("Location", "")
    if status >= 500:
        return f"server error {status}"
    body = body_of(response)
    for marker in a.markers():
        if marker.encode() in body or marker in location:
            return f"answered {status} showing A's {marker!r}"
    if probe.kind == "public":
        return None
    to_login = status in (301, 302, 303) and urlsplit(location).path == reverse("account_login")
    if visitor.customer is None:
        if status in (404, 405) or to_login:
            return None
        return f"answered {status}{' to ' + location if location else ''}, not a login redirect"
    if probe.kind == "own" or status in (404, 405):
        return None
    return f"answered {status}{' to ' + location if location else ''}, not 404"


def probe_all(probes, visitors, a: Customer, *, short: bool, outcome: Outcome, label: str):
    """Every probe, GET and each POST body, by each visitor; returns (requests, leaks,
    A's rows changed)."""
    requests = leaks = rows_changed = 0
    watched = owned_fingerprint(a.user)
    for probe in probes:
        calls = [("GET", {})] + [
            ("POST", body) for body in post_bodies(probe.route.name, a, short=short)
        ]
        for visitor in visitors:
            for method, data in calls:
                response = visitor.request(method, probe.url, data)
                requests += 1
                what = f"{label}: {visitor.name} {method} {probe.url} ({probe.route.name})"
                if data:
                    what += f" with {sorted(data)}"
                why = leak(probe, visitor, response, a)
                if why:
                    leaks += 1
                    outcome.violations.append(f"{what} {why}")
                now = owned_fingerprint(a.user)
                if now != watched:
                    rows_changed += 1
                    tables = ", ".join(changed(watched, now))
                    outcome.violations.append(f"{what} changed A's rows in {tables}")
                    watched = now
    return requests, leaks, rows_changed


def run(*, short: bool) -> Outcome:
    outcome = Outcome()
    bypass = role_bypasses(connection)
    if bypass:
        outcome.violations.append(f"row-level security cannot be drilled: {bypass}")
    # Each run's own names, so a marker found in an answer can only have come from A.
    a, b = customers_make(f"alpha{secrets.token_hex(4)}", f"bravo{secrets.token_hex(4)}")
    routes = customer_facing_routes()
    probes = probes_for(routes, a, outcome)
    rows_before = owned_fingerprint(a.user)
    visitors = [Visitor(b), Visitor(None)]

    totals = {}
    for label, isolation in (("as deployed", True), ("row-level security off", False)):
        with refusals_quiet(), override_settings(TENANT_ISOLATION=isolation):
            totals[label] = probe_all(
                probes, visitors, a, short=short, outcome=outcome, label=label
            )
    a_rows = sum(int(value.split(":")[0]) for value in rows_before.values())
    kinds = [probe.kind for probe in probes]
    outcome.figures.update(
        {
            "URLs": len(routes),
            "naming A's objects": kinds.count("theirs"),
            "requester's own pages": kinds.count("own"),
            "public (listed with reasons)": kinds.count("public"),
            "requests": sum(requests for requests, _, _ in totals.values()),
            "leaks": totals["as deployed"][1],
            "leaks with row-level security off (views' checks alone)": totals[
                "row-level security off"
            ][1],
            "A's rows watched": a_rows,
            "requests that changed A's rows": sum(changes for _, _, changes in totals.values()),
        }
    )
    outcome.expect(
        "tables where A's rows differ at the end",
        changed(rows_before, owned_fingerprint(a.user)),
        [],
    )
    return outcome
