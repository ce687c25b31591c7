"""Checks a rendered Lariba chart for what the JSON schemas cannot see: the security
settings every pod must keep, probes, and references between resources (selectors,
Services, ConfigMaps and Secrets the pods read, the migration hook's own copies).

Usage: check_manifests.py RENDERED.yaml [--existing-secret NAME] [--expect Kind,Kind...]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from typing import Any

import yaml

Manifest = dict[str, Any]

# What a pod's processes must listen on to be reached through its Services and probes.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104
WRITABLE_TMP = "/tmp"  # noqa: S108


def load(path: str) -> list[Manifest]:
    with open(path, encoding="utf-8") as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def is_hook(manifest: Manifest) -> bool:
    return "helm.sh/hook" in (manifest["metadata"].get("annotations") or {})


def matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


def workloads(manifests: list[Manifest]) -> Iterator[Manifest]:
    yield from (m for m in manifests if m["kind"] in {"Deployment", "Job"})


def check(
    manifests: list[Manifest], *, existing_secret: str | None, expect: list[str]
) -> list[str]:
    problems: list[str] = []
    by_kind: dict[str, list[Manifest]] = {}
    for manifest in manifests:
        by_kind.setdefault(manifest["kind"], []).append(manifest)

    def named(kind: str, name: str) -> Manifest | None:
        return next((m for m in by_kind.get(kind, []) if m["metadata"]["name"] == name), None)

    for kind in expect:
        if kind not in by_kind:
            problems.append(f"no {kind} rendered")

    for account in by_kind.get("ServiceAccount", []):
        if account.get("automountServiceAccountToken") is not False:
            problems.append(f"ServiceAccount {account['metadata']['name']} mounts its token")

    pod_labels: list[dict[str, str]] = []
    for workload in workloads(manifests):
        where = f"{workload['kind']} {workload['metadata']['name']}"
        template = workload["spec"]["template"]
        pod = template["spec"]
        labels = template["metadata"].get("labels", {})
        if workload["kind"] == "Deployment":
            pod_labels.append(labels)
            if not matches(workload["spec"]["selector"]["matchLabels"], labels):
                problems.append(f"{where}: selector does not match its pods")
        if pod.get("automountServiceAccountToken") is not False:
            problems.append(f"{where}: the pod mounts a service account token")
        context = pod.get("securityContext", {})
        if context.get("runAsNonRoot") is not True:
            problems.append(f"{where}: pod may run as root")
        if context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            problems.append(f"{where}: pod has no RuntimeDefault seccomp profile")
        account = pod.get("serviceAccountName", "default")
        hook_account = named("ServiceAccount", account)
        if workload["kind"] == "Job" and hook_account is not None and not is_hook(hook_account):
            problems.append(f"{where}: runs before its ServiceAccount {account} exists")
        for container in pod["containers"]:
            cwhere = f"{where} container {container['name']}"
            security = container.get("securityContext", {})
            if security.get("readOnlyRootFilesystem") is not True:
                problems.append(f"{cwhere}: root file system is writable")
            if security.get("allowPrivilegeEscalation") is not False:
                problems.append(f"{cwhere}: privilege escalation allowed")
            if "ALL" not in security.get("capabilities", {}).get("drop", []):
                problems.append(f"{cwhere}: capabilities not dropped")
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                for resource in ("cpu", "memory"):
                    if resource not in resources.get(part, {}):
                        problems.append(f"{cwhere}: no {resource} {part}")
            if WRITABLE_TMP not in {
                mount["mountPath"] for mount in container.get("volumeMounts", [])
            }:
                problems.append(f"{cwhere}: no writable /tmp")
            for source in container.get("envFrom", []):
                for kind, key in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
                    if key not in source:
                        continue
                    name = source[key]["name"]
                    if kind == "Secret" and name == existing_secret:
                        continue
                    target = named(kind, name)
                    if target is None:
                        problems.append(f"{cwhere}: reads {kind} {name}, which is not rendered")
                    elif workload["kind"] == "Job" and not is_hook(target):
                        # A pre-install hook runs before the release's own resources exist.
                        problems.append(f"{cwhere}: reads {kind} {name}, created after the hook")
            env = {item["name"]: item.get("value") for item in container.get("env", [])}
            if container["name"] == "api":
                probes = (container.get("livenessProbe"), container.get("readinessProbe"))
                paths = tuple((probe or {}).get("httpGet", {}).get("path") for probe in probes)
                if paths != ("/healthz", "/readyz"):
                    problems.append(f"{cwhere}: liveness/readiness probes are {paths}")
                if env.get("LARIBA_HOST") != ALL_INTERFACES:
                    problems.append(f"{cwhere}: API does not listen on the pod's address")
            if container["name"] == "worker" and env.get("LARIBA_WORKER_METRICS_PORT") != "0":
                if env.get("LARIBA_WORKER_METRICS_HOST") != ALL_INTERFACES:
                    problems.append(f"{cwhere}: metrics not reachable from outside the pod")
                port = (container.get("livenessProbe") or {}).get("httpGet", {}).get("port")
                if port != "metrics":
                    problems.append(f"{cwhere}: liveness probe not on the metrics port")
        if workload["kind"] == "Job":
            hooks = set(
                workload["metadata"].get("annotations", {}).get("helm.sh/hook", "").split(",")
            )
            if not {"pre-install", "pre-upgrade"} <= hooks:
                problems.append(f"{where}: not a pre-install,pre-upgrade hook")
            if "backoffLimit" not in workload["spec"]:
                problems.append(f"{where}: no backoffLimit")
            if pod["containers"][0].get("command", [])[-1:] != ["migrate"]:
                problems.append(f"{where}: does not run `lariba migrate`")

    services = by_kind.get("Service", [])
    for service in services:
        selector = service["spec"].get("selector", {})
        if not any(matches(selector, labels) for labels in pod_labels):
            problems.append(f"Service {service['metadata']['name']}: selects no pods")
    for budget in by_kind.get("PodDisruptionBudget", []):
        selector = budget["spec"]["selector"]["matchLabels"]
        if not any(matches(selector, labels) for labels in pod_labels):
            problems.append(f"PodDisruptionBudget {budget['metadata']['name']}: selects no pods")
    for scaler in by_kind.get("HorizontalPodAutoscaler", []):
        target = scaler["spec"]["scaleTargetRef"]
        deployment = named(target["kind"], target["name"])
        if deployment is None:
            problems.append(f"HPA {scaler['metadata']['name']}: no target {target['name']}")
        elif "replicas" in deployment["spec"]:
            problems.append(f"Deployment {target['name']}: sets replicas the HPA owns")
    for ingress in by_kind.get("Ingress", []):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                if backend["port"].get("name") == "use-annotation":
                    continue  # an ALB action named in the Ingress' annotations, not a Service
                backend_service = named("Service", backend["name"]) or {}
                ports = {p["name"] for p in backend_service.get("spec", {}).get("ports", [])}
                if backend["port"].get("name") not in ports:
                    problems.append(f"Ingress: no Service port {backend['name']}:{backend['port']}")
    for monitor in by_kind.get("ServiceMonitor", []):
        selector = monitor["spec"]["selector"]["matchLabels"]
        targets = [s for s in services if matches(selector, s["metadata"].get("labels", {}))]
        ports = {p.get("name") for s in targets for p in s["spec"]["ports"]}
        for endpoint in monitor["spec"]["endpoints"]:
            if endpoint["port"] not in ports:
                problems.append(
                    f"ServiceMonitor {monitor['metadata']['name']}: no port {endpoint['port']}"
                )
    return problems


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("rendered")
    parser.add_argument("--existing-secret")
    parser.add_argument("--expect", default="")
    args = parser.parse_args()
    manifests = load(args.rendered)
    expect = [kind for kind in args.expect.split(",") if kind]
    problems = check(manifests, existing_secret=args.existing_secret, expect=expect)
    for problem in problems:
        print(f"{args.rendered}: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
