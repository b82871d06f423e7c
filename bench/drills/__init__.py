"""Failure drills: each one stages a way money or servers could be lost or doubled, at
scale, and counts what went wrong. `python -m bench.drills` runs them all (the full
form); `--short` is the form `make test` runs.

A drill is a module in this package with a `NAME` and `run(*, short: bool) -> Outcome`.
It runs inside a Django process set up by `bench.drills.__main__` against a database of
its own (migrated, otherwise empty apart from the plans), and may start processes of
its own (gunicorn, the worker). It reports figures (what it did, how long it took) and
violations (each a sentence naming what broke); any violation makes the command fail.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


@dataclass
class Outcome:
    figures: dict[str, object] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)

    def expect(self, what: str, got: object, want: object) -> None:
        """Records a violation unless `got == want`: '<what>: 3, expected 0'."""
        if got != want:
            self.violations.append(f"{what}: {got}, expected {want}")


# The order they run in: the cheap ones first, so a broken build fails fast.
DRILLS = [
    "backup_roundtrip",
    "checkout_race",
    "isolation",
    "webhook_storm",
    "fuzz",
    "database_down",
    "worker_killed",
]


class Timer:
    """`with Timer() as t: ...; t.seconds`"""

    def __enter__(self):
        self.start = time.monotonic()
        self.seconds = 0.0
        return self

    def __exit__(self, *exc):
        self.seconds = time.monotonic() - self.start
