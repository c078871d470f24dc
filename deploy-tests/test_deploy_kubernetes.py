"""deploy/kubernetes, checked offline: every kustomization renders with plain `kubectl kustomize`
(what `kubectl apply -k`, Argo CD and Flux run: no load-restrictor flag), the output validates
against the Kubernetes JSON schemas (kubernetes-validate, strict), and the security and wiring
properties hold on the rendered objects.

No cluster runs here. The property checks are plain functions that take rendered objects and
return a list of violations; the mutation tests at the end break one property of a real render
and assert that the same function reports it.
"""

from __future__ import annotations

import copy
import functools
import os
import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
K8S = REPO / "deploy" / "kubernetes"
KUBECTL = shutil.which("kubectl")
pytestmark = pytest.mark.skipif(
    KUBECTL is None,
    reason="kubectl (with its built-in kustomize) is not installed; it renders deploy/kubernetes",
)

# The newest Kubernetes whose schemas kubernetes-validate bundles, and the oldest one with
# securityContext.appArmorProfile (GA in 1.30), which cpu-rapl-client needs.
SCHEMA_VERSIONS = ("1.37.0", "1.30.0")

OVERLAYS = ("privileged", "nvidia", "victoriametrics-cluster", "mimir")
KUSTOMIZATIONS = ("base", *(f"overlays/{o}" for o in OVERLAYS), "tools")

# The documented exception: with components/privileged (overlays/privileged), cpu-rapl-client
# runs privileged and as root.
PRIVILEGED_CONTAINER = "DaemonSet/cpu-rapl-client"
# Batch pods: ffmpeg-runner has no CPU limit on purpose (a quota would throttle what it
# measures); a batch or report has no health server, so no probes.
NO_CPU_LIMIT = {"ffmpeg-runner"}  # container names
CLIENT_DAEMONSETS = ("cpu-rapl-client", "docker-overhead-client", "gpu-nvml-client")
POWERCAP_HOST_PATHS = ("/sys/devices/virtual/powercap", "/sys/class/powercap")

Obj = dict[str, Any]


# ------------------------------------------------------------------------------- rendering


def env_file() -> dict[str, str]:
    """The repository's .env as KEY -> value (comments and blank lines skipped)."""
    out: dict[str, str] = {}
    for line in (REPO / ".env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env line without '=': {line!r}"
            out[key.strip()] = value
    return out


def kustomize(path: Path) -> list[Obj]:
    assert KUBECTL is not None
    proc = subprocess.run(
        [KUBECTL, "kustomize", str(path)],  # default load restrictor: files under the root
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, f"kubectl kustomize {path} failed:\n{proc.stderr}"
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


@functools.cache
def _rendered(name: str) -> tuple[Obj, ...]:
    return tuple(kustomize(K8S / name))


def rendered(name: str) -> list[Obj]:
    """A fresh deep copy of the render of deploy/kubernetes/<name> (rendered once per session)."""
    return copy.deepcopy(list(_rendered(name)))


def ident(obj: Obj) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def pod_specs(objs: list[Obj]) -> Iterator[tuple[str, Obj]]:
    """("Kind/name", pod spec) of every object that makes pods."""
    for obj in objs:
        kind = obj["kind"]
        if kind == "Pod":
            yield ident(obj), obj["spec"]
        elif kind in ("DaemonSet", "Deployment", "StatefulSet", "Job"):
            yield ident(obj), obj["spec"]["template"]["spec"]
        elif kind == "CronJob":
            yield ident(obj), obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]


def containers(objs: list[Obj]) -> Iterator[tuple[str, Obj, Obj]]:
    """(Kind/name, pod spec, container) for every container and init container."""
    for who, spec in pod_specs(objs):
        for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            yield who, spec, c


def find(objs: list[Obj], kind: str, name: str) -> Obj:
    for obj in objs:
        if obj["kind"] == kind and obj["metadata"]["name"] == name:
            return obj
    raise AssertionError(f"{kind}/{name} is not in the render")


def configmap(objs: list[Obj], prefix: str) -> Obj:
    """The generated ConfigMap named <prefix>-<hash>."""
    found = [
        o
        for o in objs
        if o["kind"] == "ConfigMap"
        and re.fullmatch(rf"{prefix}-[a-z0-9]{{10}}", o["metadata"]["name"])
    ]
    assert len(found) == 1, f"expected one generated ConfigMap {prefix}-<hash>, got {found}"
    return found[0]


def env_of(container: Obj) -> dict[str, Obj]:
    return {e["name"]: e for e in container.get("env", [])}


def env_value(objs: list[Obj], container: Obj, name: str) -> str | None:
    """The value of a container's variable, following configMapKeyRef into the render."""
    entry = env_of(container).get(name)
    if entry is None:
        return None
    if "value" in entry:
        return str(entry["value"])
    ref = entry.get("valueFrom", {}).get("configMapKeyRef")
    if ref is None:
        return None
    for o in objs:
        if o["kind"] == "ConfigMap" and o["metadata"]["name"] == ref["name"]:
            return str(o.get("data", {}).get(ref["key"]))
    return None


# ------------------------------------------------------------------------ property checks


def check_privileged(objs: list[Obj], allowed: set[str]) -> list[str]:
    """No privileged container, no privilege escalation, outside `allowed`."""
    out = []
    for who, _spec, c in containers(objs):
        sc = c.get("securityContext", {})
        if who in allowed:
            continue
        if sc.get("privileged") is True:
            out.append(f"{who}/{c['name']}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            out.append(f"{who}/{c['name']}: allowPrivilegeEscalation is not false")
    return out


def check_non_root(objs: list[Obj], allowed: set[str]) -> list[str]:
    """runAsNonRoot true and uid 10001 (pod or container level), outside `allowed`."""
    out = []
    for who, spec, c in containers(objs):
        if who in allowed:
            continue
        pod, ctr = spec.get("securityContext", {}), c.get("securityContext", {})
        non_root = ctr.get("runAsNonRoot", pod.get("runAsNonRoot"))
        uid = ctr.get("runAsUser", pod.get("runAsUser"))
        if non_root is not True:
            out.append(f"{who}/{c['name']}: runAsNonRoot is {non_root!r}")
        if uid != 10001:
            out.append(f"{who}/{c['name']}: runAsUser is {uid!r}, not 10001")
    return out


def check_hardening(objs: list[Obj]) -> list[str]:
    """readOnlyRootFilesystem, capabilities drop ALL and add none, seccomp RuntimeDefault, no
    service account token, no host namespaces."""
    out = []
    for who, spec, c in containers(objs):
        name = f"{who}/{c['name']}"
        sc = c.get("securityContext", {})
        if sc.get("readOnlyRootFilesystem") is not True:
            out.append(f"{name}: readOnlyRootFilesystem is not true")
        caps = sc.get("capabilities", {})
        if not sc.get("privileged") and caps.get("drop") != ["ALL"]:
            out.append(f"{name}: capabilities.drop is {caps.get('drop')!r}, not [ALL]")
        if caps.get("add"):
            out.append(f"{name}: adds capabilities {caps['add']}")
        seccomp = sc.get("seccompProfile", spec.get("securityContext", {}).get("seccompProfile"))
        if not sc.get("privileged") and (seccomp or {}).get("type") != "RuntimeDefault":
            out.append(f"{name}: seccompProfile is {seccomp!r}, not RuntimeDefault")
    for who, spec in pod_specs(objs):
        if spec.get("automountServiceAccountToken") is not False:
            out.append(f"{who}: automountServiceAccountToken is not false")
        for key in ("hostNetwork", "hostPID", "hostIPC"):
            if spec.get(key):
                out.append(f"{who}: {key}")
    return out


def check_host_paths(objs: list[Obj]) -> list[str]:
    """Every hostPath is mounted read-only wherever it is mounted."""
    out = []
    for who, spec, c in containers(objs):
        host = {
            v["name"]: v["hostPath"]["path"] for v in spec.get("volumes", []) if "hostPath" in v
        }
        for m in c.get("volumeMounts", []):
            if m["name"] in host and m.get("readOnly") is not True:
                out.append(f"{who}/{c['name']}: hostPath {host[m['name']]} mounted writable")
    return out


def check_rapl_access(objs: list[Obj], env: dict[str, str], privileged: bool) -> list[str]:
    """cpu-rapl-client reads powercap read-only at RAPL_POWERCAP_DIR, confined by the named
    AppArmor profile with the RAPL group (or, privileged overlay, privileged as root)."""
    out = []
    ds = find(objs, "DaemonSet", "cpu-rapl-client")
    spec = ds["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    sc = c.get("securityContext", {})
    vols = {v["name"]: v for v in spec.get("volumes", [])}
    mounts = [
        m
        for m in c.get("volumeMounts", [])
        if vols.get(m["name"], {}).get("hostPath", {}).get("path") in POWERCAP_HOST_PATHS
    ]
    if len(mounts) != 1:
        out.append(f"cpu-rapl-client: {len(mounts)} powercap hostPath mounts, expected 1")
    else:
        if mounts[0].get("readOnly") is not True:
            out.append("cpu-rapl-client: powercap mounted writable")
        if env_value(objs, c, "RAPL_POWERCAP_DIR") != mounts[0]["mountPath"]:
            out.append("cpu-rapl-client: RAPL_POWERCAP_DIR is not the powercap mount path")
    profile = re.search(
        r"^profile\s+(\S+)", (REPO / "AppArmor" / "wattpush-cpu-rapl").read_text(), re.M
    )
    assert profile is not None
    aa = sc.get("appArmorProfile", {})
    groups = spec.get("securityContext", {}).get("supplementalGroups", [])
    if privileged:
        if sc.get("privileged") is not True or aa.get("type") != "Unconfined":
            out.append("cpu-rapl-client (privileged overlay): not privileged and unconfined")
        return out
    # The profile's spool rules are `owner` rules: SPOOL_DIR must be a directory the client
    # creates (so uid 10001 owns it), below a writable mount, not the mount's root-owned root.
    spool = env_value(objs, c, "SPOOL_DIR") or ""
    writable = [m["mountPath"] for m in c.get("volumeMounts", []) if not m.get("readOnly")]
    if not any(spool.startswith(p.rstrip("/") + "/") for p in writable):
        out.append(f"cpu-rapl-client: SPOOL_DIR {spool!r} is not strictly below a writable mount")
    if aa != {"type": "Localhost", "localhostProfile": profile.group(1)}:
        out.append(f"cpu-rapl-client: appArmorProfile {aa!r}, not Localhost/{profile.group(1)}")
    if profile.group(1) != env["CPU_RAPL_APPARMOR_PROFILE"]:
        out.append("AppArmor profile name differs from CPU_RAPL_APPARMOR_PROFILE in .env")
    if int(env["RAPL_GID"]) not in groups:
        out.append(f"cpu-rapl-client: supplementalGroups {groups} lack RAPL_GID {env['RAPL_GID']}")
    return out


def check_probes(objs: list[Obj]) -> list[str]:
    """Every client DaemonSet container has liveness and readiness httpGet /healthz on the port
    its HEALTH_PORT names."""
    out = []
    for obj in objs:
        if obj["kind"] != "DaemonSet":
            continue
        for c in obj["spec"]["template"]["spec"]["containers"]:
            name = f"{ident(obj)}/{c['name']}"
            health = env_value(objs, c, "HEALTH_PORT")
            ports = {p.get("name"): p["containerPort"] for p in c.get("ports", [])}
            for kind in ("livenessProbe", "readinessProbe"):
                get = c.get(kind, {}).get("httpGet")
                if get is None:
                    out.append(f"{name}: no {kind} httpGet")
                    continue
                port = ports.get(get["port"], get["port"])
                if get.get("path") != "/healthz" or str(port) != health or health in (None, "0"):
                    out.append(
                        f"{name}: {kind} is {get.get('path')}:{port}, HEALTH_PORT is {health}"
                    )
    return out


def check_instance(objs: list[Obj]) -> list[str]:
    """Every pod that pushes (clients, runner) has INSTANCE = spec.nodeName (downward API)."""
    out = []
    for who, _spec, c in containers(objs):
        if env_of(c).get("REMOTE_WRITE_URL") is None:
            continue
        ref = env_of(c).get("INSTANCE", {}).get("valueFrom", {}).get("fieldRef", {})
        if ref.get("fieldPath") != "spec.nodeName":
            out.append(f"{who}/{c['name']}: INSTANCE is not the node name ({ref or 'unset'})")
    return out


def check_resources(objs: list[Obj]) -> list[str]:
    out = []
    for who, _spec, c in containers(objs):
        res = c.get("resources", {})
        need = [("requests", "cpu"), ("requests", "memory"), ("limits", "memory")]
        if c["name"] not in NO_CPU_LIMIT:
            need.append(("limits", "cpu"))
        out += [f"{who}/{c['name']}: no {a}.{b}" for a, b in need if b not in res.get(a, {})]
    return out


def check_writable_volumes(objs: list[Obj]) -> list[str]:
    """With a read-only root, what a pod writes must be a volume: SPOOL_DIR (when set), /tmp."""
    out = []
    for who, _spec, c in containers(objs):
        paths = [m["mountPath"] for m in c.get("volumeMounts", []) if not m.get("readOnly")]
        wanted = ["/tmp"]
        spool = env_value(objs, c, "SPOOL_DIR")
        if spool:
            wanted.append(spool)
        if c.get("command", [None])[0] == "sleep":
            wanted = []  # the reports reader writes nothing
        for w in wanted:
            if not any(w == p or w.startswith(p.rstrip("/") + "/") for p in paths):
                out.append(f"{who}/{c['name']}: {w} is on the read-only root file system")
    return out


def check_env_configmap(objs: list[Obj], env: dict[str, str]) -> list[str]:
    """The generated wattpush-env ConfigMap carries every key of .env with its value."""
    data = configmap(objs, "wattpush-env").get("data", {})
    out = [f"wattpush-env lacks {k}" for k in env if k not in data]
    out += [
        f"wattpush-env {k}={data[k]!r}, .env has {v!r}"
        for k, v in env.items()
        if k in data and data[k] != v
    ]
    out += [f"wattpush-env has {k}, which .env does not" for k in data if k not in env]
    return out


def check_config_refs(objs: list[Obj]) -> list[str]:
    """Every configMapKeyRef names a rendered ConfigMap and one of its keys; every secretKeyRef
    is optional (the Secret is the user's, never committed), and no Secret is rendered."""
    maps = {o["metadata"]["name"]: o.get("data", {}) for o in objs if o["kind"] == "ConfigMap"}
    out = [f"{ident(o)}: a Secret in the render" for o in objs if o["kind"] == "Secret"]
    for who, _spec, c in containers(objs):
        for e in c.get("env", []):
            src = e.get("valueFrom", {})
            if "configMapKeyRef" in src:
                ref = src["configMapKeyRef"]
                if ref["key"] not in maps.get(ref["name"], {}):
                    out.append(
                        f"{who}/{c['name']}: {e['name']} -> missing {ref['name']}/{ref['key']}"
                    )
            if "secretKeyRef" in src and src["secretKeyRef"].get("optional") is not True:
                out.append(f"{who}/{c['name']}: {e['name']} needs a Secret (not optional)")
    return out


def check_images(objs: list[Obj], env: dict[str, str]) -> list[str]:
    """Images are docker-compose.yml's: ${WATTPUSH_IMAGE_PREFIX}/<component>:${WATTPUSH_TAG}."""
    prefix, tag = env["WATTPUSH_IMAGE_PREFIX"], env["WATTPUSH_TAG"]
    out = []
    for who, _spec, c in containers(objs):
        if not re.fullmatch(rf"{re.escape(prefix)}/[a-z0-9-]+:{re.escape(tag)}", c["image"]):
            out.append(f"{who}/{c['name']}: image {c['image']}")
    return out


def all_violations(name: str, objs: list[Obj]) -> list[str]:
    """Every check on the render of `name`; `privileged` in the name allows the exception."""
    env = env_file()
    allowed = {PRIVILEGED_CONTAINER} if "privileged" in name else set()
    out = [
        *check_privileged(objs, allowed),
        *check_non_root(objs, allowed),
        *check_hardening(objs),
        *check_host_paths(objs),
        *check_probes(objs),
        *check_instance(objs),
        *check_resources(objs),
        *check_writable_volumes(objs),
        *check_config_refs(objs),
        *check_images(objs, env),
    ]
    if name != "tools":
        out += check_env_configmap(objs, env)
        out += check_rapl_access(objs, env, privileged="privileged" in name)
    return out


def compose(tmp_path: Path, *components: str) -> list[Obj]:
    """Render a user's overlay: the base plus the named components, in that order."""
    (tmp_path / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "resources": [os.path.relpath(K8S / "base", tmp_path)],
                "components": [
                    os.path.relpath(K8S / "components" / c, tmp_path) for c in components
                ],
            }
        )
    )
    return kustomize(tmp_path)


# ------------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_renders_and_validates_strictly(name: str) -> None:
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    objs = rendered(name)
    assert objs
    errors = []
    for version in SCHEMA_VERSIONS:
        for obj in objs:
            try:
                kv.validate(obj, version, strict=True)
            except kv.ValidationError as exc:
                errors.append(f"{version} {ident(obj)}: {exc.message}")
    assert errors == []


def test_validator_is_strict_and_the_version_matters() -> None:
    """The schema check can fail: an unknown field, and appArmorProfile before 1.30."""
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    ds = find(rendered("base"), "DaemonSet", "cpu-rapl-client")
    kv.validate(ds, SCHEMA_VERSIONS[0], strict=True)
    typo = copy.deepcopy(ds)
    typo["spec"]["template"]["spec"]["containers"][0]["securityContex"] = {}
    with pytest.raises(kv.ValidationError, match="securityContex"):
        kv.validate(typo, SCHEMA_VERSIONS[0], strict=True)
    with pytest.raises(kv.ValidationError, match="appArmorProfile"):
        kv.validate(ds, "1.29.0", strict=True)


@pytest.mark.parametrize("name", KUSTOMIZATIONS)
def test_security_and_wiring_properties(name: str) -> None:
    assert all_violations(name, rendered(name)) == []


K8S_ENV = K8S / "base" / "wattpush.env"
K8S_ENV_HEADER = "# Generated from .env by `make k8s-env`: edit .env, then run it again.\n"


def test_the_configmap_source_is_a_current_copy_of_dot_env() -> None:
    """kustomize reads no file above a kustomization's root, so the base generates its ConfigMap
    from a copy of .env inside it; .env stays the source."""
    assert K8S_ENV.read_text() == K8S_ENV_HEADER + (REPO / ".env").read_text(), (
        f"{K8S_ENV.relative_to(REPO)} differs from .env: run `make k8s-env` and commit both"
    )


def test_make_k8s_env_writes_exactly_that_copy(tmp_path: Path) -> None:
    make = shutil.which("make")
    if make is None:
        pytest.skip("make is not installed")
    target = tmp_path / "copy.env"
    proc = subprocess.run(
        [make, "--no-print-directory", "-C", str(REPO), "k8s-env", f"K8S_ENV={target}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert target.read_bytes() == K8S_ENV.read_bytes()


def test_no_kustomization_reads_a_file_outside_deploy_kubernetes() -> None:
    """What the default load restrictor enforces, said here with the file at fault."""
    outside = []
    for kfile in K8S.rglob("kustomization.yaml"):
        doc = yaml.safe_load(kfile.read_text())
        for gen in doc.get("configMapGenerator", []) + doc.get("secretGenerator", []):
            for entry in [*gen.get("envs", []), *gen.get("files", [])]:
                path = (kfile.parent / str(entry).split("=")[-1]).resolve()
                if not path.is_relative_to(kfile.parent.resolve()):
                    outside.append(f"{kfile.relative_to(REPO)}: {entry}")
    assert outside == []


def test_privileged_appears_only_in_the_privileged_overlay() -> None:
    for name in KUSTOMIZATIONS:
        priv = [
            f"{who}/{c['name']}"
            for who, _s, c in containers(rendered(name))
            if c.get("securityContext", {}).get("privileged")
        ]
        expected = ["DaemonSet/cpu-rapl-client/cpu-rapl-client"] if "privileged" in name else []
        assert priv == expected, name
    sources = [
        p.relative_to(K8S)
        for p in K8S.rglob("*.yaml")
        if re.search(r"^\s*privileged:\s*true", p.read_text(), re.M)
    ]
    assert sources == [Path("components/privileged/kustomization.yaml")]


def test_the_privileged_overlay_changes_only_cpu_rapl_client() -> None:
    base, priv = rendered("base"), rendered("overlays/privileged")
    changed = [ident(o) for o, p in zip(base, priv, strict=True) if o != p]
    assert changed == ["DaemonSet/cpu-rapl-client"]


def test_env_configmap_is_the_dot_env_and_clients_take_their_prefixed_keys() -> None:
    objs = rendered("base")
    env = env_file()
    assert check_env_configmap(objs, env) == []
    for client, prefix in (
        ("cpu-rapl-client", "CPU_RAPL"),
        ("docker-overhead-client", "DOCKER_OVERHEAD"),
    ):
        (c,) = find(objs, "DaemonSet", client)["spec"]["template"]["spec"]["containers"]
        for var in ("SAMPLE_INTERVAL_S", "PUSH_INTERVAL_S", "SPOOL_MAX_BYTES"):
            assert env_value(objs, c, var) == env[f"{prefix}_{var}"], (client, var)
    runner = find(objs, "CronJob", "ffmpeg-runner")
    (c,) = runner["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert env_value(objs, c, "DEFAULT_BATCH") == env["DEFAULT_BATCH"]
    assert c["args"] == ["batch", "--file", "$(DEFAULT_BATCH)"]


def test_runner_and_advisor_are_suspended_templates() -> None:
    objs = rendered("base")
    for name in ("ffmpeg-runner", "advisor-report"):
        cron = find(objs, "CronJob", name)
        assert cron["spec"]["suspend"] is True, name
    assert not [o for o in objs if o["kind"] == "Job"], "a Job would run at every apply"
    advisor = find(objs, "CronJob", "advisor-report")["spec"]["jobTemplate"]["spec"]["template"]
    vols = {v["name"]: v for v in advisor["spec"]["volumes"]}
    (c,) = advisor["spec"]["containers"]
    mount = next(m for m in c["volumeMounts"] if m["mountPath"] == "/var/lib/wattpush/reports")
    claim = vols[mount["name"]]["persistentVolumeClaim"]["claimName"]
    find(objs, "PersistentVolumeClaim", claim)
    script = c["args"][0]
    assert '--format json --output "$out.json"' in script
    assert '--format html --output "$out.html"' in script


def test_advisor_script_passes_shellcheck(tool: Callable[[str], str]) -> None:
    shellcheck = tool("shellcheck")
    cron = find(rendered("base"), "CronJob", "advisor-report")
    (c,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert c["command"] == ["/bin/sh", "-c"]
    proc = subprocess.run(
        [shellcheck, "-s", "sh", "-"],
        input=c["args"][0],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout


@pytest.mark.parametrize(
    ("overlay", "url", "headers", "query_url", "query_headers"),
    [
        ("base", r"http://prometheus:9090/api/v1/write", r"", r"http://prometheus:9090", r""),
        (
            "overlays/victoriametrics-cluster",
            r"http://[^/]+:8480/insert/(?P<t>\d+(:\d+)?)/prometheus/api/v1/write",
            r"",
            r"http://[^/]+:8481/select/(?P=t)/prometheus",
            r"",
        ),
        (
            "overlays/mimir",
            r"http://[^/]+/api/v1/push",
            r"X-Scope-OrgID=(?P<t>[\w-]+)",
            r"http://[^/]+/prometheus",
            r"X-Scope-OrgID=(?P=t)",
        ),
    ],
)
def test_receiver_urls_and_tenants(
    overlay: str, url: str, headers: str, query_url: str, query_headers: str
) -> None:
    objs = rendered(overlay)
    data = configmap(objs, "wattpush-receiver")["data"]
    joined = "\n".join(
        data[k]
        for k in (
            "REMOTE_WRITE_URL",
            "REMOTE_WRITE_HEADERS",
            "ADVISOR_PROMETHEUS_URL",
            "ADVISOR_HEADERS",
        )
    )
    # One regex over the four values, so the tenant must agree between writes and queries.
    assert re.fullmatch("\n".join((url, headers, query_url, query_headers)), joined), joined
    pushers = [c for _w, _s, c in containers(objs) if "REMOTE_WRITE_URL" in env_of(c)]
    assert len(pushers) >= 3
    for c in pushers:
        assert env_value(objs, c, "REMOTE_WRITE_URL") == data["REMOTE_WRITE_URL"]
        assert env_value(objs, c, "REMOTE_WRITE_HEADERS") == data["REMOTE_WRITE_HEADERS"]
    (adv,) = find(objs, "CronJob", "advisor-report")["spec"]["jobTemplate"]["spec"]["template"][
        "spec"
    ]["containers"]
    assert env_value(objs, adv, "ADVISOR_PROMETHEUS_URL") == data["ADVISOR_PROMETHEUS_URL"]
    assert env_value(objs, adv, "ADVISOR_HEADERS") == data["ADVISOR_HEADERS"]


def test_nvidia_overlay() -> None:
    objs = rendered("overlays/nvidia")
    ds = find(objs, "DaemonSet", "gpu-nvml-client")["spec"]["template"]["spec"]
    assert ds["runtimeClassName"] == "nvidia"
    assert ds["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    (c,) = ds["containers"]
    # Monitors every GPU of the node without taking one from the Jobs it measures.
    assert "nvidia.com/gpu" not in c["resources"].get("limits", {})
    assert env_value(objs, c, "NVIDIA_VISIBLE_DEVICES") == "all"
    assert env_value(objs, c, "NVIDIA_DRIVER_CAPABILITIES") == "utility"
    assert env_value(objs, c, "GPU_OPTIONAL") == env_file()["GPU_OPTIONAL"]
    runner = find(objs, "CronJob", "ffmpeg-runner")["spec"]["jobTemplate"]["spec"]["template"]
    assert runner["spec"]["runtimeClassName"] == "nvidia"
    assert runner["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert [ident(o) for o in objs if o["kind"] == "DaemonSet"] == [
        f"DaemonSet/{n}" for n in sorted(CLIENT_DAEMONSETS)
    ]


def test_nvidia_gpu_request_component(tmp_path: Path) -> None:
    """components/nvidia-gpu-request after components/nvidia: one GPU requested, the
    NVIDIA_VISIBLE_DEVICES=all it would contradict removed, every property kept."""
    objs = compose(tmp_path, "nvidia", "nvidia-gpu-request")
    (c,) = find(objs, "DaemonSet", "gpu-nvml-client")["spec"]["template"]["spec"]["containers"]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "NVIDIA_VISIBLE_DEVICES" not in env_of(c)
    assert env_value(objs, c, "NVIDIA_DRIVER_CAPABILITIES") == "utility"
    assert all_violations("nvidia-gpu-request", objs) == []


@pytest.mark.parametrize(
    "components",
    [
        ("nvidia", "mimir"),
        ("nvidia", "victoriametrics-cluster", "privileged"),
        ("privileged", "mimir"),
    ],
)
def test_components_combine(tmp_path: Path, components: tuple[str, ...]) -> None:
    """A fleet needs several at once (GPU nodes pushing to Mimir): the components compose,
    each does its part, and every property still holds."""
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    objs = compose(tmp_path, *components)
    for obj in objs:
        kv.validate(obj, SCHEMA_VERSIONS[0], strict=True)
    assert all_violations("+".join(components), objs) == []
    combined = _leaves(objs)
    base = _leaves(rendered("base"))
    for part in components:
        # What the component changes on its own (its leaves that differ from the base) is
        # the same in the combination.
        own = {k: v for k, v in _leaves(rendered(f"overlays/{part}")).items() if base.get(k) != v}
        assert own, part
        assert {k: combined.get(k) for k in own} == own, part
    data = configmap(objs, "wattpush-receiver")["data"]
    receiver = next((c for c in components if c in ("mimir", "victoriametrics-cluster")), None)
    if receiver is not None:
        assert data == configmap(rendered(f"overlays/{receiver}"), "wattpush-receiver")["data"]


def _leaves(objs: list[Obj]) -> dict[str, Any]:
    """Every scalar of every object as "Kind/name.path" -> value, generated ConfigMap names
    without their hash suffix (it changes when another component merges into the map)."""
    out: dict[str, Any] = {}
    suffix = re.compile(r"^(wattpush-(?:env|receiver))-[a-z0-9]{10}$")

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(f"{prefix}.{k}", v)
        elif isinstance(node, list):
            for n, v in enumerate(node):
                walk(f"{prefix}[{n}]", v)
        else:
            out[suffix.sub(r"\1", prefix)] = (
                suffix.sub(r"\1", node) if isinstance(node, str) else node
            )

    for obj in objs:
        walk(suffix.sub(r"\1", ident(obj)), obj)
    return out


def job_from_cronjob(cron: Obj, name: str) -> Obj:
    """What `kubectl create job --from=cronjob/<cron> <name>` makes (it copies the template)."""
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": cron["metadata"]["namespace"],
            **{k: v for k, v in cron["spec"]["jobTemplate"]["metadata"].items() if k == "labels"},
        },
        "spec": copy.deepcopy(cron["spec"]["jobTemplate"]["spec"]),
    }


@pytest.mark.parametrize(
    ("patch", "placed"),
    [
        ('{"spec":{"template":{"spec":{"nodeName":"node-1"}}}}', {"nodeName": "node-1"}),
        (
            '{"spec":{"template":{"spec":{"nodeSelector":{"wattpush/pool":"encode-a"}}}}}',
            {"nodeSelector": {"wattpush/pool": "encode-a"}},
        ),
    ],
)
def test_batch_placement_as_the_readme_does_it(patch: str, placed: Obj) -> None:
    """The README's per-batch placement: a Job from the runner template, patched offline with
    `kubectl patch --local`, lands on the chosen node or pool and keeps every property."""
    assert KUBECTL is not None
    objs = rendered("base")
    job = job_from_cronjob(find(objs, "CronJob", "ffmpeg-runner"), "batch-1")
    proc = subprocess.run(
        [KUBECTL, "patch", "--local", "-f", "-", "--type", "merge", "-o", "yaml", "-p", patch],
        input=yaml.safe_dump(job),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "KUBECONFIG": os.devnull},
    )
    assert proc.returncode == 0, proc.stderr
    patched = yaml.safe_load(proc.stdout)
    spec = patched["spec"]["template"]["spec"]
    for key, value in placed.items():
        assert spec[key] == value
    assert spec["containers"] == job["spec"]["template"]["spec"]["containers"]
    kv = pytest.importorskip("kubernetes_validate", reason="pip install kubernetes-validate")
    kv.validate(patched, SCHEMA_VERSIONS[0], strict=True)
    others = [o for o in objs if o["kind"] != "CronJob"]
    assert all_violations("base", [*others, patched]) == []


def test_docker_overhead_client_mounts_as_compose_does() -> None:
    objs = rendered("base")
    spec = find(objs, "DaemonSet", "docker-overhead-client")["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    mounts = {host[m["name"]]: m["mountPath"] for m in c["volumeMounts"] if m["name"] in host}
    assert mounts == {
        "/var/run/docker.sock": "/var/run/docker.sock",
        "/proc": "/host/proc",
        "/sys/fs/cgroup": "/host/cgroup",
    }
    assert env_value(objs, c, "HOST_PROC") == "/host/proc"
    assert env_value(objs, c, "HOST_CGROUP") == "/host/cgroup"
    assert env_value(objs, c, "DOCKER_HOST") == "unix:///var/run/docker.sock"
    assert spec["securityContext"]["supplementalGroups"], "the socket's group"


# ------------------------------------------------- the components accept what the pods pass

# Variables a pod sets that are not settings of the component: read by the NVIDIA container
# runtime, or only used to build the runner's arguments.
NOT_SETTINGS = {"NVIDIA_VISIBLE_DEVICES", "NVIDIA_DRIVER_CAPABILITIES", "DEFAULT_BATCH"}


def resolved_env(objs: list[Obj], container: Obj) -> dict[str, str]:
    """The environment the container would get on node-1 without the optional Secret."""
    out = {}
    for e in container.get("env", []):
        src = e.get("valueFrom", {})
        if "fieldRef" in src:
            assert src["fieldRef"]["fieldPath"] == "spec.nodeName"
            out[e["name"]] = "node-1"
        elif "secretKeyRef" not in src:
            value = env_value(objs, container, e["name"])
            assert value is not None, e
            out[e["name"]] = value
    return out


def component_settings(component: str) -> list[Any]:
    config = pytest.importorskip("base_monitoring_client.config")
    if component == "ffmpeg-runner":
        runner = pytest.importorskip("ffmpeg_runner.cli")
        return [*config.BASE_SETTINGS, *runner.RUNNER_SETTINGS]
    # A client class declares its own settings; the framework adds the base ones.
    module = pytest.importorskip(component.replace("-", "_") + ".client")
    (client_class,) = [
        obj
        for obj in vars(module).values()
        if isinstance(obj, type) and obj.__module__ == module.__name__ and hasattr(obj, "settings")
    ]
    return [*config.BASE_SETTINGS, *client_class.settings]


@pytest.mark.parametrize(
    ("overlay", "kind", "name"),
    [
        ("base", "DaemonSet", "cpu-rapl-client"),
        ("base", "DaemonSet", "docker-overhead-client"),
        ("overlays/nvidia", "DaemonSet", "gpu-nvml-client"),
        ("overlays/mimir", "CronJob", "ffmpeg-runner"),
        ("overlays/privileged", "DaemonSet", "cpu-rapl-client"),
    ],
)
def test_components_accept_the_pod_environment(overlay: str, kind: str, name: str) -> None:
    """The component's own settings parser takes every value the pod passes, and every variable
    the pod sets is one of its settings (a misspelt name would be ignored silently)."""
    config = pytest.importorskip("base_monitoring_client.config")
    objs = rendered(overlay)
    obj = find(objs, kind, name)
    spec = obj["spec"]["jobTemplate"]["spec"] if kind == "CronJob" else obj["spec"]
    (c,) = spec["template"]["spec"]["containers"]
    settings = component_settings(name)
    env = resolved_env(objs, c)
    unknown = set(env) - {s.env for s in settings} - NOT_SETTINGS
    assert unknown == set()
    base, values = config.load_config(settings, env=env)  # raises ConfigError with every problem
    assert base.instance == "node-1"
    assert base.health_port == int(env["HEALTH_PORT"])
    assert str(values["spool_dir"]) == env["SPOOL_DIR"]


def test_advisor_accepts_the_report_arguments() -> None:
    """The CronJob's script passes flags `advisor report` has, and reads ADVISOR_* variables
    the advisor reads."""
    cli = pytest.importorskip("advisor.cli")
    objs = rendered("overlays/mimir")
    (c,) = find(objs, "CronJob", "advisor-report")["spec"]["jobTemplate"]["spec"]["template"][
        "spec"
    ]["containers"]
    env = resolved_env(objs, c)
    script = c["args"][0]
    for fmt in ("json", "html"):
        assert f"--format {fmt}" in script
        out = f"/var/lib/wattpush/reports/r.{fmt}"
        argv = ["report", "--since", env["REPORT_SINCE"], "--allow-estimated"]
        args = cli.build_parser().parse_args([*argv, "--format", fmt, "--output", out])
        assert args.format == fmt
    # Every variable the pod sets for the advisor is one of its settings (the optional
    # Secret's included): a misspelt name would be ignored silently.
    read = {s.env for s in cli.command_settings("report")}
    for name in env:
        if name.startswith("ADVISOR_") and name != "ADVISOR_ARGS":
            assert name in read, f"the advisor does not read {name}"
    for e in c["env"]:
        if "secretKeyRef" in e.get("valueFrom", {}):
            assert e["name"] in read, f"the advisor does not read {e['name']}"
    api = cli.build_api(cli.build_parser().parse_args(["report", "--since", "2h"]), env)
    assert api.url.rstrip("/") == env["ADVISOR_PROMETHEUS_URL"].rstrip("/")


# ----------------------------------------------------------- the checks can fail (mutations)


def _rapl(objs: list[Obj]) -> Obj:
    return find(objs, "DaemonSet", "cpu-rapl-client")["spec"]["template"]["spec"]


def _set_privileged(objs: list[Obj]) -> None:
    _rapl(objs)["containers"][0]["securityContext"]["privileged"] = True


def _powercap_writable(objs: list[Obj]) -> None:
    for m in _rapl(objs)["containers"][0]["volumeMounts"]:
        if m["mountPath"] == "/host/powercap":
            m["readOnly"] = False


def _drop_env_key(objs: list[Obj]) -> None:
    del configmap(objs, "wattpush-env")["data"]["RAPL_GID"]


def _change_env_value(objs: list[Obj]) -> None:
    configmap(objs, "wattpush-env")["data"]["CPU_RAPL_SAMPLE_INTERVAL_S"] = "1"


def _run_as_root(objs: list[Obj]) -> None:
    _rapl(objs)["securityContext"]["runAsUser"] = 0


def _no_run_as_non_root(objs: list[Obj]) -> None:
    del _rapl(objs)["securityContext"]["runAsNonRoot"]


def _writable_root(objs: list[Obj]) -> None:
    del _rapl(objs)["containers"][0]["securityContext"]["readOnlyRootFilesystem"]


def _add_capability(objs: list[Obj]) -> None:
    _rapl(objs)["containers"][0]["securityContext"]["capabilities"]["add"] = ["DAC_READ_SEARCH"]


def _keep_capabilities(objs: list[Obj]) -> None:
    _rapl(objs)["containers"][0]["securityContext"]["capabilities"]["drop"] = ["NET_RAW"]


def _seccomp_unconfined(objs: list[Obj]) -> None:
    _rapl(objs)["securityContext"]["seccompProfile"] = {"type": "Unconfined"}


def _probe_wrong_port(objs: list[Obj]) -> None:
    _rapl(objs)["containers"][0]["livenessProbe"]["httpGet"]["port"] = 8080


def _no_readiness(objs: list[Obj]) -> None:
    del _rapl(objs)["containers"][0]["readinessProbe"]


def _instance_pod_name(objs: list[Obj]) -> None:
    env = env_of(_rapl(objs)["containers"][0])["INSTANCE"]
    env["valueFrom"]["fieldRef"]["fieldPath"] = "metadata.name"


def _no_memory_limit(objs: list[Obj]) -> None:
    del _rapl(objs)["containers"][0]["resources"]["limits"]["memory"]


def _apparmor_runtime_default(objs: list[Obj]) -> None:
    _rapl(objs)["containers"][0]["securityContext"]["appArmorProfile"] = {"type": "RuntimeDefault"}


def _no_rapl_group(objs: list[Obj]) -> None:
    _rapl(objs)["securityContext"]["supplementalGroups"] = []


def _no_spool_volume(objs: list[Obj]) -> None:
    c = _rapl(objs)["containers"][0]
    c["volumeMounts"] = [m for m in c["volumeMounts"] if m["mountPath"] != "/var/lib/wattpush"]


def _spool_is_the_mount(objs: list[Obj]) -> None:
    for m in _rapl(objs)["containers"][0]["volumeMounts"]:
        if m["mountPath"] == "/var/lib/wattpush":
            m["mountPath"] = "/var/lib/wattpush/spool"


def _key_typo(objs: list[Obj]) -> None:
    env = env_of(_rapl(objs)["containers"][0])["SAMPLE_INTERVAL_S"]
    env["valueFrom"]["configMapKeyRef"]["key"] = "CPU_RAPL_SAMPLE_INTERVAL"


def _secret_required(objs: list[Obj]) -> None:
    env = env_of(_rapl(objs)["containers"][0])["REMOTE_WRITE_BEARER_TOKEN"]
    del env["valueFrom"]["secretKeyRef"]["optional"]


def _committed_secret(objs: list[Obj]) -> None:
    objs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "wattpush-auth"}})


def _foreign_image(objs: list[Obj]) -> None:
    _rapl(objs)["containers"][0]["image"] = "example/cpu-rapl-client:dev"


def _host_pid(objs: list[Obj]) -> None:
    _rapl(objs)["hostPID"] = True


MUTATIONS: dict[str, tuple[Callable[[list[Obj]], None], Callable[[list[Obj]], list[str]]]] = {
    "privileged in base": (_set_privileged, lambda o: check_privileged(o, set())),
    "powercap writable (hostPath check)": (_powercap_writable, check_host_paths),
    "powercap writable (RAPL check)": (
        _powercap_writable,
        lambda o: check_rapl_access(o, env_file(), privileged=False),
    ),
    ".env key dropped": (_drop_env_key, lambda o: check_env_configmap(o, env_file())),
    ".env value changed": (_change_env_value, lambda o: check_env_configmap(o, env_file())),
    "uid 0": (_run_as_root, lambda o: check_non_root(o, set())),
    "runAsNonRoot unset": (_no_run_as_non_root, lambda o: check_non_root(o, set())),
    "writable root fs": (_writable_root, check_hardening),
    "capability added": (_add_capability, check_hardening),
    "drop not ALL": (_keep_capabilities, check_hardening),
    "seccomp unconfined": (_seccomp_unconfined, check_hardening),
    "host PID": (_host_pid, check_hardening),
    "probe on another port": (_probe_wrong_port, check_probes),
    "no readiness probe": (_no_readiness, check_probes),
    "INSTANCE from the pod name": (_instance_pod_name, check_instance),
    "no memory limit": (_no_memory_limit, check_resources),
    "AppArmor not the profile": (
        _apparmor_runtime_default,
        lambda o: check_rapl_access(o, env_file(), privileged=False),
    ),
    "no RAPL group": (_no_rapl_group, lambda o: check_rapl_access(o, env_file(), privileged=False)),
    "spool on the read-only root": (_no_spool_volume, check_writable_volumes),
    "spool dir is the emptyDir root (AppArmor owner rules)": (
        _spool_is_the_mount,
        lambda o: check_rapl_access(o, env_file(), privileged=False),
    ),
    "ConfigMap key typo": (_key_typo, check_config_refs),
    "Secret not optional": (_secret_required, check_config_refs),
    "Secret committed": (_committed_secret, check_config_refs),
    "image not from .env": (_foreign_image, lambda o: check_images(o, env_file())),
}


@pytest.mark.parametrize("case", sorted(MUTATIONS))
def test_checks_report_a_broken_property(case: str) -> None:
    mutate, check = MUTATIONS[case]
    objs = rendered("base")
    assert check(objs) == [], "the unmutated render must pass this check"
    mutate(objs)
    assert check(objs) != [], f"{case}: the check did not notice"
    # And the full set of checks catches it too.
    assert all_violations("base", objs) != []
