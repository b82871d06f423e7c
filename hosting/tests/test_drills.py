"""The short form of every failure drill (`python -m bench.drills --short`), each on an
empty database of its own: a drill that finds money or a server lost or doubled fails
here, with its figures and violations in the output."""

import pytest

from bench.drills import DRILLS
from hosting.testing import run_python, subprocess_env


@pytest.mark.parametrize("drill", DRILLS)
def test_drill_short_form_finds_no_violation(drill, scratch_database_url):
    result = run_python(
        "-m",
        "bench.drills",
        "--short",
        "--only",
        drill,
        env=subprocess_env(DRILLS_DATABASE_URL=scratch_database_url),
        timeout=300,
    )
    print(result.stdout, result.stderr)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    assert "ok in" in result.stdout
