"""A domain's life through the services and the real jobs: attached, checked in DNS (the
real resolver code against a DNS server on localhost, or the simulated resolver), then
over HTTPS (the real check against a TLS server with a test CA's certificate), the
timeline, the mails, the limits, the backoff and the expiry warning."""

import datetime as dt
import ssl

import pytest
import trustme
from django.core import mail
from django.utils import timezone

from hosting.testing import run_jobs
from servers import domains
from servers.models import Domain, ServerEvent
from servers.tests.dns_server import DnsTestServer
from servers.tests.factories import DomainFactory, ServerFactory
from servers.tests.tls_server import serving, tls_handler

pytestmark = pytest.mark.django_db(transaction=True)

IP = "127.0.0.1"  # the TLS test server listens here, so the server "is" here


def kinds(server):
    return list(ServerEvent.objects.filter(server=server).values_list("kind", flat=True))


def settled(domain_id, ssl_status=None):
    def check():
        domain = Domain.objects.get(pk=domain_id)
        if ssl_status:
            return domain.ssl_status == ssl_status
        return domain.checked_at is not None

    return check


@pytest.fixture
def simulated(settings):
    settings.DIGITALOCEAN_TOKEN = ""


def test_a_simulated_test_name_is_verified_then_https_active(simulated):
    server = ServerFactory()
    domain = domains.domain_add(server_id=server.pk, name="Shop.test.")
    assert domain.name == "shop.test"
    run_jobs(until=settled(domain.pk, ssl_status="active"), timeout=20)

    domain.refresh_from_db()
    assert domain.verification_status == "verified" and domain.verification_reason == ""
    assert domain.ssl_expires_at - timezone.now() > dt.timedelta(days=89)
    assert kinds(server) == ["domain_added", "domain_verified", "https_active"]
    run_jobs()
    assert sorted(m.subject for m in mail.outbox) == [
        "[Hosting] https://shop.test is live",
        "[Hosting] shop.test points at your server",
    ]


def test_a_simulated_other_name_does_not_exist(simulated):
    server = ServerFactory()
    domain = domains.domain_add(server_id=server.pk, name="nowhere.example")
    run_jobs(until=settled(domain.pk))
    domain.refresh_from_db()
    assert domain.verification_status == "failed"
    assert "nowhere.example does not exist" in domain.verification_reason
    assert domain.check_attempts == 1
    assert mail.outbox == []


# -- the real checks ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def dns_server():
    server = DnsTestServer.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def real(settings, dns_server, ca, tmp_path):
    """The real DNS and certificate checks, against servers on localhost."""
    settings.DIGITALOCEAN_TOKEN = "dop_v1_test"  # DigitalOcean mode: no simulator
    settings.DNS_RESOLVERS = [dns_server.address]
    settings.DNS_TIMEOUT = 2.0
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    settings.TLS_EXTRA_CA_FILE = str(ca_file)
    settings.TLS_CHECK_TIMEOUT = 2.0
    dns_server.zone.clear()
    yield dns_server.zone
    dns_server.zone.clear()


def https_server(ca, name, *, not_after=None):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    leaf = ca.issue_cert(name, not_after=not_after) if not_after else ca.issue_cert(name)
    leaf.configure_cert(context)
    return serving(tls_handler(context))


def test_dns_then_https_with_the_real_checks(real, ca, settings):
    server = ServerFactory(ip_address=IP)
    real.add("shop.example.org", "A", IP)
    with https_server(ca, "shop.example.org") as port:
        settings.TLS_CHECK_PORT = port
        domain = domains.domain_add(server_id=server.pk, name="shop.example.org")
        run_jobs(until=settled(domain.pk, ssl_status="active"), timeout=30)
    domain.refresh_from_db()
    assert domain.verification_status == "verified"
    assert domain.ssl_expires_at > timezone.now() + dt.timedelta(days=300)
    assert kinds(server) == ["domain_added", "domain_verified", "https_active"]


def test_a_name_pointing_elsewhere_says_where(real):
    server = ServerFactory(ip_address=IP)
    real.add("shop.example.org", "A", "198.51.100.7")
    domain = domains.domain_add(server_id=server.pk, name="shop.example.org")
    run_jobs(until=settled(domain.pk))
    domain.refresh_from_db()
    assert domain.verification_status == "failed"
    assert "198.51.100.7" in domain.verification_reason and IP in domain.verification_reason


def test_a_certificate_near_expiry_is_mailed_once_to_customer_and_staff(real, ca, settings):
    settings.STAFF_NOTIFICATION_EMAILS = ["ops@hosting.example.com"]
    server = ServerFactory(ip_address=IP)
    domain = DomainFactory(
        server=server,
        name="shop.example.org",
        verification_status="verified",
        ssl_status="active",
    )
    soon = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=10)
    with https_server(ca, "shop.example.org", not_after=soon) as port:
        settings.TLS_CHECK_PORT = port
        assert domains.domain_https_step(domain_id=domain.pk) is None
        assert domains.domain_https_step(domain_id=domain.pk) is None  # again: no 2nd mail
    run_jobs()
    domain.refresh_from_db()
    assert domain.expiry_warned_for == soon
    subjects = sorted(m.subject for m in mail.outbox)
    assert subjects == [
        "[Hosting] The certificate of shop.example.org expires soon",
        f"[Hosting] The certificate of shop.example.org expires soon ({server.user.email})",
    ]
    assert mail.outbox[0].to != mail.outbox[1].to


def test_https_stays_pending_with_the_reason_then_fails(real, settings):
    from servers.tests.tls_server import closed_port

    server = ServerFactory(ip_address=IP)
    domain = DomainFactory(server=server, name="shop.example.org", verification_status="verified")
    settings.TLS_CHECK_PORT = closed_port()
    waits = [domains.domain_https_step(domain_id=domain.pk) for _ in range(domains.HTTPS_ATTEMPTS)]
    domain.refresh_from_db()
    assert waits[:-1] == [10, 20, 40, 80, 160] and waits[-1] is None
    assert domain.ssl_status == "failed" and "refused" in domain.ssl_error
    assert kinds(server) == ["https_failed"]


# -- limits, duplicates, removal, backoff ------------------------------------------------------


def test_refusals_change_nothing(simulated, settings):
    settings.DOMAINS_PER_SERVER = 1
    server = ServerFactory()
    domains.domain_add(server_id=server.pk, name="one.test")
    with pytest.raises(domains.DomainRefused, match="at most 1 domains"):
        domains.domain_add(server_id=server.pk, name="two.test")
    other = ServerFactory()
    with pytest.raises(domains.DomainRefused) as taken:
        domains.domain_add(server_id=other.pk, name="ONE.test")
    assert "already attached to a server" in str(taken.value)
    assert server.user.email not in str(taken.value)
    with pytest.raises(domains.DomainRefused, match="not an IP address"):
        domains.domain_add(server_id=other.pk, name="203.0.113.9")
    assert list(Domain.objects.values_list("name", flat=True)) == ["one.test"]


def test_removal_records_it_and_the_row_goes(simulated):
    domain = DomainFactory(name="gone.test")
    domains.domain_remove(domain_id=domain.pk)
    assert not Domain.objects.exists()
    assert kinds(domain.server) == ["domain_removed"]
    domains.domain_remove(domain_id=domain.pk)  # twice: nothing more


def test_the_watch_checks_pending_domains_less_and_less_often():
    now = timezone.now()
    fresh = DomainFactory(verification_status="pending", checked_at=None)
    tried_once = DomainFactory(
        verification_status="failed", check_attempts=1, checked_at=now - dt.timedelta(seconds=61)
    )
    tried_often = DomainFactory(
        verification_status="failed", check_attempts=5, checked_at=now - dt.timedelta(minutes=10)
    )
    DomainFactory(verification_status="verified", checked_at=None)
    assert sorted(domains.domains_due_for_dns(now)) == sorted([fresh.pk, tried_once.pk])
    assert domains.dns_backoff(5) == 960 and domains.dns_backoff(20) == 3600
    assert tried_often.pk not in domains.domains_due_for_dns(now)


def test_the_watch_does_not_queue_a_check_still_waiting_in_the_queue():
    """At scale the checks can take longer than the minute between two watches: each
    domain keeps one check in the queue, not one more every minute."""
    from procrastinate.contrib.django.models import ProcrastinateJob

    from servers.tasks import domains_watch

    long_ago = timezone.now() - domains.HTTPS_RECHECK - dt.timedelta(hours=1)
    verified = DomainFactory(
        verification_status="verified", ssl_status="active", ssl_checked_at=long_ago
    )
    pending = DomainFactory(verification_status="pending", checked_at=None)

    assert domains_watch(0) == 2
    assert domains_watch(60) == 0

    queued = ProcrastinateJob.objects.filter(status="todo").exclude(task_name__endswith="watch")
    assert sorted(queued.values_list("task_name", "args")) == [
        ("servers.tasks.domain_https_check", {"domain_id": verified.pk}),
        ("servers.tasks.domain_verify", {"domain_id": pending.pk}),
    ]


def test_jobs_a_customer_waits_for_go_before_the_background_checks():
    """The worker takes jobs by priority: a purchase's provisioning, a deployment and a
    power action come before a queue of certificate rechecks."""
    from django.db import transaction
    from procrastinate.contrib.django.models import ProcrastinateJob

    from hosting.jobs import defer
    from servers import tasks

    with transaction.atomic():
        defer(tasks.domain_https_check, domain_id=1)
        defer(tasks.domain_verify, domain_id=1)
        defer(tasks.server_provision, server_id=1)
        defer(tasks.deployment_run, deployment_id=1)
        defer(tasks.server_action_run, action_id=1)

    priorities = dict(ProcrastinateJob.objects.values_list("task_name", "priority"))
    background = max(
        priorities.pop(f"servers.tasks.{n}") for n in ("domain_https_check", "domain_verify")
    )
    assert len(priorities) == 3
    assert all(priority > background for priority in priorities.values()), priorities
