"""Offline checks of helm/dossier: lint, render, schema refusals, Kubernetes schema
validation, checkov. Run by .ci/check-chart (which also runs test_chart.py).
Exits non-zero on any failure and prints one line per step."""

from __future__ import annotations

import json
import pathlib
import re
import shutil
import subprocess
import sys
import time

import helm_python as helm
import kubernetes_validate
import yaml

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import chartlib  # noqa: E402

ROOT = chartlib.ROOT
HERE = pathlib.Path(__file__).resolve().parent
OUT = ROOT / "target" / "chart"

# Values sets linted, rendered and validated: (release name, values files, capabilities,
# scanned by checkov). The minimal set deploys by tag, which checkov rightly flags
# (CKV_K8S_43 digest, CKV_K8S_15 pull policy): it is scanned as minimal-digest instead.
SETS = [
    ("minimal", [".ci/chart/values/minimal.yaml"], [], False),
    ("minimal-digest", [".ci/chart/values/minimal-digest.yaml"], [], True),
    ("production", ["helm/dossier/values-production.yaml"], chartlib.ALL_CAPABILITIES, True),
    ("ha", ["helm/dossier/values-production.yaml", "helm/dossier/examples/ha.yaml"], chartlib.ALL_CAPABILITIES, True),
    ("full", [".ci/chart/values/full.yaml"], chartlib.ALL_CAPABILITIES, True),
]

# Kubernetes versions to validate against: the oldest the chart supports, and the
# newest kubernetes-validate ships.
K8S_VERSIONS = ["1.30.0", kubernetes_validate.utils.latest_version()]

# Custom resources kubernetes-validate has no schema for. Only these kinds may be
# skipped; any other unknown kind fails. test_chart.py checks their fields instead.
CRD_ALLOWLIST = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("kyverno.io/v1", "ClusterPolicy"),
}

failures: list[str] = []
summary: list[str] = []


def step(name: str, ok: bool, detail: str) -> None:
    summary.append(f"{'ok  ' if ok else 'FAIL'} {name}: {detail}")
    if not ok:
        failures.append(name)


def lint_and_render() -> dict[str, chartlib.Rendered]:
    rendered = {}
    for release, files, caps, scan in SETS:
        values = chartlib.load_values(*files)
        # helm lint cannot be given capabilities; the signature policy fails on purpose
        # without kyverno.io/v1, so lint with it off (it is rendered below with it on).
        lint_values = json.loads(json.dumps(values))
        lint_values.setdefault("admission", {}).setdefault("kyverno", {})["enabled"] = False
        report = helm.lint(str(chartlib.CHART), lint_values, strict=True,
                           namespace=chartlib.NAMESPACE, kube_version=chartlib.KUBE_VERSION)
        problems = [m for m in report.get("messages", []) if m.get("severity", 0) >= 2] + report.get("errors", [])
        for p in problems:
            print(f"lint {release}: {p}", file=sys.stderr)
        step(f"lint {release}", not problems, f"{len(problems)} warnings/errors")
        try:
            r = chartlib.render(values, release=release, api_versions=caps)
        except helm.HelmError as e:
            step(f"render {release}", False, str(e))
            continue
        rendered[release] = r
        d = OUT / ("manifests" if scan else "unscanned")
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{release}.yaml").write_text(r.yaml())
        step(f"render {release}", True, f"{len(r.docs)} objects")
    return rendered


def bad_values() -> None:
    files = sorted((HERE / "bad").glob("*.yaml"))
    bad = []
    for f in files:
        text = f.read_text()
        m = re.search(r"^# expect: (.+)$", text, re.M)
        if not m:
            bad.append(f"{f.name}: no '# expect:' line")
            continue
        expect = m.group(1).strip()
        caps = re.search(r"^# api-versions: (.+)$", text, re.M)
        values = yaml.safe_load(text) or {}
        try:
            chartlib.render(values, release="bad", api_versions=caps.group(1).split() if caps else [])
        except helm.HelmError as e:
            if expect not in str(e):
                bad.append(f"{f.name}: refused, but the message lacks {expect!r}: {e}")
            continue
        bad.append(f"{f.name}: was accepted")
    for b in bad:
        print(f"bad values: {b}", file=sys.stderr)
    step("bad values refused", not bad and len(files) > 0, f"{len(files) - len(bad)}/{len(files)} refused with the expected reason")


def kube_validate(rendered: dict[str, chartlib.Rendered]) -> None:
    checked = skipped = 0
    errors = []
    for release, r in rendered.items():
        for doc in r.docs:
            ident = f"{release}: {doc['kind']}/{doc['metadata']['name']}"
            for version in K8S_VERSIONS:
                try:
                    kubernetes_validate.validate(doc, version, strict=True)
                    checked += 1
                except kubernetes_validate.SchemaNotFoundError:
                    if (doc["apiVersion"], doc["kind"]) in CRD_ALLOWLIST:
                        skipped += 1
                    else:
                        errors.append(f"{ident}: no schema in Kubernetes {version} and not in the CRD allowlist")
                except kubernetes_validate.ValidationError as e:
                    errors.append(f"{ident} (Kubernetes {version}): {e.message} at {'/'.join(map(str, e.path))}")
    for e in errors:
        print(f"kubernetes-validate: {e}", file=sys.stderr)
    step("kubernetes-validate --strict", not errors,
         f"{checked} validations against {' and '.join(K8S_VERSIONS)}, {skipped} allowlisted CRD objects skipped "
         f"({', '.join(sorted(k for _, k in CRD_ALLOWLIST))}), {len(errors)} errors")


def checkov() -> None:
    exe = pathlib.Path(sys.executable).parent / "checkov"
    proc = subprocess.run(
        [str(exe), "--directory", str(OUT / "manifests"), "--framework", "kubernetes",
         "--output", "json", "--compact", "--skip-download", "--no-fail-on-crash"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "HOME": str(OUT), "LOG_LEVEL": "ERROR",
                                            "BC_SKIP_MAPPING": "TRUE", "CHECKOV_RUN_SCA_PACKAGE_SCAN_V2": "false"})
    try:
        reports = json.loads(proc.stdout)
    except json.JSONDecodeError:
        step("checkov", False, f"no JSON report (exit {proc.returncode}): {proc.stderr[-2000:]}")
        return
    reports = reports if isinstance(reports, list) else [reports]
    passed = failed = skipped = 0
    skips = {}
    for rep in reports:
        s = rep.get("summary", {})
        passed += s.get("passed", 0)
        failed += s.get("failed", 0)
        skipped += s.get("skipped", 0)
        for c in rep.get("results", {}).get("failed_checks", []):
            print(f"checkov FAILED {c['check_id']} {c['check_name']}: {c['resource']} ({c['file_path']})", file=sys.stderr)
        for c in rep.get("results", {}).get("skipped_checks", []):
            reason = (c.get("check_result") or {}).get("suppress_comment", "")
            skips.setdefault(c["check_id"], (reason, set()))[1].add(c["resource"].split(".")[0])
    (OUT / "checkov-summary.txt").write_text(
        f"passed {passed}, failed {failed}, skipped {skipped}\n"
        + "".join(f"{k} ({', '.join(sorted(v[1]))}): {v[0]}\n" for k, v in sorted(skips.items())))
    step("checkov", failed == 0 and passed > 0, f"passed {passed}, failed {failed}, skipped {skipped}")
    for k, (reason, kinds) in sorted(skips.items()):
        summary.append(f"       skip {k} on {', '.join(sorted(kinds))}: {reason}")


def main() -> int:
    start = time.monotonic()
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    rendered = lint_and_render()
    bad_values()
    kube_validate(rendered)
    checkov()
    print("\n".join(summary))
    print(f"chart checks: {len(summary) - sum(1 for s in summary if s.startswith('       '))} steps, "
          f"{len(failures)} failed, {time.monotonic() - start:.0f}s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
