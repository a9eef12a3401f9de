"""The manifest check: the rules of ``check_manifest`` in ``contract/src/sidecar.rs``, in Python.

The server runs that check when it starts using a plugin and refuses one that fails it. Running the same rules
in the kit, before the plugin even listens, turns "the server will not use my plugin" into an error at the
author's desk. The field names and messages are the contract's, so both sides read alike. Because Python does
not enforce a dataclass's field types, this check also refuses values of the wrong type, which the server's
JSON parser would refuse.
"""

from __future__ import annotations

import re
from typing import Any, List, Tuple

from .phi import LOG_MIN_DIGITS, may_hold_number
from .types import CAP_SEND, CAP_STATUS, CAP_WEBHOOK, CAPABILITIES, PROTOCOL_VERSION, WEBHOOK_MAX_BYTES, Manifest, WebhookSpec

BUILTIN_IDS = frozenset(("test", "phaxio", "sinch", "sip", "external", "local", "s3", "api_keys"))
"""Ids of the server's built-in plugins; a sidecar plugin cannot take one."""

_VERSION = re.compile(r"[0-9A-Za-z.+_-]{1,64}", re.ASCII)
_ID = re.compile(r"[a-z][a-z0-9-]{1,62}")

# Rust's `str::trim` removes Unicode White_Space; Python's `str.strip` removes a slightly different set (it
# includes the ASCII information separators), so the exact set is spelt out.
_WHITE_SPACE = "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"

_ASCII_LOWER = {c: c + 32 for c in range(ord("A"), ord("Z") + 1)}

Problems = List[Tuple[str, str]]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_manifest(manifest: Manifest) -> Problems:
    """Everything wrong with ``manifest`` as ``(field, problem)`` pairs; empty when the server will use it.

    Fields are named as in the JSON document (``pollIntervalMs``, ``webhook.maxBytes``).
    """
    problems: Problems = []

    def bad(field: str, problem: str) -> None:
        problems.append((field, problem))

    if not isinstance(manifest, Manifest):
        return [("", "the manifest must be a faxbot_plugin_kit.Manifest")]
    m = manifest

    if not _is_int(m.protocol) or m.protocol != PROTOCOL_VERSION:
        bad("protocol", "this server speaks protocol %d, the plugin %r" % (PROTOCOL_VERSION, m.protocol))

    if not isinstance(m.id, str) or not _ID.fullmatch(m.id):
        bad("id", "must be 2–63 lower-case letters, digits or '-', starting with a letter")
    if isinstance(m.id, str) and m.id in BUILTIN_IDS:
        bad("id", "`%s` is a built-in plugin's id" % m.id)

    if not isinstance(m.name, str):
        bad("name", "must be a string")
    # The contract counts UTF-8 bytes (Rust's `str::len`).
    elif not m.name.strip(_WHITE_SPACE) or len(m.name.encode("utf-8")) > 200:
        bad("name", "must be 1–200 characters")
    elif may_hold_number(m.name, LOG_MIN_DIGITS):
        bad("name", "must not contain numbers that could be phone numbers")
    # A version is digits by nature (2024.01.15), so it is held to a version's characters instead.
    if not isinstance(m.version, str) or not _VERSION.fullmatch(m.version):
        bad("version", "must be 1–64 letters, digits, '.', '+', '-' or '_'")

    for field, flag in (("hipaaCompliant", m.hipaa_compliant), ("idempotent", m.idempotent),
                        ("needsDocument", m.needs_document)):
        if not isinstance(flag, bool):
            bad(field, "must be true or false")

    caps = m.capabilities if isinstance(m.capabilities, (list, tuple)) else ()
    if not isinstance(m.capabilities, (list, tuple)):
        bad("capabilities", "must be a list")
    elif any(c not in CAPABILITIES for c in caps):
        bad("capabilities", "may only hold %s" % ", ".join("`%s`" % c for c in CAPABILITIES))
    for needed in (CAP_SEND, CAP_STATUS):
        if needed not in caps:
            bad("capabilities", "must include `%s`" % needed)

    if not _is_int(m.poll_interval_ms) or not 1000 <= m.poll_interval_ms <= 3_600_000:
        bad("pollIntervalMs", "must be between 1000 and 3600000")

    takes_webhooks = CAP_WEBHOOK in caps
    if m.webhook is None and takes_webhooks:
        bad("webhook", "the `webhook` capability needs a webhook section")
    elif m.webhook is not None and not takes_webhooks:
        bad("webhook", "a webhook section needs the `webhook` capability")
    elif m.webhook is not None and not isinstance(m.webhook, WebhookSpec):
        bad("webhook", "must be a faxbot_plugin_kit.WebhookSpec")
    elif m.webhook is not None:
        w = m.webhook
        scheme = w.verification.strip(_WHITE_SPACE).translate(_ASCII_LOWER) if isinstance(w.verification, str) else ""
        if not scheme or scheme == "none":
            bad("webhook.verification", "callbacks must be authenticated; `none` is refused")
        if not _is_int(w.max_bytes) or not 1 <= w.max_bytes <= WEBHOOK_MAX_BYTES:
            bad("webhook.maxBytes", "must be between 1 and %d" % WEBHOOK_MAX_BYTES)

    return problems


class ManifestError(ValueError):
    """The plugin's manifest fails the check; :attr:`problems` lists every ``(field, problem)``."""

    def __init__(self, problems: Problems):
        self.problems = list(problems)
        super().__init__("the plugin's manifest is invalid: " + "; ".join("%s: %s" % p for p in self.problems))
