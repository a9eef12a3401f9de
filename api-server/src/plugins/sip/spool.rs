//! The spool directory Asterisk shares: the fax image of each call, prepared from the PDF before the
//! Originate, removed once the call has ended, and swept of anything a crash left behind (PHI must not linger
//! on the shared volume).

use super::{lock, longest_call, unavailable};
use crate::plugins::ProviderError;
use faxbot_contract::plugins::{FaxCompression, FaxPaperSize, FaxResolution, SipSettings};
use faxbot_documents::fax::{self as pipeline, Compression, FaxImageOptions, PaperSize, Resolution, Tools};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How often the spool is swept (at most; only while faxes are being sent).
const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The spool as this server and Asterisk see it, and the converters that fill it.
pub(super) struct Spool {
    /// The directory here.
    dir: PathBuf,
    /// The same directory as Asterisk sees it (`asteriskSpoolDir`, else `spoolDir`).
    asterisk_dir: String,
    tools: Tools,
    options: FaxImageOptions,
    /// Files older than this are left from a crash: twice the longest a call can take.
    max_age: Duration,
    /// When the spool was last swept of images left behind by a crash.
    last_sweep: std::sync::Mutex<Option<Instant>>,
}

impl Spool {
    pub(super) fn new(settings: &SipSettings, tools: Tools) -> Spool {
        Spool {
            dir: PathBuf::from(&settings.spool_dir),
            asterisk_dir: settings.asterisk_spool_dir.clone().unwrap_or_else(|| settings.spool_dir.clone()),
            tools,
            options: image_options(settings),
            max_age: longest_call(settings) * 2,
            last_sweep: std::sync::Mutex::new(None),
        }
    }

    fn tiff_path(&self, channel_id: &str) -> PathBuf {
        self.dir.join(format!("{channel_id}.tif"))
    }

    /// The TIFF path as Asterisk sees it.
    pub(super) fn asterisk_path(&self, channel_id: &str) -> String {
        format!("{}/{channel_id}.tif", self.asterisk_dir.trim_end_matches('/'))
    }

    /// Rasterises the document into the spool directory.
    pub(super) async fn prepare(&self, document: &[u8], channel_id: &str) -> Result<PathBuf, ProviderError> {
        let spool: &Path = &self.dir;
        tokio::fs::create_dir_all(spool)
            .await
            .map_err(|e| unavailable(format!("the spool directory is not writable: {e}")))?;
        let staged = tempfile::Builder::new()
            .prefix(".faxbot-")
            .suffix(".pdf")
            .tempfile_in(spool)
            .map_err(|e| unavailable(format!("the spool directory is not writable: {e}")))?
            .into_temp_path();
        tokio::fs::write(&staged, document)
            .await
            .map_err(|e| unavailable(format!("writing the spool file failed: {e}")))?;
        let out = self.tiff_path(channel_id);
        // Ghostscript takes a core: it waits for a turn like the server's own document work.
        let _turn = crate::work::turn().await.map_err(|e| unavailable(e.to_string()))?;
        match pipeline::pdf_to_fax_tiff(&self.tools, &staged, &out, &self.options, faxbot_documents::pdf::MAX_PAGES)
            .await
        {
            Ok(summary) => {
                tracing::info!(pages = summary.page_count(), "fax image prepared");
                Ok(out)
            }
            Err(e @ (pipeline::ConvertError::Damaged(_) | pipeline::ConvertError::TooManyPages { .. })) => {
                Err(ProviderError::Rejected(format!("the document cannot be faxed: {e}")))
            }
            Err(e) => Err(unavailable(format!("preparing the fax image failed: {e}"))),
        }
    }

    /// Removes fax images (and staged PDFs) that a crash left in the spool: PHI must not linger on the shared
    /// volume. Only files older than twice the longest a call can take are touched, so no replica's call in
    /// progress loses its image.
    pub(super) fn sweep(&self) {
        {
            let mut last = lock(&self.last_sweep);
            if last.is_some_and(|t| t.elapsed() < SWEEP_EVERY) {
                return;
            }
            *last = Some(std::time::Instant::now());
        }
        let spool = self.dir.clone();
        let max_age = self.max_age;
        tokio::task::spawn_blocking(move || {
            let Ok(entries) = std::fs::read_dir(&spool) else { return };
            let mut removed = 0;
            for entry in entries.flatten() {
                let name = entry.file_name();
                let name = name.to_string_lossy();
                let ours = name.starts_with(super::call::CHANNEL_PREFIX) || name.starts_with(".faxbot-");
                let old =
                    entry.metadata().and_then(|m| m.modified()).is_ok_and(|t| t.elapsed().is_ok_and(|a| a > max_age));
                if ours && old && std::fs::remove_file(entry.path()).is_ok() {
                    removed += 1;
                }
            }
            if removed > 0 {
                tracing::info!(removed, "removed fax images left in the spool by an interrupted send");
            }
        });
    }

    /// Removes a call's image (the call has ended, or never started).
    pub(super) async fn discard(&self, channel_id: &str) {
        if let Err(e) = tokio::fs::remove_file(self.tiff_path(channel_id)).await
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(error = %e, "removing a spooled fax image failed");
        }
    }
}

fn image_options(s: &SipSettings) -> FaxImageOptions {
    FaxImageOptions {
        resolution: match s.resolution {
            FaxResolution::Fine => Resolution::Fine,
            FaxResolution::Standard => Resolution::Standard,
        },
        paper: match s.paper_size {
            FaxPaperSize::Letter => PaperSize::Letter,
            FaxPaperSize::A4 => PaperSize::A4,
        },
        compression: match s.compression {
            FaxCompression::G4 => Compression::G4,
            FaxCompression::G3 => Compression::G3,
        },
    }
}
