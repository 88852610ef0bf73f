"""Runs every query of the Grafana dashboard against a real Prometheus that scrapes a
live Dossier, and fails when one returns no data; checks that every alerting rule
evaluates without error there. Called by .ci/check-observability (`live`), after load.

Usage: live_check.py PROMETHEUS_URL DASHBOARD_JSON RULES_YAML

Grafana's variables are given the values a dashboard would have here: `$job` the CI's
scrape job, `$__rate_interval` one minute (CI scrapes every second; the load ran within
the minute). A panel whose series cannot exist in a healthy run is written to return 0
(`or vector(0)`, or `… or … * 0` for ratios), so "no data" always means a query that is
wrong or a series Dossier no longer exports.
"""

from __future__ import annotations

import json
import sys
import time
import urllib.parse
import urllib.request

VARIABLES = {"$job": "dossier", "${job}": "dossier", "$__rate_interval": "1m"}
# Bound of the wait for the rules' first evaluation (Prometheus evaluates every second
# here); the wait ends as soon as every group has been evaluated.
RULES_WAIT_S = 30


def api(base: str, path: str, **params: str) -> dict:
    url = f"{base}/api/v1/{path}"
    if params:
        url += "?" + urllib.parse.urlencode(params)
    with urllib.request.urlopen(url, timeout=10) as r:
        body = json.load(r)
    if body.get("status") != "success":
        raise RuntimeError(f"{path} {params}: {body}")
    return body["data"]


def queries(dashboard: dict):
    """(panel title, refId, expr) of every target of every panel, rows' panels too."""
    def walk(panels):
        for p in panels:
            yield from walk(p.get("panels", []))
            for t in p.get("targets", []):
                yield p["title"], t["refId"], t["expr"]
    yield from walk(dashboard["panels"])


def substitute(expr: str) -> str:
    # Longest first, so "${job}" is not half-replaced by "$job".
    for var in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(var, VARIABLES[var])
    assert "$" not in expr, f"a Grafana variable this check does not know: {expr}"
    return expr


def main() -> int:
    base, dashboard_path, rules_path = sys.argv[1:4]
    dashboard = json.load(open(dashboard_path))
    failures = []
    checked = 0
    panels = set()
    for title, ref, expr in queries(dashboard):
        checked += 1
        panels.add(title)
        try:
            result = api(base, "query", query=substitute(expr))["result"]
        except Exception as e:  # noqa: BLE001 (report every failing query, then fail)
            failures.append(f"{title} [{ref}]: {e}")
            continue
        if not result:
            failures.append(f"{title} [{ref}]: no data: {expr}")
    print(f"dashboard: {checked} queries of {len(panels)} panels run, {checked - len(failures)} returned data")

    # Every rule group evaluated at least once, and no rule in error (a bad vector
    # match or a missing label shows here, not in promtool's unit tests).
    alerts_in_file = sum(1 for line in open(rules_path) if line.strip().startswith("- alert:"))
    deadline = time.monotonic() + RULES_WAIT_S
    while True:
        groups = api(base, "rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        # A rule never evaluated reports the zero time, 0001-01-01T00:00:00Z.
        evaluated = all(not r.get("lastEvaluation", "0001").startswith("0001") for r in rules)
        if (rules and evaluated) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    bad = [f"{r['name']}: {r.get('health')} {r.get('lastError', '')}" for r in rules if r.get("health") != "ok"]
    if len(rules) != alerts_in_file:
        bad.append(f"Prometheus loaded {len(rules)} rules, the file has {alerts_in_file} alerts")
    firing = sorted({r["name"] for r in rules if r.get("state") == "firing"})
    print(f"rules: {len(rules)} loaded, {len(rules) - len(bad)} healthy; firing now: {', '.join(firing) or 'none'}")
    failures += [f"rule {b}" for b in bad]

    for f in failures:
        print(f"FAIL {f}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
