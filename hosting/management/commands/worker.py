"""`manage.py worker`: procrastinate's worker, kept running through database outages.

procrastinate's own worker exits when PostgreSQL goes away (its listener's connection
fails). This command runs it as a child process and, when the child ends without being
asked to, waits for the database to answer again (logging each try, backing off to 30 s)
and starts a new one. SIGTERM and SIGINT are passed on to the child, and then this
command ends too, so an orchestrator's stop works as before. Extra arguments go to
`procrastinate worker` (`manage.py worker --queues=backups`)."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import time

from django.conf import settings
from django.core.management.base import BaseCommand
from django.db import OperationalError, connection

logger = logging.getLogger("hosting.worker")
BACKOFF_MAX_SECONDS = 30.0


class Command(BaseCommand):
    help = "Run the job worker, restarting it after the database comes back."

    def add_arguments(self, parser):
        parser.add_argument("worker_args", nargs="*", help="Passed to `procrastinate worker`.")

    def handle(self, *args, worker_args=(), **options):
        supervisor = WorkerSupervisor(list(worker_args))
        signal.signal(signal.SIGTERM, supervisor.stop)
        signal.signal(signal.SIGINT, supervisor.stop)
        return supervisor.run()


class WorkerSupervisor:
    def __init__(self, worker_args: list[str]):
        self.command = [sys.executable, "manage.py", "procrastinate", "worker", *worker_args]
        self.child: subprocess.Popen | None = None
        self.stopping = False

    def stop(self, signum, frame) -> None:
        self.stopping = True
        if self.child is not None and self.child.poll() is None:
            self.child.send_signal(signum)

    def run(self) -> None:
        while not self.stopping:
            self.child = subprocess.Popen(self.command, cwd=settings.BASE_DIR)
            status = self.child.wait()
            if self.stopping:
                break
            logger.warning("The worker ended (exit status %s); restarting it.", status)
            self.database_wait()

    def database_wait(self) -> None:
        """Until the database answers (or we are told to stop)."""
        delay = 1.0
        while not self.stopping:
            try:
                connection.ensure_connection()
                connection.close()
                return
            except OperationalError as exc:
                connection.close()
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
                logger.warning(
                    "Waiting for the database (%s); next try in %.0f s", first_line, delay
                )
            time.sleep(delay)
            delay = min(delay * 2, BACKOFF_MAX_SECONDS)
