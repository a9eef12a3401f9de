"""The protocol's messages: strict parsing, camelCase JSON, and reprs without PHI."""

import base64
import unittest

import _support  # noqa: F401  (import path)
from _support import NUMBER, NUMBER_DIGITS
from faxbot_plugin_kit import KIND_STATUS, Document, FaxAnswer, PluginError, SendRequest, WebhookRequest
from faxbot_plugin_kit.types import ShapeError, retry_after_seconds

PDF = b"%PDF-1.4\n"
PDF_B64 = base64.b64encode(PDF).decode()


def send_doc(**changes):
    doc = {"jobId": "j1", "to": NUMBER, "idempotencyKey": "k1", "pages": 1,
           "document": {"contentType": "application/pdf", "base64": PDF_B64}}
    for key, value in changes.items():
        if value is _DROP:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


_DROP = object()


class SendRequestParsing(unittest.TestCase):
    def test_the_documents_example(self):
        req = SendRequest.from_json({"jobId": "0f8e1c6a2b7d4e5f", "to": "+15555550100",
                                     "idempotencyKey": "0f8e1c6a2b7d4e5f", "pages": 1,
                                     "document": {"contentType": "application/pdf", "base64": "JVBERi0xLjQK"}})
        self.assertEqual(req.document.data, b"%PDF-1.4\n")
        self.assertEqual(req.pages, 1)
        self.assertEqual(SendRequest.from_json(req.to_json()), req)

    def test_optional_fields(self):
        req = SendRequest.from_json(send_doc(pages=_DROP, document=_DROP))
        self.assertIsNone(req.pages)
        self.assertIsNone(req.document)
        req = SendRequest.from_json(send_doc(pages=None, document=None))
        self.assertIsNone(req.document)

    def test_refusals(self):
        table = [
            ("not an object", [1, 2]),
            ("no jobId", send_doc(jobId=_DROP)),
            ("no to", send_doc(to=_DROP)),
            ("no idempotencyKey", send_doc(idempotencyKey=_DROP)),
            ("unknown field", send_doc(priority="high")),
            ("to a number", send_doc(to=15551234567)),
            ("pages text", send_doc(pages="1")),
            ("pages bool", send_doc(pages=True)),
            ("pages float", send_doc(pages=1.5)),
            ("document text", send_doc(document=PDF_B64)),
            ("document tiff", send_doc(document={"contentType": "image/tiff", "base64": PDF_B64})),
            ("document extra field", send_doc(document={"contentType": "application/pdf", "base64": PDF_B64,
                                                        "name": "x.pdf"})),
            ("document no base64", send_doc(document={"contentType": "application/pdf"})),
            ("base64 alphabet", send_doc(document={"contentType": "application/pdf", "base64": "JVBE*i0x"})),
            ("base64 unpadded", send_doc(document={"contentType": "application/pdf", "base64": "JVBERi0xLjQ"})),
            ("base64 url-safe", send_doc(document={"contentType": "application/pdf", "base64": "__-_"})),
            ("base64 newline", send_doc(document={"contentType": "application/pdf", "base64": "JVBE\nRi0x"})),
            ("base64 non-ascii", send_doc(document={"contentType": "application/pdf", "base64": "JVBEé"})),
            ("base64 surplus padding", send_doc(document={"contentType": "application/pdf", "base64": "JVBERi0xLjQK="})),
            ("base64 padding inside", send_doc(document={"contentType": "application/pdf", "base64": "JV==Ri0x"})),
            ("base64 three pads", send_doc(document={"contentType": "application/pdf", "base64": "J==="})),
            ("base64 trailing bits", send_doc(document={"contentType": "application/pdf", "base64": "QR=="})),
            ("base64 trailing bits one pad", send_doc(document={"contentType": "application/pdf", "base64": "QUJ="})),
        ]
        for case, doc in table:
            with self.subTest(case=case):
                with self.assertRaises(ShapeError) as caught:
                    SendRequest.from_json(doc)
                self.assertNotIn(NUMBER_DIGITS, str(caught.exception))

    def test_repr_shows_neither_number_nor_document(self):
        req = SendRequest.from_json(send_doc())
        text = repr(req)
        self.assertNotIn(NUMBER_DIGITS, text)
        self.assertNotIn("PDF", text)
        self.assertIn("…4567", text)
        self.assertIn("9 bytes", text)


class Base64(unittest.TestCase):
    def test_canonical_base64_round_trips(self):
        from faxbot_plugin_kit.types import decode_base64

        for data in [b"", b"a", b"ab", b"abc", b"abcd", bytes(range(256)), PDF]:
            with self.subTest(data=data):
                self.assertEqual(decode_base64(base64.b64encode(data).decode(), "x"), data)


class FaxAnswers(unittest.TestCase):
    def test_json(self):
        self.assertEqual(FaxAnswer("sim-1", "in_progress", check_after_ms=2000).to_json(),
                         {"providerId": "sim-1", "status": "in_progress", "checkAfterMs": 2000})
        self.assertEqual(FaxAnswer("sim-2", "failed", "line busy").to_json(),
                         {"providerId": "sim-2", "status": "failed", "error": "line busy"})

    def test_the_error_text_is_masked(self):
        answer = FaxAnswer("sim-2", "failed", "no answer at %s" % NUMBER)
        self.assertEqual(answer.to_json()["error"], "no answer at …4567")

    def test_invalid_answers_fail_where_they_are_made(self):
        table = [
            ("empty id", dict(provider_id="", status="queued")),
            ("long id", dict(provider_id="x" * 201, status="queued")),
            ("id not text", dict(provider_id=7, status="queued")),
            ("unknown status", dict(provider_id="a", status="sent")),
            ("negative check", dict(provider_id="a", status="queued", check_after_ms=-1)),
            ("bool check", dict(provider_id="a", status="queued", check_after_ms=True)),
            ("error not text", dict(provider_id="a", status="failed", error=500)),
        ]
        for case, fields in table:
            with self.subTest(case=case):
                with self.assertRaises(ValueError):
                    FaxAnswer(**fields)
        FaxAnswer("x" * 200, "queued")


class PluginErrors(unittest.TestCase):
    def test_kinds_and_statuses_are_the_contracts(self):
        self.assertEqual(KIND_STATUS, {
            "bad_request": 400, "unauthenticated": 401, "credentials": 502, "rejected": 422,
            "not_found": 404, "rate_limited": 429, "unavailable": 503, "unsupported": 501,
        })
        for kind, status in KIND_STATUS.items():
            self.assertEqual(PluginError(kind, "m").http_status, status)

    def test_body_masks_and_omits_an_absent_retry(self):
        self.assertEqual(PluginError("rejected", "bad number %s" % NUMBER).to_json(),
                         {"error": {"kind": "rejected", "message": "bad number …4567"}})
        self.assertEqual(PluginError("rate_limited", "slow down", 1500).to_json(),
                         {"error": {"kind": "rate_limited", "message": "slow down", "retryAfterMs": 1500}})
        self.assertNotIn(NUMBER_DIGITS, str(PluginError("rejected", NUMBER)))
        self.assertNotIn(NUMBER_DIGITS, repr(PluginError("rejected", NUMBER)))

    def test_invalid_errors(self):
        with self.assertRaises(ValueError):
            PluginError("oops", "m")
        with self.assertRaises(ValueError):
            PluginError("unavailable", "m", -1)
        with self.assertRaises(ValueError):
            PluginError("unavailable", "m", 1.5)

    def test_retry_after_rounds_up_to_whole_seconds(self):
        for ms, seconds in [(0, 0), (1, 1), (999, 1), (1000, 1), (1001, 2), (2500, 3), (60000, 60)]:
            with self.subTest(ms=ms):
                self.assertEqual(retry_after_seconds(ms), seconds)


class WebhookRequests(unittest.TestCase):
    def test_the_documents_example(self):
        req = WebhookRequest.from_json({
            "url": "https://fax.example.org/webhooks/acme-fax",
            "headers": [["content-type", "application/json"], ["x-acme-signature", "9f86d081884c7d65"]],
            "bodyBase64": "eyJpZCI6InNpbS0xIiwic3RhdHVzIjoiZGVsaXZlcmVkIn0=",
        })
        self.assertEqual(req.body, b'{"id":"sim-1","status":"delivered"}')
        self.assertEqual(req.header("X-Acme-Signature"), "9f86d081884c7d65")
        self.assertIsNone(req.header("x-missing"))
        self.assertEqual(WebhookRequest.from_json(req.to_json()), req)
        self.assertNotIn("sim-1", repr(req))

    def test_a_repeated_header_is_not_trusted(self):
        req = WebhookRequest("u", [("x-sig", "a"), ("X-Sig", "b")], b"")
        self.assertIsNone(req.header("x-sig"))
        self.assertEqual(req.header_values("x-sig"), ["a", "b"])

    def test_refusals(self):
        good = {"url": "u", "headers": [], "bodyBase64": ""}
        table = [
            ("no url", {"headers": [], "bodyBase64": ""}),
            ("unknown field", dict(good, method="POST")),
            ("headers object", dict(good, headers={"a": "b"})),
            ("header triple", dict(good, headers=[["a", "b", "c"]])),
            ("header value number", dict(good, headers=[["a", 1]])),
            ("bad base64", dict(good, bodyBase64="e30")),
        ]
        for case, doc in table:
            with self.subTest(case=case):
                with self.assertRaises(ShapeError):
                    WebhookRequest.from_json(doc)


class Documents(unittest.TestCase):
    def test_repr_is_a_size(self):
        self.assertEqual(repr(Document("application/pdf", b"secret")), "Document(content_type='application/pdf', 6 bytes)")


if __name__ == "__main__":
    unittest.main()
