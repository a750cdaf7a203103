"""Locust scenarios for Redside: the teaching stack's CRUD mix against the sidecar.

    .stack/venv/bin/locust -f loadgen/locustfile.py --host http://127.0.0.1:8080 \
        --headless -u 20 -r 5 -t 60s --csv .stack/locust --only-summary

(`pip install -r loadgen/requirements.txt`; scripts/pictures installs it into .stack/venv.)
Requests are grouped by route template (`name=`), like the sidecar's `handler` label, so Locust's
percentiles can be compared with the dashboards' p95 per handler.
"""

import random
from urllib.parse import urlsplit

from locust import HttpUser, between, events, task


@events.test_start.add_listener
def loopback_only(environment, **_kwargs):
    # A load generator pointed at someone else's server is an incident: refuse non-loopback.
    host = urlsplit(environment.host or "").hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"locustfile: --host must be a loopback address, got {environment.host!r}")


class ItemsUser(HttpUser):
    wait_time = between(0.05, 0.3)

    def on_start(self):
        self.ids = []
        self.client.headers["User-Agent"] = "locust/redside (load test)"

    @task(5)
    def create(self):
        body = {"nom": f"locust-{random.randrange(1_000_000)}",
                "prix": random.choice([4.5, 9.99, 25.0, 49.9, 75.0, 120.0])}
        with self.client.post("/items", json=body, name="/items", catch_response=True) as r:
            if r.status_code in (200, 201):
                self.ids.append(r.json()["id"])
                r.success()
            else:
                r.failure(f"create: {r.status_code}")

    @task(4)
    def list_items(self):
        self.client.get("/items", name="/items")

    @task(6)
    def read(self):
        if self.ids:
            self.client.get(f"/items/{random.choice(self.ids)}", name="/items/{id}")

    @task(2)
    def update(self):
        if self.ids:
            i = random.choice(self.ids)
            self.client.put(f"/items/{i}", json={"nom": f"renamed-{i}", "prix": 42.0},
                            name="/items/{id}")

    @task(1)
    def delete(self):
        if self.ids:
            i = self.ids.pop(random.randrange(len(self.ids)))
            self.client.delete(f"/items/{i}", name="/items/{id}")

    @task(1)
    def not_found(self):
        # Expected 404: counted as a success by Locust, as a 4xx by the sidecar.
        with self.client.get(f"/items/{900_000_000 + random.randrange(1000)}",
                             name="/items/{id} (404)", catch_response=True) as r:
            if r.status_code == 404:
                r.success()
            else:
                r.failure(f"expected 404, got {r.status_code}")
