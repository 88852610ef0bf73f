#!/usr/bin/env python3
"""Calls Dossier's UnderwritingService end to end.

1. Prints the server's health (grpc.health.v1).
2. EvaluateApplication with a fresh idempotency key and a 30 s deadline; prints the
   decision, status and every check.
3. GetReport for the same application id and checks that it matches.
4. ListReports with page_size 5.

Exit code 0 on success; 1 on any RPC error or mismatch; 2 on bad arguments, unreadable
input or missing generated stubs.

Setup (from the repository root):
    python3 -m pip install -r clients/python/requirements.txt
    clients/python/generate.sh
    python3 clients/python/example.py --addr 127.0.0.1:50051 --file examples/approve.json

The JSON file is the proto3 JSON mapping of dossier.v1.Application.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from google.protobuf import json_format

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # the generated dossier/v1 package lives beside this file

try:
    from dossier.v1 import application_pb2, report_pb2
    from dossier.v1 import underwriting_service_pb2 as uw_pb2
    from dossier.v1 import underwriting_service_pb2_grpc as uw_grpc
except ImportError as err:  # pragma: no cover - depends on the checkout
    print(f"error: generated stubs not found ({err}); run clients/python/generate.sh first",
          file=sys.stderr)
    sys.exit(2)

UNDERWRITING_SERVICE = "dossier.v1.UnderwritingService"

# Client-side policy every Dossier caller should have (see docs/clients.md):
# transparent retries of UNAVAILABLE, which is what a call sees when the server
# closes its connection (max connection age, rolling deploy) before the call started.
SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": UNDERWRITING_SERVICE}, {"service": "dossier.v1.DataService"}],
            "retryPolicy": {
                "maxAttempts": 4,
                "initialBackoff": "0.2s",
                "maxBackoff": "2s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}

CHANNEL_OPTIONS = [
    ("grpc.enable_retries", 1),
    ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
    # Keepalive: notice a dead connection in ~80 s instead of waiting for TCP.
    ("grpc.keepalive_time_ms", 60_000),
    ("grpc.keepalive_timeout_ms", 20_000),
]


class Failure(Exception):
    """A check of this example failed; the message says why."""


def enum_name(enum_type, value: int) -> str:
    try:
        return enum_type.Name(value)
    except ValueError:
        return f"UNKNOWN({value})"


def describe_rpc_error(err: grpc.RpcError) -> str:
    """One readable block for a failed call, with google.rpc details if present."""
    code = err.code() if hasattr(err, "code") else None
    details = err.details() if hasattr(err, "details") else str(err)
    lines = [f"{code.name if code else 'UNKNOWN'}: {details}"]
    try:  # rich error details (BadRequest field violations, RetryInfo), optional
        from grpc_status import rpc_status
        from google.rpc import error_details_pb2

        status = rpc_status.from_call(err)
        for detail in status.details if status else []:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                for v in bad.field_violations:
                    lines.append(f"  field {v.field}: {v.description}")
            elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
                info = error_details_pb2.RetryInfo()
                detail.Unpack(info)
                lines.append(f"  retry after {info.retry_delay.ToTimedelta().total_seconds()} s")
            else:
                lines.append(f"  detail: {detail.type_url}")
    except Exception:  # noqa: BLE001 - details are a nicety, never the failure
        pass
    return "\n".join(lines)


def call(name: str, fn, *args, **kwargs):
    """Runs one RPC, turning an RpcError into a Failure naming the method."""
    try:
        return fn(*args, **kwargs)
    except grpc.RpcError as err:
        raise Failure(f"{name} failed: {describe_rpc_error(err)}") from None


def check_health(channel: grpc.Channel, timeout: float) -> None:
    stub = health_pb2_grpc.HealthStub(channel)
    serving = health_pb2.HealthCheckResponse.SERVING
    names = health_pb2.HealthCheckResponse.ServingStatus
    overall = call(
        "Health.Check", stub.Check, health_pb2.HealthCheckRequest(service=""), timeout=timeout
    )
    print(f"health: server {enum_name(names, overall.status)}")
    if overall.status != serving:
        raise Failure(f"server is not serving: {enum_name(names, overall.status)}")
    try:
        svc = stub.Check(health_pb2.HealthCheckRequest(service=UNDERWRITING_SERVICE), timeout=timeout)
        print(f"health: {UNDERWRITING_SERVICE} {enum_name(names, svc.status)}")
        if svc.status != serving:
            raise Failure(f"{UNDERWRITING_SERVICE} is not serving: {enum_name(names, svc.status)}")
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.NOT_FOUND:
            raise Failure(f"Health.Check failed: {describe_rpc_error(err)}") from None
        print(f"health: {UNDERWRITING_SERVICE} not registered with the health service")


def load_application(path: str) -> application_pb2.Application:
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as err:
        print(f"error: cannot read {path}: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    try:
        return json_format.Parse(text, application_pb2.Application())
    except json_format.ParseError as err:
        print(f"error: {path} is not a dossier.v1.Application in proto3 JSON: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def print_report(report: report_pb2.Report) -> None:
    print(f"application: {report.application_id}")
    print(f"status:      {enum_name(report_pb2.ApplicationStatus, report.status)}")
    print(f"decision:    {enum_name(report_pb2.Decision, report.decision)}")
    print(f"complete:    {report.complete}")
    print(f"reasons:     {', '.join(report.reason_codes) or '-'}")
    print(f"policy:      {report.policy_version or '-'}")
    print(f"checks ({len(report.checks)}):")
    for c in report.checks:
        kind = enum_name(report_pb2.CheckKind, c.kind)
        outcome = enum_name(report_pb2.CheckOutcome, c.outcome)
        reasons = ",".join(c.reason_codes) or "-"
        subject = f" [{c.subject}]" if c.subject else ""
        print(f"  {kind:<35} {outcome:<27} {reasons:<30} {c.message}{subject}")


def check_fingerprint(report: report_pb2.Report):
    """What must agree between EvaluateApplication's answer and GetReport.

    Timestamps are left out: the stored copy may be rounded to the database's precision.
    """
    return sorted(
        (c.kind, c.subject, c.outcome, tuple(sorted(c.reason_codes))) for c in report.checks
    )


def compare_reports(evaluated: report_pb2.Report, fetched: report_pb2.Report) -> None:
    problems = []
    for field in ("application_id", "idempotency_key", "status", "decision", "complete", "policy_version"):
        a, b = getattr(evaluated, field), getattr(fetched, field)
        if a != b:
            if field == "status":
                a, b = (enum_name(report_pb2.ApplicationStatus, v) for v in (a, b))
            elif field == "decision":
                a, b = (enum_name(report_pb2.Decision, v) for v in (a, b))
            problems.append(f"{field}: EvaluateApplication={a!r} GetReport={b!r}")
    if sorted(evaluated.reason_codes) != sorted(fetched.reason_codes):
        problems.append(
            f"reason_codes: EvaluateApplication={list(evaluated.reason_codes)} "
            f"GetReport={list(fetched.reason_codes)}"
        )
    if check_fingerprint(evaluated) != check_fingerprint(fetched):
        problems.append(
            f"checks differ: EvaluateApplication={check_fingerprint(evaluated)} "
            f"GetReport={check_fingerprint(fetched)}"
        )
    if problems:
        raise Failure("GetReport does not match EvaluateApplication:\n  " + "\n  ".join(problems))


def run(args: argparse.Namespace) -> None:
    application = None if args.health_only else load_application(args.file)
    with grpc.insecure_channel(args.addr, options=CHANNEL_OPTIONS) as channel:
        check_health(channel, timeout=min(args.timeout, 5.0))
        if args.health_only:
            return
        stub = uw_grpc.UnderwritingServiceStub(channel)

        key = f"example-py-{uuid.uuid4()}"
        print(f"\nEvaluateApplication (idempotency key {key}, deadline {args.timeout:g} s)")
        evaluated = call(
            "EvaluateApplication",
            stub.EvaluateApplication,
            uw_pb2.EvaluateApplicationRequest(idempotency_key=key, application=application),
            timeout=args.timeout,
        ).report
        print_report(evaluated)
        if not evaluated.application_id:
            raise Failure("EvaluateApplication returned a report without an application_id")
        if evaluated.idempotency_key and evaluated.idempotency_key != key:
            raise Failure(f"report carries idempotency key {evaluated.idempotency_key!r}, sent {key!r}")

        print(f"\nGetReport {evaluated.application_id}")
        fetched = call(
            "GetReport",
            stub.GetReport,
            uw_pb2.GetReportRequest(application_id=evaluated.application_id),
            timeout=10,
        ).report
        compare_reports(evaluated, fetched)
        print("matches the EvaluateApplication answer")

        print("\nListReports page_size=5")
        listed = call(
            "ListReports", stub.ListReports, uw_pb2.ListReportsRequest(page_size=5), timeout=10
        )
        for s in listed.reports:
            created = s.create_time.ToJsonString() if s.HasField("create_time") else "-"
            print(
                f"  {s.application_id}  {enum_name(report_pb2.ApplicationStatus, s.status):<30} "
                f"{enum_name(report_pb2.Decision, s.decision):<20} {created}"
            )
        if not listed.reports:
            raise Failure("ListReports returned no reports right after an evaluation")
        if len(listed.reports) > 5:
            raise Failure(f"ListReports returned {len(listed.reports)} reports for page_size 5")
        ours = any(s.application_id == evaluated.application_id for s in listed.reports)
        print(f"  ({'includes' if ours else 'does not include'} {evaluated.application_id}; "
              f"next_page_token {'set' if listed.next_page_token else 'empty'})")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--addr", default="127.0.0.1:50051", help="host:port of Dossier's gRPC server")
    parser.add_argument("--file", help="application JSON (proto3 JSON of dossier.v1.Application)")
    parser.add_argument("--timeout", type=float, default=30.0, help="deadline of EvaluateApplication, seconds")
    parser.add_argument("--health-only", action="store_true", help="only check health; exit 0 if SERVING")
    args = parser.parse_args(argv)
    if not args.health_only and not args.file:
        parser.error("--file is required (unless --health-only)")
    try:
        run(args)
    except Failure as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
