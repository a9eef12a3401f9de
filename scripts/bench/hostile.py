"""Drives scripts/bench/hostile against a running server: hostile bodies and hostile documents, measuring
the server's peak RSS and CPU from /proc and /health latency from a concurrent poller. Standard library only."""
import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse

BASE, PID, ADMIN, FILES = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
HOST = urllib.parse.urlparse(BASE)
TICK = os.sysconf("SC_CLK_TCK")


def status_kib(field):
    with open(f"/proc/{PID}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


def cpu_seconds():
    with open(f"/proc/{PID}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def connect():
    return http.client.HTTPConnection(HOST.hostname, HOST.port, timeout=120)


POLLER = r"""
import http.client, sys, time
host, port = sys.argv[1], int(sys.argv[2])
while True:
    started = time.monotonic()
    try:
        c = http.client.HTTPConnection(host, port, timeout=30)
        c.request("GET", "/health")
        ok = c.getresponse().status == 200
        c.close()
    except OSError:
        ok = False
    print(f"{(time.monotonic() - started) * 1000:.2f}" if ok else "fail", flush=True)
    time.sleep(0.02)
"""


class HealthPoller:
    """GET /health every 20 ms from a separate process (so that the load generator's threads, which share
    this interpreter's lock, cannot delay the measurement), until stopped; latencies in ms."""

    def __init__(self):
        self.latencies, self.failures = [], 0
        self.stop = self

    def start(self):
        self.proc = subprocess.Popen([sys.executable, "-c", POLLER, HOST.hostname, str(HOST.port)],
                                     stdout=subprocess.PIPE, text=True)

    def set(self):
        self.proc.terminate()

    def join(self):
        out, _ = self.proc.communicate(timeout=30)
        for line in out.split():
            if line == "fail":
                self.failures += 1
            else:
                self.latencies.append(float(line))

    def summary(self):
        lat = sorted(self.latencies) or [0]
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        return f"{len(lat)} checks, median {statistics.median(lat):.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms, failed {self.failures}"


def post_body(path, size, headers, results):
    """Sends a body of `size` bytes in 64 KiB chunks; records the status or how the connection ended."""
    chunk = b"-" * 65536
    try:
        c = connect()
        c.putrequest("POST", path)
        c.putheader("Content-Type", "multipart/form-data; boundary=x")
        c.putheader("Content-Length", str(size))
        for k, v in headers:
            c.putheader(k, v)
        c.endheaders()
        sent = 0
        while sent < size:
            c.send(chunk[: min(len(chunk), size - sent)])
            sent += len(chunk)
        results.append(str(c.getresponse().status))
    except OSError as e:
        # The server answered and closed before the whole body was sent: the refusal it should be.
        results.append(type(e).__name__)


def body_burst(path, headers, n=40, size=31 * 1024 * 1024):
    with open(f"/proc/{PID}/clear_refs", "w") as f:
        f.write("5")
    before = status_kib("VmRSS:")
    poller = HealthPoller()
    poller.start()
    results = []
    threads = [threading.Thread(target=post_body, args=(path, size, headers, results)) for _ in range(n)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    elapsed = time.monotonic() - started
    poller.stop.set()
    poller.join()
    peak = status_kib("VmHWM:")
    after = status_kib("VmRSS:")
    counts = {r: results.count(r) for r in sorted(set(results))}
    print(f"| `{path}` | {n} × 31 MiB | {counts} | {before / 1024:.1f} | {peak / 1024:.1f} | {after / 1024:.1f} | {elapsed:.1f} s | {poller.summary()} |")


def post_file(path, name, results=None):
    boundary = "hostilebenchboundary"
    with open(path, "rb") as f:
        data = f.read()
    ctype = "text/plain" if name.endswith(".txt") else "application/pdf"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="to"\r\n\r\n+15551230000\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\nContent-Type: {ctype}\r\n\r\n'
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    c = connect()
    c.request("POST", "/fax", body=body, headers={"X-API-Key": ADMIN, "Content-Type": f"multipart/form-data; boundary={boundary}"})
    r = c.getresponse()
    detail = r.read().decode(errors="replace")[:90]
    c.close()
    if results is not None:
        results.append(r.status)
    return r.status, detail


print("\n## Unauthenticated bodies (40 concurrent 31 MiB POSTs per path)\n")
print("| path | bodies | answers | RSS before MiB | peak MiB | RSS after MiB | burst took | /health during the burst |")
print("|---|---|---|---|---|---|---|---|")
body_burst("/webhooks/nonexistent", [])
body_burst("/webhooks/nonexistent/inbound", [])
body_burst("/_internal/asterisk/inbound", [("X-Internal-Secret", "guess")])
body_burst("/admin/inbound/simulate", [])
# A well-formed signature that is wrong: the body must be read (two at a time, at most 32 MiB) to check it.
body_burst("/webhooks/phaxio/inbound", [("X-Phaxio-Signature", "0123456789abcdef0123456789abcdef01234567")])

files = sorted(os.listdir(FILES))
print("\n## Hostile uploads, one at a time (server CPU per upload)\n")
print("| file | bytes | status | answer | server CPU ms |")
print("|---|---|---|---|---|")
for name in files:
    path = os.path.join(FILES, name)
    post_file(path, name)  # warm-up: the first upload of a kind pays for page faults
    before = cpu_seconds()
    status, detail = post_file(path, name)
    used = (cpu_seconds() - before) * 1000
    print(f"| {name} | {os.path.getsize(path)} | {status} | {detail} | {used:.0f} |")



def upload_burst(title, names, times):
    with open(f"/proc/{PID}/clear_refs", "w") as f:
        f.write("5")
    before_rss = status_kib("VmRSS:")
    poller = HealthPoller()
    poller.start()
    results = []
    threads = [threading.Thread(target=post_file, args=(os.path.join(FILES, n), n, results)) for n in names for _ in range(times)]
    before = cpu_seconds()
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    elapsed = time.monotonic() - started
    poller.stop.set()
    poller.join()
    statuses = {s: results.count(s) for s in sorted(set(results))}
    print(f"| {title} | {len(threads)} | {elapsed:.1f} s | {cpu_seconds() - before:.2f} s | {statuses} | "
          f"{before_rss / 1024:.1f} | {status_kib('VmHWM:') / 1024:.1f} | {poller.summary()} |")


print("\n## Hostile uploads in bursts, /health polled every 20 ms\n")
print("| burst | uploads | took | server CPU | answers | RSS before MiB | peak MiB | /health during the burst |")
print("|---|---|---|---|---|---|---|---|")
small = [n for n in files if os.path.getsize(os.path.join(FILES, n)) < 1024 * 1024]
large = [n for n in files if n not in small]
upload_burst("small hostile PDFs (" + ", ".join(small) + ") × 8", small, 8)
upload_burst("10 MB files (" + ", ".join(large) + ") × 8", large, 8)
upload_burst("every file × 8", files, 8)
