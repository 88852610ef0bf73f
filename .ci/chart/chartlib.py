"""Rendering the chart offline with helm-python-sdk (Helm's library, no helm binary).

helm_python.Chart.render() takes no capabilities, but the library's render options
accept `api_versions` and `kube_version` (the Go options struct behind helm_render),
so the chart's .Capabilities guards can be exercised both ways.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import helm_python as helm
import yaml
from helm_python import _native

ROOT = pathlib.Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "dossier"
NAMESPACE = "underwriting"
KUBE_VERSION = "v1.30.0"
# What a cluster with the Prometheus Operator and Kyverno serves.
MONITORING = "monitoring.coreos.com/v1"
KYVERNO = "kyverno.io/v1"
ALL_CAPABILITIES = [MONITORING, KYVERNO]

_chart: helm.Chart | None = None


def chart() -> helm.Chart:
    global _chart
    if _chart is None:
        _chart = helm.Chart.load(str(CHART))
    return _chart


def load_values(*files: str | pathlib.Path) -> dict[str, Any]:
    """Values files merged left to right, as `-f a -f b` does (maps merge, lists replace)."""
    merged: dict[str, Any] = {}
    for f in files:
        path = pathlib.Path(f)
        if not path.is_absolute():
            path = ROOT / path
        _merge(merged, yaml.safe_load(path.read_text()) or {})
    return merged


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for k, v in new.items():
        if isinstance(v, dict) and isinstance(into.get(k), dict):
            _merge(into[k], v)
        else:
            into[k] = v


class Rendered:
    def __init__(self, files: dict[str, str]):
        self.files = files
        self.notes = next((v for k, v in files.items() if k.endswith("NOTES.txt")), "")
        self.docs: list[dict[str, Any]] = []
        for name, text in sorted(files.items()):
            if name.endswith("NOTES.txt") or not text.strip():
                continue
            for doc in yaml.safe_load_all(text):
                if doc:
                    doc.setdefault("metadata", {}).setdefault("annotations", None)
                    self.docs.append(doc)
        self.text = "\n".join(v for k, v in sorted(files.items()) if not k.endswith("NOTES.txt"))

    def yaml(self) -> str:
        return "".join("---\n" + yaml.safe_dump(d, sort_keys=False) for d in self.docs)

    def kinds(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def one(self, kind: str, suffix: str = "") -> dict[str, Any]:
        """The resource of this kind named RELEASE-dossier + suffix."""
        name = (self.release if "dossier" in self.release else f"{self.release}-dossier") + suffix
        found = [d for d in self.kinds(kind) if d["metadata"]["name"] == name]
        assert len(found) == 1, f"expected one {kind} {name}, found {[d['metadata']['name'] for d in self.kinds(kind)]}"
        return found[0]

    release = "dossier"


def render(
    values: dict[str, Any] | None = None,
    *,
    release: str = "dossier",
    api_versions: list[str] | None = None,
    is_upgrade: bool = False,
) -> Rendered:
    """Render like `helm template` / an install; raises helm_python.HelmError on failure."""
    opts = {
        "name": release,
        "namespace": NAMESPACE,
        "is_install": not is_upgrade,
        "is_upgrade": is_upgrade,
        "kube_version": KUBE_VERSION,
        "api_versions": api_versions or [],
    }
    raw = _native.call_string("helm_render", chart()._raw(), json.dumps(values or {}), json.dumps(opts))
    r = Rendered(json.loads(raw))
    r.release = release
    return r


def pod_specs(r: Rendered) -> list[tuple[str, dict[str, Any]]]:
    """(resource name, pod spec) of every pod-bearing resource."""
    out = []
    for d in r.docs:
        kind, spec = d["kind"], d.get("spec", {})
        if kind in ("Deployment", "Job"):
            out.append((f"{kind}/{d['metadata']['name']}", spec["template"]["spec"]))
        elif kind == "CronJob":
            out.append((f"{kind}/{d['metadata']['name']}", spec["jobTemplate"]["spec"]["template"]["spec"]))
        elif kind == "Pod":
            out.append((f"{kind}/{d['metadata']['name']}", spec))
    return out
