"""The demo rows `manage.py seed` creates: who, what they bought, their servers,
deployments, domains and tickets. Each row has a natural key the command looks it up by."""

from billing.models import Payment
from servers.models import Deployment, Domain, Server
from support.models import Ticket

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
        "failure_reason": "The deployment script exited with status 1.",
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
        "status": Deployment.Status.FAILED,
        "failure_reason": "Cancelled by you.",
        "age": 0.5,
        "duration": 22,
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
