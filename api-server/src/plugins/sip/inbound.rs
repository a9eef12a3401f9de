//! The receiving side of the SIP/Asterisk plugin: Asterisk's receive context stores the TIFF in `inboundDir`
//! and posts to `POST /_internal/asterisk/inbound` with `X-Internal-Secret`; the TIFF (read with
//! `O_NOFOLLOW`, a regular file, size-capped, TIFF magic checked) becomes a PDF and is stored like every
//! inbound fax.

use super::{lock, manifest, settings_of, tools, unavailable};
use crate::plugins::{InboundProvider, PluginError, ProviderError, ReceivedFax, WebhookRequest};
use async_trait::async_trait;
use faxbot_contract::SlotBinding;
use faxbot_contract::plugins::{PluginManifest, SipSettings};
use faxbot_documents::fax::{self as pipeline, Tools};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The receiving side: Asterisk's callback with a received TIFF.
#[derive(Debug)]
pub struct SipInbound {
    manifest: PluginManifest,
    settings: SipSettings,
    secret: Option<String>,
    tools: Tools,
    /// Received TIFFs by provider id, removed from the shared volume once their fax is stored.
    received: std::sync::Mutex<std::collections::HashMap<String, PathBuf>>,
}

/// Builds the receiving side (`inbound.inboundSecret` is its credential file).
pub fn build_inbound(binding: &SlotBinding) -> Result<Arc<SipInbound>, PluginError> {
    let settings = settings_of(binding)?;
    let secret = crate::plugins::credential("inbound", "inboundSecret", "ASTERISK_INBOUND_SECRET");
    if secret.is_none() {
        tracing::warn!("sip inbound has no inboundSecret credential: every inbound callback will be refused");
    }
    Ok(Arc::new(SipInbound {
        manifest: manifest()?,
        settings,
        secret,
        tools: tools(binding)?,
        received: std::sync::Mutex::new(std::collections::HashMap::new()),
    }))
}

/// The callback body: Faxbot's JSON (`tiff_path`, `to_number`, `from_number`, `faxstatus`, `faxpages`,
/// `uniqueid`), or the same keys form-encoded (what Asterisk's `CURL()` posts).
#[derive(Debug, Default, serde::Deserialize)]
struct InboundCallback {
    tiff_path: String,
    #[serde(default)]
    to_number: Option<String>,
    #[serde(default)]
    from_number: Option<String>,
    #[serde(default)]
    faxstatus: Option<String>,
    #[serde(default)]
    faxpages: Option<serde_json::Value>,
    #[serde(default)]
    uniqueid: Option<String>,
}

pub(super) fn header<'a>(request: &'a WebhookRequest<'_>, name: &str) -> Option<&'a str> {
    request.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

/// The received file's name: only a plain file name in the inbound directory is accepted, so a callback can
/// never make the server read anything else.
pub(super) fn inbound_file_name(tiff_path: &str) -> Option<&str> {
    let name = tiff_path.rsplit('/').next()?;
    let ok = !name.is_empty()
        && name.len() <= 160
        && !name.starts_with('.')
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-+".contains(&b))
        && (name.ends_with(".tif") || name.ends_with(".tiff"));
    ok.then_some(name)
}

/// The largest received TIFF taken from the inbound directory. A G4 fax page is 20–100 KB; at the page limit
/// this leaves a wide margin, and anything bigger is not a fax.
pub const MAX_RECEIVED_TIFF: u64 = 64 * 1024 * 1024;

/// Reads a received TIFF from the shared inbound directory, which another container (Asterisk) writes:
/// opened without following a symbolic link (one could point anywhere this process may read) and without
/// blocking (a FIFO named `x.tif` would hang the open), then required to be a regular file of at most
/// [`MAX_RECEIVED_TIFF`] bytes, read through the one descriptor that was checked. `None` when it does not
/// exist.
pub(super) fn read_received(path: &Path) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK).open(path)
    {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err("the TIFF is a symbolic link".into()),
        Err(_) => return Err("the TIFF cannot be opened".into()),
    };
    let metadata = file.metadata().map_err(|_| "the TIFF cannot be read".to_string())?;
    if !metadata.is_file() {
        return Err("the TIFF is not a regular file".into());
    }
    if metadata.len() > MAX_RECEIVED_TIFF {
        return Err(format!("the TIFF is larger than {} MiB", MAX_RECEIVED_TIFF >> 20));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(metadata.len()).unwrap_or(0));
    file.take(MAX_RECEIVED_TIFF + 1).read_to_end(&mut bytes).map_err(|_| "the TIFF cannot be read".to_string())?;
    if bytes.len() as u64 > MAX_RECEIVED_TIFF {
        return Err(format!("the TIFF is larger than {} MiB", MAX_RECEIVED_TIFF >> 20));
    }
    Ok(Some(bytes))
}

/// A TIFF header: byte order `II` or `MM`, then 42 (classic) or 43 (BigTIFF) in that order.
pub(super) fn is_tiff(bytes: &[u8]) -> bool {
    matches!(bytes.get(..4), Some(b"II*\0" | b"MM\0*" | b"II+\0" | b"MM\0+"))
}

impl SipInbound {
    fn parse(&self, request: &WebhookRequest<'_>) -> Result<InboundCallback, ProviderError> {
        let bad = |what: &str| ProviderError::Rejected(format!("invalid inbound callback: {what}"));
        let json =
            header(request, "content-type").is_some_and(|c| c.contains("json")) || request.body.first() == Some(&b'{');
        if json {
            serde_json::from_slice(request.body).map_err(|_| bad("not the documented JSON body"))
        } else {
            let mut cb = InboundCallback::default();
            let pairs: Vec<(String, String)> =
                serde_urlencoded::from_bytes(request.body).map_err(|_| bad("not a form-encoded body"))?;
            for (k, v) in pairs {
                match k.as_str() {
                    "tiff_path" => cb.tiff_path = v,
                    "to_number" => cb.to_number = Some(v),
                    "from_number" => cb.from_number = Some(v),
                    "faxstatus" => cb.faxstatus = Some(v),
                    "faxpages" => cb.faxpages = Some(serde_json::Value::String(v)),
                    "uniqueid" => cb.uniqueid = Some(v),
                    _ => {}
                }
            }
            if cb.tiff_path.is_empty() { Err(bad("tiff_path missing")) } else { Ok(cb) }
        }
    }
}

#[async_trait]
impl InboundProvider for SipInbound {
    fn manifest(&self) -> &PluginManifest {
        &self.manifest
    }

    /// The shared secret is a header: checked completely before the body is read.
    fn precheck(&self, headers: &[(String, String)]) -> Result<(), ProviderError> {
        use subtle::ConstantTimeEq;
        let Some(expected) = &self.secret else {
            return Err(ProviderError::Unauthorized("no inboundSecret configured".into()));
        };
        let given = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("x-internal-secret"))
            .map(|(_, v)| v.as_str())
            .unwrap_or_default();
        if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            return Err(ProviderError::Unauthorized("X-Internal-Secret mismatch".into()));
        }
        Ok(())
    }

    async fn receive(&self, request: &WebhookRequest<'_>) -> Result<Vec<ReceivedFax>, ProviderError> {
        self.precheck(request.headers)?;
        let callback = self.parse(request)?;
        let name = inbound_file_name(&callback.tiff_path)
            .ok_or_else(|| ProviderError::Rejected("invalid inbound callback: tiff_path".into()))?;
        let path = Path::new(&self.settings.inbound_dir).join(name);
        let failed = callback
            .faxstatus
            .as_deref()
            .is_some_and(|s| s.eq_ignore_ascii_case("FAILED") || s.eq_ignore_ascii_case("FAILURE"));
        let received = {
            let path = path.clone();
            tokio::task::spawn_blocking(move || read_received(&path))
                .await
                .map_err(|e| unavailable(format!("reading the TIFF failed: {e}")))?
        };
        let received = match received {
            Ok(Some(bytes)) => bytes,
            Ok(None) if failed => return Ok(Vec::new()), // a failed reception that left nothing behind
            Ok(None) => {
                return Err(ProviderError::Rejected("invalid inbound callback: the TIFF does not exist".into()));
            }
            Err(reason) => return Err(ProviderError::Rejected(format!("invalid inbound callback: {reason}"))),
        };
        if received.is_empty() && failed {
            return Ok(Vec::new());
        }
        if !is_tiff(&received) {
            return Err(ProviderError::Rejected("invalid inbound callback: the file is not a TIFF".into()));
        }
        let provider_sid = callback
            .uniqueid
            .clone()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| name.trim_end_matches(".tiff").trim_end_matches(".tif").to_string());
        // Convert a private copy, never the shared path: what is converted is exactly what was checked.
        let copy = tempfile::Builder::new()
            .suffix(".tif")
            .tempfile()
            .map_err(|e| unavailable(format!("no temporary space: {e}")))?
            .into_temp_path();
        tokio::fs::write(&copy, &received).await.map_err(|e| unavailable(format!("no temporary space: {e}")))?;
        let pdf = tempfile::Builder::new()
            .suffix(".pdf")
            .tempfile()
            .map_err(|e| unavailable(format!("no temporary space: {e}")))?
            .into_temp_path();
        let turn = crate::work::turn().await.map_err(|e| unavailable(e.to_string()))?;
        let converted = pipeline::tiff_to_pdf(&self.tools, &copy, &pdf, faxbot_documents::pdf::MAX_PAGES).await;
        drop(turn);
        let (document, pages) = match converted {
            Ok(summary) => {
                let bytes =
                    tokio::fs::read(&pdf).await.map_err(|e| unavailable(format!("reading the PDF failed: {e}")))?;
                (bytes, Some(i64::from(summary.page_count())))
            }
            Err(e) => {
                // Never lose a received fax: keep the TIFF itself when it cannot be converted.
                tracing::warn!(error = %e, "converting a received fax to PDF failed; storing the TIFF as received");
                (received, None)
            }
        };
        let pages = pages.or_else(|| match &callback.faxpages {
            Some(serde_json::Value::Number(n)) => n.as_i64(),
            Some(serde_json::Value::String(s)) => s.trim().parse().ok(),
            _ => None,
        });
        lock(&self.received).insert(provider_sid.clone(), path);
        Ok(vec![ReceivedFax {
            provider_sid,
            from: callback.from_number.filter(|s| !s.is_empty()),
            to: callback.to_number.filter(|s| !s.is_empty()),
            pages,
            document: Some(document.into()),
        }])
    }

    async fn stored(&self, provider_sid: &str) {
        let path = lock(&self.received).remove(provider_sid);
        if let Some(path) = path
            && let Err(e) = tokio::fs::remove_file(&path).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, "removing a received TIFF from the inbound directory failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn received_tiffs_are_read_only_when_they_are_regular_files_within_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let tiff = dir.path().join("ok.tif");
        std::fs::write(&tiff, b"II*\0rest").unwrap();
        assert_eq!(read_received(&tiff).unwrap().unwrap(), b"II*\0rest");
        assert_eq!(read_received(&dir.path().join("missing.tif")).unwrap(), None);

        let link = dir.path().join("link.tif");
        std::os::unix::fs::symlink(&tiff, &link).unwrap();
        assert_eq!(read_received(&link).unwrap_err(), "the TIFF is a symbolic link");

        let fifo = dir.path().join("pipe.tif");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        assert_eq!(read_received(&fifo).unwrap_err(), "the TIFF is not a regular file", "and the open did not block");

        let subdir = dir.path().join("dir.tif");
        std::fs::create_dir(&subdir).unwrap();
        assert_eq!(read_received(&subdir).unwrap_err(), "the TIFF is not a regular file");

        let big = dir.path().join("big.tif");
        std::fs::File::create(&big).unwrap().set_len(MAX_RECEIVED_TIFF + 1).unwrap();
        assert_eq!(read_received(&big).unwrap_err(), "the TIFF is larger than 64 MiB");
    }

    #[test]
    fn only_tiff_headers_are_tiffs() {
        for good in [&b"II*\0\x08\0\0\0"[..], b"MM\0*\0\0\0\x08", b"II+\0", b"MM\0+"] {
            assert!(is_tiff(good), "{good:?}");
        }
        for bad in [&b""[..], b"II*", b"%PDF-1.4", b"MM*\0", b"GIF89a"] {
            assert!(!is_tiff(bad), "{bad:?}");
        }
    }
}
