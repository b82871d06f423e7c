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

from accounts.models import User
from billing.models import Payment, Plan, StripeEvent
from hosting.demo_data import (
    DEMO_EMAILS,
    DEPLOYMENTS,
    DOMAINS,
    PAYMENTS,
    SERVERS,
    TICKETS,
    USERS,
)
from servers.models import (
    Deployment,
    DeploymentLogLine,
    Domain,
    Server,
    ServerAction,
    ServerEvent,
    SimulatedDroplet,
)
from servers.providers import get_provider
from servers.services import LOGIN_USERNAME
from support.models import Ticket, TicketMessage


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
                "ssh_username": LOGIN_USERNAME,
                "ssh_password": secrets.token_urlsafe(18) if running else "",
                "created_at": self._ago(row["age"]),
            },
        )
        if created and running and get_provider().simulated:
            # Offline, a built server's droplet is the simulator's: made here, so the
            # demo servers start, stop and reboot like a bought one.
            droplet = SimulatedDroplet.objects.create(
                name=server.name,
                tags=[f"server-{server.uuid}"],
                size=server.plan.provider_size_slug,
                region=server.region,
                image=settings.DIGITALOCEAN_IMAGE,
                power="active" if server.status == Server.Status.RUNNING else "off",
                ip_address=server.ip_address,
                created_at=server.created_at,
            )
            server.provider_id = str(droplet.pk)
            server.save(update_fields=["provider_id"])
        self._count("servers", created)
        return server

    def _deployment(self, row, servers):
        server = servers[row["server"]]
        created_at = self._ago(row["age"])
        started_at = created_at + timedelta(seconds=2)
        finished = row["status"] in (Deployment.Status.SUCCESS, Deployment.Status.FAILED)
        deployment, created = Deployment.objects.get_or_create(
            server=server,
            commit=row["commit"],
            defaults={
                "user": server.user,
                "git_url": row["git_url"],
                "branch": row["branch"],
                "status": row["status"],
                "failure_reason": row.get("failure_reason", ""),
                "created_at": created_at,
                "started_at": started_at,
                "finished_at": started_at + timedelta(seconds=row["duration"])
                if finished
                else None,
            },
        )
        if created:
            DeploymentLogLine.objects.bulk_create(
                DeploymentLogLine(deployment=deployment, number=number, text=text)
                for number, text in enumerate(row["output"].splitlines(), start=1)
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
        go too: they belong to the demo user. Their audit events stay (the table is
        append-only), still naming them by email."""
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
            (
                "server events",
                ServerEvent.objects.filter(
                    Q(server__user__in=demo) | Q(server__payment__user__in=demo)
                ),
            ),
            (
                "server actions",
                ServerAction.objects.filter(
                    Q(server__user__in=demo) | Q(server__payment__user__in=demo)
                ),
            ),
            ("simulated droplets", self._demo_droplets(demo)),
            ("servers", Server.objects.filter(Q(user__in=demo) | Q(payment__user__in=demo))),
            ("Stripe events", StripeEvent.objects.filter(payment__user__in=demo)),
            ("payments", Payment.objects.filter(user__in=demo)),
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

    def _demo_droplets(self, demo):
        """The simulator's droplets of the demo servers, found by their tags."""
        servers = Server.objects.filter(Q(user__in=demo) | Q(payment__user__in=demo))
        tags = Q(pk__in=[])
        for uuid in servers.values_list("uuid", flat=True):
            tags |= Q(tags__contains=[f"server-{uuid}"])
        return SimulatedDroplet.objects.filter(tags)

    # Helpers

    def _ago(self, days: float):
        return self.now - timedelta(days=days)

    def _count(self, label: str, created: bool) -> None:
        self.counts[label] += 1
        self.created[label] += int(created)
