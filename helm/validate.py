"""Validates the chart without a cluster and without the helm binary: Helm's own library (via
helm-python-sdk) lints and renders it, kubernetes-validate checks every manifest against the
Kubernetes schemas, and the rendered objects are checked for what the chart promises.

    python3 helm/validate.py            # exits non-zero on the first problem
"""

import json
import pathlib
import subprocess
import sys
import tempfile

import helm_python as helm
import yaml

KUBE_VERSION = "1.30.0"
CHART = pathlib.Path(__file__).parent / "praxis"
COMPONENTS = ("directory", "identity", "authz")


def fail(message):
    print(f"FAIL: {message}")
    sys.exit(1)


def values_file(name):
    return yaml.safe_load((CHART / "ci" / name).read_text())


def lint(values, label):
    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBE_VERSION}", namespace="praxis")
    problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] + report.get("errors", [])
    if problems:
        fail(f"{label}: helm lint --strict: {problems}")
    print(f"{label}: helm lint --strict passed")


def render(values, label):
    chart = helm.Chart.load(str(CHART))
    manifests = chart.render(values, name="praxis", namespace="praxis", is_install=True)
    objects = []
    for path, text in sorted(manifests.items()):
        if not path.endswith((".yaml", ".yml")):
            continue
        objects.extend(doc for doc in yaml.safe_load_all(text) if doc)
    print(f"{label}: rendered {len(objects)} objects")
    return objects


def kube_validate(objects, label):
    with tempfile.TemporaryDirectory() as directory:
        files = []
        for index, obj in enumerate(objects):
            path = pathlib.Path(directory) / f"{index:03}-{obj['kind']}-{obj['metadata']['name']}.yaml"
            path.write_text(yaml.safe_dump(obj))
            files.append(str(path))
        result = subprocess.run(
            [sys.executable, "-m", "kubernetes_validate", "--strict", "-k", KUBE_VERSION, "--quiet", *files],
            capture_output=True,
            text=True,
        )
        if result.returncode != 0:
            fail(f"{label}: kubernetes-validate:\n{result.stdout}{result.stderr}")
    print(f"{label}: kubernetes-validate --strict -k {KUBE_VERSION} passed for {len(objects)} objects")


def by_kind(objects, kind):
    return {obj["metadata"]["name"]: obj for obj in objects if obj["kind"] == kind}


def check_service_monitors(objects, label, expected):
    """kubernetes-validate has no schema for the Prometheus Operator's CRD, so check it here."""
    monitors = by_kind(objects, "ServiceMonitor")
    if not expected:
        if monitors:
            fail(f"{label}: ServiceMonitors rendered though not requested")
        return
    services = by_kind(objects, "Service")
    for component in COMPONENTS:
        name = f"praxis-{component}"
        monitor = monitors.get(name) or fail(f"{label}: no ServiceMonitor {name}")
        if monitor["apiVersion"] != "monitoring.coreos.com/v1":
            fail(f"{label}: {name} ServiceMonitor apiVersion {monitor['apiVersion']}")
        endpoint = monitor["spec"]["endpoints"][0]
        ports = {port["name"] for port in services[name]["spec"]["ports"]}
        if endpoint["port"] not in ports or endpoint["path"] != "/metrics":
            fail(f"{label}: {name} ServiceMonitor scrapes {endpoint}, the Service has {ports}")
        selector = monitor["spec"]["selector"]["matchLabels"]
        if any(services[name]["metadata"]["labels"].get(k) != v for k, v in selector.items()):
            fail(f"{label}: {name} ServiceMonitor does not select its Service")
    print(f"{label}: ServiceMonitors scrape each Service's metrics port")


def check_promises(objects, label, expect_ingress):
    deployments = by_kind(objects, "Deployment")
    jobs = by_kind(objects, "Job")
    for component in COMPONENTS:
        name = f"praxis-{component}"
        deployment = deployments.get(name) or fail(f"{label}: no Deployment {name}")
        spec = deployment["spec"]
        pod = spec["template"]["spec"]
        container = pod["containers"][0]
        if spec["strategy"]["rollingUpdate"]["maxUnavailable"] != 0:
            fail(f"{label}: {name} may drop below its replicas during a rollout")
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if "grpc" not in container.get(probe, {}):
                fail(f"{label}: {name} has no gRPC {probe}")
        if container["livenessProbe"]["grpc"]["service"] != "liveness":
            fail(f"{label}: {name}'s liveness must not follow its dependencies")
        if container["readinessProbe"]["grpc"]["service"] != "":
            fail(f"{label}: {name}'s readiness must follow its dependencies")
        if "sleep" not in container["lifecycle"]["preStop"]:
            fail(f"{label}: {name} has no preStop drain")
        pod_security = pod["securityContext"]
        if not pod_security.get("runAsNonRoot") or pod_security.get("runAsUser", 0) == 0:
            fail(f"{label}: {name} may run as root")
        if pod_security.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            fail(f"{label}: {name} lacks seccomp RuntimeDefault")
        security = container["securityContext"]
        if not security.get("readOnlyRootFilesystem") or security.get("allowPrivilegeEscalation") is not False:
            fail(f"{label}: {name} container security context is too loose")
        if security.get("capabilities", {}).get("drop") != ["ALL"]:
            fail(f"{label}: {name} keeps capabilities")
        if pod.get("terminationGracePeriodSeconds", 0) <= container["lifecycle"]["preStop"]["sleep"]["seconds"]:
            fail(f"{label}: {name}'s grace period leaves no time to drain")
        for kind in ("Service", "PodDisruptionBudget", "NetworkPolicy", "ConfigMap"):
            if name not in by_kind(objects, kind):
                fail(f"{label}: no {kind} {name}")
        if component != "identity":
            config_text = "".join(by_kind(objects, "ConfigMap")[name]["data"].values())
            if "/api-keys/verify" not in config_text:
                fail(f"{label}: {name} has no api_key_url: it would refuse every API key")
        job = jobs.get(f"{name}-migrate") or fail(f"{label}: no migration Job for {component}")
        hooks = job["metadata"]["annotations"]["helm.sh/hook"]
        if "pre-install" not in hooks or "pre-upgrade" not in hooks:
            fail(f"{label}: {name}-migrate is not a pre-install/pre-upgrade hook")
        if job["spec"]["template"]["spec"]["containers"][0]["args"] != ["migrate"]:
            fail(f"{label}: {name}-migrate does not run the migrate command")
    if not by_kind(objects, "HorizontalPodAutoscaler"):
        fail(f"{label}: no HorizontalPodAutoscaler")
    directory = deployments["praxis-directory"]["spec"]["template"]["spec"]["containers"][0]
    scim_port = next((p["containerPort"] for p in directory["ports"] if p["name"] == "scim"), None)
    scim_env = {e["name"]: e.get("value") for e in directory["env"]}.get("PRAXIS_SCIM__LISTEN", "")
    if scim_port is None or not scim_env.endswith(f":{scim_port}"):
        fail(f"{label}: directory does not serve SCIM on its scim port ({scim_env!r}, {scim_port})")
    ingresses = by_kind(objects, "Ingress")
    public = {e["name"]: e.get("value") for e in directory["env"]}.get("PRAXIS_SCIM__PUBLIC_URL")
    if ingresses and not (public or "").startswith("https://"):
        fail(f"{label}: behind the ingress, SCIM locations must be its https URL, not {public!r}")
    for ingress in ingresses.values():
        backends = {path["path"]: path["backend"]["service"] for rule in ingress["spec"]["rules"] for path in rule["http"]["paths"]}
        scim = backends.get("/scim/v2/") or fail(f"{label}: the ingress does not route /scim/v2/")
        if scim["name"] != "praxis-directory" or scim["port"]["name"] != "scim":
            fail(f"{label}: /scim/v2/ goes to {scim}, not directory's scim port")
    egress_ports = {port["port"] for rule in by_kind(objects, "NetworkPolicy")["praxis-directory"]["spec"]["egress"] for port in rule.get("ports", [])}
    if not {389, 636} <= egress_ports:
        fail(f"{label}: directory's NetworkPolicy keeps it from LDAP servers (egress ports {sorted(egress_ports)})")
    if expect_ingress and not ingresses:
        fail(f"{label}: ingress requested but not rendered")
    if not expect_ingress and ingresses:
        fail(f"{label}: ingress rendered though not requested")
    print(f"{label}: probes, securityContext, PDB, HPA, NetworkPolicy, hook Jobs present")


def check_identity_env(objects, label, expect_sms_and_passkeys):
    container = by_kind(objects, "Deployment")["praxis-identity"]["spec"]["template"]["spec"]["containers"][0]
    env = {item["name"]: item for item in container.get("env", [])}
    if not expect_sms_and_passkeys:
        if "PRAXIS_SMS__WEBHOOK_URL" in env or "PRAXIS_LOGIN__WEBAUTHN__RP_ID" in env:
            fail(f"{label}: SMS or passkey settings rendered though not given")
        return
    for name in ("PRAXIS_SMS__WEBHOOK_URL", "PRAXIS_SMS__BEARER_TOKEN"):
        if "secretKeyRef" not in env.get(name, {}).get("valueFrom", {}):
            fail(f"{label}: identity's {name} does not come from the SMS Secret")
    origins = json.loads(env.get("PRAXIS_LOGIN__WEBAUTHN__ORIGINS", {}).get("value", "null") or "null")
    if not isinstance(origins, list) or not origins:
        fail(f"{label}: passkey origins are not a JSON list identity can read: {origins!r}")
    if env.get("PRAXIS_LOGIN__WEBAUTHN__ALLOW_ANY_PORT", {}).get("value") != "false":
        fail(f"{label}: a production relying party must not accept any port")
    public_url = env.get("PRAXIS_SSO__PUBLIC_URL", {}).get("value", "")
    if not public_url.startswith("https://"):
        fail(f"{label}: SSO callbacks must be built on identity's public HTTPS URL, not {public_url!r}")
    returns = json.loads(env.get("PRAXIS_SSO__RETURN_ORIGINS", {}).get("value", "null") or "null")
    if not isinstance(returns, list) or not returns:
        fail(f"{label}: SSO return origins are not a JSON list identity can read: {returns!r}")
    print(f"{label}: identity gets the SMS gateway from its Secret, the passkey relying party, "
          f"and SSO's public URL {public_url} with its return origins")


def check_directory_audit(objects, label, expect_archive):
    pod = by_kind(objects, "Deployment")["praxis-directory"]["spec"]["template"]["spec"]
    env = {item["name"]: item for item in pod["containers"][0].get("env", [])}
    key = env.get("PRAXIS_AUDIT__CHECKPOINT_KEY", {}).get("valueFrom", {}).get("secretKeyRef", {})
    if key.get("key") != "audit-checkpoint-key":
        fail(f"{label}: directory has no audit checkpoint key from a Secret (it cannot write one to a read-only disk)")
    sealing = env.get("PRAXIS_ENCRYPTION__KEY", {}).get("valueFrom", {}).get("secretKeyRef", {})
    if sealing.get("key") != "directory-key":
        fail(f"{label}: directory has no key from a Secret to seal LDAP bind passwords with")
    claims = [v["persistentVolumeClaim"]["claimName"] for v in pod["volumes"] if "persistentVolumeClaim" in v]
    if expect_archive != bool(claims) or expect_archive != ("PRAXIS_AUDIT__ARCHIVE_DIR" in env):
        fail(f"{label}: audit archive volume {claims} does not match the values")
    print(f"{label}: directory signs audit checkpoints with a Secret's key; archive volume {claims or 'none'}")
    authz = by_kind(objects, "Deployment")["praxis-authz"]["spec"]["template"]["spec"]["containers"][0]
    sent = {e["name"]: e for e in authz.get("env", [])}.get("PRAXIS_AUDIT_CREDENTIAL", {})
    known = env.get("PRAXIS_AUTH__SERVICE_CREDENTIALS__AUTHZ", {})
    ref = lambda item: item.get("valueFrom", {}).get("secretKeyRef", {})
    if not ref(sent) or ref(sent) != ref(known):
        fail(f"{label}: authz's audit credential and the one directory accepts are not the same Secret key")
    print(f"{label}: authz's audit relay and directory share one service credential from a Secret")


def check_refused(values, label):
    chart = helm.Chart.load(str(CHART))
    try:
        chart.validate_schema(values)
    except Exception as error:  # helm_python raises its own HelmValuesError
        print(f"{label}: refused by values.schema.json as it must be:\n{error}")
    else:
        fail(f"{label}: the schema accepted values it must refuse")
    try:
        chart.render(values, name="praxis", namespace="praxis", is_install=True)
    except Exception:
        print(f"{label}: render refused too")
    else:
        fail(f"{label}: rendering accepted values the schema refuses")


def main():
    for label, values, optional_parts_on in (
        ("default values", None, False),
        ("production values", values_file("production-values.yaml"), True),
    ):
        lint(values, label)
        objects = render(values, label)
        kube_validate(objects, label)
        check_promises(objects, label, expect_ingress=optional_parts_on)
        check_service_monitors(objects, label, expected=optional_parts_on)
        check_identity_env(objects, label, expect_sms_and_passkeys=optional_parts_on)
        check_directory_audit(objects, label, expect_archive=optional_parts_on)
    check_refused(values_file("invalid-values.yaml"), "invalid values")
    print("chart OK")


if __name__ == "__main__":
    main()
