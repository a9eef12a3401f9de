//! API-key scopes.

/// A scope that a user route requires. Admin routes do not use scopes: they need the env key or a key that
/// literally holds `keys:manage` (reference §1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// `POST /fax`.
    FaxSend,
    /// `GET /fax/{id}`.
    FaxRead,
    /// `GET /inbound`.
    InboundList,
    /// `GET /inbound/{id}` and its PDF.
    InboundRead,
    /// Admin endpoints.
    KeysManage,
}

/// Scopes a key may be created with. The reference stores any string; we refuse unknown scopes with 400
/// so that a typo does not silently create a useless key.
pub const KNOWN_SCOPES: &[&str] = &["fax:send", "fax:read", "inbound:list", "inbound:read", "keys:manage", "*"];

impl Scope {
    /// The scope string.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::FaxSend => "fax:send",
            Scope::FaxRead => "fax:read",
            Scope::InboundList => "inbound:list",
            Scope::InboundRead => "inbound:read",
            Scope::KeysManage => "keys:manage",
        }
    }

    /// The scope named `name` (not `*`, which is a grant, not a requirement).
    pub fn parse(name: &str) -> Option<Scope> {
        [Scope::FaxSend, Scope::FaxRead, Scope::InboundList, Scope::InboundRead, Scope::KeysManage]
            .into_iter()
            .find(|s| s.as_str() == name)
    }

    /// Whether a key holding `granted` may use a route that requires `self`. `*` grants every user scope
    /// but, as in the reference, not admin.
    pub fn granted_by(self, granted: &[String]) -> bool {
        granted.iter().any(|g| g == self.as_str() || (g == "*" && self != Scope::KeysManage))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_grants_user_scopes_but_not_admin() {
        let star = vec!["*".to_string()];
        assert!(Scope::FaxSend.granted_by(&star));
        assert!(Scope::InboundRead.granted_by(&star));
        assert!(!Scope::KeysManage.granted_by(&star));
        let send = vec!["fax:send".to_string()];
        assert!(Scope::FaxSend.granted_by(&send));
        assert!(!Scope::FaxRead.granted_by(&send));
    }
}
