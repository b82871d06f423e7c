"""Fuzz drill: every customer-facing form and the Stripe webhook, each fed generated input
by hypothesis (1,000 each; 30 in the short form) through Django's test client and the
whole middleware stack, as a customer who owns a server, a deployment, a domain, a
ticket and a subscription (or, for the login, signup and reset forms, as a visitor).

Two things must hold:

- no answer is a server error (500); a crash in a view is counted, not raised;
- refused input changes no row. An input is refused when the answer is a 4xx, when the
  page is shown again with a form that has errors, or when the view says why it did
  nothing (an error or warning message, then a redirect). Every watched table (all of
  them, bar each visitor's own session: see rows.py) is hashed before and after each
  request; an accepted input may change rows, a refused one may not.

Two settings differ from production while the drill runs, both because what is under
test is the form: allauth's rate limits are off (they would answer most of 1,000 tries
with 429 before the form is read; hosting's own tests cover the limits), and passwords
are hashed with argon2 at its smallest cost (as configured, one try costs about 0.4 s on
a 2-core machine, and the login, signup, reset, change and reauthentication forms each
hash every input).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from django.contrib import messages
from django.contrib.auth.hashers import Argon2PasswordHasher
from django.forms import BaseForm
from django.test import Client, override_settings
from django.test.utils import ContextList, setup_test_environment, teardown_test_environment
from hypothesis import HealthCheck, Phase, given, settings

from bench.drills import Outcome, Timer
from bench.drills.customers import customer_make, customers_make, logged_in, refusals_quiet
from bench.drills.fuzz_forms import FORMS, Ctx, Form, World, settle
from bench.drills.fuzz_inputs import Body, form_bodies
from bench.drills.rows import changed, fingerprint

NAME = "fuzz"

EXAMPLES = 1000
SHORT_EXAMPLES = 30  # about 25 s on an idle 2-core machine; 50 would take 45
# Violations printed per form: the counts say how many there were in all.
EXAMPLES_SHOWN = 5

DRILL_SETTINGS = {
    "ACCOUNT_RATE_LIMITS": False,
    "PASSWORD_HASHERS": ["bench.drills.fuzz.QuickArgon2PasswordHasher"],
}


class QuickArgon2PasswordHasher(Argon2PasswordHasher):
    """argon2 at the smallest cost it allows: see the module's text."""

    time_cost = 1
    memory_cost = 8  # KiB
    parallelism = 1


@dataclass
class Tally:
    seconds: float = 0.0
    inputs: int = 0
    accepted: int = 0
    refused: int = 0
    deferred: int = 0
    errors: int = 0
    refused_but_changed: int = 0
    shown: list[str] = field(default_factory=list)

    def line(self) -> str:
        deferred = f", deferred {self.deferred}" if self.deferred else ""
        return (
            f"inputs {self.inputs}, accepted {self.accepted}, refused {self.refused}{deferred}, "
            f"500s {self.errors}, refused but changed rows {self.refused_but_changed}, "
            f"{self.seconds:.1f} s"
        )


# -- judging an answer ----------------------------------------------------------------


def refused(response) -> bool:
    """A 4xx, a form shown again with errors, or an error or warning message (the views
    say why they did nothing that way, then redirect)."""
    if 400 <= response.status_code < 500:
        return True
    storage = getattr(response.wsgi_request, "_messages", None)
    if any(m.level >= messages.WARNING for m in getattr(storage, "_queued_messages", [])):
        return True
    return _form_with_errors(response.context)


def _form_with_errors(context) -> bool:
    if context is None:
        return False
    for each in context if isinstance(context, ContextList) else [context]:
        for value in each.flatten().values():
            if isinstance(value, BaseForm) and value.is_bound and value.errors:
                return True
    return False


def _judge(form: Form, tally: Tally, body: Body, response, rows: list[str], outcome: Outcome):
    tally.inputs += 1
    status = response.status_code
    problem = None
    if status in form.deferred:
        tally.deferred += 1
    elif status >= 500:
        tally.errors += 1
        exc = getattr(response, "exc_info", None)
        why = f"{exc[0].__name__}: {str(exc[1])[:200]}" if exc else "no exception"
        problem = f"answered {status} ({why})"
    elif refused(response):
        tally.refused += 1
        if rows:
            tally.refused_but_changed += 1
            problem = f"refused ({status}) but changed rows in {', '.join(rows)}"
    else:
        tally.accepted += 1
    if problem and len(tally.shown) < EXAMPLES_SHOWN:
        line = f"{form.name}: {problem} for {form.method} {body.summary()}"
        tally.shown.append(line)
        outcome.violations.append(line)


# -- running --------------------------------------------------------------------------


def fuzz_form(form: Form, world: World, examples: int, outcome: Outcome) -> Tally:
    if form.visitor == "owner":
        subject = world.owner
        settle(world.owner)
    else:
        subject = customer_make(f"fuzz{secrets.token_hex(4)}", with_server=False)
    ctx = Ctx(world, subject)
    # One browser for all the inputs (each new test client builds the middleware stack
    # again); a visitor's loses its cookies before each input, so each is a new visitor.
    client = (
        logged_in(subject) if form.visitor != "visitor" else Client(raise_request_exception=False)
    )
    if form.bodies is not None:
        strategy = form.bodies(ctx)
    else:
        strategy = form_bodies(form.fields(ctx), query=form.method == "GET")
    tally = Tally()

    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        derandomize=False,
        phases=[Phase.generate],  # every input counted, none shrunk
        suppress_health_check=list(HealthCheck),
    )
    @given(body=strategy)
    def one(body: Body):
        if form.visitor == "visitor":
            client.cookies.clear()
        path = body.path or form.path(ctx, client)
        before = fingerprint()
        response = body.send(client, form.method, path)
        _judge(form, tally, body, response, changed(before, fingerprint()), outcome)

    with Timer() as timer:
        one()
    tally.seconds = timer.seconds
    if tally.inputs < examples:  # hypothesis ran out of new inputs: the figure would lie
        outcome.violations.append(f"{form.name}: {tally.inputs} inputs tried, not {examples}")
    return tally


def run(*, short: bool) -> Outcome:
    outcome = Outcome()
    examples = SHORT_EXAMPLES if short else EXAMPLES
    tallies: dict[str, Tally] = {}
    try:
        # Records each page's context, so a form shown again with errors can be told.
        setup_test_environment()
        restore = True
    except RuntimeError:  # already set up by whoever runs this
        restore = False
    try:
        with refusals_quiet(), override_settings(**DRILL_SETTINGS):
            owner, payer = customers_make(
                f"owner{secrets.token_hex(4)}", f"payer{secrets.token_hex(4)}"
            )
            world = World(owner=owner, payer=payer)
            for form in FORMS:
                tallies[form.name] = fuzz_form(form, world, examples, outcome)
    finally:
        if restore:
            teardown_test_environment()
    outcome.figures["forms"] = len(tallies)
    outcome.figures["inputs"] = sum(t.inputs for t in tallies.values())
    outcome.figures["500s"] = sum(t.errors for t in tallies.values())
    outcome.figures["refused but changed rows"] = sum(
        t.refused_but_changed for t in tallies.values()
    )
    for name, tally in tallies.items():
        outcome.figures[name] = tally.line()
    outcome.expect("500s in all", outcome.figures["500s"], 0)
    outcome.expect(
        "refused inputs that changed rows, in all", outcome.figures["refused but changed rows"], 0
    )
    return outcome
