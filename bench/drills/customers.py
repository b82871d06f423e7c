"""Customers for the drills that knock on the pages (fuzz, isolation), each made the way a
customer gets there: a checkout paid through the simulated Stripe and delivered signed
to the webhook, the worker provisioning the server on the simulated provider, then a
deployment, a domain and a ticket through the customer's own pages."""

from __future__ import annotations

import logging
import secrets
from contextlib import contextmanager
from dataclasses import dataclass

from allauth.account.models import EmailAddress
from django.test import Client, override_settings

from accounts.models import User
from billing.gateways.simulated import SimulatedGateway
from billing.models import Payment, Subscription
from billing.tests.flow import deliver, start_checkout
from hosting.testing import run_jobs
from servers.models import Deployment, Domain, Server
from support.models import Ticket

PASSWORD = "drill-Long-passw0rd!"

# Both simulators, and a droplet that is up at once: the drills need the server, not
# the wait for it.
SIMULATORS = {
    "STRIPE_SECRET_KEY": "",
    "DIGITALOCEAN_TOKEN": "",
    "SIMULATED_PROVIDER_BOOT_SECONDS": 0,
    "SIMULATED_PROVIDER_FAILURES": [],
    "PROVISION_POLL_SECONDS": 0,
}


@dataclass
class Customer:
    user: User
    tag: str  # in every name the customer chose, so their rows can be told apart
    payment: Payment | None = None
    server: Server | None = None
    subscription: Subscription | None = None
    deployment: Deployment | None = None
    domain: Domain | None = None
    ticket: Ticket | None = None

    @property
    def email(self) -> str:
        return self.user.email

    def markers(self) -> list[str]:
        """Strings that only this customer's pages show: their name and their server's,
        domain's, ticket's and repository's all carry the tag. Another customer's answer
        that contains one has leaked it. Not the email address: anyone may type that into
        a form (and see it again on their own page), and it does not carry the tag."""
        found = [self.tag]
        if self.server is not None:
            found.append(self.server.name)
        return found


def customers_make(*tags: str, with_server: bool = True) -> list[Customer]:
    """Confirmed customers named after `tags`; with `with_server`, each has bought a plan
    and owns a running server, a deployment, a domain, a ticket and a subscription.

    Every server is bought before anything is done with any of them: the worker runs once,
    for the provisioning, and the jobs that follow (a deployment's clone, a domain's DNS
    check, mail) are left queued, never run against the outside world."""
    customers = []
    for tag in tags:
        email = f"customer-{secrets.token_hex(6)}@example.com"
        user = User.objects.create_user(email=email, password=PASSWORD, name=f"{tag} customer")
        EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        customers.append(Customer(user=user, tag=tag))
    if with_server:
        _buy(customers)
        for customer in customers:
            _use(customer)
    return customers


def customer_make(tag: str, *, with_server: bool = True) -> Customer:
    return customers_make(tag, with_server=with_server)[0]


def logged_in(customer: Customer) -> Client:
    """A browser of the customer's, signed in through allauth's login form and then
    through its "confirm your password" step, so the pages behind reauthentication
    (password reveal, two-factor) open for the next few minutes, as they would for
    the customer."""
    client = Client(raise_request_exception=False)
    credentials = {"login": customer.email, "password": PASSWORD}
    login = client.post("/accounts/login/", credentials)
    again = client.post("/accounts/reauthenticate/", {"password": PASSWORD})
    if login.status_code != 302 or again.status_code != 302:
        raise RuntimeError(
            f"{customer.email} could not log in: {login.status_code}, {again.status_code}"
        )
    return client


def _buy(customers: list[Customer]) -> None:
    """The basic plan bought and paid by each, and the servers provisioned by the real
    worker."""
    with override_settings(**SIMULATORS):
        client = Client()
        payments = []
        for customer in customers:
            payment = start_checkout(client, customer.user, "basic")
            for event in SimulatedGateway().complete(payment.stripe_checkout_session_id):
                response = deliver(client, event)
                if response.status_code != 200:
                    raise RuntimeError(f"the webhook answered {response.status_code} to {event}")
            payments.append(payment)
        servers = Server.objects.filter(payment__in=payments)
        run_jobs(until=lambda: not servers.exclude(status=Server.Status.RUNNING).exists())
    for customer, payment in zip(customers, payments, strict=True):
        customer.payment = Payment.objects.get(pk=payment.pk)
        customer.server = Server.objects.get(payment=payment)
        customer.subscription = Subscription.objects.get(server=customer.server)


def _use(customer: Customer) -> None:
    """A deployment (cancelled before it starts: no worker runs to clone anything, and a
    waiting deployment would hold the server's buttons), a domain and a ticket, each
    through its own page's form."""
    client = logged_in(customer)
    server, tag = customer.server, customer.tag
    _posted(
        client,
        f"/servers/{server.uuid}/deployments/",
        {"git_url": f"https://github.com/{tag}/app.git", "branch": "main"},
    )
    deployment = Deployment.objects.get(server=server)
    _posted(client, f"/servers/{server.uuid}/deployments/{deployment.uuid}/cancel/", {})
    _posted(client, f"/servers/{server.uuid}/domains/", {"name": f"{tag}.example.com"})
    _posted(
        client,
        "/support/tickets/new/",
        {
            "subject": f"{tag}: my site is down",
            "description": f"Since this morning, says {tag}.",
            "priority": "high",
            "server": server.pk,
        },
    )
    customer.deployment = Deployment.objects.get(pk=deployment.pk)
    customer.domain = Domain.objects.get(server=server)
    customer.ticket = Ticket.objects.get(user=customer.user)


def _posted(client: Client, url: str, data: dict) -> None:
    response = client.post(url, data)
    if response.status_code != 302:
        raise RuntimeError(f"POST {url} answered {response.status_code}, not a redirect")


@contextmanager
def refusals_quiet():
    """Django logs every 4xx answer (and a security line for each oversized or malformed
    body); the drills send thousands on purpose. Server errors are still logged."""
    loggers = {name: logging.getLogger(name) for name in ("django.request", "django.security")}
    levels = {name: logger.level for name, logger in loggers.items()}
    loggers["django.request"].setLevel(logging.ERROR)
    loggers["django.security"].setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for name, logger in loggers.items():
            logger.setLevel(levels[name])
