"""The production settings plus the benchmark's framework floor (bench.urls). Only the
benchmark's gunicorn loads this module."""

from hosting.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
