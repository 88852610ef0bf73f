#!/usr/bin/env python3
"""A rolling restart under load, seen by a real gRPC client (grpcio).

Starts `dossier fleet --replicas 3` (private PostgreSQL, simulators, three `dossier
serve` processes), then keeps submitting applications from several threads through one
grpcio channel that balances round-robin over the three replicas and carries gRPC's
standard retry policy (retryableStatusCodes UNAVAILABLE). Meanwhile it restarts the
replicas one at a time, as a Kubernetes rolling deploy does: SIGTERM, wait for the
process to exit (the fleet starts it again), wait until the new one is SERVING, next.

With --upgrade-from OLD it rehearses a release instead (scripts/upgrade-rehearsal):
the replicas start as the OLD binary on OLD's schema (its own `dossier migrate`), the
new binary's migrations are applied while they serve under load, and the replicas are
replaced one at a time by the new build. It then also checks that every replica runs
the new build and that every accepted application is decided.

Passes (exit 0) when the client saw no failed call and every replica was restarted.
Exit 1 on a failed call or a replica that did not come back; 2 on bad setup.

    clients/python/generate.sh
    python3 clients/python/rolling_restart.py --dossier target/release/dossier
    python3 clients/python/rolling_restart.py --dossier target/release/dossier \
        --upgrade-from /tmp/old/dossier --database-url postgres://…/empty_db
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


def start_fleet(dossier: str, log_dir: str, database_url: str | None = None,
                serve_binary: str | None = None,
                ) -> tuple[subprocess.Popen, list[tuple[str, str, int]]]:
    env = dict(os.environ)
    env.pop("DATABASE_URL", None)  # a private PostgreSQL, deleted on exit
    if database_url:
        env["DATABASE_URL"] = database_url
    env.setdefault("RUST_LOG", "warn")
    out = open(os.path.join(log_dir, "fleet.log"), "w+")
    command = [dossier, "fleet", "--replicas", "3", "--base-port", "0", "--log-dir", log_dir]
    if serve_binary:
        command += ["--serve-binary", serve_binary]
    fleet = subprocess.Popen(
        command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
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


def point_link(link: str, target: str) -> None:
    """Re-points `link` at `target` atomically (a replica starting meanwhile sees one
    binary or the other, never no binary)."""
    tmp = f"{link}.new"
    if os.path.lexists(tmp):
        os.remove(tmp)
    os.symlink(target, tmp)
    os.replace(tmp, link)


def serve_processes(fleet_pid: int) -> dict[int, str]:
    """The fleet's `serve` children: pid -> the binary each really runs."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != fleet_pid:
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            if len(argv) > 1 and argv[1] == b"serve":
                found[int(entry)] = os.path.realpath(f"/proc/{entry}/exe")
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
    return found


def undecided(database_url: str) -> int:
    out = subprocess.run(
        ["psql", database_url, "-XAtqc",
         "SELECT count(*) FROM applications WHERE status <> 'decided'"],
        check=True, capture_output=True, text=True)
    return int(out.stdout.strip())


def wait_until_decided(database_url: str, stall: float = 60, cap: float = 900) -> None:
    """Waits until no accepted application is undecided. The workers may still be
    working through the backlog the load left (thousands of evaluations on a small
    machine), so this fails only when the count stops falling for `stall` seconds."""
    deadline = time.monotonic() + cap
    best = undecided(database_url)
    last_progress = time.monotonic()
    while best > 0:
        time.sleep(1)
        now = undecided(database_url)
        if now < best:
            best, last_progress = now, time.monotonic()
        elif time.monotonic() - last_progress > stall:
            raise TimeoutError(f"{best} accepted applications stayed undecided for {stall:.0f} s")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{best} accepted applications still undecided after {cap:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dossier", required=True, help="path of the dossier binary")
    parser.add_argument("--callers", type=int, default=4)
    parser.add_argument("--without-retries", action="store_true",
                        help="leave the retry policy out, to see what it saves callers")
    parser.add_argument("--upgrade-from", metavar="OLD",
                        help="rehearse an upgrade: start the replicas as this older binary")
    parser.add_argument("--database-url",
                        help="an empty database for the rehearsal (required with --upgrade-from)")
    args = parser.parse_args()
    if args.upgrade_from and not args.database_url:
        parser.error("--upgrade-from needs --database-url (an empty database)")
    upgrade = args.upgrade_from is not None
    new_binary = os.path.realpath(args.dossier)

    log_dir = tempfile.mkdtemp(prefix="dossier-rolling-")
    serve_link = None
    if upgrade:
        serve_link = os.path.join(log_dir, "serve-binary")
        point_link(serve_link, os.path.realpath(args.upgrade_from))
    fleet, replicas = start_fleet(args.dossier, log_dir, args.database_url, serve_link)
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
        if upgrade:
            # The expand step of a release: the new schema goes in while the old
            # release serves, as the chart's pre-upgrade hook Job does.
            migrated = subprocess.run(
                [args.dossier, "migrate"], env={**os.environ, "DATABASE_URL": args.database_url},
                capture_output=True, text=True)
            if migrated.returncode != 0:
                raise RuntimeError("the new binary's migrate failed under load: "
                                   f"{migrated.stdout}{migrated.stderr}")
            # `dossier migrate` logs `"applied":N` with "database schema is up to date".
            applied = re.search(r'"applied":\s*(\d+)', migrated.stdout + migrated.stderr)
            count = int(applied.group(1)) if applied else 0
            if count == 0:
                raise RuntimeError("the new build applied no migration: the rehearsal would not "
                                   "test a schema change (is --upgrade-from older than the last "
                                   f"migration?): {migrated.stdout}{migrated.stderr}")
            print(f"{count} new migration(s) applied while the old release served")
            point_link(serve_link, new_binary)
        for name, addr, pid in replicas:
            before = ok
            os.kill(pid, signal.SIGTERM)
            wait_for(f"{name} (pid {pid}) to exit after SIGTERM", lambda: not pid_alive(pid), 60)
            wait_for(f"{name} to serve again on {addr}", lambda: serving(addr), 120)
            wait_for("calls to keep succeeding", lambda: ok >= before + 20, 60)
            print(f"{name} restarted; {ok} calls OK so far, {len(failures)} failed")
        if upgrade:
            running = serve_processes(fleet.pid)
            stale = {pid: exe for pid, exe in running.items() if exe != new_binary}
            if len(running) != 3 or stale:
                raise RuntimeError(f"after the upgrade the replicas run {running}, not 3 × {new_binary}")
            print(f"all 3 replicas run the new build ({new_binary})")
    except (TimeoutError, RuntimeError) as err:
        print(f"error: {err}", file=sys.stderr)
        code = 1
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=15)
        channel.close()
        if upgrade and code == 0:
            try:
                wait_until_decided(args.database_url)
                print("every accepted application is decided")
            except (TimeoutError, subprocess.CalledProcessError) as err:
                print(f"error: {err}", file=sys.stderr)
                code = 1
        os.killpg(fleet.pid, signal.SIGTERM)
        try:
            fleet.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(fleet.pid, signal.SIGKILL)

    what = "upgrade of 3 replicas under load" if upgrade else "rolling restart of 3 replicas under load"
    print(f"{what}: {ok} calls OK, {len(failures)} failed")
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
