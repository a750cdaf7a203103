"""A throwaway PostgreSQL, target/debug/api and target/debug/sidecar on loopback, for deploy's
scripts (deploy/check-api-paths, deploy/measure-series). Everything started is stopped when the
`LocalStack` context ends. PostgreSQL listens on a unix socket only; as root it runs as the
postgres user, as scripts/stack does.
"""

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    """(status, body) of a GET; an HTTP error status is an answer, not an exception."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def wait_ok(url, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if get(url, timeout=2)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.3)
    sys.exit(f"local_stack: {url} not up after {seconds}s")


class LocalStack:
    def __init__(self):
        self.procs = []
        self.tmp = Path(tempfile.mkdtemp(prefix="redside-deploy-"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("API_", "SIDECAR_"))}
        self.env["RUST_LOG"] = "warn"
        for binary in ["target/debug/api", "target/debug/sidecar"]:
            if not (ROOT / binary).exists():
                sys.exit(f"local_stack: {binary} missing: cargo build --workspace first")

    def __enter__(self):
        return self

    def __exit__(self, *_):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    def start(self, args, name, **kw):
        log = open(self.tmp / f"{name}.log", "w")
        p = subprocess.Popen([str(a) for a in args], stdout=log, stderr=subprocess.STDOUT, **kw)
        self.procs.append(p)
        return p

    def postgres(self):
        """Starts PostgreSQL; returns a libpq connection string for the api."""
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin"))
        if not bins:
            sys.exit("local_stack: PostgreSQL server binaries missing: scripts/setup (apt-get install postgresql)")
        pgbin = Path(bins[-1])
        as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        data, sock = self.tmp / "pgdata", self.tmp / "pgsock"
        sock.mkdir()
        if as_pg:
            self.tmp.chmod(0o755)
            shutil.chown(self.tmp, "postgres")
            shutil.chown(sock, "postgres")
        subprocess.run(as_pg + [str(pgbin / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
                       check=True, stdout=subprocess.DEVNULL)
        self.start(as_pg + [pgbin / "postgres", "-D", data, "-c", "listen_addresses=", "-k", sock, "-p", "5432"],
                   "postgres")
        for _ in range(200):
            if (sock / ".s.PGSQL.5432").exists():
                break
            time.sleep(0.1)
        for _ in range(50):
            if subprocess.run(as_pg + [str(pgbin / "createdb"), "-h", str(sock), "-U", "postgres", "redside"],
                              stderr=subprocess.DEVNULL).returncode == 0:
                return f"host={sock} port=5432 user=postgres dbname=redside"
            time.sleep(0.2)
        sys.exit(f"local_stack: createdb failed; see {self.tmp}/postgres.log")

    def api(self, database_url):
        """Starts the api on a free loopback port once it is ready; returns the port."""
        port = free_port()
        self.start([ROOT / "target/debug/api", f"--listen=127.0.0.1:{port}", f"--database-url={database_url}"],
                   "api", env=self.env)
        wait_ok(f"http://127.0.0.1:{port}/readyz")
        return port

    def sidecar(self, upstream_port, config, binary=ROOT / "target/debug/sidecar"):
        """Starts the sidecar in front of the api; returns (proxy port, admin port)."""
        proxy, admin = free_port(), free_port()
        self.start([binary, f"--listen=127.0.0.1:{proxy}",
                    f"--upstream=http://127.0.0.1:{upstream_port}", f"--admin-listen=127.0.0.1:{admin}",
                    f"--config={config}"], "sidecar", env=self.env)
        wait_ok(f"http://127.0.0.1:{admin}/readyz")
        return proxy, admin
