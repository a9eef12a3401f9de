"""Masking of phone-number-like text, the same rule as the server's (``contract/src/phi.rs``).

A plugin's error messages come from places it does not control: a provider's error text, an exception that
quotes the value it choked on. Any of them may echo the destination number, written with spaces, dashes, dots,
parentheses or a leading ``+``. A run is judged by the digits it holds across those separators
(``+1 (555) 123-4567`` is one run of eleven digits), and a run with enough digits keeps only its last four:
``…4567``. The kit passes every message it sends through :func:`mask_numbers`, so the conformance suite's
"errors never echo the number" check holds even when a plugin author forgets.
"""

LOG_MIN_DIGITS = 5
"""Digits a run must hold to be masked in error messages: five catches a local number even when separators
split it (``555-12345``), at the price of masking the odd long count."""

_SEPARATORS = frozenset("- .()+")
_DIGITS = frozenset("0123456789")


def mask_numbers(text: str, min_digits: int = LOG_MIN_DIGITS) -> str:
    """Return ``text`` with every number-like run of at least ``min_digits`` digits replaced by ``…`` and its
    last four digits.

    A line-by-line port of the Rust ``mask_numbers`` so that a message masked here reads exactly as the server
    would have masked it. A dot continues a run only before a group of two or more digits, so version strings
    (``10.00.0``) and addresses (``127.0.0.1``) stay readable.
    """
    chars = text
    n = len(chars)
    min_digits = max(min_digits, 1)
    out = []
    i = 0
    while i < n:
        c = chars[i]
        if not (c in _DIGITS or c == "+" or c == "("):
            out.append(c)
            i += 1
            continue
        # The run: digits and separators from here; `last` is one past its last digit.
        j = last = i
        digits = 0
        while j < n and (chars[j] in _DIGITS or chars[j] in _SEPARATORS):
            if chars[j] == "." and not (j + 2 < n and chars[j + 1] in _DIGITS and chars[j + 2] in _DIGITS):
                break
            if chars[j] in _DIGITS:
                digits += 1
                last = j + 1
            j += 1
        if digits >= min_digits:
            tail = [d for d in chars[i:last] if d in _DIGITS]
            out.append("…")
            out.extend(tail[-4:])
            i = last
        else:
            # Too short as a whole, so no part of it can qualify either.
            out.append(chars[i:j])
            i = max(j, i + 1)
    return "".join(out)


def may_hold_number(text: str, min_digits: int = LOG_MIN_DIGITS) -> bool:
    """Whether ``text`` may hold a run that :func:`mask_numbers` would mask.

    ``False`` guarantees masking leaves ``text`` alone. It counts digits across every separator and ignores
    the rules that end a run early, so it may say ``True`` for text that needs no masking. The manifest check
    uses it, as the server's does, to refuse names and versions that could carry a number.
    """
    digits = 0
    for c in text:
        if c in _DIGITS:
            digits += 1
            if digits >= max(min_digits, 1):
                return True
        elif c not in _SEPARATORS:
            digits = 0
    return False
