"""Properties of the rendered chart that docs/operations.md asks of a deployment.

Run by .ci/check-chart (pytest). Each test renders the chart offline with
chartlib.render(); nothing needs a cluster."""

from __future__ import annotations

import copy
import json
import re
import sys
import pathlib

import helm_python as helm
import pytest
import tomllib

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from chartlib import ALL_CAPABILITIES, KYVERNO, MONITORING, NAMESPACE, ROOT, load_values, pod_specs, render  # noqa: E402

MINIMAL = {"existingSecret": "dossier"}
DIGEST = "sha256:" + "ab" * 32
SECRET_ENV = {"DATABASE_URL", "DOSSIER_ENCRYPTION_KEYS", "DOSSIER_LOOKUP_KEY", "DOSSIER_RAILS_TOKEN"}


def with_(base: dict, **changes) -> dict:
    """base with dotted keys set: with_(MINIMAL, **{"server.workers": 2})."""
    out = copy.deepcopy(base)
    for dotted, value in changes.items():
        node = out
        *path, last = dotted.split(".")
        for p in path:
            node = node.setdefault(p, {})
        node[last] = value
    return out


def seconds(d: str) -> float:
    m = re.fullmatch(r"(\d+)(ms|s|m|h)", d)
    assert m, d
    return int(m.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[m.group(2)]


def server(r):
    return r.one("Deployment")["spec"]["template"]["spec"]["containers"][0]


def env(container) -> dict:
    return {e["name"]: e for e in container.get("env", [])}


@pytest.fixture(scope="module")
def minimal():
    return render(MINIMAL)


@pytest.fixture(scope="module")
def production():
    return render(load_values("helm/dossier/values-production.yaml"), api_versions=ALL_CAPABILITIES)


@pytest.fixture(scope="module")
def full():
    return render(load_values(".ci/chart/values/full.yaml"), api_versions=ALL_CAPABILITIES)


# --- probes -----------------------------------------------------------------------


def test_readiness_is_native_grpc_health_on_the_grpc_port(minimal):
    c = server(minimal)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert set(ports) == {"grpc", "metrics"}
    assert c["readinessProbe"]["grpc"]["port"] == ports["grpc"] == 50051
    assert "httpGet" not in c["readinessProbe"] and "exec" not in c["readinessProbe"]


def test_liveness_is_tcp_so_a_database_outage_restarts_nothing(minimal):
    live = server(minimal)["livenessProbe"]
    assert set(live) - {"periodSeconds", "timeoutSeconds", "failureThreshold"} == {"tcpSocket"}
    assert live["tcpSocket"]["port"] == "grpc"


def test_startup_probe_guards_liveness(minimal):
    start = server(minimal)["startupProbe"]
    assert "tcpSocket" in start
    assert start["periodSeconds"] * start["failureThreshold"] >= 60


def test_tls_moves_probes_to_a_plaintext_health_port(production):
    c = server(production)
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports["health"] == 50052 != ports["grpc"]
    assert c["readinessProbe"]["grpc"]["port"] == 50052
    assert c["livenessProbe"]["tcpSocket"]["port"] == "health"
    assert c["startupProbe"]["tcpSocket"]["port"] == "health"
    assert env(c)["DOSSIER_HEALTH_ADDR"]["value"] == "0.0.0.0:50052"


def test_production_tls_reads_csi_driver_spiffe_files_and_the_access_policy(production):
    spec = production.one("Deployment")["spec"]["template"]["spec"]
    c = server(production)
    e = env(c)
    assert e["DOSSIER_TLS_CERT_FILE"]["value"] == "/var/run/dossier/tls/tls.crt"
    assert e["DOSSIER_TLS_KEY_FILE"]["value"] == "/var/run/dossier/tls/tls.key"
    assert e["DOSSIER_TLS_CLIENT_CA_FILE"]["value"] == "/var/run/dossier/tls/ca.crt"
    assert e["DOSSIER_ACCESS_POLICY_FILE"]["value"] == "/etc/dossier/access.toml"
    # serve refuses TLS files together with --allow-unauthenticated.
    assert "DOSSIER_ALLOW_UNAUTHENTICATED" not in e
    volumes = {v["name"]: v for v in spec["volumes"]}
    # The key is readable by the fs-group only: it must be the group the server runs as.
    assert volumes["tls-certificates"]["csi"] == {
        "driver": "spiffe.csi.cert-manager.io", "readOnly": True,
        "volumeAttributes": {"spiffe.csi.cert-manager.io/fs-group": str(spec["securityContext"]["runAsGroup"])}}
    mounts = {m["name"]: m for m in c["volumeMounts"]}
    assert mounts["tls-certificates"] == {"name": "tls-certificates", "mountPath": "/var/run/dossier/tls", "readOnly": True}
    assert mounts["config"]["mountPath"] == "/etc/dossier"
    assert "access.toml" in production.one("ConfigMap")["data"]
    # csi-driver-spiffe needs neither the Workload API socket nor a sidecar.
    assert "spiffe-workload-api" not in volumes and [x["name"] for x in spec["containers"]] == ["dossier"]


def test_production_access_policy_names_only_served_methods(production):
    """The binary refuses, at start, a policy naming a method it does not serve."""
    served = set()
    for proto in (ROOT / "proto" / "dossier" / "v1").glob("*.proto"):
        text = proto.read_text()
        package = re.search(r"^package\s+([\w.]+);", text, re.M).group(1)
        for service, body in re.findall(r"^service\s+(\w+)\s*\{(.*?)^\}", text, re.M | re.S):
            served |= {f"{package}.{service}/{m}" for m in re.findall(r"^\s*rpc\s+(\w+)", body, re.M)}
    served |= {"grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
               "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
               "grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch"}
    assert "dossier.v1.UnderwritingService/SubmitApplication" in served
    services = {m.rsplit("/", 1)[0] for m in served}
    policy = tomllib.loads(production.one("ConfigMap")["data"]["access.toml"])
    names = [c["name"] for c in policy["caller"]]
    assert names == ["origination", "underwriting-console", "reporting", "operators"]
    for caller in policy["caller"]:
        assert set(caller) <= {"name", "ids", "methods", "rails_application_ids", "reads"}, caller["name"]
        assert caller.get("reads", "own") in ("own", "all"), caller["name"]
        for i in caller["ids"]:
            assert re.fullmatch(r"spiffe://lender\.example/ns/[a-z0-9-]+/sa/[a-z0-9-]+", i), i
        for m in caller["methods"]:
            assert m in served or (m.endswith("/*") and m[:-2] in services), (caller["name"], m)
    # Origination reads only what it submitted; the console, reporting and operators all.
    assert {c["name"]: c.get("reads", "own") for c in policy["caller"]} == {
        "origination": "own", "underwriting-console": "all", "reporting": "all", "operators": "all"}
    # Only origination names Rails applications (Dossier fetches them with its own token).
    assert [c["name"] for c in policy["caller"] if c.get("rails_application_ids")] == ["origination"]
    grants = {c["name"]: set(c["methods"]) for c in policy["caller"]}
    # Only origination submits, only the console reviews; nobody but the operators reflects.
    assert [n for n, g in grants.items() if any("SubmitApplication" in m for m in g)] == ["origination"]
    assert [n for n, g in grants.items() if any("ReviewApplication" in m for m in g)] == ["underwriting-console"]
    assert [n for n, g in grants.items() if any("reflection" in m for m in g)] == ["operators"]
    assert not any("*" == m or m.startswith("dossier.v1.") and m.endswith("/*") for g in grants.values() for m in g)


def test_tls_through_a_spiffe_helper_sidecar(full):
    spec = full.one("Deployment")["spec"]["template"]["spec"]
    dossier, helper = spec["containers"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["spiffe-workload-api"]["csi"] == {"driver": "csi.spiffe.io", "readOnly": True}
    assert volumes["tls-certificates"] == {"name": "tls-certificates", "emptyDir": {"medium": "Memory", "sizeLimit": "1Mi"}}
    assert volumes["spiffe-helper-config"]["configMap"]["name"] == "dossier-spiffe-helper"
    # The socket goes to the sidecar only: the binary reads files.
    assert "spiffe-workload-api" not in {m["name"] for m in dossier["volumeMounts"]}
    assert "SPIFFE_ENDPOINT_SOCKET" not in env(dossier)
    mounts = {m["name"]: m for m in helper["volumeMounts"]}
    assert mounts["spiffe-workload-api"] == {"name": "spiffe-workload-api", "mountPath": "/spiffe-workload-api", "readOnly": True}
    assert "readOnly" not in mounts["tls-certificates"]
    assert env(helper)["SPIFFE_ENDPOINT_SOCKET"]["value"] == "unix:///spiffe-workload-api/spire-agent.sock"
    e = env(dossier)
    assert e["DOSSIER_TLS_RELOAD_INTERVAL"]["value"] == "30s"
    assert e["DOSSIER_REFLECTION"]["value"] == "false"


def test_sidecar_keeps_its_own_socket_mount_and_endpoint():
    values = load_values(".ci/chart/values/full.yaml")
    helper = values["tls"]["sidecars"][0]
    helper["volumeMounts"].append({"name": "spiffe-workload-api", "mountPath": "/run/spire"})
    helper["env"] = [{"name": "SPIFFE_ENDPOINT_SOCKET", "value": "unix:///run/spire/agent.sock"}]
    r = render(values, api_versions=ALL_CAPABILITIES)
    got = r.one("Deployment")["spec"]["template"]["spec"]["containers"][1]
    assert [m for m in got["volumeMounts"] if m["name"] == "spiffe-workload-api"] == [
        {"name": "spiffe-workload-api", "mountPath": "/run/spire"}]
    assert got["env"] == [{"name": "SPIFFE_ENDPOINT_SOCKET", "value": "unix:///run/spire/agent.sock"}]


def test_tls_is_off_by_default_and_plaintext_is_said_out_loud(minimal):
    e = env(server(minimal))
    assert not any(n.startswith("DOSSIER_TLS") or n in ("DOSSIER_HEALTH_ADDR", "SPIFFE_ENDPOINT_SOCKET",
                                                           "DOSSIER_ACCESS_POLICY_FILE") for n in e)
    # serve refuses plaintext unless told that every caller may call every method.
    assert e["DOSSIER_ALLOW_UNAUTHENTICATED"]["value"] == "true"
    assert "CLIENT AUTHENTICATION IS OFF" in minimal.notes


def test_tls_values_are_checked_together():
    policy = '[[caller]]\nname = "a"\nids = ["spiffe://td/ns/a/sa/a"]\nmethods = ["*"]\n'
    tls_on = with_(MINIMAL, **{"tls.enabled": True, "tls.certificates.enabled": True})
    with pytest.raises(helm.HelmError, match="tls.enabled needs config.accessPolicy"):
        render(tls_on)
    with pytest.raises(helm.HelmError, match="tls.enabled needs config.accessPolicy"):
        render(with_(tls_on, **{"config.accessPolicy": "  \n"}))
    with pytest.raises(helm.HelmError, match="tls.enabled needs tls.certificates.enabled"):
        render(with_(tls_on, **{"tls.certificates.enabled": False, "config.accessPolicy": policy}))
    with pytest.raises(helm.HelmError, match="config.accessPolicy is set but tls.enabled is false"):
        render(with_(MINIMAL, **{"config.accessPolicy": policy}))
    with pytest.raises(helm.HelmError, match="tls.healthPort must differ from server.adminPort"):
        render(with_(tls_on, **{"config.accessPolicy": policy, "tls.healthPort": 9090}))
    with pytest.raises(helm.HelmError, match="which the chart defines itself"):
        render(with_(tls_on, **{"config.accessPolicy": policy, "tls.sidecarVolumes": [{"name": "tmp", "emptyDir": {}}]}))
    # A runAsGroup change follows into the default volume's fs-group.
    r = render(with_(tls_on, **{"config.accessPolicy": policy, "runAsGroup": 70000}))
    vol = next(v for v in r.one("Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == "tls-certificates")
    assert vol["csi"]["volumeAttributes"] == {"spiffe.csi.cert-manager.io/fs-group": "70000"}


# --- reviewers ----------------------------------------------------------------------

REVIEWER_ENV = ("DOSSIER_REVIEWER_JWKS_FILE", "DOSSIER_REVIEWER_ISSUER", "DOSSIER_REVIEWER_AUDIENCE")
EC_KEY = {"kty": "EC", "crv": "P-256", "x": "Qpaihq0NYVHk-Ca6eNCe9VMAQnq2ZdBC5oLubd9ei4Q",
          "y": "RZo0qpR5ayJqfNnhxurvP0kbXYrJAr8ORTv4drqV87k"}
REVIEWERS = {"reviewers.issuer": "https://login.lender.example", "reviewers.audience": "dossier",
             "reviewers.jwks": json.dumps({"keys": [EC_KEY]})}
NO_REVIEWS = "ReviewApplication refuses every review"


def b64url_int(s: str) -> int:
    import base64
    return int.from_bytes(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)), "big")


def on_p256(x: int, y: int) -> bool:
    p = 2**256 - 2**224 + 2**192 + 2**96 - 1
    b = 0x5AC635D8AA3A93E7B3EBBD55769886BC651D06B0CC53B0F63BCE3C3E27D2604B
    return 0 <= x < p and 0 <= y < p and (y * y - (x**3 - 3 * x + b)) % p == 0


def test_production_reviewers_read_the_jwks_from_the_config_map(production):
    c = server(production)
    e = env(c)
    assert e["DOSSIER_REVIEWER_JWKS_FILE"]["value"] == "/etc/dossier/reviewer-jwks.json"
    assert e["DOSSIER_REVIEWER_ISSUER"]["value"] == "https://login.lender.example"
    assert e["DOSSIER_REVIEWER_AUDIENCE"]["value"] == "dossier"
    assert {m["name"]: m for m in c["volumeMounts"]}["config"]["mountPath"] == "/etc/dossier"
    # The placeholder is a real P-256 public key (the server would refuse anything else).
    jwks = json.loads(production.one("ConfigMap")["data"]["reviewer-jwks.json"])
    assert set(jwks) == {"keys"} and len(jwks["keys"]) == 1
    (key,) = jwks["keys"]
    assert key["kty"] == "EC" and key["crv"] == "P-256" and key.get("alg", "ES256") == "ES256"
    assert not set(key) & {"d", "k"}
    assert on_p256(b64url_int(key["x"]), b64url_int(key["y"]))
    assert NO_REVIEWS not in production.notes
    assert "issuer https://login.lender.example, audience dossier, signed by one of the\n  1 key(s)" in production.notes
    assert "WARNING: no caller" not in production.notes


def test_reviews_are_off_by_default_and_notes_say_so(minimal):
    assert not set(REVIEWER_ENV) & set(env(server(minimal)))
    assert minimal.kinds("ConfigMap") == []
    assert "REVIEWS ARE NOT CONFIGURED" in minimal.notes and NO_REVIEWS in minimal.notes


def test_reviewers_alone_bring_the_config_map_and_its_mount():
    r = render(with_(MINIMAL, **REVIEWERS))
    assert r.one("ConfigMap")["data"] == {"reviewer-jwks.json": REVIEWERS["reviewers.jwks"] + "\n"}
    spec = r.one("Deployment")["spec"]["template"]["spec"]
    assert {"name": "config", "configMap": {"name": "dossier"}} in spec["volumes"]
    assert {"name": "config", "mountPath": "/etc/dossier", "readOnly": True} in spec["containers"][0]["volumeMounts"]
    assert set(REVIEWER_ENV) <= set(env(spec["containers"][0]))
    # Without TLS the token travels in plaintext, and NOTES says so beside the rest.
    assert "ID tokens (ReviewApplication) cross the network in plaintext too" in r.notes
    assert NO_REVIEWS not in r.notes


def test_a_key_rotation_rolls_the_pods(production):
    values = load_values("helm/dossier/values-production.yaml")
    jwks = json.loads(values["reviewers"]["jwks"])
    jwks["keys"].append({**EC_KEY, "kid": "next"})
    values["reviewers"]["jwks"] = json.dumps(jwks)
    rotated = render(values, api_versions=ALL_CAPABILITIES)
    assert checksum(rotated) != checksum(production)
    assert "2 key(s) in reviewers.jwks" in rotated.notes


@pytest.mark.parametrize("given", [("issuer",), ("audience",), ("jwks",), ("issuer", "audience"),
                                   ("issuer", "jwks"), ("audience", "jwks")])
def test_reviewers_are_all_or_none(given):
    values = with_(MINIMAL, **{k: v for k, v in REVIEWERS.items() if k.split(".")[1] in given})
    missing = ", ".join(f"reviewers.{k}" for k in ("issuer", "audience", "jwks") if k not in given)
    with pytest.raises(helm.HelmError, match=re.escape(f"or none of them; missing: {missing}.")):
        render(values)


def test_blank_reviewer_values_count_as_missing():
    with pytest.raises(helm.HelmError, match=re.escape("missing: reviewers.jwks.")):
        render(with_(MINIMAL, **{**REVIEWERS, "reviewers.jwks": "  \n"}))


@pytest.mark.parametrize("jwks,message", [
    ("not json", "reviewers.jwks is not a JSON object"),
    (json.dumps([EC_KEY]), "reviewers.jwks is not a JSON object"),
    (json.dumps(EC_KEY), "reviewers.jwks has no `keys` array"),
    ('{"keys": {}}', "reviewers.jwks has no `keys` array"),
    ('{"keys": []}', "reviewers.jwks holds no key"),
    ('{"keys": ["a"]}', "reviewers.jwks key 0 is not a JSON object"),
    (json.dumps({"keys": [EC_KEY, {"kty": "oct", "k": "c2VjcmV0"}]}), "reviewers.jwks key 1 is a symmetric (oct) key"),
    (json.dumps({"keys": [{**EC_KEY, "kid": "k1", "d": "AAAA"}]}), 'reviewers.jwks key 0 (kid "k1") holds private key material ("d")'),
    (json.dumps({"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB", "p": "AQ"}]}), 'holds private key material ("p")'),
    (json.dumps({"keys": [{"kty": "ES"}]}), 'reviewers.jwks key 0 has kty "ES"'),
    (json.dumps({"keys": [EC_KEY, {"kty": "RSA", "use": "enc", "alg": "RSA-OAEP", "n": "AQAB", "e": "AQAB"}]}),
     'reviewers.jwks key 1 has alg "RSA-OAEP", which is not a signature algorithm'),
])
def test_jwks_is_checked_before_the_server_sees_it(jwks, message):
    with pytest.raises(helm.HelmError, match=re.escape(message)):
        render(with_(MINIMAL, **{**REVIEWERS, "reviewers.jwks": jwks}))


def test_jwks_accepts_rsa_ec_and_okp_public_keys():
    keys = [{"kty": "RSA", "use": "sig", "kid": "r", "n": "AQAB", "e": "AQAB", "x5c": ["MIIB"]},
            {**EC_KEY, "alg": "ES256"}, {"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "x": "AAAA"}]
    r = render(with_(MINIMAL, **{**REVIEWERS, "reviewers.jwks": json.dumps({"keys": keys})}))
    assert json.loads(r.one("ConfigMap")["data"]["reviewer-jwks.json"]) == {"keys": keys}


@pytest.mark.parametrize("name", REVIEWER_ENV)
def test_extra_env_may_not_set_the_reviewer_settings(name):
    with pytest.raises(helm.HelmError, match=f"extraEnv sets {name}, which the chart sets from reviewers"):
        render(with_(MINIMAL, extraEnv=[{"name": name, "value": "x"}]))


def test_reviewer_issuer_and_audience_have_no_whitespace():
    with pytest.raises(helm.HelmError, match="at '/reviewers/issuer'"):
        render(with_(MINIMAL, **{**REVIEWERS, "reviewers.issuer": "https://login.lender.example\n"}))
    with pytest.raises(helm.HelmError, match="at '/reviewers/audience'"):
        render(with_(MINIMAL, **{**REVIEWERS, "reviewers.audience": " dossier"}))


@pytest.mark.parametrize("grant,warned", [
    (None, True),
    ("# \"dossier.v1.UnderwritingService/ReviewApplication\",", True),
    ('"dossier.v1.UnderwritingService/ReviewApplication",', False),
    ('"dossier.v1.UnderwritingService/*",', False),
])
def test_notes_warn_when_no_caller_may_review(grant, warned):
    values = load_values("helm/dossier/values-production.yaml")
    review = '  "dossier.v1.UnderwritingService/ReviewApplication",\n'
    assert review in values["config"]["accessPolicy"]
    values["config"]["accessPolicy"] = values["config"]["accessPolicy"].replace(review, f"  {grant}\n" if grant else "")
    r = render(values, api_versions=ALL_CAPABILITIES)
    assert ("WARNING: no caller in config.accessPolicy is granted dossier.v1.UnderwritingService/ReviewApplication"
            in r.notes) is warned


# --- security context -------------------------------------------------------------


@pytest.mark.parametrize("which", ["minimal", "production", "full"])
def test_every_pod_and_container_is_locked_down(which, request):
    r = request.getfixturevalue(which)
    specs = pod_specs(r)
    assert len(specs) >= (4 if which == "full" else 3)
    for name, spec in specs:
        assert spec["automountServiceAccountToken"] is False, name
        psc = spec["securityContext"]
        assert psc["runAsNonRoot"] is True and isinstance(psc["runAsUser"], int) and psc["runAsUser"] > 0, name
        assert psc["seccompProfile"]["type"] == "RuntimeDefault", name
        for c in spec.get("initContainers", []) + spec["containers"]:
            sc = c["securityContext"]
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["privileged"] is False, (name, c["name"])
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["capabilities"]["drop"] == ["ALL"] and "add" not in sc["capabilities"], (name, c["name"])
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] >= 10000, (name, c["name"])
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", (name, c["name"])
            assert c["resources"]["limits"]["memory"] and c["resources"]["requests"]["cpu"], (name, c["name"])


def test_service_account_token_is_not_mounted(minimal):
    sa = minimal.one("ServiceAccount")
    assert sa["automountServiceAccountToken"] is False


# --- rollout, disruption, shutdown -------------------------------------------------


def test_rolling_update_never_lowers_ready_pods(minimal):
    strategy = minimal.one("Deployment")["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert strategy["rollingUpdate"]["maxSurge"] >= 1


def test_pdb_takes_one_pod_at_a_time(minimal):
    pdb = minimal.one("PodDisruptionBudget")
    assert pdb["apiVersion"] == "policy/v1" and pdb["spec"]["maxUnavailable"] == 1
    deploy = minimal.one("Deployment")
    assert pdb["spec"]["selector"] == deploy["spec"]["selector"]


@pytest.mark.parametrize("delay,grace", [("5s", "35s"), ("0s", "20s"), ("10s", "45s"), ("500ms", "1m")])
def test_termination_grace_covers_delay_grace_and_audit_flush(delay, grace):
    r = render(with_(MINIMAL, **{"server.shutdownDelay": delay, "server.shutdownGrace": grace}))
    spec = r.one("Deployment")["spec"]["template"]["spec"]
    e = env(spec["containers"][0])
    assert e["DOSSIER_SHUTDOWN_DELAY"]["value"] == delay
    assert e["DOSSIER_SHUTDOWN_GRACE"]["value"] == grace
    assert spec["terminationGracePeriodSeconds"] > seconds(delay) + seconds(grace) + 5


def test_shutdown_delay_is_set_so_endpoints_drain(minimal):
    assert seconds(env(server(minimal))["DOSSIER_SHUTDOWN_DELAY"]["value"]) >= 5


def test_explicit_termination_grace_is_kept_when_long_enough():
    r = render(with_(MINIMAL, terminationGracePeriodSeconds=90))
    assert r.one("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 90


def test_retention_defaults_reach_the_server(minimal):
    e = env(server(minimal))
    assert e["DOSSIER_RETAIN_UPSTREAM_CALLS"]["value"] == "400d"
    assert e["DOSSIER_RETAIN_FINISHED_JOBS"]["value"] == "7d"


@pytest.mark.parametrize("calls,jobs", [("90d", "1h"), ("forever", "forever"), ("730d", "36h")])
def test_retention_values_the_server_accepts_render(calls, jobs):
    r = render(with_(MINIMAL, **{"server.retainUpstreamCalls": calls, "server.retainFinishedJobs": jobs}))
    e = env(server(r))
    assert e["DOSSIER_RETAIN_UPSTREAM_CALLS"]["value"] == calls
    assert e["DOSSIER_RETAIN_FINISHED_JOBS"]["value"] == jobs


def test_topology_spread_over_zones_and_nodes(production):
    constraints = production.one("Deployment")["spec"]["template"]["spec"]["topologySpreadConstraints"]
    keys = {c["topologyKey"] for c in constraints}
    assert keys == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
    assert all(c["matchLabelKeys"] == ["pod-template-hash"] for c in constraints)


def test_production_tolerates_and_prefers_spot_nodes(production):
    spec = production.one("Deployment")["spec"]["template"]["spec"]
    assert any("spot" in (t.get("value", "") + t.get("key", "")) for t in spec["tolerations"])
    preferred = spec["affinity"]["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert preferred and "requiredDuringSchedulingIgnoredDuringExecution" not in spec["affinity"]["nodeAffinity"]


def test_hpa_owns_the_replica_count_when_enabled(production, minimal):
    hpa = production.one("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "dossier"}
    assert "replicas" not in production.one("Deployment")["spec"]
    assert minimal.kinds("HorizontalPodAutoscaler") == []
    assert minimal.one("Deployment")["spec"]["replicas"] == 3


# --- services -------------------------------------------------------------------------


def test_clusterip_and_headless_services(minimal):
    svc = minimal.one("Service")
    assert svc["spec"]["type"] == "ClusterIP" and "clusterIP" not in svc["spec"]
    grpc = next(p for p in svc["spec"]["ports"] if p["name"] == "grpc")
    assert grpc["appProtocol"] == "kubernetes.io/h2c" and grpc["targetPort"] == "grpc"
    headless = minimal.one("Service", "-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is False
    assert [p["name"] for p in headless["spec"]["ports"]] == ["grpc"]
    assert headless["spec"]["selector"] == svc["spec"]["selector"]
    assert [p["name"] for p in svc["spec"]["ports"]] == ["grpc", "metrics"]


def test_services_under_tls(production):
    ports = {p["name"]: p for p in production.one("Service")["spec"]["ports"]}
    # TLS is not h2c; the health port, which helm test uses, is.
    assert "appProtocol" not in ports["grpc"]
    assert ports["health"] == {"name": "health", "port": 50052, "targetPort": "health", "protocol": "TCP",
                               "appProtocol": "kubernetes.io/h2c"}
    headless = production.one("Service", "-headless")["spec"]["ports"]
    assert [p["name"] for p in headless] == ["grpc"] and "appProtocol" not in headless[0]


# --- secrets ----------------------------------------------------------------------------


def test_rendering_refuses_without_existing_secret():
    with pytest.raises(helm.HelmError, match="existingSecret is required"):
        render({})


@pytest.mark.parametrize("which", ["minimal", "production", "full"])
def test_no_secret_object_and_secrets_only_by_reference(which, request):
    r = request.getfixturevalue(which)
    assert r.kinds("Secret") == []
    vendor = set(load_values(".ci/chart/values/full.yaml")["vendorCredentials"]) if which == "full" else set()
    for name, spec in pod_specs(r):
        for c in spec.get("initContainers", []) + spec["containers"]:
            for e in c.get("env", []):
                if e["name"] in SECRET_ENV | vendor:
                    assert "value" not in e, (name, e["name"])
                    assert set(e["valueFrom"]) == {"secretKeyRef"}, (name, e["name"])
            assert "envFrom" not in c, name
    # No credential-looking text anywhere in what is rendered.
    assert not re.search(r"postgres(ql)?://[^\s\"']*:[^\s\"'@]+@", r.text)
    assert "PRIVATE KEY" not in r.text
    assert not re.search(r"\bk\d+:[A-Za-z0-9+/]{43}=", r.text)


def test_vendor_credentials_come_from_the_secret(full):
    e = env(server(full))
    ref = e["DOSSIER_IDENTITY_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "dossier-secrets", "key": "DOSSIER_IDENTITY_TOKEN"}


# --- config and checksums ------------------------------------------------------------


def checksum(r):
    return r.one("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def test_config_change_rolls_the_pods_and_nothing_else_does():
    base = with_(MINIMAL, **{"config.upstreams": "[identity]\nrate_per_second = 19\n"})
    a = render(base)
    b = render(with_(base, **{"config.upstreams": "[identity]\nrate_per_second = 18\n"}))
    c = render(with_(base, replicaCount=5))
    d = render(with_(base, **{"config.policy": 'version = "2"\n'}))
    assert checksum(a) != checksum(b)
    assert checksum(a) == checksum(c)
    assert checksum(a) != checksum(d)
    e = env(server(a))
    assert e["DOSSIER_UPSTREAMS_FILE"]["value"] == "/etc/dossier/upstreams.toml"
    assert "DOSSIER_POLICY_FILE" not in e
    assert a.one("ConfigMap")["data"] == {"upstreams.toml": "[identity]\nrate_per_second = 19\n"}


def test_the_notices_file_is_mounted_and_rolls_the_pods():
    notices = '[lender]\nname = "L"\naddress = "A"\nphone = "P"\n'
    base = render(MINIMAL)
    r = render(with_(MINIMAL, **{"config.notices": notices}))
    assert r.one("ConfigMap")["data"] == {"notices.toml": notices}
    assert env(server(r))["DOSSIER_NOTICES_FILE"]["value"] == "/etc/dossier/notices.toml"
    assert "DOSSIER_NOTICES_FILE" not in env(server(base))
    assert checksum(r) != checksum(render(with_(MINIMAL, **{"config.notices": notices + "website = \"w\"\n"})))


def test_access_policy_change_rolls_the_pods(production):
    values = load_values("helm/dossier/values-production.yaml")
    values["config"]["accessPolicy"] += '\n[[caller]]\nname = "new"\nids = ["spiffe://td/ns/n/sa/n"]\nmethods = ["*"]\n'
    assert checksum(render(values, api_versions=ALL_CAPABILITIES)) != checksum(production)


def test_secret_revision_rolls_the_pods():
    a = render(MINIMAL)
    b = render(with_(MINIMAL, existingSecretRevision="2"))
    ann = lambda r: r.one("Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/secret"]  # noqa: E731
    assert ann(a) != ann(b)


# --- image ----------------------------------------------------------------------------------


def images(r):
    return {c["image"] for _, spec in pod_specs(r) for c in spec.get("initContainers", []) + spec["containers"]
            if c["name"] != "fetch"}


def test_image_by_digest_everywhere_when_given():
    r = render(with_(MINIMAL, **{"image.digest": DIGEST, "image.tag": "ignored"}))
    assert images(r) == {f"registry.example/dossier@{DIGEST}"}


def test_image_by_tag_defaults_to_app_version(minimal):
    assert images(minimal) == {"registry.example/dossier:0.1.0"}


# --- migration hook --------------------------------------------------------------------------


def test_migration_job_is_a_pre_install_pre_upgrade_hook(minimal):
    job = minimal.one("Job", "-migrate")
    ann = job["metadata"]["annotations"]
    assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert ann["helm.sh/hook-delete-policy"] == "before-hook-creation,hook-succeeded"
    spec = job["spec"]["template"]["spec"]
    c = spec["containers"][0]
    assert c["args"] == ["migrate"]
    assert c["image"] == server(minimal)["image"]
    assert c["env"][0]["name"] == "DATABASE_URL" and "secretKeyRef" in c["env"][0]["valueFrom"]
    # A pre-install hook runs before the chart's own objects exist: it may use none.
    assert "serviceAccountName" not in spec
    assert all("configMap" not in v for v in spec.get("volumes", []))
    assert spec["restartPolicy"] == "Never" and job["spec"]["backoffLimit"] >= 1


def test_migration_network_policy_is_created_before_the_job(minimal):
    np = minimal.one("NetworkPolicy", "-migrate")
    job = minimal.one("Job", "-migrate")
    assert np["metadata"]["annotations"]["helm.sh/hook"] == job["metadata"]["annotations"]["helm.sh/hook"]
    assert int(np["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(job["metadata"]["annotations"]["helm.sh/hook-weight"])
    assert np["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "migrate"
    assert job["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/component"] == "migrate"
    ports = {p["port"] for rule in np["spec"]["egress"] for p in rule["ports"]}
    assert ports == {53, 5432} and np["spec"]["ingress"] == []


def test_only_hooks_are_hooks(minimal):
    hooks = {d["kind"] + "/" + d["metadata"]["name"] for d in minimal.docs
             if "helm.sh/hook" in (d["metadata"]["annotations"] or {})}
    assert hooks == {"Job/dossier-migrate", "NetworkPolicy/dossier-migrate",
                     "Pod/dossier-test-health"}


def test_migration_uses_its_own_secret_and_lock_timeout(full):
    c = full.one("Job", "-migrate")["spec"]["template"]["spec"]["containers"][0]
    e = env(c)
    assert e["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "dossier-migrator"
    assert e["PGOPTIONS"]["value"] == "-c lock_timeout=10s"


# --- network policy ------------------------------------------------------------------------


def test_network_policy_rules(production):
    np = production.one("NetworkPolicy")
    spec = np["spec"]
    assert spec["policyTypes"] == ["Ingress", "Egress"]
    assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "server"
    grpc_rule, metrics_rule, health_rule = spec["ingress"]
    assert grpc_rule["ports"] == [{"port": "grpc", "protocol": "TCP"}]
    assert grpc_rule["from"] == [{"podSelector": {"matchLabels": {"dossier.example/caller": "true"}}},
                                 {"namespaceSelector": {"matchLabels": {"dossier.example/caller": "true"}}}]
    assert metrics_rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert metrics_rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    # TLS: the plaintext health port admits the helm test pod alone.
    assert health_rule["ports"] == [{"port": "health", "protocol": "TCP"}]
    assert health_rule["from"] == [{"podSelector": {"matchLabels": {
        "app.kubernetes.io/name": "dossier", "app.kubernetes.io/instance": "dossier", "app.kubernetes.io/component": "test"}}}]
    for rule in spec["ingress"] + spec["egress"]:
        assert rule.get("from", rule.get("to")), f"a rule without peers allows everyone: {rule}"
        assert rule["ports"], f"a rule without ports allows every port: {rule}"
    dns, pg, upstreams = spec["egress"][:3]
    assert {(p["port"], p["protocol"]) for p in dns["ports"]} == {(53, "UDP"), (53, "TCP")}
    assert dns["to"][0]["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "kube-system"}
    assert pg["to"] == [{"ipBlock": {"cidr": "10.20.0.0/24"}}] and pg["ports"] == [{"port": 5432, "protocol": "TCP"}]
    assert upstreams["ports"] == [{"port": 443, "protocol": "TCP"}]
    assert "169.254.169.254/32" in upstreams["to"][0]["ipBlock"]["except"]


def test_network_policy_can_be_turned_off():
    r = render(with_(MINIMAL, **{"networkPolicy.enabled": False}))
    assert r.kinds("NetworkPolicy") == []


def test_test_pod_is_admitted_as_a_caller(minimal):
    pod = minimal.one("Pod", "-test-health")
    assert pod["metadata"]["labels"]["dossier.example/caller"] == "true"
    assert len(minimal.one("NetworkPolicy")["spec"]["ingress"]) == 2


def test_under_tls_the_test_pod_reaches_only_the_health_port(production):
    pod = production.one("Pod", "-test-health")
    assert "dossier.example/caller" not in pod["metadata"]["labels"]
    assert pod["spec"]["containers"][0]["args"][:3] == [
        "health", "--addr", f"http://dossier.{NAMESPACE}.svc.cluster.local:50052"]
    to_server = production.one("NetworkPolicy", "-test")["spec"]["egress"][1]
    assert to_server["ports"] == [{"port": 50052, "protocol": "TCP"}]


# --- helm test ------------------------------------------------------------------------------


def test_helm_test_pod_runs_dossier_health_against_the_service(minimal):
    pod = minimal.one("Pod", "-test-health")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    c = pod["spec"]["containers"][0]
    assert c["image"] == server(minimal)["image"]
    assert c["args"] == ["health", "--addr", f"http://dossier.{NAMESPACE}.svc.cluster.local:50051",
                         "--service", "dossier.v1.UnderwritingService"]
    assert pod["spec"]["restartPolicy"] == "Never"


# --- monitoring and admission: capability guards ------------------------------------------


def test_service_monitor_only_with_the_capability():
    values = with_(MINIMAL, **{"metrics.serviceMonitor.enabled": True, "metrics.prometheusRule.enabled": True})
    without = render(values)
    assert without.kinds("ServiceMonitor") == [] and without.kinds("PrometheusRule") == []
    with_cap = render(values, api_versions=[MONITORING])
    sm = with_cap.one("ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == "metrics"
    assert sm["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "server"
    rules = with_cap.one("PrometheusRule")["spec"]["groups"][0]["rules"]
    assert {r["alert"] for r in rules} >= {"DossierNoPodServing", "DossierUnavailable"}


RULES_FILE = ROOT / "helm/dossier/files/prometheus/alerts.yaml"
DASHBOARD_FILE = ROOT / "helm/dossier/files/grafana/dossier.json"


def rules_of(rendered) -> list[dict]:
    return [r for g in rendered.one("PrometheusRule")["spec"]["groups"] for r in g["rules"]]


def test_prometheus_rule_is_the_rules_file_scoped_to_the_release():
    # With the default thresholds, the chart's rules are the plain file's, selector apart.
    import yaml
    rendered = render(with_(MINIMAL, **{"metrics.prometheusRule.enabled": True}), api_versions=[MONITORING])
    fullname = rendered.one("PrometheusRule")["metadata"]["name"]
    sel = f'namespace="{NAMESPACE}", service="{fullname}"'
    plain = yaml.safe_load(RULES_FILE.read_text().replace('job="dossier"', sel))
    assert rendered.one("PrometheusRule")["spec"] == plain
    rules = rules_of(rendered)
    assert {r["alert"] for r in rules} >= {"DossierNoPodServing", "DossierUnavailable", "DossierDeadLetters",
                                           "DossierDeliveryLag", "DossierUpstreamErrorBudgetBurnFast"}
    for r in rules:
        assert 'job="dossier"' not in r["expr"] and sel in r["expr"], r["alert"]
        assert {"summary", "description", "runbook_url"} <= r["annotations"].keys(), r["alert"]
        assert r["annotations"]["runbook_url"].startswith("docs/metrics.md#"), r["alert"]


def test_prometheus_rule_thresholds_and_runbook_links_come_from_the_values(full):
    rules = {r["alert"]: r for r in rules_of(full)}
    assert "> 1800 # threshold: deliveryLagSeconds" in rules["DossierDeliveryLag"]["expr"]
    assert "> 0.05 # threshold: unavailableRatio" in rules["DossierUnavailable"]["expr"]
    assert rules["DossierDeadLetters"]["annotations"]["runbook_url"] == \
        "https://git.example/dossier/blob/main/docs/metrics.md#dossierdeadletters"
    budget = with_(MINIMAL, **{"metrics.prometheusRule.enabled": True, "metrics.prometheusRule.upstreamErrorBudget": 0.001})
    fast = {r["alert"]: r for r in rules_of(render(budget, api_versions=[MONITORING]))}["DossierUpstreamErrorBudgetBurnFast"]
    assert fast["expr"].count("14.4 * 0.001 # threshold: upstreamErrorBudget") == 2


def test_every_threshold_of_the_rules_file_is_a_value():
    import yaml
    names = set(re.findall(r"# threshold: (\w+)$", RULES_FILE.read_text(), re.M))
    defaults = yaml.safe_load((ROOT / "helm/dossier/values.yaml").read_text())["metrics"]["prometheusRule"]
    template = (ROOT / "helm/dossier/templates/prometheusrule.yaml").read_text()
    for name in names:
        assert name in defaults, f"{name}: no value metrics.prometheusRule.{name}"
        assert f'"{name}"' in template, f"{name}: the template does not set it"


def test_grafana_dashboard_configmap_only_when_enabled(full, minimal):
    assert [d for d in minimal.kinds("ConfigMap") if d["metadata"]["name"].endswith("-dashboard")] == []
    cm = full.one("ConfigMap", "-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Underwriting"}
    assert json.loads(cm["data"]["dossier.json"]) == json.loads(DASHBOARD_FILE.read_text())


def test_service_monitor_off_by_default_even_with_the_capability():
    assert render(MINIMAL, api_versions=[MONITORING]).kinds("ServiceMonitor") == []


def test_kyverno_policy_verifies_signature_and_pins_digest(production):
    (pol,) = production.kinds("ClusterPolicy")
    assert pol["apiVersion"] == "kyverno.io/v1" and "namespace" not in pol["metadata"]
    rule = pol["spec"]["rules"][0]
    assert rule["match"]["any"][0]["resources"]["namespaces"] == [NAMESPACE]
    vi = rule["verifyImages"][0]
    assert vi["required"] is True and vi["verifyDigest"] is True and vi["mutateDigest"] is True
    assert vi["failureAction"] == "Enforce"
    assert vi["imageReferences"] == ["registry.example/dossier*"]
    key = vi["attestors"][0]["entries"][0]["keys"]["publicKeys"]
    assert key.startswith("-----BEGIN PUBLIC KEY-----") and key.rstrip().endswith("-----END PUBLIC KEY-----")


def test_kyverno_policy_absent_unless_enabled(minimal):
    assert render(MINIMAL, api_versions=[KYVERNO]).kinds("ClusterPolicy") == []


# --- sanctions CronJob ----------------------------------------------------------------------


def test_sanctions_cronjob(full, minimal):
    cj = full.one("CronJob", "-sanctions")
    assert cj["spec"]["concurrencyPolicy"] == "Forbid"
    spec = cj["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    load = spec["containers"][0]
    assert load["args"] == ["sanctions", "load", "/sanctions"]
    assert load["image"] == server(full)["image"]
    assert spec["initContainers"][0]["name"] == "fetch"
    assert full.one("NetworkPolicy", "-sanctions")
    assert minimal.kinds("CronJob") == []


# --- NOTES ------------------------------------------------------------------------------------


def test_notes_print_both_service_names(minimal):
    assert f"dns:///dossier-headless.{NAMESPACE}.svc.cluster.local:50051" in minimal.notes
    assert f"dossier.{NAMESPACE}.svc.cluster.local:50051" in minimal.notes


def test_notes_under_tls_name_the_callers_and_warn_of_nothing(production):
    assert "Callers in the access policy: origination, underwriting-console, reporting, operators." in production.notes
    assert "gRPC over mutual TLS" in production.notes
    assert "CLIENT AUTHENTICATION IS OFF" not in production.notes


def test_notes_compute_the_connection_budget(minimal, full):
    # 3 replicas + 1 surge, 20 pooled + 2 = 22 each; + 1 migration.
    assert "(3 + maxSurge 1) x 22 = 88" in minimal.notes and "= 89," in minimal.notes
    # autoscaling.maxReplicas 12: (12 + 1) x 22 = 286, + 1 migration + 2 sanctions = 289 > 200.
    assert "Fleet at autoscaling.maxReplicas: (12 + maxSurge 1) x 22 = 286" in full.notes
    assert "WARNING: 289 is above database.availableConnections = 200" in full.notes


def test_notes_warn_about_per_pod_vendor_quotas(minimal, full, production):
    assert "VENDOR QUOTAS ARE PER POD for: rails, property_records, valuation, identity, licensing, registry" in minimal.notes
    # identity has fleet_limit = true in full.yaml; property_records does not.
    line = next(l for l in full.notes.splitlines() if "VENDOR QUOTAS ARE PER POD" in l)
    assert "identity" not in line and "property_records" in line
    # production sets fleet_limit on every upstream except rails.
    line = next(l for l in production.notes.splitlines() if "VENDOR QUOTAS ARE PER POD" in l)
    assert line.strip().endswith("for: rails")
    assert "It fits in database.availableConnections = 277" in production.notes


# --- tracing ----------------------------------------------------------------------


def test_no_trace_export_unless_an_endpoint_is_given(minimal):
    assert not {n for n in env(server(minimal)) if n.startswith("OTEL_")}


def test_an_otlp_endpoint_exports_traces_named_after_the_pod():
    r = render(with_(MINIMAL, **{"tracing.otlpEndpoint": "http://otel-collector.observability:4317",
                                 "tracing.sampler": "parentbased_traceidratio",
                                 "tracing.samplerArg": "0.25"}))
    e = env(server(r))
    assert e["OTEL_EXPORTER_OTLP_ENDPOINT"]["value"] == "http://otel-collector.observability:4317"
    assert e["OTEL_TRACES_SAMPLER"]["value"] == "parentbased_traceidratio"
    assert e["OTEL_TRACES_SAMPLER_ARG"]["value"] == "0.25"
    assert e["K8S_POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    # $(K8S_POD_NAME) expands only if that variable comes first.
    names = [v["name"] for v in server(r)["env"]]
    assert names.index("K8S_POD_NAME") < names.index("OTEL_RESOURCE_ATTRIBUTES")
    assert "k8s.pod.name=$(K8S_POD_NAME)" in e["OTEL_RESOURCE_ATTRIBUTES"]["value"]


@pytest.mark.parametrize("changes", [
    {"tracing.otlpEndpoint": "otel-collector:4317"},
    {"tracing.sampler": "sometimes"},
    {"tracing.samplerArg": "1.5"},
])
def test_tracing_values_are_checked(changes):
    with pytest.raises(helm.HelmError, match="tracing"):
        render(with_(MINIMAL, **changes))
