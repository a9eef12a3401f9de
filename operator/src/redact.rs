//! Masking of anything number-like in text bound for status, events and logs.
//!
//! Status messages quote validation errors, and a settings parser error may echo the offending value. A user
//! who pasted a fax number into the wrong field must not see it copied into a condition that every reader of
//! the namespace can list. Runs of eight or more digits (with common separators; a full fax number has at
//! least ten) keep their last four, while limits such as `3600000` stay readable.

/// Returns `text` with every number of 8+ digits masked to its last four (`…1234`): the project's one
/// masking rule ([`faxbot_contract::phi`]) at the threshold for Kubernetes status.
pub fn mask_numbers(text: &str) -> String {
    faxbot_contract::phi::mask_numbers(text, faxbot_contract::phi::STATUS_MIN_DIGITS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_numbers_keep_only_their_last_four_digits() {
        assert_eq!(mask_numbers("invalid type: string \"+15551234567\""), "invalid type: string \"…4567\"");
        assert_eq!(mask_numbers("call (555) 123-4567 now"), "call …4567 now");
        assert_eq!(mask_numbers("must be at most 3600000"), "must be at most 3600000");
        assert_eq!(mask_numbers("5551234567"), "…4567");
        assert_eq!(mask_numbers("revision 42, port 8080, 1.5%"), "revision 42, port 8080, 1.5%");
        assert_eq!(mask_numbers("no digits"), "no digits");
        assert_eq!(mask_numbers("1234"), "1234");
    }
}
