"""Tests of @@NAME@@ through the kit's MockFaxbot, which serves the plugin on a free loopback port and calls it
exactly as the Faxbot server does (token, protocol header, JSON).

As generated, the plugin delegates to the SimulatedProvider, and these tests check its conformance branches:
the last four digits of the number choose the outcome (0100 delivered, 0101 fails in transmission, 0102
refused, 0103 busy). When you replace the simulated provider, keep the tests of the protocol's rules and
point the provider-facing ones at a fake of your provider's API (e.g. a local http.server that answers as it
does), so they stay fast and need no credentials.

Run: python -m unittest discover -s tests
"""

import unittest

from faxbot_plugin_kit import validate_manifest
from faxbot_plugin_kit.testing import MockFaxbot, sign_sim_webhook, signed_sim_callback

from @@MODULE@@ import FaxPlugin

TOKEN = "test-token"
SECRET = "test-webhook-secret"


class PluginTest(unittest.TestCase):
    def setUp(self):
        self.faxbot = MockFaxbot(FaxPlugin(webhook_secret=SECRET), token=TOKEN).start()
        self.addCleanup(self.faxbot.close)

    def test_manifest_is_valid(self):
        self.assertEqual(validate_manifest(FaxPlugin().manifest()), [])
        resp = self.faxbot.manifest()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json["id"], "@@ID@@")

    def test_health(self):
        self.assertEqual(self.faxbot.health().json, {"status": "ok"})

    def test_every_route_but_health_needs_the_token(self):
        resp = self.faxbot.request("GET", "/v1/manifest", authorize=False)
        self.assertEqual((resp.status, resp.kind), (401, "unauthenticated"))
        self.assertEqual(self.faxbot.request("GET", "/v1/health", authorize=False).status, 200)

    def test_delivered(self):
        sent = self.faxbot.send("+15555550100")
        self.assertEqual(sent.status, 200, sent)
        self.assertIn(sent.json["status"], ("queued", "in_progress"))
        done = self.faxbot.status(sent.json["providerId"])
        self.assertEqual(done.json["status"], "delivered")

    def test_fails_in_transmission(self):
        sent = self.faxbot.send("+15555550101")
        done = self.faxbot.status(sent.json["providerId"])
        self.assertEqual(done.json["status"], "failed")
        self.assertTrue(done.json["error"])

    def test_refused_at_send(self):
        resp = self.faxbot.send("+15555550102")
        self.assertEqual((resp.status, resp.kind), (422, "rejected"))
        self.assertNotIn(b"5555550102", resp.body, "errors never echo the number")

    def test_busy_at_send_is_retried_later(self):
        resp = self.faxbot.send("+15555550103")
        self.assertIn(resp.kind, ("unavailable", "rate_limited"))
        self.assertIsNotNone(resp.json["error"].get("retryAfterMs"))
        self.assertIn("retry-after", resp.headers)

    def test_a_repeated_send_answers_the_first_fax(self):
        first = self.faxbot.send("+15555550100", idempotency_key="job-1")
        again = self.faxbot.send("+15555550100", idempotency_key="job-1")
        self.assertEqual(first.json["providerId"], again.json["providerId"])

    def test_cancel(self):
        sent = self.faxbot.send("+15555550100")
        self.assertEqual(self.faxbot.cancel(sent.json["providerId"]).status, 204)
        self.assertEqual(self.faxbot.status("no-such-fax").kind, "not_found")

    def test_an_authentic_callback_reports_its_event(self):
        sent = self.faxbot.send("+15555550100")
        body, headers = signed_sim_callback(SECRET, sent.json["providerId"], "delivered")
        resp = self.faxbot.webhook(body, headers)
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.json["events"], [{"providerId": sent.json["providerId"], "status": "delivered"}])

    def test_a_forged_callback_is_refused(self):
        body, _ = signed_sim_callback(SECRET, "sim-1", "delivered")
        for headers in ({}, {"x-sim-signature": sign_sim_webhook("not-the-secret", body)}):
            resp = self.faxbot.webhook(body, headers)
            self.assertEqual((resp.status, resp.kind), (401, "unauthenticated"))


if __name__ == "__main__":
    unittest.main()
