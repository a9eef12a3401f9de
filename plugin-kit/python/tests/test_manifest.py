"""validate_manifest follows check_manifest (contract/src/sidecar.rs), and a server refuses to start with a
manifest that fails it."""

import dataclasses
import unittest

import _support  # noqa: F401  (import path)
from _support import good_manifest
from faxbot_plugin_kit import BUILTIN_IDS, Manifest, WebhookSpec, validate_manifest


def edit(**changes):
    return lambda m: dataclasses.replace(m, **changes)


def without(cap):
    return lambda m: dataclasses.replace(m, capabilities=tuple(c for c in m.capabilities if c != cap))


class ValidateManifest(unittest.TestCase):
    def test_table(self):
        # (case, edit, field expected to be reported or None for a manifest that passes)
        table = [
            ("good", lambda m: m, None),
            ("protocol 2", edit(protocol=2), "protocol"),
            ("protocol as text", edit(protocol="1"), "protocol"),
            ("protocol as bool", edit(protocol=True), "protocol"),
            ("id upper", edit(id="Acme"), "id"),
            ("id one char", edit(id="a"), "id"),
            ("id two chars", edit(id="ab"), None),
            ("id 63 chars", edit(id="a" * 63), None),
            ("id 64 chars", edit(id="a" * 64), "id"),
            ("id digit first", edit(id="1fax"), "id"),
            ("id underscore", edit(id="acme_fax"), "id"),
            ("id trailing newline", edit(id="acme\n"), "id"),
            ("id non-ascii", edit(id="acmé"), "id"),
            ("id builtin", edit(id="phaxio"), "id"),
            ("name number", edit(name="Fax +15551234567"), "name"),
            ("name four digits", edit(name="Fax 12-34"), None),
            ("name five digits split", edit(name="Fax 555-12"), "name"),
            ("name blank", edit(name="   "), "name"),
            ("name empty", edit(name=""), "name"),
            ("name 200 bytes", edit(name="n" * 200), None),
            ("name 201 bytes", edit(name="n" * 201), "name"),
            ("name 101 two-byte chars", edit(name="é" * 101), "name"),
            ("name not text", edit(name=None), "name"),
            ("version with a date", edit(version="20240101"), None),
            ("version with a space", edit(version="1 2"), "version"),
            ("version semver", edit(version="1.2.3"), None),
            # The contract counts digits across dots (phi::may_hold_number), so this is refused there too.
            ("version six digits across dots", edit(version="10.20.30"), None),
            ("version empty", edit(version=""), "version"),
            ("hipaa not bool", edit(hipaa_compliant="yes"), "hipaaCompliant"),
            ("idempotent not bool", edit(idempotent=1), "idempotent"),
            ("needsDocument not bool", edit(needs_document=None), "needsDocument"),
            ("no send", without("send"), "capabilities"),
            ("no status", without("status"), "capabilities"),
            ("unknown capability", edit(capabilities=("send", "status", "cancel", "webhook", "fly")), "capabilities"),
            ("send and status only", edit(capabilities=("send", "status"), webhook=None), None),
            ("poll fast", edit(poll_interval_ms=10), "pollIntervalMs"),
            ("poll 999", edit(poll_interval_ms=999), "pollIntervalMs"),
            ("poll 1000", edit(poll_interval_ms=1000), None),
            ("poll 3600000", edit(poll_interval_ms=3_600_000), None),
            ("poll 3600001", edit(poll_interval_ms=3_600_001), "pollIntervalMs"),
            ("poll float", edit(poll_interval_ms=5000.0), "pollIntervalMs"),
            ("unverified", edit(webhook=WebhookSpec("none", 1)), "webhook.verification"),
            ("unverified shouting", edit(webhook=WebhookSpec("  NONE ", 1)), "webhook.verification"),
            ("unverified blank", edit(webhook=WebhookSpec(" \t", 1)), "webhook.verification"),
            ("webhook without section", edit(webhook=None), "webhook"),
            ("section without capability", without("webhook"), "webhook"),
            ("huge callbacks", edit(webhook=WebhookSpec("hmac", 33_554_433)), "webhook.maxBytes"),
            ("largest callbacks", edit(webhook=WebhookSpec("hmac", 33_554_432)), None),
            ("empty callbacks", edit(webhook=WebhookSpec("hmac", 0)), "webhook.maxBytes"),
            ("one-byte callbacks", edit(webhook=WebhookSpec("hmac", 1)), None),
            ("webhook section not a spec", edit(webhook={"verification": "hmac"}), "webhook"),
        ]
        for case, change, field in table:
            with self.subTest(case=case):
                problems = validate_manifest(change(good_manifest()))
                if field is None:
                    self.assertEqual(problems, [])
                else:
                    self.assertIn(field, [f for f, _ in problems], problems)

    def test_every_builtin_id_is_refused(self):
        self.assertEqual(BUILTIN_IDS, {"test", "phaxio", "sinch", "sip", "external", "local", "s3", "api_keys"})
        for builtin in sorted(BUILTIN_IDS):
            with self.subTest(id=builtin):
                problems = validate_manifest(good_manifest(id=builtin))
                self.assertIn(("id", "`%s` is a built-in plugin's id" % builtin), problems)

    def test_every_problem_is_reported_with_the_contracts_words(self):
        bad = good_manifest(protocol=2, id="X", capabilities=("webhook",), poll_interval_ms=1,
                            webhook=WebhookSpec("none", 0))
        self.assertEqual(validate_manifest(bad), [
            ("protocol", "this server speaks protocol 1, the plugin 2"),
            ("id", "must be 2–63 lower-case letters, digits or '-', starting with a letter"),
            ("capabilities", "must include `send`"),
            ("capabilities", "must include `status`"),
            ("pollIntervalMs", "must be between 1000 and 3600000"),
            ("webhook.verification", "callbacks must be authenticated; `none` is refused"),
            ("webhook.maxBytes", "must be between 1 and 33554432"),
        ])

    def test_not_a_manifest(self):
        self.assertEqual([f for f, _ in validate_manifest({"id": "acme-fax"})], [""])


class ManifestJson(unittest.TestCase):
    # The example of GET /v1/manifest in docs/plugin-protocol.yaml.
    EXAMPLE = {
        "protocol": 1, "id": "acme-fax", "name": "Acme Fax", "version": "0.1.0", "hipaaCompliant": True,
        "capabilities": ["send", "status", "cancel", "webhook"], "idempotent": True, "needsDocument": True,
        "pollIntervalMs": 5000,
        "webhook": {"verification": "HMAC-SHA256 of the body in X-Acme-Signature", "maxBytes": 1048576},
    }

    def test_round_trip_of_the_documents_example(self):
        m = Manifest.from_json(self.EXAMPLE)
        self.assertEqual(validate_manifest(m), [])
        self.assertEqual(m.to_json(), self.EXAMPLE)

    def test_max_bytes_defaults_and_no_webhook_is_omitted(self):
        doc = dict(self.EXAMPLE, webhook={"verification": "hmac"})
        self.assertEqual(Manifest.from_json(doc).webhook.max_bytes, 1024 * 1024)
        plain = dict(self.EXAMPLE, capabilities=["send", "status"], webhook=None)
        self.assertNotIn("webhook", Manifest.from_json(plain).to_json())

    def test_unknown_fields_are_refused(self):
        from faxbot_plugin_kit.types import ShapeError

        with self.assertRaises(ShapeError):
            Manifest.from_json(dict(self.EXAMPLE, extra=1))
        with self.assertRaises(ShapeError):
            Manifest.from_json(dict(self.EXAMPLE, webhook={"verification": "hmac", "secret": "x"}))


if __name__ == "__main__":
    unittest.main()
