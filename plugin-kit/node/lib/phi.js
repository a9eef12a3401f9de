'use strict';
// Masking of phone-number-like text, the same rule as `phi::mask_numbers` in contract/src/phi.rs.
//
// Error messages leave the plugin and end up in job errors and logs; they are often built from a provider's
// answer, which may quote the fax number in any format (`+1 (555) 123-4567`). A run of digits joined by
// spaces, dots, dashes, parentheses or `+` is judged by the digits it holds, and a run of at least five keeps
// only its last four: `…4567`. The port is literal (including the rule for dots) so that the kit and the
// server agree on every string; test/phi.test.js carries the Rust tests' table.

/** Digits a run must hold to be masked in error texts (`phi::LOG_MIN_DIGITS`). */
const LOG_MIN_DIGITS = 5;

function isDigit(c) {
  return c !== undefined && c >= '0' && c <= '9';
}

function isSeparator(c) {
  return c === '-' || c === ' ' || c === '.' || c === '(' || c === ')' || c === '+';
}

/**
 * `text` with every number-like run of at least `minDigits` digits replaced by `…` and its last four digits.
 * Linear in the length of `text`. Iterates UTF-16 code units: every character the rule looks at is ASCII,
 * and the others (surrogate halves included) are copied through unchanged, as the Rust version copies chars.
 * @param {string} text
 * @param {number} [minDigits]
 * @returns {string}
 */
function maskNumbers(text, minDigits = LOG_MIN_DIGITS) {
  const min = Math.max(1, minDigits);
  const n = text.length;
  let out = '';
  let i = 0;
  while (i < n) {
    const c = text[i];
    if (!(isDigit(c) || c === '+' || c === '(')) {
      out += c;
      i += 1;
      continue;
    }
    // The run: digits and separators from here; `last` is one past its last digit.
    let j = i;
    let last = i;
    let digits = 0;
    while (j < n && (isDigit(text[j]) || isSeparator(text[j]))) {
      // A dot joins digit groups of a number (`555.123.4567`) but not version parts (`10.00.0`): it continues
      // the run only before a group of two or more digits.
      if (text[j] === '.' && !(isDigit(text[j + 1]) && isDigit(text[j + 2]))) break;
      if (isDigit(text[j])) {
        digits += 1;
        last = j + 1;
      }
      j += 1;
    }
    if (digits >= min) {
      let tail = '';
      for (let k = i; k < last; k += 1) if (isDigit(text[k])) tail += text[k];
      out += '…' + tail.slice(-4);
      i = last;
    } else {
      // Too short as a whole, so no part of it can qualify either.
      const end = Math.max(j, i + 1);
      out += text.slice(i, end);
      i = end;
    }
  }
  return out;
}

/**
 * Whether `text` may hold a run that {@link maskNumbers} would mask: `false` guarantees masking changes
 * nothing. It counts digits across every separator (ignoring the dot rule), so it may say `true` for text
 * that needs no masking — exactly as `phi::may_hold_number`, which the manifest check uses on names.
 * @param {string} text
 * @param {number} [minDigits]
 * @returns {boolean}
 */
function mayHoldNumber(text, minDigits = LOG_MIN_DIGITS) {
  const min = Math.max(1, minDigits);
  let digits = 0;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (isDigit(c)) {
      digits += 1;
      if (digits >= min) return true;
    } else if (!isSeparator(c)) {
      digits = 0;
    }
  }
  return false;
}

module.exports = { LOG_MIN_DIGITS, maskNumbers, mayHoldNumber };
