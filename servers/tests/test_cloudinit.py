"""The secrets made at provisioning and the cloud-init document that carries them."""

import json
import os
import shutil
import string
import subprocess

import bcrypt
import pytest
import trustme
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from django.core.exceptions import ImproperlyConfigured

from servers import cloudinit, credentials

URL_SAFE = set(string.ascii_letters + string.digits + "-_")


def public_of(private_pem: str) -> str:
    key = serialization.load_ssh_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        .decode()
    )


def write_key(path, key, encryption=None):
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            encryption or serialization.NoEncryption(),
        )
    )
    return str(path)


class TestPassword:
    def test_is_long_random_and_url_safe(self):
        passwords = {credentials.generate_password() for _ in range(50)}

        assert len(passwords) == 50
        for password in passwords:
            assert len(password) == 24
            assert set(password) <= URL_SAFE

    def test_hash_verifies_the_password_and_nothing_else(self):
        hashed = credentials.password_hash("correct horse battery")

        assert hashed.startswith("$2b$")
        assert bcrypt.checkpw(b"correct horse battery", hashed.encode())
        assert not bcrypt.checkpw(b"correct horse batter", hashed.encode())

    def test_hash_is_salted(self):
        assert credentials.password_hash("same") != credentials.password_hash("same")

    def test_hash_fits_in_shadow(self):
        # /etc/shadow is ":"-separated, one line per user.
        hashed = credentials.password_hash(credentials.generate_password())
        assert ":" not in hashed
        assert "\n" not in hashed


class TestHostKey:
    def test_pair_matches(self):
        private, public = credentials.generate_host_key()

        assert private.startswith("-----BEGIN OPENSSH PRIVATE KEY-----\n")
        key = serialization.load_ssh_private_key(private.encode(), password=None)
        assert isinstance(key, ed25519.Ed25519PrivateKey)
        assert public_of(private) == public

    def test_public_is_one_line_without_comment(self):
        _, public = credentials.generate_host_key()

        kind, blob = public.split(" ")
        assert kind == "ssh-ed25519"
        assert blob.startswith("AAAA")
        assert "\n" not in public

    def test_each_key_is_new(self):
        assert credentials.generate_host_key()[1] != credentials.generate_host_key()[1]


class TestPanelPublicKey:
    def test_ed25519(self, settings, tmp_path):
        key = ed25519.Ed25519PrivateKey.generate()
        settings.PANEL_SSH_KEY_FILE = write_key(tmp_path / "id_ed25519", key)

        public = credentials.panel_public_key()

        assert public.startswith("ssh-ed25519 AAAA")
        assert public == public_of((tmp_path / "id_ed25519").read_text())

    def test_rsa(self, settings, tmp_path):
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        settings.PANEL_SSH_KEY_FILE = write_key(tmp_path / "id_rsa", key)

        public = credentials.panel_public_key()

        assert public.startswith("ssh-rsa AAAA")
        assert public == public_of((tmp_path / "id_rsa").read_text())

    def test_unset(self, settings):
        settings.PANEL_SSH_KEY_FILE = ""
        with pytest.raises(ImproperlyConfigured, match="PANEL_SSH_KEY_FILE is not set"):
            credentials.panel_public_key()

    def test_missing_file(self, settings, tmp_path):
        settings.PANEL_SSH_KEY_FILE = str(tmp_path / "nope")
        with pytest.raises(ImproperlyConfigured, match="cannot be read"):
            credentials.panel_public_key()

    def test_encrypted_key(self, settings, tmp_path):
        key = ed25519.Ed25519PrivateKey.generate()
        settings.PANEL_SSH_KEY_FILE = write_key(
            tmp_path / "id_ed25519",
            key,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
        with pytest.raises(ImproperlyConfigured, match="unencrypted"):
            credentials.panel_public_key()

    def test_a_public_key_instead_of_the_private_one(self, settings, tmp_path):
        _, public = credentials.generate_host_key()
        path = tmp_path / "id_ed25519.pub"
        path.write_text(public + "\n")
        settings.PANEL_SSH_KEY_FILE = str(path)
        with pytest.raises(ImproperlyConfigured, match="not an unencrypted OpenSSH private key"):
            credentials.panel_public_key()


class TestUserData:
    PANEL_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHIQICouYpb+c2z5dO48iL5BU1+eUdnqug++JQb8Ardd"

    @pytest.fixture
    def secrets(self):
        password = credentials.generate_password()
        host_private, host_public = credentials.generate_host_key()
        return {
            "password": password,
            "hash": credentials.password_hash(password),
            "host_private": host_private,
            "host_public": host_public,
        }

    @pytest.fixture
    def document(self, secrets):
        return cloudinit.user_data(
            username="deploy",
            password_hash=secrets["hash"],
            host_private_key=secrets["host_private"],
            host_public_key=secrets["host_public"],
            panel_public_key=self.PANEL_KEY,
        )

    @pytest.fixture
    def config(self, document):
        return yaml.safe_load(document)

    def test_is_cloud_config_that_yaml_and_json_agree_on(self, document, config):
        header, body = document.split("\n", 1)
        assert header == "#cloud-config"
        assert isinstance(config, dict)
        assert json.loads(body) == config

    def test_creates_the_login_user_with_the_hash(self, config, secrets):
        [user] = config["users"]
        assert user == {
            "name": "deploy",
            "passwd": secrets["hash"],
            "lock_passwd": False,
            "shell": "/bin/bash",
            "groups": ["sudo"],
            "sudo": "ALL=(ALL) ALL",
            "ssh_authorized_keys": [self.PANEL_KEY],
        }
        assert bcrypt.checkpw(secrets["password"].encode(), user["passwd"].encode())

    def test_never_carries_the_password(self, document, secrets):
        assert secrets["password"] not in document
        assert secrets["hash"] in document

    def test_password_login_on_root_closed(self, config):
        assert config["ssh_pwauth"] is True
        assert config["disable_root"] is True
        assert config["chpasswd"] == {"expire": False}

    def test_pins_the_host_key(self, config, secrets):
        assert config["ssh_deletekeys"] is True
        assert config["ssh_genkeytypes"] == []
        assert config["ssh_keys"] == {
            "ed25519_private": secrets["host_private"],
            "ed25519_public": secrets["host_public"],
        }
        # The multi-line PEM survives the JSON round trip intact.
        assert public_of(config["ssh_keys"]["ed25519_private"]) == secrets["host_public"]

    def test_installs_caddy_with_our_caddyfile(self, config):
        assert config["package_update"] is True
        assert "caddy" in config["packages"]
        [caddyfile] = [f for f in config["write_files"] if f["path"] == "/etc/caddy/Caddyfile"]
        assert caddyfile["defer"] is True
        content = caddyfile["content"]
        assert "http:// {" in content
        assert "https:// {" in content
        assert "reverse_proxy 127.0.0.1:8000" in content
        assert ["systemctl", "reload-or-restart", "caddy"] in config["runcmd"]

    def test_caddyfile_asks_the_panel_at_the_given_url(self, secrets):
        document = cloudinit.user_data(
            username="deploy",
            password_hash=secrets["hash"],
            host_private_key=secrets["host_private"],
            host_public_key=secrets["host_public"],
            panel_public_key=self.PANEL_KEY,
            tls_ask_url="https://panel.example/servers/tls/ask/abc/",
        )
        [caddyfile] = yaml.safe_load(document)["write_files"]
        assert caddyfile["content"] == cloudinit.caddyfile(
            ask_url="https://panel.example/servers/tls/ask/abc/"
        )

    def test_caddyfile_ask_url_defaults_to_one_that_refuses(self, config, settings):
        # Temporary, until provisioning passes the server's own ask URL.
        [caddyfile] = config["write_files"]
        assert f"ask {settings.SITE_URL}/servers/tls/ask/unset/" in caddyfile["content"]

    def test_installs_docker_for_deployments(self, config):
        assert {"docker.io", "docker-compose-v2"} <= set(config["packages"])
        # The group exists only once the package is installed, so the user joins it in
        # runcmd (after the packages), not in `users`.
        assert config["users"][0]["groups"] == ["sudo"]
        assert ["usermod", "--append", "--groups", "docker", "deploy"] in config["runcmd"]

    def test_makes_the_app_directory_the_login_users(self, config, settings):
        app_dir = settings.DEPLOY_APP_DIR  # /srv/app unless the environment says otherwise
        assert ["install", "-d", "-o", "deploy", "-g", "deploy", app_dir] in config["runcmd"]

    def test_app_directory_follows_the_setting(self, secrets, settings):
        settings.DEPLOY_APP_DIR = "/opt/site"
        document = cloudinit.user_data(
            username="deploy",
            password_hash=secrets["hash"],
            host_private_key=secrets["host_private"],
            host_public_key=secrets["host_public"],
            panel_public_key=self.PANEL_KEY,
        )
        runcmd = yaml.safe_load(document)["runcmd"]
        assert ["install", "-d", "-o", "deploy", "-g", "deploy", "/opt/site"] in runcmd


def caddy_validate(tmp_path, content: str) -> subprocess.CompletedProcess:
    if shutil.which("caddy") is None:
        reason = "caddy not installed (`sudo apt-get install caddy`)"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)
    path = tmp_path / "Caddyfile"
    path.write_text(content)
    home = tmp_path / "home"
    env = {
        **os.environ,
        "HOME": str(home),
        "XDG_CONFIG_HOME": str(home / "config"),
        "XDG_DATA_HOME": str(home / "data"),
    }
    return subprocess.run(
        ["caddy", "validate", "--adapter", "caddyfile", "--config", str(path)],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )


class TestCaddyfile:
    ASK = "https://panel.example/servers/tls/ask/t0ken/"

    def test_production_is_on_demand_tls_from_lets_encrypt_on_80_and_443(self):
        content = cloudinit.caddyfile(ask_url=self.ASK)

        assert f"on_demand_tls {{\n\t\task {self.ASK}\n\t}}" in content
        assert "https:// {\n\ttls {\n\t\ton_demand\n\t}\n\treverse_proxy 127.0.0.1:8000\n}" in (
            content
        )
        assert "http:// {\n\treverse_proxy 127.0.0.1:8000\n}" in content
        for test_only in ("http_port", "https_port", "acme_ca", "storage", "admin off"):
            assert test_only not in content
        assert "&amp;" not in cloudinit.caddyfile(ask_url=self.ASK + "?a=1&b=2")

    def test_production_validates(self, tmp_path):
        result = caddy_validate(tmp_path, cloudinit.caddyfile(ask_url=self.ASK))
        assert result.returncode == 0, result.stderr
        assert "Valid configuration" in result.stdout + result.stderr

    def test_test_variant_has_its_ca_ports_and_storage_and_validates(self, tmp_path):
        root = tmp_path / "ca.pem"
        trustme.CA().cert_pem.write_to_path(str(root))
        content = cloudinit.caddyfile(
            ask_url="http://127.0.0.1:9/ask/",
            acme_ca="https://127.0.0.1:14000/dir",
            acme_ca_root=str(root),
            http_port=5002,
            https_port=5001,
            storage_dir=str(tmp_path / "data"),
            upstream="127.0.0.1:8123",
        )
        for line in (
            "\thttp_port 5002\n",
            "\thttps_port 5001\n",
            "\tadmin off\n",
            f"\tstorage file_system {tmp_path / 'data'}\n",
            "\tacme_ca https://127.0.0.1:14000/dir\n",
            f"\tacme_ca_root {root}\n",
            "\treverse_proxy 127.0.0.1:8123\n",
        ):
            assert line in content
        result = caddy_validate(tmp_path, content)
        assert result.returncode == 0, result.stderr

    @pytest.mark.parametrize(
        "bad", ["", "http://x/ ask", "http://x/}", "http://x/\n}\n:80 {", 'http://x/"']
    )
    def test_refuses_values_that_would_change_its_structure(self, bad):
        with pytest.raises(ValueError, match="ask_url"):
            cloudinit.caddyfile(ask_url=bad)
