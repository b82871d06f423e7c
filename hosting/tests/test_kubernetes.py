"""deploy/kubernetes/: a kustomize base and its dev and prod overlays, checked offline.

kustomize is not needed: `kustomize_build` below renders an overlay the way `kubectl
kustomize` does for the two features the kustomizations use (a list of `resources` and
JSON 6902 `patches` aimed by kind and name) and refuses any other feature, so what is
validated is what a cluster gets. Every rendered object is validated against the
Kubernetes 1.30 schemas bundled with kubernetes-validate (strict: unknown fields fail),
then checked against the code: the Procfile, .env.example, the URLconf, deploy/Dockerfile
and the backup command's options."""

import copy
import re
import runpy
import shlex
from functools import cache
from pathlib import Path
from urllib.parse import urlsplit

import kubernetes_validate
import pytest
import yaml
from django.conf import settings
from django.core.management import load_command_class
from django.urls import resolve

from hosting import health

ROOT = Path(settings.BASE_DIR)
K8S = ROOT / "deploy" / "kubernetes"
SECRET_EXAMPLE = K8S / "secret.example.yaml"
VARIANTS = ("dev", "prod")
KUBERNETES_VERSION = "1.30"
APP_IMAGE = "ghcr.io/example/hosting:"
COMPONENT = "app.kubernetes.io/component"
DATABASE_ROLES = {"web", "worker", "migrate", "backup"}
# The official postgres image's settings (https://hub.docker.com/_/postgres); the app's
# own settings are those of .env.example.
POSTGRES_IMAGE_ENV = {"POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB", "PGDATA"}
BACKUP_COMMAND = ["python", "manage.py", "backup", "--verify", "--keep", "14"]
# Variant: (database volume, web replicas, autoscaler min, autoscaler max).
SIZES = {"dev": ("5Gi", 1, 1, 2), "prod": ("100Gi", 2, 2, 6)}
NAMESPACED_EXCEPTIONS = {"Namespace"}
POD_TEMPLATE_PATHS = {
    "Deployment": ("spec", "template"),
    "StatefulSet": ("spec", "template"),
    "Job": ("spec", "template"),
    "CronJob": ("spec", "jobTemplate", "spec", "template"),
}


# -- rendering ---------------------------------------------------------------------------


def load_documents(path: Path) -> list[dict]:
    with path.open() as f:
        return [doc for doc in yaml.safe_load_all(f) if doc is not None]


def _pointer(path: str) -> list[str]:
    assert path.startswith("/"), f"JSON pointer without a leading slash: {path}"
    return [part.replace("~1", "/").replace("~0", "~") for part in path[1:].split("/")]


def apply_json_patch(doc: dict, operations: list[dict], where: str) -> None:
    """RFC 6902 add, replace and remove, as kustomize applies them."""
    for operation in operations:
        *parents, last = _pointer(operation["path"])
        node = doc
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        op = operation["op"]
        if op == "remove" or op == "replace":
            if isinstance(node, list):
                index = int(last)
                assert 0 <= index < len(node), f"{where}: {operation['path']} does not exist"
            else:
                index = last
                assert index in node, f"{where}: {operation['path']} does not exist"
            if op == "remove":
                del node[index]
            else:
                node[index] = copy.deepcopy(operation["value"])
        elif op == "add":
            value = copy.deepcopy(operation["value"])
            if isinstance(node, list):
                node.insert(len(node) if last == "-" else int(last), value)
            else:
                node[last] = value
        else:
            raise AssertionError(f"{where}: JSON patch op {op!r} is not rendered by this test")


def kustomize_build(directory: Path) -> list[dict]:
    (kustomization,) = load_documents(directory / "kustomization.yaml")
    unsupported = set(kustomization) - {"apiVersion", "kind", "resources", "patches"}
    assert not unsupported, (
        f"{directory}: kustomization uses {sorted(unsupported)}, which this test does not "
        "render; use resources and JSON 6902 patches, or teach kustomize_build"
    )
    assert kustomization["kind"] == "Kustomization"
    docs: list[dict] = []
    for entry in kustomization.get("resources", []):
        path = (directory / entry).resolve()
        docs += kustomize_build(path) if path.is_dir() else load_documents(path)
    for patch in kustomization.get("patches", []):
        assert set(patch) == {"target", "patch"}, f"{directory}: unsupported patch {patch}"
        target = patch["target"]
        assert set(target) <= {"kind", "name"}, f"{directory}: unsupported target {target}"
        matched = [
            doc
            for doc in docs
            if doc["kind"] == target.get("kind", doc["kind"])
            and doc["metadata"]["name"] == target.get("name", doc["metadata"]["name"])
        ]
        assert matched, f"{directory}: patch target {target} matches nothing"
        for doc in matched:
            apply_json_patch(doc, yaml.safe_load(patch["patch"]), f"{directory} {target}")
    return docs


@cache
def _rendered(variant: str) -> tuple:
    return tuple(kustomize_build(K8S / "overlays" / variant))


def rendered(variant: str) -> list[dict]:
    """A fresh copy of the variant's objects (tests may not change each other's)."""
    return copy.deepcopy(list(_rendered(variant)))


def secret_example() -> list[dict]:
    return load_documents(SECRET_EXAMPLE)


# -- helpers -----------------------------------------------------------------------------


def one(docs: list[dict], kind: str, name: str) -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_templates(docs: list[dict]) -> list[tuple[dict, dict]]:
    """(object, pod template) for every workload."""
    templates = []
    for doc in docs:
        if doc["kind"] in POD_TEMPLATE_PATHS:
            node = doc
            for key in POD_TEMPLATE_PATHS[doc["kind"]]:
                node = node[key]
            templates.append((doc, node))
    return templates


def containers(template: dict) -> list[dict]:
    spec = template["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def workload_container(docs: list[dict], kind: str, name: str) -> tuple[dict, dict]:
    """(pod template, its one container) of a workload."""
    (template,) = [
        t for d, t in pod_templates(docs) if (d["kind"], d["metadata"]["name"]) == (kind, name)
    ]
    (container,) = containers(template)
    return template, container


def is_app(container: dict) -> bool:
    return container["image"].startswith(APP_IMAGE)


def selector_matches(selector: dict, labels: dict) -> bool:
    """A Kubernetes label selector against a set of labels (an empty one matches all)."""
    if any(labels.get(k) != v for k, v in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator = expression["key"], expression["operator"]
        values = expression.get("values", [])
        if operator == "In" and labels.get(key) not in values:
            return False
        if operator == "NotIn" and key in labels and labels[key] in values:
            return False
        if operator == "Exists" and key not in labels:
            return False
        if operator == "DoesNotExist" and key in labels:
            return False
    return True


def policies_for(docs: list[dict], labels: dict) -> list[dict]:
    return [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy" and selector_matches(d["spec"]["podSelector"], labels)
    ]


def ingress_rules_for(docs: list[dict], labels: dict) -> list[dict]:
    policies = policies_for(docs, labels)
    assert all("Ingress" in p["spec"]["policyTypes"] for p in policies)
    return [rule for p in policies for rule in p["spec"].get("ingress", [])]


def env_example_names() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, re.M))


def procfile() -> dict[str, list[str]]:
    lines = (ROOT / "Procfile").read_text().splitlines()
    entries = [line.split(":", 1) for line in lines if line.strip() and not line.startswith("#")]
    return {name.strip(): shlex.split(command) for name, command in entries}


def dockerfile_user() -> tuple[str, int, int]:
    """(user name, uid, exposed port) of deploy/Dockerfile's final image."""
    text = (ROOT / "deploy" / "Dockerfile").read_text()
    (name,) = re.findall(r"^USER\s+(\S+)", text, re.M)
    (uid,) = re.findall(rf"useradd\b[^\n]*--uid\s+(\d+)\s+{re.escape(name)}\b", text)
    (port,) = re.findall(r"^EXPOSE\s+(\d+)", text, re.M)
    return name, int(uid), int(port)


def gunicorn_defaults(monkeypatch) -> tuple[int, int]:
    """(port, workers) hosting/gunicorn_conf.py uses when PORT and WEB_CONCURRENCY are
    unset, as they are in the manifests."""
    monkeypatch.delenv("PORT", raising=False)
    monkeypatch.delenv("WEB_CONCURRENCY", raising=False)
    conf = runpy.run_path(str(ROOT / "hosting" / "gunicorn_conf.py"))  # sys.modules untouched
    return int(conf["bind"].rsplit(":", 1)[1]), conf["workers"]


def config(docs: list[dict]) -> dict[str, str]:
    return one(docs, "ConfigMap", "hosting-config")["data"]


def example_secret(name: str) -> dict[str, str]:
    return one(secret_example(), "Secret", name)["stringData"]


def container_port(container: dict, port) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    return number


# -- schemas and layout ------------------------------------------------------------------


@pytest.mark.parametrize("source", [*VARIANTS, "secret.example"])
def test_every_object_is_valid_for_kubernetes_1_30(source):
    docs = secret_example() if source == "secret.example" else rendered(source)
    assert docs
    errors = []
    for doc in docs:
        where = f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}"
        try:
            version = kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            errors.append(f"{where}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{where}: {exc.message}")
        else:
            assert version == KUBERNETES_VERSION
    assert errors == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_object_is_in_the_hosting_namespace_once(variant):
    docs = rendered(variant) + secret_example()
    assert (
        one(docs, "Namespace", "hosting")["metadata"]["labels"][
            "pod-security.kubernetes.io/enforce"
        ]
        == "restricted"
    )
    ids = [(d["kind"], d["metadata"]["name"]) for d in docs]
    assert len(ids) == len(set(ids)), "an object is defined twice"
    stray = [
        i
        for d, i in zip(docs, ids, strict=True)
        if d["kind"] not in NAMESPACED_EXCEPTIONS and d["metadata"].get("namespace") != "hosting"
    ]
    assert stray == []


def test_every_file_under_deploy_kubernetes_is_used():
    """No orphans (such as the single hosting.yaml this layout replaced): each YAML file
    is a kustomization, a resource one lists, or the secret example."""
    used = {SECRET_EXAMPLE}
    for kustomization in K8S.rglob("kustomization.yaml"):
        used.add(kustomization)
        (spec,) = load_documents(kustomization)
        for entry in spec.get("resources", []):
            path = (kustomization.parent / entry).resolve()
            used.add(path / "kustomization.yaml" if path.is_dir() else path)
    files = {p.resolve() for p in [*K8S.rglob("*.yaml"), *K8S.rglob("*.yml")]}
    assert sorted(map(str, files - {p.resolve() for p in used})) == []
    assert {p.name for p in (K8S / "overlays").iterdir()} == set(VARIANTS)


# -- the code's view ---------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_environment_variable_is_one_of_env_example(variant):
    docs = rendered(variant)
    documented = env_example_names()
    examples = {d["metadata"]["name"]: d["stringData"] for d in secret_example()}
    config_maps = {d["metadata"]["name"]: d["data"] for d in docs if d["kind"] == "ConfigMap"}
    app_names, postgres_names, images = set(), set(), set()
    for _doc, template in pod_templates(docs):
        for container in containers(template):
            names = {e["name"] for e in container.get("env", [])}
            for e in container.get("env", []):
                ref = e.get("valueFrom", {})
                if "secretKeyRef" in ref:
                    assert ref["secretKeyRef"]["key"] in examples[ref["secretKeyRef"]["name"]]
                if "configMapKeyRef" in ref:
                    key_ref = ref["configMapKeyRef"]
                    assert key_ref["key"] in config_maps[key_ref["name"]]
            for source in container.get("envFrom", []):
                assert "prefix" not in source
                if "configMapRef" in source:
                    names |= set(config_maps[source["configMapRef"]["name"]])
                if "secretRef" in source:
                    names |= set(examples[source["secretRef"]["name"]])
            if is_app(container):
                app_names |= names
            else:
                images.add(container["image"].split(":")[0])
                postgres_names |= names
    assert images == {"postgres"}, "only the app's image and PostgreSQL's run here"
    assert {"DATABASE_URL", "SECRET_KEY", "BACKUP_DIR", "ALLOWED_HOSTS"} <= app_names
    assert sorted(app_names - documented) == []
    assert sorted(postgres_names - POSTGRES_IMAGE_ENV) == []
    # Every key of every ConfigMap and app Secret is an environment variable of the app.
    app_secret_keys = set(examples["hosting-env"])
    assert sorted((set().union(*config_maps.values()) | app_secret_keys) - documented) == []


@pytest.mark.parametrize("variant", VARIANTS)
def test_probes_are_the_health_views_on_the_gunicorn_port(variant, monkeypatch):
    docs = rendered(variant)
    _, web = workload_container(docs, "Deployment", "hosting-web")
    liveness, readiness = web["livenessProbe"]["httpGet"], web["readinessProbe"]["httpGet"]
    assert resolve(liveness["path"]).func is health.healthz
    assert resolve(readiness["path"]).func is health.readyz
    gunicorn_port, _ = gunicorn_defaults(monkeypatch)
    _, _, exposed = dockerfile_user()
    assert container_port(web, liveness["port"]) == gunicorn_port == exposed
    assert container_port(web, readiness["port"]) == gunicorn_port
    env_names = {e["name"] for e in web.get("env", [])} | set(config(docs))
    assert not env_names & {"PORT", "WEB_CONCURRENCY"}, "gunicorn_conf defaults assumed"


@pytest.mark.parametrize("variant", VARIANTS)
def test_containers_run_the_procfile_commands(variant):
    docs = rendered(variant)
    lines = procfile()
    for kind, name, line in [
        ("Deployment", "hosting-web", "web"),
        ("Deployment", "hosting-worker", "worker"),
        ("Job", "hosting-migrate", "release"),
    ]:
        _, container = workload_container(docs, kind, name)
        assert container["command"] == lines[line], f"{kind}/{name} is not Procfile {line}"
        assert "args" not in container
    assert set(lines) == {"web", "worker", "release"}, "a Procfile line without a workload"


@pytest.mark.parametrize("variant", VARIANTS)
def test_backup_cronjob_writes_to_its_own_volume_at_backup_dir(variant):
    docs = rendered(variant)
    cronjob = one(docs, "CronJob", "hosting-backup")
    assert cronjob["spec"]["schedule"] == "0 2 * * *"
    assert cronjob["spec"]["concurrencyPolicy"] == "Forbid"
    template, container = workload_container(docs, "CronJob", "hosting-backup")
    assert container["command"] == BACKUP_COMMAND
    # Its volume is a claim of its own, mounted where BACKUP_DIR points.
    claims = {
        v["name"]: v["persistentVolumeClaim"]["claimName"]
        for v in template["spec"]["volumes"]
        if "persistentVolumeClaim" in v
    }
    (mount,) = [m for m in container["volumeMounts"] if m["name"] in claims]
    assert mount["mountPath"] == config(docs)["BACKUP_DIR"]
    assert not mount.get("readOnly")
    claim = one(docs, "PersistentVolumeClaim", claims[mount["name"]])
    users = [
        d["metadata"]["name"]
        for d, t in pod_templates(docs)
        for v in t["spec"].get("volumes", [])
        if v.get("persistentVolumeClaim", {}).get("claimName") == claim["metadata"]["name"]
    ]
    assert users == ["hosting-backup"]


def test_backup_cronjob_options_are_the_backup_commands():
    """`--verify --keep 14` parse as `manage.py backup` options: a renamed or missing
    option would fail every night in the cluster, not here."""
    command = load_command_class("hosting", "backup")
    options = command.create_parser("manage.py", "backup").parse_args(BACKUP_COMMAND[3:])
    assert options.keep == 14
    assert options.verify


# -- network -----------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_ingress_is_denied_by_default(variant):
    docs = rendered(variant)
    deny = [
        d
        for d in docs
        if d["kind"] == "NetworkPolicy"
        and d["spec"]["podSelector"] == {}
        and d["spec"]["policyTypes"] == ["Ingress"]
        and not d["spec"].get("ingress")
    ]
    assert len(deny) == 1
    # Only PostgreSQL and web pods accept any connection at all.
    accepting = {
        t["metadata"]["labels"][COMPONENT]
        for _d, t in pod_templates(docs)
        if ingress_rules_for(docs, t["metadata"]["labels"])
    }
    assert accepting == {"postgres", "web"}


@pytest.mark.parametrize("variant", VARIANTS)
def test_postgres_accepts_5432_only_from_web_worker_migrate_and_backup(variant):
    docs = rendered(variant)
    postgres, container = workload_container(docs, "StatefulSet", "hosting-postgres")
    assert container_port(container, "postgres") == 5432
    rules = ingress_rules_for(docs, postgres["metadata"]["labels"])
    assert rules
    peers = []
    for rule in rules:
        assert rule["ports"] == [{"protocol": "TCP", "port": 5432}]
        for peer in rule["from"]:
            assert set(peer) == {"podSelector"}, "no namespaceSelector, no ipBlock"
            peers.append(peer["podSelector"])
    labels_by_role = {
        t["metadata"]["labels"][COMPONENT]: t["metadata"]["labels"] for _d, t in pod_templates(docs)
    }
    allowed = {
        role
        for role, labels in labels_by_role.items()
        if any(selector_matches(p, labels) for p in peers)
    }
    assert allowed == DATABASE_ROLES
    stranger = {**labels_by_role["web"], COMPONENT: "debug"}
    assert not any(selector_matches(p, stranger) for p in peers)
    assert not any(selector_matches(p, {}) for p in peers)


@pytest.mark.parametrize("variant", VARIANTS)
def test_web_accepts_only_the_ingress_controller_on_its_port(variant):
    docs = rendered(variant)
    web_template, web = workload_container(docs, "Deployment", "hosting-web")
    rules = ingress_rules_for(docs, web_template["metadata"]["labels"])
    assert rules
    for rule in rules:
        assert rule["ports"] == [{"protocol": "TCP", "port": container_port(web, "http")}]
        for peer in rule["from"]:
            assert peer.get("namespaceSelector"), "from the controller's namespace only"
            assert peer.get("podSelector"), "and only its pods"
            assert "ipBlock" not in peer


@pytest.mark.parametrize("variant", VARIANTS)
def test_ingress_serves_the_site_host_over_tls(variant):
    docs = rendered(variant)
    data = config(docs)
    host = urlsplit(data["SITE_URL"]).hostname
    assert data["ALLOWED_HOSTS"] == host
    assert data["CSRF_TRUSTED_ORIGINS"] == f"https://{host}"
    assert data["SITE_URL"] == f"https://{host}"
    ingress = one(docs, "Ingress", "hosting-web")["spec"]
    ((tls,), (rule,)) = ingress["tls"], ingress["rules"]
    assert tls["hosts"] == [host]
    assert tls["secretName"]
    assert rule["host"] == host
    ((path,),) = [rule["http"]["paths"]]
    backend = path["backend"]["service"]
    service = one(docs, "Service", backend["name"])["spec"]
    (port,) = [p for p in service["ports"] if p["name"] == backend["port"]["name"]]
    template, web = workload_container(docs, "Deployment", "hosting-web")
    assert selector_matches({"matchLabels": service["selector"]}, template["metadata"]["labels"])
    assert container_port(web, port["targetPort"]) == 8000


# -- pods --------------------------------------------------------------------------------


@pytest.mark.parametrize("variant", VARIANTS)
def test_every_container_is_non_root_with_a_read_only_root(variant):
    docs = rendered(variant)
    _, uid, _ = dockerfile_user()
    templates = pod_templates(docs)
    assert len(templates) == 5
    for doc, template in templates:
        spec = template["spec"]
        pod_security = spec.get("securityContext", {})
        assert spec["automountServiceAccountToken"] is False
        for container in containers(template):
            where = f"{doc['kind']}/{doc['metadata']['name']} {container['name']}"
            security = container.get("securityContext", {})
            effective = {**pod_security, **security}
            assert effective.get("runAsNonRoot") is True, where
            assert security.get("readOnlyRootFilesystem") is True, where
            assert security.get("allowPrivilegeEscalation") is False, where
            assert security.get("capabilities") == {"drop": ["ALL"]}, where
            assert effective.get("seccompProfile") == {"type": "RuntimeDefault"}, where
            assert effective.get("runAsUser", 0) != 0, where
            resources = container["resources"]
            assert set(resources["requests"]) == set(resources["limits"]) == {"cpu", "memory"}
            mounts = {m["mountPath"]: m["name"] for m in container.get("volumeMounts", [])}
            volumes = {v["name"]: v for v in spec.get("volumes", [])}
            assert "emptyDir" in volumes[mounts["/tmp"]], f"{where}: /tmp is not an emptyDir"
            if is_app(container):
                assert effective["runAsUser"] == uid, f"{where}: not the Dockerfile's user"


@pytest.mark.parametrize("variant", VARIANTS)
def test_postgres_is_a_statefulset_with_a_claim_probes_and_secret_credentials(variant):
    docs = rendered(variant)
    statefulset = one(docs, "StatefulSet", "hosting-postgres")["spec"]
    template, container = workload_container(docs, "StatefulSet", "hosting-postgres")
    assert container["image"].startswith("postgres:15")
    service = one(docs, "Service", statefulset["serviceName"])["spec"]
    assert service["clusterIP"] == "None"
    assert selector_matches({"matchLabels": service["selector"]}, template["metadata"]["labels"])
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["exec"]["command"][0] == "pg_isready"
    env = {e["name"]: e for e in container["env"]}
    for name in ("POSTGRES_USER", "POSTGRES_PASSWORD", "POSTGRES_DB"):
        assert env[name]["valueFrom"]["secretKeyRef"]["name"] == "hosting-postgres"
    (claim,) = statefulset["volumeClaimTemplates"]
    (mount,) = [m for m in container["volumeMounts"] if m["name"] == claim["metadata"]["name"]]
    assert env["PGDATA"]["value"].startswith(mount["mountPath"] + "/")


@pytest.mark.parametrize("variant", VARIANTS)
def test_variant_sizes(variant):
    storage, replicas, minimum, maximum = SIZES[variant]
    docs = rendered(variant)
    (claim,) = one(docs, "StatefulSet", "hosting-postgres")["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["resources"]["requests"]["storage"] == storage
    web = one(docs, "Deployment", "hosting-web")
    assert web["spec"]["replicas"] == replicas
    hpa = one(docs, "HorizontalPodAutoscaler", "hosting-web")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "hosting-web",
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (minimum, maximum)
    ((metric,),) = [hpa["metrics"]]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    pdb = one(docs, "PodDisruptionBudget", "hosting-web")["spec"]
    assert pdb["minAvailable"] == 1
    assert selector_matches(pdb["selector"], web["spec"]["template"]["metadata"]["labels"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_database_connections_fit_max_connections(variant, monkeypatch):
    """An upper bound: every web process at the autoscaler's maximum with a full pool, each
    worker with a full pool plus a connection per concurrent job and two of its own, the
    migrate and backup jobs, PostgreSQL's reserved superuser slots."""
    docs = rendered(variant)
    data = config(docs)
    _, gunicorn_workers = gunicorn_defaults(monkeypatch)
    pool = int(data["DB_POOL_MAX_SIZE"])
    web_pods = one(docs, "HorizontalPodAutoscaler", "hosting-web")["spec"]["maxReplicas"]
    worker_pods = one(docs, "Deployment", "hosting-worker")["spec"]["replicas"]
    needed = (
        web_pods * gunicorn_workers * pool
        + worker_pods * (pool + int(data["WORKER_CONCURRENCY"]) + 2)
        + 2 * pool
        + 3
    )
    _, postgres = workload_container(docs, "StatefulSet", "hosting-postgres")
    (max_connections,) = [
        int(a.split("=", 1)[1]) for a in postgres["args"] if a.startswith("max_connections=")
    ]
    assert needed <= max_connections


# -- the secret example ------------------------------------------------------------------

PLACEHOLDER = "CHANGE-ME"
REAL_LOOKING = re.compile(
    r"sk_(live|test)_|rk_(live|test)_|whsec_|dop_v1_|-----BEGIN"
    r"|[A-Za-z0-9_-]{43}="  # a Fernet key
    r"|[A-Za-z0-9+/_=-]{24,}"  # anything long and random
)
NOT_SECRET = {"POSTGRES_USER", "POSTGRES_DB"}


def test_secret_example_holds_placeholders_only():
    docs = secret_example()
    assert {d["metadata"]["name"] for d in docs} == {"hosting-env", "hosting-postgres"}
    for doc in docs:
        assert "data" not in doc, "stringData only: base64 would hide what the values are"
        for key, value in doc["stringData"].items():
            assert not REAL_LOOKING.search(value), f"{key} looks real"
            if key in NOT_SECRET or value == "":
                continue
            if "://" in value:
                assert urlsplit(value).password == PLACEHOLDER, f"{key}: password not a placeholder"
            else:
                assert value == PLACEHOLDER, f"{key} is not {PLACEHOLDER}"


@pytest.mark.parametrize("variant", VARIANTS)
def test_secret_example_database_url_is_the_in_cluster_postgres(variant):
    docs = rendered(variant)
    url = urlsplit(example_secret("hosting-env")["DATABASE_URL"])
    postgres = example_secret("hosting-postgres")
    assert url.scheme in {"postgres", "postgresql"}
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.path == "/" + postgres["POSTGRES_DB"]
    service = one(docs, "Service", url.hostname)["spec"]
    statefulset = one(docs, "StatefulSet", "hosting-postgres")["spec"]
    assert statefulset["serviceName"] == url.hostname
    assert url.port == service["ports"][0]["port"] == 5432
