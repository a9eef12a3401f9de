//! Faithful local fakes of the fax providers, following `shared/reference/providers.md` §5 (where the
//! older Faxbot and the real provider differ, the provider wins).
//!
//! A fake is a real HTTP server on loopback with state: fax objects that move through the provider's status
//! progression on a timer, webhooks posted to the callback URL with the provider's own authentication, and
//! error injection (401, 422, 429 with and without Retry-After, 5xx, timeouts, transmission failures) so
//! every branch of a provider plugin can be exercised without the internet. Tests start one in-process;
//! developers run the binaries (`faxbot-fake-phaxio`).

pub mod phaxio;
