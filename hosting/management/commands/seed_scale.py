"""`manage.py seed_scale`: customers by the thousand for the benchmarks and the backup
drill (hosting/scale_data.py)."""

from django.core.management.base import BaseCommand, CommandError

from hosting.scale_data import BATCH, WORKERS, seed_scale


class Command(BaseCommand):
    help = (
        "Add scale customers (scale0@example.com, scale1@example.com, ...) until there are "
        "--customers of them, each with a year of history: a server in one of every state "
        "(mostly running), about 20 deployments with their logs, domains, payments with "
        "monthly renewals, a subscription, support tickets with replies, server events and "
        "audit events. Customers already there are kept, so a second run adds nothing. "
        "Their passwords are unusable: they cannot log in by form."
    )

    def add_arguments(self, parser):
        parser.add_argument("--customers", type=int, default=10_000, metavar="N")
        parser.add_argument(
            "--batch",
            type=int,
            default=BATCH,
            metavar="N",
            help=f"Customers per transaction (default {BATCH}).",
        )
        parser.add_argument(
            "--workers",
            type=int,
            default=WORKERS,
            metavar="N",
            help=f"Transactions at a time, each on a connection of its own (default {WORKERS}).",
        )

    def handle(self, *args, customers, batch, workers, **options):
        if customers < 0 or batch < 1 or workers < 1:
            raise CommandError("--customers must be 0 or more, --batch and --workers at least 1")
        report = seed_scale(customers, batch=batch, workers=workers, say=self.stdout.write)
        for line in report.lines():
            self.stdout.write(line)
