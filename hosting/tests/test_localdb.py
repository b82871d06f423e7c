from hosting import localdb


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
