"""What the scale data says (hosting/scale_shapes.py, hosting/scale_data.py): names,
repositories, deployment logs, tickets and replies. Short, like the real ones, and the
same few over and over: the benchmarks measure the pages, not the variety."""

from servers.models import DeploymentStatus

FIRST = "Ada Ben Chloe Dev Elena Farid Grace Hugo Ines Jonas Kemal Lena Mateo Nora Omar Priya"
LAST = "Anders Brown Chen Dubois Eriksen Fischer Garcia Haddad Ito Jensen Kowalski Lopez Moreau"
FIRST_NAMES, LAST_NAMES = FIRST.split(), LAST.split()
WORDS = ["shop", "blog", "api", "studio", "notes", "forum", "tracker", "wiki", "books", "photos"]

# Deployments build one of three stacks; how each fails (LOG_ENDS says the same).
STACKS = 3
FAILURE_REASONS = [
    "`pip install` exited with status 1.",
    "`npm ci` exited with status 1.",
    "`docker compose build` exited with status 1.",
]

TICKET_TOPICS = [
    (
        "502 Bad Gateway after my last deploy",
        "Since my deployment this morning every page answers 502 Bad Gateway, although "
        "the log says it succeeded.",
    ),
    (
        "Cannot log in over SSH",
        "ssh asks for a password and refuses the one shown on the server page.",
    ),
    (
        "Domain still pending verification",
        "I added the TXT record over an hour ago and the domain still says pending.",
    ),
    (
        "No HTTPS certificate for my domain",
        "The domain is verified but the browser says the certificate is not valid.",
    ),
    ("Moving to a bigger plan", "Can I move to Pro without losing what is on the server?"),
    ("Charged twice this month", "My card statement shows two charges for the same month."),
    ("Server slow since yesterday", "Pages take ten seconds to load since yesterday evening."),
    (
        "Environment variables for my app",
        "Where do I put the secrets my app reads from the environment?",
    ),
]
STAFF_REPLIES = [
    "Thanks for the report. We had a look at the server and found the cause; could you "
    "check again now?",
    "Thanks for writing. This usually takes a few minutes more; we will keep an eye on it.",
    "Could you send us the exact command you ran and what it printed?",
    "We have fixed this on our side. Sorry for the trouble!",
]
CUSTOMER_REPLIES = [
    "It works again, thank you!",
    "Here is what it printed: Permission denied (publickey,password).",
    "Still the same here, I am afraid.",
    "Thanks, that answers it.",
]
INTERNAL_NOTES = [
    "Internal: checked the droplet console, the app service had crashed (out of memory).",
    "Internal: DNS for this domain points at an old address; waiting for the customer.",
]


# A deployment's log by the stack it builds and how it ended: the lines every run starts
# with, then how it finished. A running one has printed its first lines; a pending one
# none.
_FETCH = [
    "$ git fetch origin {branch} && git reset --hard origin/{branch}",
    "HEAD is now at {short}",
]
_HEALTHY = ["Health check passed: HTTP 200 from 127.0.0.1:8000", "Deployment finished."]
_KEPT = "The previous release is still serving traffic."
LOG_STARTS = [
    [*_FETCH, "$ python3 -m venv /srv/app/.venv", "$ .venv/bin/pip install -r requirements.txt"],
    [*_FETCH, "$ npm ci"],
    [*_FETCH, "$ docker compose build"],
]
LOG_ENDS = {
    DeploymentStatus.SUCCESS: [
        [
            "Successfully installed 23 packages",
            "$ .venv/bin/python manage.py migrate --noinput",
            "No migrations to apply.",
            "$ systemctl restart app.service",
            *_HEALTHY,
        ],
        [
            "added 312 packages in 14s",
            "$ npm run build",
            "vite v5.4.2 building for production...",
            "built in 6.21s",
            "$ systemctl restart app.service",
            *_HEALTHY,
        ],
        [
            "[+] Building 27.3s (12/12) FINISHED",
            "$ docker compose up -d",
            "Container app-web-1  Started",
            *_HEALTHY,
        ],
    ],
    DeploymentStatus.FAILED: [
        [
            "ERROR: Could not find a version that satisfies the requirement psycopg==9.9",
            "ERROR: No matching distribution found for psycopg==9.9",
            "Deployment failed: `pip install` exited with status 1.",
            _KEPT,
        ],
        [
            "npm ERR! code ERESOLVE",
            "npm ERR! ERESOLVE could not resolve",
            "npm ERR! While resolving: vite-plugin-legacy@2.1.0",
            "Deployment failed: `npm ci` exited with status 1.",
            _KEPT,
        ],
        [
            'failed to solve: process "/bin/sh -c pip install -r requirements.txt" did not '
            "complete successfully: exit code: 1",
            "Deployment failed: `docker compose build` exited with status 1.",
            _KEPT,
        ],
    ],
    DeploymentStatus.IN_PROGRESS: [[], [], []],
}


def log_templates() -> list[tuple[int, str, int, str]]:
    """(stack, status, line number, text) for every line a deployment's log gets."""
    rows = []
    for status, ends in LOG_ENDS.items():
        for stack in range(STACKS):
            for number, text in enumerate([*LOG_STARTS[stack], *ends[stack]], start=1):
                rows.append((stack, str(status), number, text))
    return rows
