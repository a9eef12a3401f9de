"""serve(): prints where it listens (the real port for port 0), answers, and stops cleanly on SIGTERM."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import unittest
import urllib.request

import _support  # noqa: F401  (import path)

KIT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

SCRIPT = textwrap.dedent("""
    import sys
    sys.path.insert(0, sys.argv[1])
    from faxbot_plugin_kit import Manifest, Plugin, SimulatedProvider, serve

    class P(Plugin):
        sim = SimulatedProvider()
        def manifest(self):
            return Manifest(id="acme-fax", name="Acme Fax", version="0.1.0", hipaa_compliant=False,
                            capabilities=["send", "status"], idempotent=True, needs_document=False,
                            poll_interval_ms=1000)
        def send(self, req):
            return self.sim.send(req)
        def status(self, provider_id):
            return self.sim.status(provider_id)

    serve(P(), "127.0.0.1", 0, token="t0k")
    print("stopped", flush=True)
""")


@unittest.skipIf(sys.platform == "win32", "SIGTERM")
class Serve(unittest.TestCase):
    def test_listening_line_requests_and_sigterm(self):
        proc = subprocess.Popen([sys.executable, "-c", SCRIPT, KIT], stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        line = proc.stdout.readline().strip()
        self.assertRegex(line, r"^listening on http://127\.0\.0\.1:[1-9][0-9]*$")
        url = line.split(" ", 2)[2]
        with urllib.request.urlopen(url + "/v1/health", timeout=5) as resp:
            self.assertEqual(json.load(resp), {"status": "ok"})
        request = urllib.request.Request(url + "/v1/manifest", headers={"Authorization": "Bearer t0k"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            self.assertEqual(json.load(resp)["id"], "acme-fax")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=10)
        self.assertEqual(proc.returncode, 0, err)
        self.assertEqual(out.strip(), "stopped")
        self.assertEqual(err, "", "nothing on stderr: no per-request logging, no traceback")


if __name__ == "__main__":
    unittest.main()
