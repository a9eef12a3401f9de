"""SimulatedProvider: the conformance numbers, idempotency, cancel, and callbacks only when authentic."""

import hashlib
import hmac
import json
import threading
import unittest

import _support  # noqa: F401  (import path)
from faxbot_plugin_kit import FaxAnswer, PluginError, SendRequest, SimulatedProvider, WebhookRequest
from faxbot_plugin_kit.simulated import sign_sim_webhook

SECRET = "whsec-test"


def req(to, key="k1", job="j1"):
    return SendRequest(job_id=job, to=to, idempotency_key=key)


def callback(doc, secret=SECRET, header="x-sim-signature", signature=None):
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    sig = signature if signature is not None else sign_sim_webhook(secret, body)
    return WebhookRequest("https://faxbot.example/webhooks/acme-fax", [("content-type", "application/json"),
                                                                        (header, sig)], body)


class Sending(unittest.TestCase):
    def setUp(self):
        self.sim = SimulatedProvider(SECRET)

    def test_conformance_numbers(self):
        # (to, answer of send or the error kind, final status, final error)
        table = [
            ("+15555550100", "sim-1", "delivered", None),
            ("+15555550101", "sim-2", "failed", "no answer from the receiving fax machine"),
            ("+15555550102", "rejected", None, None),
            ("+15555550103", "unavailable", None, None),
            ("+4930123456789", "sim-3", "delivered", None),
            ("+15555550199", "sim-4", "delivered", None),
        ]
        for i, (to, sent, final, error) in enumerate(table):
            with self.subTest(to=to):
                try:
                    answer = self.sim.send(req(to, key="k%d" % i))
                except PluginError as e:
                    self.assertEqual(e.kind, sent)
                    continue
                self.assertEqual(answer, FaxAnswer(sent, "in_progress", check_after_ms=0))
                self.assertEqual(self.sim.status(sent), FaxAnswer(sent, final, error))
                self.assertEqual(self.sim.status(sent), FaxAnswer(sent, final, error), "final states stay")

    def test_refusals_say_why_without_the_number(self):
        with self.assertRaises(PluginError) as rejected:
            self.sim.send(req("+15555550102"))
        self.assertEqual((rejected.exception.message, rejected.exception.retry_after_ms),
                         ("the provider refused the destination", None))
        with self.assertRaises(PluginError) as busy:
            self.sim.send(req("+15555550103"))
        self.assertEqual((busy.exception.kind, busy.exception.retry_after_ms), ("unavailable", 1000))

    def test_invalid_destinations(self):
        for to in ["15555550100", "+05555550100", "+123456", "+1234567890123456", "+1555555010a", "",
                   "+15555550100\n", " +15555550100", "+1 555 555 0100", "++15555550100", "+１５５５５５５０１００"]:
            with self.subTest(to=to):
                with self.assertRaises(PluginError) as caught:
                    self.sim.send(req(to))
                self.assertEqual((caught.exception.kind, caught.exception.message), ("rejected", "invalid destination"))
        for to in ["+1234567", "+123456789012345"]:
            with self.subTest(to=to):
                self.sim.send(req(to, key=to))

    def test_refused_sends_create_nothing(self):
        for to in ["+15555550102", "+15555550103", "bad"]:
            with self.assertRaises(PluginError):
                self.sim.send(req(to, key="same"))
        self.assertEqual(self.sim.send(req("+15555550100", key="same")).provider_id, "sim-1")


class Idempotency(unittest.TestCase):
    def setUp(self):
        self.sim = SimulatedProvider()

    def test_the_same_key_answers_the_same_fax_in_its_current_state(self):
        first = self.sim.send(req("+15555550101", key="k"))
        self.assertEqual(self.sim.send(req("+15555550101", key="k")), first)
        self.sim.status(first.provider_id)
        again = self.sim.send(req("+15555550101", key="k"))
        self.assertEqual(again, FaxAnswer(first.provider_id, "failed", "no answer from the receiving fax machine"))
        self.assertEqual(self.sim.send(req("+15555550101", key="other")).provider_id, "sim-2")

    def test_concurrent_sends(self):
        results = []
        lock = threading.Lock()

        def go(key):
            answer = self.sim.send(req("+15555550100", key=key))
            with lock:
                results.append((key, answer.provider_id))

        threads = [threading.Thread(target=go, args=("k%d" % (i % 10),)) for i in range(200)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        by_key = {}
        for key, pid in results:
            by_key.setdefault(key, set()).add(pid)
        self.assertEqual(len(by_key), 10)
        self.assertTrue(all(len(ids) == 1 for ids in by_key.values()), by_key)
        self.assertEqual({pid for ids in by_key.values() for pid in ids}, {"sim-%d" % i for i in range(1, 11)})


class StatusAndCancel(unittest.TestCase):
    def setUp(self):
        self.sim = SimulatedProvider()

    def test_unknown_faxes(self):
        for op in (self.sim.status, self.sim.cancel):
            with self.subTest(op=op.__name__):
                with self.assertRaises(PluginError) as caught:
                    op("sim-404")
                self.assertEqual(caught.exception.kind, "not_found")

    def test_cancel_an_unfinished_fax(self):
        pid = self.sim.send(req("+15555550100")).provider_id
        self.assertIsNone(self.sim.cancel(pid))
        self.assertEqual(self.sim.status(pid), FaxAnswer(pid, "failed", "cancelled"))

    def test_cancel_a_finished_fax_changes_nothing(self):
        pid = self.sim.send(req("+15555550100")).provider_id
        self.sim.status(pid)
        self.sim.cancel(pid)
        self.assertEqual(self.sim.status(pid), FaxAnswer(pid, "delivered"))


class Callbacks(unittest.TestCase):
    def setUp(self):
        self.sim = SimulatedProvider(SECRET)

    def test_the_signature_is_hex_hmac_sha256_of_the_body(self):
        # RFC 4231-style known answer (key "key", the quick brown fox).
        self.assertEqual(sign_sim_webhook("key", b"The quick brown fox jumps over the lazy dog"),
                         "f7bc83f430538424b13298e6aa6fb143ef4d59a14946175997479dbc2d1a3cd8")
        self.assertEqual(sign_sim_webhook(b"key", b"x"), hmac.new(b"key", b"x", hashlib.sha256).hexdigest())

    def test_an_authentic_callback_reports_and_updates(self):
        pid = self.sim.send(req("+15555550100")).provider_id
        events = self.sim.webhook(callback({"providerId": pid, "status": "failed", "error": "paper jam"}))
        self.assertEqual(events, [FaxAnswer(pid, "failed", "paper jam")])
        self.assertEqual(self.sim.status(pid), FaxAnswer(pid, "failed", "paper jam"))

    def test_callback_table(self):
        table = [
            ({"providerId": "sim-77", "status": "delivered"}, [FaxAnswer("sim-77", "delivered")]),
            ({"providerId": "sim-77", "status": "delivered", "error": None}, [FaxAnswer("sim-77", "delivered")]),
            ({"providerId": "sim-77", "status": "failed"}, [FaxAnswer("sim-77", "failed", "transmission failed")]),
            ({"providerId": "sim-77", "status": "failed", "error": "x"}, [FaxAnswer("sim-77", "failed", "x")]),
        ]
        for doc, events in table:
            with self.subTest(doc=doc):
                self.assertEqual(self.sim.webhook(callback(doc)), events)

    def test_a_finished_fax_keeps_its_state(self):
        pid = self.sim.send(req("+15555550100")).provider_id
        self.sim.status(pid)
        self.assertEqual(self.sim.webhook(callback({"providerId": pid, "status": "failed"}))[0].status, "failed")
        self.assertEqual(self.sim.status(pid).status, "delivered")

    def test_forgeries_are_unauthenticated(self):
        doc = {"providerId": "sim-1", "status": "delivered"}
        body = json.dumps(doc).encode()
        good = sign_sim_webhook(SECRET, body)
        table = [
            ("no signature", WebhookRequest("u", [("content-type", "application/json")], body)),
            ("wrong secret", callback(doc, secret="guess")),
            ("empty signature", callback(doc, signature="")),
            ("upper-case hex", callback(doc, signature=good.upper())),
            ("truncated", callback(doc, signature=good[:32])),
            ("signature of another body", callback(body + b" ", signature=good)),
            ("tampered body", WebhookRequest("u", [("x-sim-signature", good)],
                                             body.replace(b"delivered", b"failed\"  "))),
            ("other header", callback(doc, header="x-signature")),
            ("two signatures", WebhookRequest("u", [("x-sim-signature", good), ("x-sim-signature", good)], body)),
            ("non-ascii signature", callback(doc, signature="é" * 64)),
            ("signature of nothing", callback(doc, signature=sign_sim_webhook(SECRET, b""))),
        ]
        for case, forged in table:
            with self.subTest(case=case):
                with self.assertRaises(PluginError) as caught:
                    self.sim.webhook(forged)
                self.assertEqual(caught.exception.kind, "unauthenticated")

    def test_the_header_name_is_case_insensitive(self):
        self.assertEqual(len(self.sim.webhook(callback({"providerId": "a", "status": "delivered"},
                                                       header="X-Sim-Signature"))), 1)

    def test_without_a_secret_every_callback_is_unauthenticated(self):
        for secret in (None, "", b""):
            with self.subTest(secret=secret):
                sim = SimulatedProvider(secret)
                with self.assertRaises(PluginError) as caught:
                    sim.webhook(callback({"providerId": "a", "status": "delivered"}, secret=b""))
                self.assertEqual(caught.exception.kind, "unauthenticated")

    def test_malformed_authentic_bodies_are_bad_requests(self):
        table = [b"not json", b"\xff", b"[]", b'"sim-1"', b"{}",
                 b'{"providerId":"sim-1"}', b'{"status":"delivered"}',
                 b'{"providerId":"sim-1","status":"queued"}', b'{"providerId":"sim-1","status":"in_progress"}',
                 b'{"providerId":"","status":"delivered"}', b'{"providerId":1,"status":"delivered"}',
                 b'{"providerId":"sim-1","status":"failed","error":5}',
                 b'{"providerId":"sim-1","status":"delivered","to":"+15551234567"}',
                 b"[" * 50000 + b"]" * 50000]
        for body in table:
            with self.subTest(body=body[:60]):
                with self.assertRaises(PluginError) as caught:
                    self.sim.webhook(callback(body))
                self.assertEqual(caught.exception.kind, "bad_request")
                self.assertNotIn("5551234567", caught.exception.message)


if __name__ == "__main__":
    unittest.main()
