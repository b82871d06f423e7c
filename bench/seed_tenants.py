"""Customers for the tenant isolation benchmark: each with a running server, 20
deployments with a short log, three domains and a timeline, made with bulk inserts (no
COPY: a table under forced row-level security refuses COPY FROM for any role that does
not bypass it). Made once per database; later runs reuse them."""

from __future__ import annotations

from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from django.db import transaction
from django.utils import timezone

from accounts.middleware import LOGIN_AT_SESSION_KEY
from accounts.models import User
from billing.models import Plan
from servers.models import Deployment, DeploymentLogLine, Domain, Server, ServerEvent

EMAIL = "bench{n}@example.com"
DEPLOYMENTS = 20
LOG_LINES = 10


def customers_seed(customers: int, sessions: int) -> list[dict]:
    """Makes the customers missing up to `customers`, and returns `sessions` logged-in
    sessions of customers spread over them: [{"cookie", "server"}]."""
    have = User.objects.filter(email__startswith="bench").count()
    plan = Plan.objects.order_by("price_cents").first()
    now = timezone.now()
    password = User().password  # unusable: these customers never log in by form
    for start in range(have, customers, 500):
        with transaction.atomic():
            users = User.objects.bulk_create(
                User(email=EMAIL.format(n=n), name=f"Bench {n}", password=password)
                for n in range(start, min(start + 500, customers))
            )
            servers = Server.objects.bulk_create(
                Server(
                    user=user,
                    plan=plan,
                    status=Server.Status.RUNNING,
                    name=f"bench-{user.pk}",
                    region="nyc3",
                    provider_id=str(user.pk),
                    ip_address=f"203.0.113.{user.pk % 250 + 1}",
                )
                for user in users
            )
            deployments = Deployment.objects.bulk_create(
                Deployment(
                    server=server,
                    user_id=server.user_id,
                    git_url="https://github.com/example/app.git",
                    branch="main",
                    status=Deployment.Status.SUCCESS,
                )
                for server in servers
                for _ in range(DEPLOYMENTS)
            )
            DeploymentLogLine.objects.bulk_create(
                DeploymentLogLine(deployment=deployment, number=line, text=f"step {line}")
                for deployment in deployments
                for line in range(1, LOG_LINES + 1)
            )
            Domain.objects.bulk_create(
                Domain(server=server, user_id=server.user_id, name=f"s{server.pk}-{i}.example.com")
                for server in servers
                for i in range(3)
            )
            ServerEvent.objects.bulk_create(
                ServerEvent(server=server, kind="ready", message=f"event {i}", created_at=now)
                for server in servers
                for i in range(10)
            )
    step = max(1, customers // sessions)
    chosen = list(
        Server.objects.filter(user__email__startswith="bench")
        .select_related("user")
        .order_by("user_id")[::step][:sessions]
    )
    return [{"cookie": login_session(server.user), "server": str(server.uuid)} for server in chosen]


def login_session(user: User) -> str:
    """A database session of `user` logged in now, as a login by form makes it: its key,
    the `sessionid` cookie."""
    store = SessionStore()
    store[SESSION_KEY] = str(user.pk)
    store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
    store[HASH_SESSION_KEY] = user.get_session_auth_hash()
    store[LOGIN_AT_SESSION_KEY] = timezone.now().timestamp()
    store.create()
    return store.session_key
