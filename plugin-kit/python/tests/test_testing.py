"""MockFaxbot calls a plugin as the server does, and a SimulatedProvider-backed plugin passes the conformance
branches over HTTP."""

import json
import socket
import threading
import unittest
from unittest import mock

import _support  # noqa: F401  (import path)
from _support import FakePlugin, good_manifest
from faxbot_plugin_kit import Manifest, ManifestError, Plugin, SimulatedProvider, WebhookSpec
from faxbot_plugin_kit.testing import MockFaxbot, sign_sim_webhook, signed_sim_callback

SECRET = "whsec-test"


class SimPlugin(Plugin):
    """What the template generates: every operation delegated to a SimulatedProvider."""

    def __init__(self):
        self.sim = SimulatedProvider(SECRET)

    def manifest(self):
        return Manifest(id="acme-fax", name="Acme Fax", version="0.1.0", hipaa_compliant=False,
                        capabilities=("send", "status", "cancel", "webhook"), idempotent=True,
                        needs_document=True, poll_interval_ms=1000,
                        webhook=WebhookSpec("HMAC-SHA256 of the body in X-Sim-Signature"))

    def send(self, req):
        return self.sim.send(req)

    def status(self, provider_id):
        return self.sim.status(provider_id)

    def cancel(self, provider_id):
        self.sim.cancel(provider_id)

    def webhook(self, req):
        return self.sim.webhook(req)


class Conformance(unittest.TestCase):
    def setUp(self):
        self.faxbot = MockFaxbot(SimPlugin(), token="t0k").start()
        self.addCleanup(self.faxbot.close)

    def test_the_four_numbers(self):
        delivered = self.faxbot.send("+15555550100")
        self.assertEqual(delivered.json, {"providerId": "sim-1", "status": "in_progress", "checkAfterMs": 0})
        self.assertEqual(self.faxbot.status("sim-1").json, {"providerId": "sim-1", "status": "delivered"})

        self.faxbot.send("+15555550101")
        self.assertEqual(self.faxbot.status("sim-2").json, {
            "providerId": "sim-2", "status": "failed", "error": "no answer from the receiving fax machine"})

        rejected = self.faxbot.send("+15555550102")
        self.assertEqual((rejected.status, rejected.kind), (422, "rejected"))
        self.assertEqual(rejected.json["error"]["message"], "the provider refused the destination")

        busy = self.faxbot.send("+15555550103")
        self.assertEqual((busy.status, busy.kind, busy.json["error"]["retryAfterMs"]), (503, "unavailable", 1000))
        self.assertEqual(busy.headers["retry-after"], "1")

        for resp in (rejected, busy):
            self.assertNotIn(b"555555010", resp.body)

    def test_idempotency_over_http(self):
        first = self.faxbot.send("+15555550100", idempotency_key="job-7")
        again = self.faxbot.send("+15555550100", idempotency_key="job-7", job_id="other")
        self.assertEqual(first.json, again.json)
        self.assertEqual(self.faxbot.send("+15555550100").json["providerId"], "sim-2")

    def test_cancel_and_unknown(self):
        self.faxbot.send("+15555550100")
        self.assertEqual(self.faxbot.cancel("sim-1").status, 204)
        self.assertEqual(self.faxbot.status("sim-1").json["error"], "cancelled")
        self.assertEqual(self.faxbot.status("sim-9").kind, "not_found")
        self.assertEqual(self.faxbot.cancel("sim-9").kind, "not_found")

    def test_callbacks(self):
        self.faxbot.send("+15555550100")
        body, headers = signed_sim_callback(SECRET, "sim-1", "failed", "paper jam")
        resp = self.faxbot.webhook(body, headers)
        self.assertEqual(resp.json, {"events": [{"providerId": "sim-1", "status": "failed", "error": "paper jam"}]})
        self.assertEqual(self.faxbot.status("sim-1").json["status"], "failed")

        forged = self.faxbot.webhook(body, {"x-sim-signature": sign_sim_webhook("guess", body)})
        self.assertEqual((forged.status, forged.kind), (401, "unauthenticated"))
        unsigned = self.faxbot.webhook(body, {"content-type": "application/json"})
        self.assertEqual(unsigned.status, 401)
        malformed = self.faxbot.webhook(b"{}", {"x-sim-signature": sign_sim_webhook(SECRET, b"{}")})
        self.assertEqual((malformed.status, malformed.kind), (400, "bad_request"))


class MockFaxbotItself(unittest.TestCase):
    def test_it_serves_on_a_free_port_and_stops(self):
        with MockFaxbot(FakePlugin()) as faxbot:
            port = faxbot.port
            self.assertNotEqual(port, 0)
            self.assertEqual(faxbot.url, "http://127.0.0.1:%d" % port)
            self.assertEqual(faxbot.health().json, {"status": "ok"})
        with self.assertRaises(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        with self.assertRaises(RuntimeError):
            faxbot.port

    def test_an_invalid_manifest_fails_at_start(self):
        with self.assertRaises(ManifestError):
            with MockFaxbot(FakePlugin(good_manifest(id="test"))):
                pass

    def test_it_calls_the_way_the_server_does(self):
        # A listener in place of the plugin captures the request MockFaxbot sends.
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        self.addCleanup(listener.close)
        captured = {}

        def answer():
            conn, _ = listener.accept()
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    data += conn.recv(65536)
                head, _, body = data.partition(b"\r\n\r\n")
                length = int([l.split(b":")[1] for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0])
                while len(body) < length:
                    body += conn.recv(65536)
                captured["head"], captured["body"] = head.decode(), json.loads(body)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}")

        thread = threading.Thread(target=answer)
        thread.start()
        faxbot = MockFaxbot(FakePlugin(), token="t0k")
        with mock.patch.object(MockFaxbot, "port", new_callable=mock.PropertyMock,
                               return_value=listener.getsockname()[1]):
            resp = faxbot.send("+15555550100", document=b"%PDF", job_id="j-1")
        thread.join(5)
        self.assertEqual(resp.status, 200)
        lines = captured["head"].split("\r\n")
        self.assertEqual(lines[0], "POST /v1/send HTTP/1.1")
        self.assertIn("Authorization: Bearer t0k", lines)
        self.assertIn("Faxbot-Plugin-Protocol: 1", lines)
        self.assertIn("Content-Type: application/json", lines)
        self.assertEqual(captured["body"], {"jobId": "j-1", "to": "+15555550100", "idempotencyKey": "j-1",
                                            "document": {"contentType": "application/pdf", "base64": "JVBERg=="}})

    def test_webhook_url_defaults_to_the_servers_route_for_the_plugin(self):
        plugin = FakePlugin()
        with MockFaxbot(plugin) as faxbot:
            faxbot.webhook(b"x", [("X-Acme-Signature", "s"), ("X-Acme-Signature", "t")])
        req = plugin.calls[0][1]
        self.assertEqual(req.url, "https://faxbot.example/webhooks/acme-fax")
        self.assertEqual(req.headers, [("x-acme-signature", "s"), ("x-acme-signature", "t")])


if __name__ == "__main__":
    unittest.main()
