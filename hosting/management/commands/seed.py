"""`manage.py seed`: demo data for development and demos, safe to run again and again.

Every row is looked up by a natural key (an email, a server's owner and name, a domain
name, a Stripe checkout session id, a ticket's owner and subject, ...) and only created
when missing, so a second run finds everything and changes nothing.
"""

from __future__ import annotations

import secrets
from collections import Counter
from datetime import timedelta

from allauth.account.models import EmailAddress
from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import ProtectedError, Q
from django.utils import timezone

from accounts.models import AuditEvent, User
from billing.models import Payment, Plan
from servers.models import Deployment, Domain, Server
from support.models import Ticket, TicketMessage

ADMIN = "admin@example.com"
ALICE = "alice@example.com"
BOB = "bob@example.com"
CAROL = "carol@example.com"

# email, name, staff
USERS = [
    (ADMIN, "Ada Admin", True),
    (ALICE, "Alice Anders", False),
    (BOB, "Bob Brown", False),
    (CAROL, "Carol Chen", False),
]
DEMO_EMAILS = [email for email, _, _ in USERS]

# Keyed by the Stripe checkout session id. Ages are days before the first seed.
PAYMENTS = [
    {
        "key": "cs_test_demo_alice_basic",
        "user": ALICE,
        "plan": "basic",
        "status": Payment.Status.REFUNDED,
        "age": 41,
        "refunded_after": 1,
        "stripe_payment_intent_id": "pi_test_demo_alice_basic",
        "stripe_charge_id": "ch_test_demo_alice_basic",
        "stripe_refund_id": "re_test_demo_alice_basic",
    },
    {
        "key": "cs_test_demo_alice_pro",
        "user": ALICE,
        "plan": "pro",
        "status": Payment.Status.SUCCEEDED,
        "age": 39,
        "stripe_payment_intent_id": "pi_test_demo_alice_pro",
        "stripe_charge_id": "ch_test_demo_alice_pro",
    },
    {
        "key": "cs_test_demo_bob_basic",
        "user": BOB,
        "plan": "basic",
        "status": Payment.Status.SUCCEEDED,
        "age": 22,
        "stripe_payment_intent_id": "pi_test_demo_bob_basic",
        "stripe_charge_id": "ch_test_demo_bob_basic",
    },
    {
        # An abandoned checkout: Bob looked at Premium and never paid.
        "key": "cs_test_demo_bob_premium",
        "user": BOB,
        "plan": "premium",
        "status": Payment.Status.PENDING,
        "age": 2,
    },
    {
        "key": "cs_test_demo_carol_basic",
        "user": CAROL,
        "plan": "basic",
        "status": Payment.Status.SUCCEEDED,
        "age": 0.01,
        "stripe_payment_intent_id": "pi_test_demo_carol_basic",
        "stripe_charge_id": "ch_test_demo_carol_basic",
    },
]

# Keyed by owner and name. Alice's first server failed to provision (its payment was
# refunded) and she then bought a second one that runs: the partial unique index lets
# a failed server sit beside a live one.
SERVERS = [
    {
        "user": ALICE,
        "name": "alice-web-1",
        "plan": "basic",
        "payment": "cs_test_demo_alice_basic",
        "status": Server.Status.FAILED,
        "region": "nyc3",
        "age": 41,
    },
    {
        "user": ALICE,
        "name": "alice-web",
        "plan": "pro",
        "payment": "cs_test_demo_alice_pro",
        "status": Server.Status.RUNNING,
        "region": "fra1",
        "provider_id": "401778230",
        "ip_address": "203.0.113.24",
        "age": 39,
    },
    {
        "user": BOB,
        "name": "bob-api",
        "plan": "basic",
        "payment": "cs_test_demo_bob_basic",
        "status": Server.Status.STOPPED,
        "region": "ams3",
        "provider_id": "402113377",
        "ip_address": "203.0.113.57",
        "age": 22,
    },
    {
        # Droplet requested, not active yet: no address or credentials so far.
        "user": CAROL,
        "name": "carol-app",
        "plan": "basic",
        "payment": "cs_test_demo_carol_basic",
        "status": Server.Status.PROVISIONING,
        "region": "sgp1",
        "provider_id": "403005512",
        "age": 0.01,
    },
]

ALICE_REPO = "https://github.com/alice-anders/shop.git"
BOB_REPO = "https://github.com/bobbrown/tools-api.git"

# Keyed by server and commit.
DEPLOYMENTS = [
    {
        "server": (ALICE, "alice-web"),
        "git_url": ALICE_REPO,
        "branch": "main",
        "commit": "3f9c2a17d0b4e8c65a1f2e9d7b3c4a5e6f708192",
        "status": Deployment.Status.SUCCESS,
        "age": 30,
        "duration": 48,
        "output": (
            f"$ git clone --depth 1 --branch main {ALICE_REPO} /srv/app\n"
            "Cloning into '/srv/app'...\n"
            "HEAD is now at 3f9c2a1 Add product search\n"
            "$ python3 -m venv /srv/app/.venv\n"
            "$ /srv/app/.venv/bin/pip install -r requirements.txt\n"
            "Successfully installed Django-5.2 gunicorn-23.0.0 psycopg-3.2.3\n"
            "$ /srv/app/.venv/bin/python manage.py migrate --noinput\n"
            "Operations to perform: Apply all migrations: shop\n"
            "  Applying shop.0004_product_search... OK\n"
            "$ systemctl restart app.service\n"
            "Deployment finished in 48s.\n"
        ),
    },
    {
        "server": (ALICE, "alice-web"),
        "git_url": ALICE_REPO,
        "branch": "main",
        "commit": "8b1e0d4a9c7f6e5d4c3b2a1908f7e6d5c4b3a291",
        "status": Deployment.Status.FAILED,
        "age": 2,
        "duration": 31,
        "output": (
            "$ git fetch origin main && git reset --hard origin/main\n"
            "HEAD is now at 8b1e0d4 Move the storefront to Vite\n"
            "$ npm ci\n"
            "npm ERR! code ERESOLVE\n"
            "npm ERR! ERESOLVE could not resolve\n"
            "npm ERR! While resolving: vite-plugin-legacy@2.1.0\n"
            "npm ERR! Found: vite@5.4.2\n"
            "Deployment failed: `npm ci` exited with status 1.\n"
            "The previous release is still serving traffic.\n"
        ),
    },
    {
        "server": (ALICE, "alice-web"),
        "git_url": ALICE_REPO,
        "branch": "main",
        "commit": "c47a9e25b18d3f06e7a2c9b4d5e6f7081a2b3c4d",
        "status": Deployment.Status.IN_PROGRESS,
        "age": 0.002,
        "output": (
            "$ git fetch origin main && git reset --hard origin/main\n"
            "HEAD is now at c47a9e2 Pin vite-plugin-legacy to a compatible release\n"
            "$ npm ci\n"
            "added 312 packages in 14s\n"
            "$ npm run build\n"
        ),
    },
    {
        "server": (BOB, "bob-api"),
        "git_url": BOB_REPO,
        "branch": "production",
        "commit": "e91d0c3b7a4f5e6d8c9b0a1f2e3d4c5b6a7f8091",
        "status": Deployment.Status.SUCCESS,
        "age": 21,
        "duration": 35,
        "output": (
            f"$ git clone --depth 1 --branch production {BOB_REPO} /srv/app\n"
            "Cloning into '/srv/app'...\n"
            "HEAD is now at e91d0c3 Rate-limit the public endpoints\n"
            "$ docker compose build\n"
            "[+] Building 27.3s (12/12) FINISHED\n"
            "$ docker compose up -d\n"
            "Container tools-api-web-1  Started\n"
            "Deployment finished in 35s.\n"
        ),
    },
]

# Keyed by name.
DOMAINS = [
    {
        "server": (ALICE, "alice-web"),
        "name": "alice-shop.example.com",
        "verification_status": Domain.VerificationStatus.VERIFIED,
        "ssl_status": Domain.SSLStatus.ACTIVE,
        "age": 38,
    },
    {
        "server": (ALICE, "alice-web"),
        "name": "www.alice-shop.example.com",
        "verification_status": Domain.VerificationStatus.PENDING,
        "ssl_status": Domain.SSLStatus.PENDING,
        "age": 0.1,
    },
    {
        "server": (BOB, "bob-api"),
        "name": "api.bobtools.example.net",
        "verification_status": Domain.VerificationStatus.VERIFIED,
        "ssl_status": Domain.SSLStatus.FAILED,
        "ssl_error": (
            "Let's Encrypt HTTP-01 challenge failed: 203.0.113.57 refused the connection "
            "on port 80 (is the server running?)."
        ),
        "age": 20,
    },
]

# Keyed by owner and subject; messages by ticket, author and body.
TICKETS = [
    {
        "user": ALICE,
        "subject": "502 Bad Gateway after my last deploy",
        "server": (ALICE, "alice-web"),
        "description": (
            "Since the deployment two days ago my shop shows 502 Bad Gateway on every "
            "page. The deployment log says it failed, but the old version should still run?"
        ),
        "priority": Ticket.Priority.HIGH,
        "status": Ticket.Status.IN_PROGRESS,
        "assignee": ADMIN,
        "age": 2,
        "messages": [
            (
                ADMIN,
                False,
                "Hi Alice, thanks for the report. The failed build left nginx pointing at an "
                "incomplete release; we switched it back to the previous one. Can you check?",
            ),
            (
                ADMIN,
                True,
                "Internal: npm ci failed on 8b1e0d4 (ERESOLVE), but the release symlink had "
                "already moved. Rolled the symlink back by hand; deploy script bug filed.",
            ),
            (ALICE, False, "It works again, thank you! I'm deploying a fix now."),
        ],
    },
    {
        "user": BOB,
        "subject": "How do I upgrade to Premium?",
        "server": None,
        "description": (
            "I started a checkout for Premium but stopped before paying. Will my data "
            "on bob-api move to the bigger server?"
        ),
        "priority": Ticket.Priority.LOW,
        "status": Ticket.Status.OPEN,
        "assignee": None,
        "age": 1.9,
        "messages": [],
    },
    {
        "user": CAROL,
        "subject": "Server stuck in provisioning",
        "server": (CAROL, "carol-app"),
        "description": "I paid a few minutes ago and my server still says Provisioning.",
        "priority": Ticket.Priority.MEDIUM,
        "status": Ticket.Status.OPEN,
        "assignee": None,
        "age": 0.005,
        "messages": [
            (
                ADMIN,
                True,
                "Internal: droplet 403005512 is still 'new' at DigitalOcean; the provision "
                "task retries with backoff. Leave it for now.",
            ),
        ],
    },
]


class Command(BaseCommand):
    help = (
        "Create demo data: a staff superuser (admin@example.com), three customers "
        "(alice@, bob@, carol@example.com) with servers in every state, deployments, "
        "domains, payments and support tickets. Idempotent: existing rows are kept, "
        "passwords included. New passwords are random; they are printed only when DEBUG "
        "is on."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--show-passwords",
            action="store_true",
            help="Print new passwords even with DEBUG off (`make run` does, on a local "
            "demo database).",
        )
        parser.add_argument(
            "--reset-passwords",
            action="store_true",
            help="Give every demo user a new random password (with DEBUG off: needs --force).",
        )
        parser.add_argument(
            "--clear-users",
            action="store_true",
            help="First delete the demo users and everything that belongs to them "
            "(with DEBUG off: needs --force).",
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="Allow --clear-users and --reset-passwords with DEBUG off.",
        )

    def handle(
        self,
        *args,
        reset_passwords=False,
        clear_users=False,
        force=False,
        show_passwords=False,
        **options,
    ):
        self.show_passwords = show_passwords
        if not settings.DEBUG and not force:
            asked = {"--clear-users": clear_users, "--reset-passwords": reset_passwords}
            for flag, given in asked.items():
                if given:
                    raise CommandError(
                        f"refusing {flag} with DEBUG off (a production database?); "
                        "pass --force to do it anyway"
                    )
        self.now = timezone.now()
        self.counts: Counter[str] = Counter()
        self.created: Counter[str] = Counter()
        removed: Counter[str] = Counter()
        passwords: dict[str, str | None] = {}

        with transaction.atomic():
            if clear_users:
                removed = self._clear()
            users = {}
            for email, name, staff in USERS:
                users[email], passwords[email] = self._user(email, name, staff, reset_passwords)
            payments = {row["key"]: self._payment(row, users) for row in PAYMENTS}
            servers = {
                (row["user"], row["name"]): self._server(row, users, payments) for row in SERVERS
            }
            for row in DEPLOYMENTS:
                self._deployment(row, servers)
            for row in DOMAINS:
                self._domain(row, servers)
            for row in TICKETS:
                self._ticket(row, users, servers)

        # Printed only after the commit: never a password for a user that was rolled back.
        if removed:
            self.stdout.write(
                "Removed the demo users and their data: "
                + ", ".join(f"{count} {label}" for label, count in removed.items())
            )
        self.stdout.write(
            "Demo data: "
            + ", ".join(
                f"{self.counts[label]} {label} ({self.created[label]} new)" for label in self.counts
            )
        )
        self._report_passwords(passwords)

    # Users

    def _user(self, email, name, staff, reset_password):
        user, created = User.objects.get_or_create(
            email=email,
            defaults={"name": name, "is_staff": staff, "is_superuser": staff},
        )
        self._count("users", created)
        changed = []
        if not created and (user.is_staff, user.is_superuser) != (staff, staff):
            user.is_staff = user.is_superuser = staff
            changed += ["is_staff", "is_superuser"]
        password = None
        if created or reset_password:
            password = secrets.token_urlsafe(12)
            user.set_password(password)
            changed.append("password")
        if created:
            user.save()
        elif changed:
            user.save(update_fields=changed)

        address, address_created = EmailAddress.objects.get_or_create(
            user=user, email=email, defaults={"verified": True, "primary": True}
        )
        self._count("verified email addresses", address_created)
        if not (address.verified and address.primary):
            address.verified = address.primary = True
            address.save(update_fields=["verified", "primary"])
        return user, password

    def _report_passwords(self, passwords: dict[str, str | None]) -> None:
        new = {email: password for email, password in passwords.items() if password}
        if not new:
            self.stdout.write(
                "Passwords unchanged (set when the users were created; --reset-passwords "
                "sets new ones)."
            )
            return
        if not (settings.DEBUG or self.show_passwords):
            self.stdout.write(
                f"New random passwords set for {len(new)} user(s); not shown because DEBUG "
                "is off. Set one with `manage.py changepassword EMAIL`."
            )
            return
        reason = "DEBUG is on" if settings.DEBUG else "--show-passwords was given"
        self.stdout.write(f"Demo logins (shown because {reason}):")
        for email, password in new.items():
            self.stdout.write(f"  {email}  password: {password}")
        kept = [email for email, password in passwords.items() if not password]
        if kept:
            self.stdout.write(f"  unchanged: {', '.join(kept)} (--reset-passwords for new ones)")

    # Billing and servers

    def _payment(self, row, users):
        plan = Plan.objects.get(slug=row["plan"])
        created_at = self._ago(row["age"])
        paid = row["status"] in (Payment.Status.SUCCEEDED, Payment.Status.REFUNDED)
        refunded_at = None
        if row["status"] == Payment.Status.REFUNDED:
            refunded_at = created_at + timedelta(days=row["refunded_after"])
        payment, created = Payment.objects.get_or_create(
            stripe_checkout_session_id=row["key"],
            defaults={
                "user": users[row["user"]],
                "plan": plan,
                "amount_cents": plan.price_cents,
                "currency": plan.currency,
                "status": row["status"],
                "stripe_payment_intent_id": row.get("stripe_payment_intent_id", ""),
                "stripe_charge_id": row.get("stripe_charge_id", ""),
                "stripe_refund_id": row.get("stripe_refund_id", ""),
                "created_at": created_at,
                "paid_at": created_at + timedelta(minutes=1) if paid else None,
                "refunded_at": refunded_at,
            },
        )
        self._count("payments", created)
        return payment

    def _server(self, row, users, payments):
        running = row["status"] in (Server.Status.RUNNING, Server.Status.STOPPED)
        server, created = Server.objects.get_or_create(
            user=users[row["user"]],
            name=row["name"],
            defaults={
                "plan": Plan.objects.get(slug=row["plan"]),
                "payment": payments[row["payment"]],
                "status": row["status"],
                "region": row["region"],
                "provider_id": row.get("provider_id", ""),
                "ip_address": row.get("ip_address"),
                "ssh_username": "root",
                "ssh_password": secrets.token_urlsafe(18) if running else "",
                "created_at": self._ago(row["age"]),
            },
        )
        self._count("servers", created)
        return server

    def _deployment(self, row, servers):
        server = servers[row["server"]]
        created_at = self._ago(row["age"])
        started_at = created_at + timedelta(seconds=2)
        finished = row["status"] in (Deployment.Status.SUCCESS, Deployment.Status.FAILED)
        _, created = Deployment.objects.get_or_create(
            server=server,
            commit=row["commit"],
            defaults={
                "user": server.user,
                "git_url": row["git_url"],
                "branch": row["branch"],
                "status": row["status"],
                "output": row["output"],
                "created_at": created_at,
                "started_at": started_at,
                "finished_at": started_at + timedelta(seconds=row["duration"])
                if finished
                else None,
            },
        )
        self._count("deployments", created)

    def _domain(self, row, servers):
        server = servers[row["server"]]
        created_at = self._ago(row["age"])
        verified = row["verification_status"] == Domain.VerificationStatus.VERIFIED
        _, created = Domain.objects.get_or_create(
            name=row["name"],
            defaults={
                "server": server,
                "user": server.user,
                "verification_status": row["verification_status"],
                "verification_token": secrets.token_hex(16),
                "verified_at": created_at + timedelta(minutes=5) if verified else None,
                "ssl_status": row["ssl_status"],
                "ssl_error": row.get("ssl_error", ""),
                "created_at": created_at,
            },
        )
        self._count("domains", created)

    # Support

    def _ticket(self, row, users, servers):
        created_at = self._ago(row["age"])
        ticket, created = Ticket.objects.get_or_create(
            user=users[row["user"]],
            subject=row["subject"],
            defaults={
                "server": servers[row["server"]] if row["server"] else None,
                "description": row["description"],
                "priority": row["priority"],
                "status": row["status"],
                "assignee": users[row["assignee"]] if row["assignee"] else None,
                "created_at": created_at,
            },
        )
        self._count("tickets", created)
        for position, (author, internal, body) in enumerate(row["messages"], start=1):
            _, message_created = TicketMessage.objects.get_or_create(
                ticket=ticket,
                author=users[author],
                body=body,
                defaults={
                    "internal": internal,
                    "created_at": created_at + timedelta(minutes=20 * position),
                },
            )
            self._count("ticket messages", message_created)

    # Clearing

    def _clear(self) -> Counter[str]:
        """Delete the demo users and every row that points at them. The foreign keys are
        PROTECT, so children go first. Staff replies a demo user wrote on other tickets
        go too: they belong to the demo user."""
        demo = User.objects.filter(email__in=DEMO_EMAILS)
        removed: Counter[str] = Counter()
        steps = [
            (
                "ticket messages",
                TicketMessage.objects.filter(
                    Q(ticket__user__in=demo) | Q(author__in=demo) | Q(ticket__server__user__in=demo)
                ),
            ),
            ("tickets", Ticket.objects.filter(Q(user__in=demo) | Q(server__user__in=demo))),
            ("domains", Domain.objects.filter(Q(user__in=demo) | Q(server__user__in=demo))),
            (
                "deployments",
                Deployment.objects.filter(Q(user__in=demo) | Q(server__user__in=demo)),
            ),
            ("servers", Server.objects.filter(Q(user__in=demo) | Q(payment__user__in=demo))),
            ("payments", Payment.objects.filter(user__in=demo)),
            ("audit events", AuditEvent.objects.filter(actor__in=demo)),
            ("email addresses", EmailAddress.objects.filter(user__in=demo)),
            ("users", demo),
        ]
        for label, queryset in steps:
            try:
                _, per_model = queryset.delete()
            except ProtectedError as exc:
                blockers = sorted({type(obj).__name__ for obj in exc.protected_objects})
                raise CommandError(
                    f"cannot delete the demo {label}: still referenced by {', '.join(blockers)}"
                ) from exc
            # Not the total: that also counts cascaded rows (MFA authenticators, ...).
            count = per_model.get(queryset.model._meta.label, 0)
            if count:
                removed[label] = count
        return removed

    # Helpers

    def _ago(self, days: float):
        return self.now - timedelta(days=days)

    def _count(self, label: str, created: bool) -> None:
        self.counts[label] += 1
        self.created[label] += int(created)
