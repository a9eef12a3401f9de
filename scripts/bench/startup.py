#!/usr/bin/env python3
"""Start-up time of two faxbot-api builds: time from exec to the first 200 from /health, on a new database
(migrations run) and on an existing one (the usual start); `ROUNDS` rounds (default 20), the builds
taking turns so that a busy moment of the machine falls on both. Release builds, stripped as the image ships them:

    objcopy --strip-debug target/release/faxbot-api /tmp/after
    scripts/bench/startup.py /tmp/before /tmp/after

Loopback only; each start is terminated at once.
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request


def start(binary, port, data):
    """(ms until the server logs "listening", ms until /health first answers 200)."""
    env = dict(os.environ, FAX_DATA_DIR=data, FAXBOT_LISTEN=f"127.0.0.1:{port}",
               API_KEY="bench-key-0123456789", RUST_LOG="info")
    t0 = time.monotonic()
    p = subprocess.Popen([binary], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    for line in p.stdout:
        if '"message":"listening"' in line:
            break
    listening = (time.monotonic() - t0) * 1000
    deadline = t0 + 30
    while True:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                if r.status == 200:
                    break
        except Exception:
            if time.monotonic() > deadline:
                p.kill()
                sys.exit(f"{binary} did not answer /health within 30 s")
            time.sleep(0.002)
    elapsed = (time.monotonic() - t0) * 1000
    p.terminate()
    p.stdout.close()
    p.wait()
    return listening, elapsed


def main():
    binaries = sys.argv[1:]
    if not binaries:
        sys.exit(__doc__)
    results = {}
    rounds = int(os.environ.get("ROUNDS", "20"))
    for _ in range(rounds):
        for binary in binaries:
            data = tempfile.mkdtemp(prefix="fb-start-")
            results.setdefault((binary, "new database"), []).append(start(binary, 18500, data))
            for _ in range(6):
                results.setdefault((binary, "existing database"), []).append(start(binary, 18500, data))
            subprocess.run(["rm", "-rf", data], check=True)
    for (binary, kind), values in results.items():
        listening = [v[0] for v in values]
        health = [v[1] for v in values]
        print(f"{binary} {kind} (n={len(values)}): listening median {statistics.median(listening):.2f} ms, "
              f"first /health 200 median {statistics.median(health):.2f} ms (min {min(health):.1f}, max {max(health):.1f})")


if __name__ == "__main__":
    main()
