//! Destination fax numbers.
//!
//! The reference API accepts an optional single `+` followed by 6 to 20 ASCII digits and echoes the number
//! back exactly as submitted, so we store the submitted form. `Debug` and `Display` print a masked form,
//! so a number that slips into a log line shows only its last four digits.

use std::fmt;

/// A validated destination number. Use [`FaxNumber::expose`] where the full number is genuinely needed
/// (the database row, the provider call); everything else gets the masked form.
#[derive(Clone, PartialEq, Eq)]
pub struct FaxNumber(String);

/// The number was not `+`? followed by 6–20 digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("'to' must be E.164 or digits only")]
pub struct InvalidFaxNumber;

impl FaxNumber {
    /// Validates a submitted number. Unlike the reference (a `$`-anchored regex), a trailing newline is
    /// refused too.
    pub fn parse(raw: &str) -> Result<Self, InvalidFaxNumber> {
        let digits = raw.strip_prefix('+').unwrap_or(raw);
        if (6..=20).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
            Ok(FaxNumber(raw.to_owned()))
        } else {
            Err(InvalidFaxNumber)
        }
    }

    /// Rebuilds a number read back from the database without re-validating it.
    pub fn from_stored(stored: String) -> Self {
        FaxNumber(stored)
    }

    /// The full number. Every call site is a place where PHI leaves this type.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The masked form for logs and audit entries.
    pub fn masked(&self) -> String {
        mask_digits(&self.0)
    }

    /// The number as digits only (no `+`), for matching suffixes.
    pub fn digits(&self) -> &str {
        self.0.strip_prefix('+').unwrap_or(&self.0)
    }
}

/// Masks all but the last four characters: `+15551234567` → `********4567`; four or fewer → `****`.
pub fn mask_digits(value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    if chars.len() <= 4 {
        return "****".to_owned();
    }
    let keep: String = chars[chars.len() - 4..].iter().collect();
    format!("{}{}", "*".repeat(chars.len() - 4), keep)
}

impl fmt::Debug for FaxNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "FaxNumber({})", self.masked())
    }
}

impl fmt::Display for FaxNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.masked())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_reference_forms() {
        for ok in ["+15551234567", "15551234567", "123456", "+12345678901234567890"] {
            assert_eq!(FaxNumber::parse(ok).unwrap().expose(), ok);
        }
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            "+",
            "12345",
            "++15551234567",
            "+1 555 123 4567",
            "555-1234567",
            "(555)1234567",
            "+123456789012345678901",
            "1555123456a",
            "15551234567\n",
            " 15551234567",
        ] {
            assert_eq!(FaxNumber::parse(bad), Err(InvalidFaxNumber), "{bad:?}");
        }
    }

    #[test]
    fn debug_and_display_never_show_the_full_number() {
        let n = FaxNumber::parse("+15551234567").unwrap();
        assert_eq!(format!("{n}"), "********4567");
        assert_eq!(format!("{n:?}"), "FaxNumber(********4567)");
        assert_eq!(mask_digits("123"), "****");
    }
}
