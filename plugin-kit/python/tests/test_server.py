"""The kit's HTTP side: every route and refusal, the token, size limits, parsing, and PHI in answers and logs.

Requests go over real loopback sockets: through MockFaxbot where the server's own calls suffice, and raw
where a test must send what an HTTP client would not (no Content-Length, a lying one, no body at all).
"""

import contextlib
import hmac
import io
import json
import logging
import socket
import time
import unittest
from unittest import mock

import _support  # noqa: F401  (import path)
from _support import NUMBER, NUMBER_DIGITS, FakePlugin, good_manifest, raiser, raw_exchange
from faxbot_plugin_kit import (
    FaxAnswer,
    ManifestError,
    Plugin,
    PluginError,
    WebhookSpec,
    make_server,
    webhook_body_limit,
)
from faxbot_plugin_kit.testing import MockFaxbot

TOKEN = "s3cret-token"
PDF = b"%PDF-1.4\n"


def send_body(**changes):
    body = {"jobId": "j1", "to": NUMBER, "idempotencyKey": "k1",
            "document": {"contentType": "application/pdf", "base64": "JVBERi0xLjQK"}}
    body.update(changes)
    return body


def head(method, path, *headers, close=True):
    """A request head; ``close`` asks the server to close after answering, so raw_exchange returns at once
    (tests of connections the server must close by itself pass ``close=False``)."""
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1"] + list(headers)
    lines += (["Connection: close"] if close else []) + ["", ""]
    return "\r\n".join(lines).encode("latin-1")


def status_of(raw):
    return int(raw.split(b" ", 2)[1]) if raw else None


def json_of(raw):
    return json.loads(raw.split(b"\r\n\r\n", 1)[1].decode())


class ServerTest(unittest.TestCase):
    """Serves a FakePlugin (with TOKEN) for each test."""

    token = TOKEN
    manifest = None
    max_body_bytes = 48 * 1024 * 1024

    def setUp(self):
        self.plugin = FakePlugin(self.manifest)
        self.faxbot = MockFaxbot(self.plugin, token=self.token, max_body_bytes=self.max_body_bytes).start()
        self.addCleanup(self.faxbot.close)

    def assertError(self, resp, status, kind):
        self.assertEqual(resp.status, status, resp)
        self.assertEqual(resp.kind, kind, resp)
        self.assertEqual(set(resp.json), {"error"})
        self.assertLessEqual(set(resp.json["error"]), {"kind", "message", "retryAfterMs"})
        self.assertNotIn(NUMBER_DIGITS.encode(), resp.body)


class Routes(ServerTest):
    def test_manifest(self):
        resp = self.faxbot.manifest()
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json, good_manifest().to_json())
        self.assertEqual(resp.headers["content-type"], "application/json")
        self.assertEqual(resp.headers["cache-control"], "no-store")

    def test_send_passes_the_parsed_request_and_answers_the_plugins_fax(self):
        resp = self.faxbot.send(NUMBER, document=PDF, idempotency_key="k9", job_id="j9", pages=2)
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json, {"providerId": "p-1", "status": "in_progress", "checkAfterMs": 2000})
        op, req = self.plugin.calls[0]
        self.assertEqual((op, req.job_id, req.to, req.idempotency_key, req.pages), ("send", "j9", NUMBER, "k9", 2))
        self.assertEqual(req.document.data, PDF)

    def test_status_and_cancel_receive_the_decoded_provider_id(self):
        self.plugin.answer = FaxAnswer("a/b c", "delivered")
        self.assertEqual(self.faxbot.status("a/b c").json, {"providerId": "a/b c", "status": "delivered"})
        resp = self.faxbot.cancel("a/b c")
        self.assertEqual((resp.status, resp.body), (204, b""))
        self.assertEqual(self.plugin.calls, [("status", "a/b c"), ("cancel", "a/b c")])

    def test_webhook_passes_the_callback_as_received(self):
        self.plugin.events = [FaxAnswer("p-1", "delivered"), FaxAnswer("p-2", "failed", "line busy")]
        resp = self.faxbot.webhook(b'{"id":1}', {"X-Acme-Signature": "abc"}, url="https://f.example/webhooks/x")
        self.assertEqual(resp.status, 200)
        self.assertEqual(resp.json, {"events": [{"providerId": "p-1", "status": "delivered"},
                                                {"providerId": "p-2", "status": "failed", "error": "line busy"}]})
        op, req = self.plugin.calls[0]
        self.assertEqual((req.url, req.headers, req.body),
                         ("https://f.example/webhooks/x", [("x-acme-signature", "abc")], b'{"id":1}'))

    def test_a_query_string_is_ignored(self):
        self.assertEqual(self.faxbot.request("GET", "/v1/manifest?x=1").status, 200)

    def test_unknown_routes(self):
        for path in ["/", "/v1", "/v1/", "/v1/health/", "/v1/faxes", "/v1/faxes/", "/v1/faxes//cancel",
                     "/v1/faxes/x/y", "/v1/faxes/x/cancel/more", "/v2/send", "/v1/faxes/%ff", "//host/v1/manifest",
                     "/v1/faxes/" + "x" * 201]:
            with self.subTest(path=path):
                self.assertError(self.faxbot.request("GET", path), 404, "not_found")
        self.assertEqual(self.plugin.calls, [])
        self.assertEqual(self.faxbot.request("GET", "/v1/faxes/" + "x" * 200).status, 200)

    def test_wrong_methods(self):
        table = [("POST", "/v1/manifest", "GET"), ("GET", "/v1/send", "POST"), ("DELETE", "/v1/faxes/x", "GET"),
                 ("GET", "/v1/faxes/x/cancel", "POST"), ("PUT", "/v1/webhook", "POST"),
                 ("POST", "/v1/health", "GET"), ("PATCH", "/v1/send", "POST"), ("OPTIONS", "/v1/manifest", "GET")]
        for method, path, allowed in table:
            with self.subTest(method=method, path=path):
                resp = self.faxbot.request(method, path)
                self.assertError(resp, 405, "bad_request")
                self.assertEqual(resp.headers["allow"], allowed)
        self.assertEqual(self.plugin.calls, [])

    def test_head_has_no_body(self):
        resp = self.faxbot.request("HEAD", "/v1/manifest")
        self.assertEqual((resp.status, resp.body), (405, b""))

    def test_unknown_methods_get_the_error_body(self):
        resp = self.faxbot.request("BREW", "/v1/send")
        self.assertError(resp, 501, "unsupported")

    def test_malformed_request_lines_get_the_error_body_without_an_echo(self):
        for line in ["GET /v1/faxes/%s HTTP/1.1 extra" % NUMBER, "GET /v1/faxes/%s" % NUMBER,
                     "POST /v1/faxes/%s" % NUMBER, "GET /v1/faxes/%s HTTP/9.%s" % (NUMBER, NUMBER)]:
            with self.subTest(line=line):
                raw = raw_exchange(self.faxbot.port, (line + "\r\n\r\n").encode())
                self.assertTrue(raw.startswith(b"HTTP/1.1 4") or raw.startswith(b"HTTP/1.1 505"), raw)
                self.assertIn(b'"kind":"bad_request"', raw)
                self.assertNotIn(NUMBER_DIGITS.encode(), raw)
        raw = raw_exchange(self.faxbot.port, ("GET /v1/faxes/%s HTTP/1.1 extra\r\n\r\n" % NUMBER).encode())
        self.assertEqual(status_of(raw), 400)
        self.assertEqual(json_of(raw)["error"]["kind"], "bad_request")
        self.assertNotIn(NUMBER_DIGITS.encode(), raw)

    def test_the_protocol_header(self):
        for value, status in [("1", 200), (" 1 ", 200), ("2", 400), ("one", 400)]:
            with self.subTest(value=value):
                resp = self.faxbot.request("GET", "/v1/manifest", headers={"Faxbot-Plugin-Protocol": value})
                self.assertEqual(resp.status, status)
        raw = raw_exchange(self.faxbot.port, head("GET", "/v1/manifest", "Authorization: Bearer " + TOKEN,
))
        self.assertEqual(status_of(raw), 200, "a request without the header is served")

    def test_keep_alive_serves_several_requests_on_one_connection(self):
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.faxbot.port, timeout=5)
        self.addCleanup(conn.close)
        auth = {"Authorization": "Bearer " + TOKEN}
        for _ in range(3):
            conn.request("GET", "/v1/manifest", headers=auth)
            resp = conn.getresponse()
            resp.read()
            self.assertEqual(resp.status, 200)
        conn.request("POST", "/v1/send", body=json.dumps(send_body()), headers=auth)
        resp = conn.getresponse()
        resp.read()
        self.assertEqual(resp.status, 200)


class Authentication(ServerTest):
    def test_authorization_values(self):
        table = [
            (None, 401), ("Bearer wrong", 401), ("Bearer " + TOKEN, 200), ("bearer " + TOKEN, 200),
            ("BEARER " + TOKEN, 200), ("Bearer  %s " % TOKEN, 200), ("Basic " + TOKEN, 401), (TOKEN, 401),
            ("Bearer " + TOKEN + "x", 401), ("Bearer " + TOKEN[:-1], 401), ("Bearer", 401), ("", 401),
            ("Bearer tökén", 401),
        ]
        for value, status in table:
            with self.subTest(value=value):
                headers = {} if value is None else {"Authorization": value}
                resp = self.faxbot.request("GET", "/v1/manifest", headers=headers, authorize=False)
                self.assertEqual(resp.status, status)
                if status == 401:
                    self.assertError(resp, 401, "unauthenticated")
                    self.assertIn("bearer", resp.headers["www-authenticate"].lower())

    def test_two_authorization_headers_are_refused(self):
        raw = raw_exchange(self.faxbot.port, head("GET", "/v1/manifest", "Authorization: Bearer " + TOKEN,
                                                  "Authorization: Bearer " + TOKEN))
        self.assertEqual(status_of(raw), 401)

    def test_every_route_but_health_needs_the_token_and_the_plugin_is_not_called(self):
        table = [("GET", "/v1/manifest", None), ("POST", "/v1/send", send_body()), ("GET", "/v1/faxes/p-1", None),
                 ("POST", "/v1/faxes/p-1/cancel", None),
                 ("POST", "/v1/webhook", {"url": "u", "headers": [], "bodyBase64": ""}),
                 ("GET", "/v1/nowhere", None), ("DELETE", "/v1/send", None)]
        for method, path, body in table:
            with self.subTest(path=path):
                resp = self.faxbot.request(method, path, body=body, authorize=False)
                self.assertError(resp, 401, "unauthenticated")
        self.assertEqual(self.plugin.calls, [])
        self.assertEqual(self.faxbot.request("GET", "/v1/health", authorize=False).status, 200)

    def test_the_token_is_compared_in_constant_time(self):
        with mock.patch("faxbot_plugin_kit.server.hmac.compare_digest", wraps=hmac.compare_digest) as compare:
            self.faxbot.request("GET", "/v1/manifest", headers={"Authorization": "Bearer nope"}, authorize=False)
        compare.assert_called_once_with(b"nope", TOKEN.encode())

    def test_a_non_ascii_token_works(self):
        with MockFaxbot(FakePlugin(), token="tökén") as faxbot:
            self.assertEqual(faxbot.manifest().status, 200)
            self.assertEqual(faxbot.request("GET", "/v1/manifest", authorize=False).status, 401)

    def test_an_empty_token_is_refused_at_start(self):
        for token in ["", b"bytes"]:
            with self.subTest(token=token), self.assertRaises(ValueError):
                make_server(FakePlugin(), "127.0.0.1", 0, token=token)


class WithoutToken(ServerTest):
    token = None

    def test_every_route_is_open(self):
        self.assertEqual(self.faxbot.request("GET", "/v1/manifest", authorize=False).status, 200)
        self.assertEqual(self.faxbot.request("POST", "/v1/send", body=send_body(), authorize=False).status, 200)


class Health(ServerTest):
    def test_answers(self):
        table = [
            ("ok", None, 200, {"status": "ok"}),
            ("failing", "provider credentials missing", 503,
             {"status": "failing", "message": "provider credentials missing"}),
            ("masked", "cannot reach %s" % NUMBER, 503, {"status": "failing", "message": "cannot reach …4567"}),
            ("plugin error", raiser(PluginError("credentials", "key %s refused" % NUMBER)), 503,
             {"status": "failing", "message": "key …4567 refused"}),
            ("crash", raiser(RuntimeError(NUMBER)), 503, {"status": "failing", "message": "internal plugin error"}),
        ]
        for case, answer, status, body in table:
            with self.subTest(case=case):
                self.plugin.health_answer = answer
                with self.assertLogs("faxbot_plugin_kit", "DEBUG"):
                    resp = self.faxbot.request("GET", "/v1/health", authorize=False)
                self.assertEqual((resp.status, resp.json), (status, body))


class PluginAnswers(ServerTest):
    def test_plugin_errors_answer_their_kinds_status(self):
        table = [("bad_request", 400), ("unauthenticated", 401), ("credentials", 502), ("rejected", 422),
                 ("not_found", 404), ("rate_limited", 429), ("unavailable", 503), ("unsupported", 501)]
        for kind, status in table:
            for op in ("send", "status", "cancel", "webhook"):
                with self.subTest(kind=kind, op=op):
                    self.plugin.answer = self.plugin.events = raiser(PluginError(kind, "no luck"))
                    resp = self._call(op)
                    self.assertError(resp, status, kind)
                    self.assertEqual(resp.json["error"]["message"], "no luck")
                    self.assertNotIn("retry-after", resp.headers)

    def _call(self, op):
        if op == "send":
            return self.faxbot.send(NUMBER)
        if op == "status":
            return self.faxbot.status("p-1")
        if op == "cancel":
            return self.faxbot.cancel("p-1")
        return self.faxbot.webhook(b"{}", {})

    def test_retry_after(self):
        for ms, header in [(1, "1"), (999, "1"), (1000, "1"), (1001, "2"), (0, "0"), (120000, "120")]:
            with self.subTest(ms=ms):
                self.plugin.answer = raiser(PluginError("rate_limited", "slow down", ms))
                resp = self.faxbot.send(NUMBER)
                self.assertError(resp, 429, "rate_limited")
                self.assertEqual(resp.json["error"]["retryAfterMs"], ms)
                self.assertEqual(resp.headers["retry-after"], header)

    def test_error_messages_are_masked(self):
        for message in ["refused %s" % NUMBER, "refused +1 (555) 123-4567", "refused 555.123.4567"]:
            with self.subTest(message=message):
                self.plugin.answer = raiser(PluginError("rejected", message))
                resp = self.faxbot.send(NUMBER)
                self.assertError(resp, 422, "rejected")
                self.assertEqual(resp.json["error"]["message"], "refused …4567")

    def test_fax_answer_errors_are_masked(self):
        self.plugin.answer = FaxAnswer("p-1", "failed", "busy at %s" % NUMBER)
        resp = self.faxbot.status("p-1")
        self.assertEqual(resp.json["error"], "busy at …4567")
        self.assertNotIn(NUMBER_DIGITS.encode(), resp.body)

    def test_other_exceptions_are_an_internal_error_and_their_text_is_never_sent_or_logged(self):
        for op in ("send", "status", "cancel", "webhook"):
            with self.subTest(op=op):
                self.plugin.answer = self.plugin.events = raiser(ValueError("bad number %s" % NUMBER))
                with self.assertLogs("faxbot_plugin_kit", "ERROR") as logs:
                    resp = self._call(op)
                self.assertError(resp, 503, "unavailable")
                self.assertEqual(resp.json["error"]["message"], "internal plugin error")
                text = "\n".join(logs.output)
                self.assertIn("ValueError", text)
                self.assertIn("_support.py", text, "the log says where it was raised")
                self.assertNotIn(NUMBER_DIGITS, text)

    def test_answers_of_the_wrong_type_are_an_internal_error(self):
        for op, answer in [("send", {"providerId": "p-1", "status": "queued"}), ("status", None),
                           ("webhook", FaxAnswer("p-1", "queued")), ("webhook", [{"providerId": "p-1"}])]:
            with self.subTest(op=op, answer=answer):
                self.plugin.answer = self.plugin.events = answer
                with self.assertLogs("faxbot_plugin_kit", "ERROR"):
                    resp = self._call(op)
                self.assertError(resp, 503, "unavailable")


class Capabilities(ServerTest):
    manifest = good_manifest(capabilities=("send", "status"), webhook=None)

    def test_routes_of_capabilities_the_manifest_lacks_are_unsupported(self):
        self.assertError(self.faxbot.cancel("p-1"), 501, "unsupported")
        self.assertError(self.faxbot.webhook(b"{}", {}), 501, "unsupported")
        self.assertEqual(self.plugin.calls, [])

    def test_the_base_class_defaults(self):
        class Minimal(Plugin):
            def manifest(self):
                return good_manifest()

        with MockFaxbot(Minimal()) as faxbot:
            self.assertEqual(faxbot.health().json, {"status": "ok"})
            self.assertError(faxbot.cancel("p-1"), 501, "unsupported")
            self.assertError(faxbot.webhook(b"{}", {}), 501, "unsupported")
            with self.assertLogs("faxbot_plugin_kit", "ERROR"):
                self.assertError(faxbot.send(NUMBER), 503, "unavailable")


class Parsing(ServerTest):
    def test_malformed_send_bodies_are_bad_requests_that_echo_nothing(self):
        table = [
            ("not json", ('{"to": "%s",' % NUMBER).encode()),
            ("trailing comma", ('{"jobId":"j","to":"%s","idempotencyKey":"k",}' % NUMBER).encode()),
            ("a list", json.dumps([NUMBER]).encode()),
            ("unknown field", json.dumps(send_body(**{NUMBER: 1})).encode()),
            ("duplicate key", ('{"jobId":"j","to":"%s","to":"%s","idempotencyKey":"k"}' % (NUMBER, NUMBER)).encode()),
            ("NaN", json.dumps(send_body(pages=float("nan"))).encode()),
            ("not utf-8", ('{"jobId":"j","to":"%s\xff"}' % NUMBER).encode("latin-1")),
            ("utf-16", json.dumps(send_body()).encode("utf-16")),
            ("deep", b"[" * 100000 + b"]" * 100000),
            ("to a number", json.dumps(send_body(to=15551234567)).encode()),
            ("bad base64", json.dumps(send_body(document={"contentType": "application/pdf",
                                                          "base64": NUMBER + "="})).encode()),
            ("no document", json.dumps(send_body(document=None)).encode()),
            ("empty", b""),
        ]
        for case, body in table:
            with self.subTest(case=case):
                resp = self.faxbot.request("POST", "/v1/send", body=body)
                self.assertError(resp, 400, "bad_request")
        self.assertEqual(self.plugin.calls, [])

    def test_malformed_webhook_bodies_are_bad_requests(self):
        for body in [b"{}", json.dumps({"url": NUMBER, "headers": [], "bodyBase64": "e30"}).encode(),
                     json.dumps({"url": "u", "headers": [[NUMBER]], "bodyBase64": ""}).encode()]:
            with self.subTest(body=body):
                self.assertError(self.faxbot.request("POST", "/v1/webhook", body=body), 400, "bad_request")
        self.assertEqual(self.plugin.calls, [])


class Limits(ServerTest):
    max_body_bytes = 4096
    # maxBytes 3 → 4 bytes of base64 + 64 KiB.
    manifest = good_manifest(webhook=WebhookSpec("hmac", 3))

    def post(self, path, length, body=b"", close=False):
        return raw_exchange(self.faxbot.port, head("POST", path, "Authorization: Bearer " + TOKEN,
                                                   "Content-Length: %s" % length, close=close), body)

    def test_webhook_limits(self):
        self.assertEqual(webhook_body_limit(self.manifest), 4 + 65536)
        self.assertEqual(webhook_body_limit(good_manifest()), 4 * 349526 + 65536)
        self.assertEqual(webhook_body_limit(good_manifest(capabilities=("send", "status"), webhook=None)),
                         4 * 349526 + 65536)

    def test_a_body_over_the_limit_is_refused_without_reading_it(self):
        # No body is sent at all: an answer (and a closed connection) within the timeout proves the server
        # did not wait for it.
        for path, limit in [("/v1/send", 4096), ("/v1/webhook", 65540)]:
            with self.subTest(path=path):
                started = time.monotonic()
                raw = self.post(path, limit + 1)
                self.assertLess(time.monotonic() - started, 4)
                self.assertEqual(status_of(raw), 413)
                self.assertEqual(json_of(raw)["error"]["kind"], "rejected")
                self.assertIn(b"Connection: close", raw)
        self.assertEqual(self.plugin.calls, [])

    def test_the_default_limit_refuses_without_reading(self):
        with MockFaxbot(FakePlugin(), token=TOKEN) as faxbot:
            raw = raw_exchange(faxbot.port, head("POST", "/v1/send", "Authorization: Bearer " + TOKEN,
                                                 "Content-Length: %d" % (48 * 1024 * 1024 + 1), close=False))
        self.assertEqual(status_of(raw), 413)
        self.assertIn("48.0 MiB", json_of(raw)["error"]["message"])

    def test_the_kits_own_messages_pass_the_mask_too(self):
        # The only variable text in the kit's messages is a limit; one long enough to look like a number
        # is masked like anything else (500 GB reads as 476837.2 MiB).
        with MockFaxbot(FakePlugin(), token=TOKEN, max_body_bytes=500 * 10**9) as faxbot:
            raw = raw_exchange(faxbot.port, head("POST", "/v1/send", "Authorization: Bearer " + TOKEN,
                                                 "Content-Length: %d" % (500 * 10**9 + 1), close=False))
        self.assertEqual(status_of(raw), 413)
        self.assertEqual(json_of(raw)["error"]["message"], "request body larger than the limit of …6837.2 MiB")

    def test_a_body_at_the_limit_is_read(self):
        for path, limit, doc in [("/v1/send", 4096, send_body()),
                                 ("/v1/webhook", 65540, {"url": "u", "headers": [], "bodyBase64": "YWJj"})]:
            with self.subTest(path=path):
                body = json.dumps(doc).encode()
                body += b" " * (limit - len(body))
                raw = self.post(path, limit, body, close=True)
                self.assertEqual(status_of(raw), 200, raw[:200])

    def test_content_length_is_required_and_must_be_a_number(self):
        auth = "Authorization: Bearer " + TOKEN
        # (case, request, status, whether the server must close because a body may still be on the wire)
        table = [
            ("no length", head("POST", "/v1/send", auth), 411, False),
            ("no length webhook", head("POST", "/v1/webhook", auth), 411, False),
            ("chunked", head("POST", "/v1/send", auth, "Transfer-Encoding: chunked", close=False)
             + b"2\r\n{}\r\n0\r\n\r\n", 411, True),
            ("letters", head("POST", "/v1/send", auth, "Content-Length: ten", close=False), 400, True),
            ("negative", head("POST", "/v1/send", auth, "Content-Length: -1", close=False), 400, True),
            ("two lengths", head("POST", "/v1/send", auth, "Content-Length: 2", "Content-Length: 2", close=False),
             400, True),
            ("huge", head("POST", "/v1/send", auth, "Content-Length: " + "9" * 30, close=False), 400, True),
        ]
        for case, request, status, closes in table:
            with self.subTest(case=case):
                started = time.monotonic()
                raw = raw_exchange(self.faxbot.port, request)
                self.assertLess(time.monotonic() - started, 4)
                self.assertEqual(status_of(raw), status, raw[:200])
                self.assertEqual(json_of(raw)["error"]["kind"], "bad_request")
                self.assertEqual(b"Connection: close" in raw, closes)

    def test_cancel_needs_no_body(self):
        raw = raw_exchange(self.faxbot.port, head("POST", "/v1/faxes/p-1/cancel", "Authorization: Bearer " + TOKEN))
        self.assertEqual(status_of(raw), 204)

    def test_expect_100_continue(self):
        auth = "Authorization: Bearer " + TOKEN
        raw = raw_exchange(self.faxbot.port, head("POST", "/v1/send", auth, "Content-Length: 5000",
                                                  "Expect: 100-continue", close=False))
        self.assertEqual(status_of(raw), 413)
        self.assertNotIn(b"100 Continue", raw)

        body = json.dumps(send_body()).encode()
        with socket.create_connection(("127.0.0.1", self.faxbot.port), timeout=5) as s:
            s.sendall(head("POST", "/v1/send", auth, "Content-Length: %d" % len(body), "Expect: 100-continue"))
            interim = s.recv(1024)
            self.assertTrue(interim.startswith(b"HTTP/1.1 100 Continue"), interim)
            s.sendall(body)
            final = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                final += chunk
        self.assertEqual(status_of(final), 200, final)

    def test_a_refusal_before_the_body_closes_the_connection(self):
        # A 401 for a POST whose body is still on the wire: the body must not be read as the next request.
        smuggled = b"GET /v1/health HTTP/1.1\r\n\r\n"
        raw = raw_exchange(self.faxbot.port, head("POST", "/v1/send", "Content-Length: %d" % len(smuggled),
                                                  close=False), smuggled)
        self.assertEqual(status_of(raw), 401)
        self.assertEqual(raw.count(b"HTTP/1.1 "), 1, raw)

    def test_a_client_that_hangs_up_mid_body_does_not_break_the_server(self):
        with socket.create_connection(("127.0.0.1", self.faxbot.port), timeout=5) as s:
            s.sendall(head("POST", "/v1/send", "Authorization: Bearer " + TOKEN, "Content-Length: 100", close=False)
                      + b"{")
            s.shutdown(socket.SHUT_WR)
            self.assertEqual(s.recv(1024), b"")
        self.assertEqual(self.faxbot.manifest().status, 200)
        self.assertEqual(self.plugin.calls, [])


class Logging(ServerTest):
    def test_requests_are_logged_by_method_path_and_status_only(self):
        with self.assertLogs("faxbot_plugin_kit", "DEBUG") as logs:
            self.faxbot.request("GET", "/v1/manifest?to=%2B15551234567")
            self.faxbot.request("GET", "/v1/faxes/%s" % NUMBER)
            self.faxbot.send(NUMBER)
        text = "\n".join(logs.output)
        self.assertIn("GET /v1/manifest 200", text)
        self.assertIn("GET /v1/faxes/…4567 200", text)
        self.assertIn("POST /v1/send 200", text)
        self.assertNotIn(NUMBER_DIGITS, text)
        self.assertNotIn("to=", text)

    def test_nothing_is_written_to_stderr(self):
        stderr = io.StringIO()
        with contextlib.redirect_stderr(stderr):
            self.faxbot.send(NUMBER)
            self.faxbot.request("GET", "/v1/nowhere")
            raw_exchange(self.faxbot.port, ("GET /%s HTTP/1.1 junk\r\n\r\n" % NUMBER).encode())
            raw_exchange(self.faxbot.port, b"\x16\x03\x01garbage\r\n\r\n")
            self.plugin.answer = raiser(ValueError(NUMBER))
            logging.getLogger("faxbot_plugin_kit").disabled = True
            try:
                self.faxbot.send(NUMBER)
            finally:
                logging.getLogger("faxbot_plugin_kit").disabled = False
        self.assertEqual(stderr.getvalue(), "")


class Startup(unittest.TestCase):
    def test_an_invalid_manifest_refuses_to_start_with_every_problem(self):
        plugin = FakePlugin(good_manifest(id="sip", poll_interval_ms=1))
        with self.assertRaises(ManifestError) as caught:
            make_server(plugin, "127.0.0.1", 0)
        self.assertEqual([f for f, _ in caught.exception.problems], ["id", "pollIntervalMs"])
        self.assertIn("pollIntervalMs", str(caught.exception))

    def test_port_zero_binds_a_free_port(self):
        server = make_server(FakePlugin(), "127.0.0.1", 0)
        self.addCleanup(server.server_close)
        port = server.server_address[1]
        self.assertNotEqual(port, 0)
        self.assertEqual(server.url, "http://127.0.0.1:%d" % port)

    def test_not_a_plugin(self):
        with self.assertRaises(TypeError):
            make_server(object(), "127.0.0.1", 0)

    def test_ipv6_loopback(self):
        if not socket.has_ipv6:
            self.skipTest("no IPv6")
        try:
            server = make_server(FakePlugin(), "::1", 0)
        except OSError:
            self.skipTest("no IPv6 loopback here")
        self.addCleanup(server.server_close)
        self.assertTrue(server.url.startswith("http://[::1]:"))


if __name__ == "__main__":
    unittest.main()
