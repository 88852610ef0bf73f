#!/usr/bin/env python3
"""A rolling restart under load, seen by a real gRPC client (grpcio).

Starts `dossier fleet --replicas 3` (private PostgreSQL, simulators, three `dossier
serve` processes), then keeps submitting applications from several threads through one
grpcio channel that balances round-robin over the three replicas and carries gRPC's
standard retry policy (retryableStatusCodes UNAVAILABLE). Meanwhile it restarts the
replicas one at a time, as a Kubernetes rolling deploy does: SIGTERM, wait for the
process to exit (the fleet starts it again), wait until the new one is SERVING, next.

Passes (exit 0) when the client saw no failed call and every replica was restarted.
Exit 1 on a failed call or a replica that did not come back; 2 on bad setup.

    clients/python/generate.sh
    python3 clients/python/rolling_restart.py --dossier target/release/dossier
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
try:
    from dossier.v1 import underwriting_service_pb2 as uw_pb2
    from dossier.v1 import underwriting_service_pb2_grpc as uw_grpc
except ImportError as err:  # pragma: no cover - depends on the checkout
    print(f"error: generated stubs not found ({err}); run clients/python/generate.sh first",
          file=sys.stderr)
    sys.exit(2)

# gRPC's standard client-side retry policy (docs/clients.md), with round-robin balancing
# over the replicas' addresses: what a Scala or Ruby caller behind a Kubernetes headless
# Service would use.
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [
        {
            "name": [{"service": "dossier.v1.UnderwritingService"}],
            "retryPolicy": {
                "maxAttempts": 5,
                "initialBackoff": "0.1s",
                "maxBackoff": "1s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ],
}

REPLICA_LINE = re.compile(r"^\s+(dossier-\d+)\s+grpc (\S+)\s+metrics \S+\s+pid (\d+)")


def serving(addr: str) -> bool:
    try:
        with grpc.insecure_channel(addr) as ch:
            r = health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=1)
        return r.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


def wait_for(what: str, check, within: float) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError(f"gave up waiting for {what} after {within:.0f} s")
        time.sleep(0.1)


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def start_fleet(dossier: str, log_dir: str) -> tuple[subprocess.Popen, list[tuple[str, str, int]]]:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)  # a private PostgreSQL, deleted on exit
    env.setdefault("RUST_LOG", "warn")
    out = open(os.path.join(log_dir, "fleet.log"), "w+")
    fleet = subprocess.Popen(
        [dossier, "fleet", "--replicas", "3", "--base-port", "0", "--log-dir", log_dir],
        stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    replicas: list[tuple[str, str, int]] = []

    def table_printed() -> bool:
        if fleet.poll() is not None:
            raise RuntimeError(f"dossier fleet exited with {fleet.returncode}; see {out.name}")
        out.seek(0)
        replicas.clear()
        for line in out.read().splitlines():
            m = REPLICA_LINE.match(line)
            if m:
                replicas.append((m.group(1), m.group(2), int(m.group(3))))
        return len(replicas) == 3

    wait_for("the fleet to start", table_printed, 180)
    return fleet, list(replicas)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossier", required=True, help="path of the dossier binary")
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--without-retries", action="store_true",
                        help="leave the retry policy out, to see what it saves callers")
    args = parser.parse_args()

    log_dir = tempfile.mkdtemp(prefix="dossier-rolling-")
    fleet, replicas = start_fleet(args.dossier, log_dir)
    print(f"fleet up: {', '.join(f'{n} {a} pid {p}' for n, a, p in replicas)}; logs in {log_dir}")
    target = "ipv4:" + ",".join(addr for _, addr, _ in replicas)
    config = dict(SERVICE_CONFIG)
    if args.without_retries:
        config.pop("methodConfig")
    channel = grpc.insecure_channel(target, options=[
        # An `ipv4:a,b,c` target would otherwise send the whole list as :authority,
        # which the server's HTTP/2 stack rejects (RST_STREAM PROTOCOL_ERROR). A DNS
        # target (dns:///dossier-headless:50051) has a valid authority of its own.
        ("grpc.default_authority", "dossier"),
        ("grpc.enable_retries", 1),
        ("grpc.service_config", json.dumps(config)),
    ])
    stub = uw_grpc.UnderwritingServiceStub(channel)

    stop = threading.Event()
    lock = threading.Lock()
    ok = 0
    failures: list[str] = []

    def caller(n: int) -> None:
        nonlocal ok
        i = 0
        while not stop.is_set():
            i += 1
            key = f"rolling-{uuid.uuid4().hex}"
            try:
                stub.SubmitApplication(
                    uw_pb2.SubmitApplicationRequest(idempotency_key=key, rails_application_id=key),
                    timeout=10)
                with lock:
                    ok += 1
            except grpc.RpcError as err:
                with lock:
                    failures.append(f"{err.code().name}: {err.details()}")

    threads = [threading.Thread(target=caller, args=(n,), daemon=True) for n in range(args.callers)]
    code = 0
    try:
        for t in threads:
            t.start()
        wait_for("the first calls", lambda: ok >= 20, 60)
        for name, addr, pid in replicas:
            before = ok
            os.kill(pid, signal.SIGTERM)
            wait_for(f"{name} (pid {pid}) to exit after SIGTERM", lambda: not pid_alive(pid), 60)
            wait_for(f"{name} to serve again on {addr}", lambda: serving(addr), 120)
            wait_for("calls to keep succeeding", lambda: ok >= before + 20, 60)
            print(f"{name} restarted; {ok} calls OK so far, {len(failures)} failed")
    except (TimeoutError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        code = 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
        channel.close()
        os.killpg(fleet.pid, signal.SIGTERM)
        try:
            fleet.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(fleet.pid, signal.SIGKILL)

    print(f"rolling restart of 3 replicas under load: {ok} calls OK, {len(failures)} failed")
    for f in failures[:10]:
        print(f"  failed: {f}", file=sys.stderr)
    if failures:
        code = 1
    if code:
        print(f"replica logs: {log_dir}", file=sys.stderr)
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
