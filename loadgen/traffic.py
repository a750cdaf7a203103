#!/usr/bin/env python3
"""Bounded sample traffic for the Redside stack, Python standard library only.

Runs the teaching stack's CRUD scenarios (create, list, get, update, delete) plus a few 404s and
invalid bodies against the sidecar, with a mix of user agents so every dashboard panel has data:

    loadgen/traffic.py                       # 600 requests to http://127.0.0.1:8080, 4 workers
    loadgen/traffic.py --requests 2000 --duration 60 --concurrency 8

It stops at whichever of --requests or --duration comes first, only talks to loopback
addresses (a demo tool must not load someone else's server), and prints a status summary.
scripts/stack --traffic, scripts/pictures and the docs use it; Locust users have locustfile.py.
"""

import argparse
import http.client
import ipaddress
import json
import random
import socket
import sys
import threading
import time
from collections import Counter
from urllib.parse import urlsplit

AGENTS = [
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36",
    "curl/8.5.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "redside-traffic/1.0 (load test)",
    "python-requests/2.32",
]


def loopback_only(url):
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise SystemExit(f"traffic.py: --base-url must be http://host:port, got {url!r}")
    try:
        infos = socket.getaddrinfo(parts.hostname, parts.port or 80, proto=socket.IPPROTO_TCP)
    except OSError as e:
        raise SystemExit(f"traffic.py: cannot resolve {parts.hostname}: {e}")
    for info in infos:
        if not ipaddress.ip_address(info[4][0]).is_loopback:
            raise SystemExit(f"traffic.py: {parts.hostname} is not a loopback address; "
                             "this generator only targets the local stack")
    return parts.hostname, parts.port or 80


class Worker:
    def __init__(self, host, port, rng, stats, lock):
        self.host, self.port, self.rng = host, port, rng
        self.stats, self.lock = stats, lock
        self.conn = None
        self.ids = []

    def request(self, method, path, body=None):
        headers = {"User-Agent": self.rng.choice(AGENTS)}
        data = None
        if body is not None:
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        for attempt in (1, 2):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=10)
                self.conn.request(method, path, body=data, headers=headers)
                resp = self.conn.getresponse()
                payload = resp.read()
                with self.lock:
                    self.stats[f"{resp.status // 100}xx"] += 1
                if resp.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return resp.status, payload
            except (OSError, http.client.HTTPException):
                # A dropped keep-alive connection is retried once on a fresh one.
                if self.conn is not None:
                    self.conn.close()
                self.conn = None
                if attempt == 2:
                    with self.lock:
                        self.stats["connection_error"] += 1
                    return None, b""
        return None, b""

    def create(self):
        item = {"nom": f"item-{self.rng.randrange(1_000_000)}",
                "prix": round(self.rng.choice([4.5, 9.99, 25.0, 49.9, 75.0, 120.0, 310.0]), 2)}
        status, payload = self.request("POST", "/items", item)
        if status == 201 or status == 200:
            try:
                self.ids.append(int(json.loads(payload)["id"]))
            except (ValueError, KeyError, TypeError):
                pass

    def step(self):
        """One scenario step, weighted like a read-mostly CRUD client."""
        r = self.rng.random()
        if r < 0.25 or not self.ids:
            self.create()
        elif r < 0.45:
            self.request("GET", "/items")
        elif r < 0.70:
            self.request("GET", f"/items/{self.rng.choice(self.ids)}")
        elif r < 0.80:
            i = self.rng.choice(self.ids)
            self.request("PUT", f"/items/{i}", {"nom": f"renamed-{i}",
                                                 "prix": round(self.rng.uniform(1, 200), 2)})
        elif r < 0.87:
            self.request("DELETE", f"/items/{self.ids.pop(self.rng.randrange(len(self.ids)))}")
        elif r < 0.93:
            self.request("GET", f"/items/{900_000_000 + self.rng.randrange(1000)}")  # 404
        elif r < 0.97:
            self.request("POST", "/items", {"nom": "", "prix": -1})  # 422
        else:
            self.request("GET", "/does-not-exist")  # 404, handler="none"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--base-url", default="http://127.0.0.1:8080",
                    help="the sidecar (default %(default)s); loopback only")
    ap.add_argument("--requests", type=int, default=600, help="stop after this many (total)")
    ap.add_argument("--duration", type=float, default=60.0, help="stop after this many seconds")
    ap.add_argument("--concurrency", type=int, default=4, help="worker threads")
    ap.add_argument("--rate", type=float, default=0.0,
                    help="requests per second across workers (0: as fast as possible)")
    ap.add_argument("--seed", type=int, default=1, help="random seed (reproducible mixes)")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    if args.requests < 1 or args.duration <= 0 or not 1 <= args.concurrency <= 64 or args.rate < 0:
        ap.error("--requests >= 1, --duration > 0, 1 <= --concurrency <= 64, --rate >= 0")
    host, port = loopback_only(args.base_url)

    stats, lock = Counter(), threading.Lock()
    budget = [args.requests]
    deadline = time.monotonic() + args.duration
    next_slot = [time.monotonic()]

    def take():
        with lock:
            if budget[0] <= 0 or time.monotonic() >= deadline:
                return False
            budget[0] -= 1
            slot = next_slot[0]
            if args.rate > 0:
                next_slot[0] = max(slot, time.monotonic()) + 1.0 / args.rate
        if args.rate > 0:
            time.sleep(max(0.0, slot - time.monotonic()))
        return True

    def run(seed):
        w = Worker(host, port, random.Random(seed), stats, lock)
        while take():
            w.step()

    start = time.monotonic()
    threads = [threading.Thread(target=run, args=(args.seed * 1000 + i,), daemon=True)
               for i in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    total = sum(v for k, v in stats.items())
    if not args.quiet:
        summary = ", ".join(f"{k}={v}" for k, v in sorted(stats.items()))
        print(f"traffic.py: {total} requests in {elapsed:.1f}s "
              f"({total / max(elapsed, 1e-9):.0f} req/s) to {args.base_url}: {summary}")
    # Nothing answered at all: the stack is not running, say so with a non-zero status.
    return 1 if total and stats["connection_error"] == total else 0


if __name__ == "__main__":
    sys.exit(main())
