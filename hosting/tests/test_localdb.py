import subprocess
import sys

from hosting.database import localdb
from hosting.testing import PROJECT_DIR


def test_configured_reads_the_environment_then_the_env_file(tmp_path, monkeypatch):
    env_file = tmp_path / "env"
    env_file.write_text("# SITE_URL=http://commented\nDATABASE_URL=\nSITE_URL=http://x:1\n")
    monkeypatch.setenv("ENV_FILE", str(env_file))
    monkeypatch.delenv("SITE_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)

    assert localdb.configured("SITE_URL")
    assert not localdb.configured("DATABASE_URL")  # present but empty
    assert not localdb.configured("STRIPE_SECRET_KEY")
    monkeypatch.setenv("STRIPE_SECRET_KEY", "sk_test_1")
    assert localdb.configured("STRIPE_SECRET_KEY")


def test_the_local_cluster_runs_without_django():
    # `make db` runs it before Django is configured. Without the site module (-S) there
    # are no site-packages, so anything beyond the standard library fails to import.
    code = (
        "import sys; sys.path.insert(0, '.'); "
        "from hosting.database import localdb; print(localdb.url())"
    )
    result = subprocess.run(
        [sys.executable, "-I", "-S", "-c", code], cwd=PROJECT_DIR, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == localdb.url()
    status = subprocess.run(
        [sys.executable, "-m", "hosting.database.localdb", "status"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
    )
    assert status.stdout.strip() in ("running", "stopped"), status.stderr
