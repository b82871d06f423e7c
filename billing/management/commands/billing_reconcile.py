"""`manage.py billing_reconcile`: fulfil paid checkouts whose webhook never arrived, retry
events still waiting, and report paid payments without a server."""

from django.core.management.base import BaseCommand

from billing.reconcile import LOOKBACK, billing_reconcile


class Command(BaseCommand):
    help = (
        f"Fulfil Checkout Sessions completed in the last {LOOKBACK.days} days that we never "
        "saw, process again webhook events still waiting, and list paid payments that have "
        "no server. Safe to run at any time: the worker runs it every 10 minutes."
    )

    def handle(self, *args, **options):
        report = billing_reconcile()
        self.stdout.write(f"Completed Checkout Sessions seen: {report.sessions_seen}")
        self.stdout.write(f"Fulfilled now (their webhook was missed): {len(report.fulfilled)}")
        for session_id in report.fulfilled:
            self.stdout.write(f"  {session_id}")
        for session_id in report.unknown_sessions:
            self.stdout.write(f"  no payment here for {session_id} (another site's?)")
        self.stdout.write(f"Waiting events processed again: {len(report.events_retried)}")
        for event_id, outcome in report.events_retried.items():
            self.stdout.write(f"  {event_id}: {outcome}")
        self.stdout.write(f"Unpaid checkouts now expired: {report.expired}")
        if report.paid_without_server:
            self.stdout.write(
                self.style.WARNING(
                    f"Paid payments without a server: {len(report.paid_without_server)}"
                )
            )
            for payment in report.paid_without_server:
                self.stdout.write(
                    f"  {payment.uuid} {payment.user.email} {payment.plan.name} "
                    f"{payment.amount_display} paid {payment.paid_at:%Y-%m-%d %H:%M}"
                )
        else:
            self.stdout.write(self.style.SUCCESS("Every paid payment has a server."))
