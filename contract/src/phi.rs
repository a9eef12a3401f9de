//! Masking of phone-number-like text: one rule for every place free text can carry PHI (logs, events, job
//! errors, operator status, converter output).
//!
//! Free text arrives from places we do not control: a provider's error message, a parser that quotes the
//! offending value, Ghostscript's diagnostics. Any of them may echo a fax number, written with spaces,
//! dashes, dots, parentheses or a leading `+`. A number-like run is therefore judged by the digits it holds
//! across those separators (`+1 (555) 123-4567` is one run of eleven digits), and a run with enough digits
//! keeps only its last four, as the project masks numbers everywhere: `…4567`.

/// Digits a run must hold to be masked in logs, events and error texts: five catches a local number even when
/// separators split it (`555-12345`), at the price of masking the odd long count.
pub const LOG_MIN_DIGITS: usize = 5;

/// Digits a run must hold to be masked in Kubernetes status and events: eight keeps the settings limits an
/// operator must read (`at most 3600000`) while every real fax number (ten or more digits) is masked.
pub const STATUS_MIN_DIGITS: usize = 8;

/// Digits a run must hold to be caught by the log guard ([`mask_standalone_numbers`]): as for status, every
/// real fax number is caught, and byte counts or durations that a message prints (`33554432 bytes`) are not.
pub const GUARD_MIN_DIGITS: usize = 8;

/// Returns `text` with every number-like run of at least `min_digits` digits replaced by `…` and its last
/// four digits. Runs are digits joined by spaces, dots, dashes, parentheses or `+`; linear in `text`.
pub fn mask_numbers(text: &str, min_digits: usize) -> String {
    mask(text, min_digits, false)
}

/// Like [`mask_numbers`], but a run that touches a letter, a digit-letter word or `_` on either side is left
/// alone: hexadecimal ids and hashes (`3f2a18820455…`) hold long digit runs that are not numbers. This is the
/// rule of the log guard, which reads every line the server writes and counts what it masks: an id that
/// counted there would make a healthy canary look like a leak.
pub fn mask_standalone_numbers(text: &str, min_digits: usize) -> String {
    mask(text, min_digits, true)
}

/// Whether `text` may hold a run that [`mask_numbers`] or [`mask_standalone_numbers`] would mask: `false`
/// guarantees neither changes `text`. A byte scan without allocation that counts digits across every
/// separator (it ignores the rules that end a run early, so it may answer `true` for text that needs no
/// masking, never `false` for text that does): the log guard asks it before parsing a line.
pub fn may_hold_number(text: &str, min_digits: usize) -> bool {
    let mut digits = 0usize;
    for b in text.bytes() {
        match b {
            b'0'..=b'9' => {
                digits += 1;
                if digits >= min_digits.max(1) {
                    return true;
                }
            }
            b'-' | b' ' | b'.' | b'(' | b')' | b'+' => {}
            _ => digits = 0,
        }
    }
    false
}

fn mask(text: &str, min_digits: usize, standalone: bool) -> String {
    let chars: Vec<char> = text.chars().collect();
    let is_sep = |c: char| matches!(c, '-' | ' ' | '.' | '(' | ')' | '+');
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !(chars[i].is_ascii_digit() || chars[i] == '+' || chars[i] == '(') {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        // The run: digits and separators from here; `last` is one past its last digit.
        let (mut j, mut last, mut digits) = (i, i, 0usize);
        while j < chars.len() && (chars[j].is_ascii_digit() || is_sep(chars[j])) {
            // A dot joins digit groups of a number (`555.123.4567`) but not version parts (`10.00.0`): it
            // continues the run only before a group of two or more digits.
            if chars[j] == '.'
                && !(chars.get(j + 1).is_some_and(char::is_ascii_digit)
                    && chars.get(j + 2).is_some_and(char::is_ascii_digit))
            {
                break;
            }
            if chars[j].is_ascii_digit() {
                digits += 1;
                last = j + 1;
            }
            j += 1;
        }
        let glued = |c: Option<&char>| c.is_some_and(|c| c.is_alphanumeric() || *c == '_');
        let inside_word = standalone && (glued(i.checked_sub(1).and_then(|p| chars.get(p))) || glued(chars.get(last)));
        if digits >= min_digits.max(1) && !inside_word {
            let tail: String = chars[i..last].iter().filter(|c| c.is_ascii_digit()).collect();
            out.push('…');
            out.push_str(&tail[tail.len().saturating_sub(4)..]);
            i = last;
        } else {
            // Too short as a whole, so no part of it can qualify either.
            out.extend(&chars[i..j]);
            i = j.max(i + 1);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The pre-check never says "nothing here" for text that masking would change.
        #[test]
        fn may_hold_number_never_misses_what_masking_changes(
            text in "[0-9 .()+\\-a-z_é☎\"]{0,40}",
            min in 1usize..10,
        ) {
            if !may_hold_number(&text, min) {
                prop_assert_eq!(mask_numbers(&text, min), text.clone());
                prop_assert_eq!(mask_standalone_numbers(&text, min), text);
            }
        }
    }

    #[test]
    fn may_hold_number_answers_for_the_usual_lines() {
        assert!(may_hold_number("sending to +1 (555) 123-4567", GUARD_MIN_DIGITS));
        assert!(!may_hold_number("job 3 of 5 sent in 1.25 s, 2 pages", GUARD_MIN_DIGITS));
        assert!(!may_hold_number("", 1));
        // Separators are counted through, so this is a "maybe" that masking then leaves alone.
        assert!(may_hold_number("10.00.0 1234", GUARD_MIN_DIGITS));
        assert_eq!(mask_standalone_numbers("10.00.0 1234", GUARD_MIN_DIGITS), "10.00.0 1234");
    }

    #[test]
    fn numbers_keep_only_their_last_four_digits_however_they_are_written() {
        for written in ["+15551234567", "+1 (555) 123-4567", "1.555.123.4567", "(555) 123 4567", "5551234567"] {
            assert_eq!(mask_numbers(&format!("call {written} now"), LOG_MIN_DIGITS), "call …4567 now", "{written}");
            assert_eq!(mask_numbers(&format!("\"{written}\""), STATUS_MIN_DIGITS), "\"…4567\"", "{written}");
        }
        // Split by separators, a local number is still one run.
        assert_eq!(mask_numbers("busy at 555-1234", LOG_MIN_DIGITS), "busy at …1234");
        assert_eq!(mask_numbers("12345", LOG_MIN_DIGITS), "…2345");
    }

    #[test]
    fn short_numbers_and_readable_limits_stay() {
        assert_eq!(mask_numbers("revision 42, port 8080, 1.5%", LOG_MIN_DIGITS), "revision 42, port 8080, 1.5%");
        assert_eq!(mask_numbers("attempt 3 of 5 (code 1234)", LOG_MIN_DIGITS), "attempt 3 of 5 (code 1234)");
        assert_eq!(mask_numbers("must be at most 3600000", STATUS_MIN_DIGITS), "must be at most 3600000");
        assert_eq!(mask_numbers("must be at most 3600000", LOG_MIN_DIGITS), "must be at most …0000");
        assert_eq!(mask_numbers("no digits (here) + there", LOG_MIN_DIGITS), "no digits (here) + there");
        assert_eq!(mask_numbers("GPL Ghostscript 10.00.0: error", LOG_MIN_DIGITS), "GPL Ghostscript 10.00.0: error");
        assert_eq!(mask_numbers("from 127.0.0.1 in 1.25 s", LOG_MIN_DIGITS), "from 127.0.0.1 in 1.25 s");
        assert_eq!(mask_numbers("", LOG_MIN_DIGITS), "");
        assert_eq!(mask_numbers("ünï 12 ☎ 3", LOG_MIN_DIGITS), "ünï 12 ☎ 3");
    }

    #[test]
    fn the_log_guard_leaves_ids_and_hashes_alone() {
        let guard = |t: &str| mask_standalone_numbers(t, GUARD_MIN_DIGITS);
        for id in ["3f2a1882045512345678b", "a12345678901", "12345678901ab", "job_123456789", "rev-1234567890ab"] {
            assert_eq!(guard(id), id, "{id}");
        }
        for (written, masked) in [
            ("sending to +15551234567", "sending to …4567"),
            ("to=\"+1 (555) 123-4567\"", "to=\"…4567\""),
            ("5551234567", "…4567"),
            ("number:15551234567,", "number:…4567,"),
        ] {
            assert_eq!(guard(written), masked, "{written}");
        }
        assert_eq!(guard("read 33554432 bytes"), "read …4432 bytes", "eight digits are a number to the guard");
        assert_eq!(guard("read 3355443 bytes in 1.25 s"), "read 3355443 bytes in 1.25 s");
    }
}
