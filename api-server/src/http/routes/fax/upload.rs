//! Staging an upload and turning it into the PDF to send, whichever transport brought it (the multipart body of
//! `POST /fax`, or the base64 argument of the MCP tool `send_fax`).
//!
//! The upload is staged as it arrives: in memory up to [`IN_MEMORY_UPLOAD`], then in a staging file next to the
//! document store, with the size limit enforced chunk by chunk and the type sniffed and the content hashed over
//! the whole stream.

use crate::http::AppState;
use crate::http::error::ApiError;
use axum::http::StatusCode;
use faxbot_documents::pdf::PdfError;
use faxbot_documents::sniff::{DocumentKind, SniffError, Sniffer};
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

/// Uploads up to this size are kept in memory and written to storage in one blocking call; larger ones
/// stream to a staging file. Bounds memory per request while sparing small faxes (the common case) several
/// thread-pool round trips.
const IN_MEMORY_UPLOAD: usize = 64 * 1024;

/// Where an upload (or the PDF made from it) is.
pub(crate) enum Body {
    /// Small upload, held in memory.
    Memory(Vec<u8>),
    /// Large upload, in a staging file next to the store.
    File(tempfile::TempPath),
}

/// A staged upload.
pub(crate) struct Staged {
    pub(crate) body: Body,
    pub(crate) kind: Result<DocumentKind, SniffError>,
    pub(crate) size: u64,
    pub(crate) sha256: [u8; 32],
}

/// The upload passed the size limit (`MAX_FILE_SIZE_MB`); nothing of it is kept.
#[derive(Debug)]
pub(crate) struct Oversize;

/// An upload being staged.
pub(crate) struct Stager {
    memory: Vec<u8>,
    file: Option<(tokio::fs::File, tempfile::TempPath)>,
    sniffer: Sniffer,
    digest: Sha256,
    size: u64,
    max: u64,
}

impl Stager {
    pub(crate) fn new(app: &AppState) -> Stager {
        Stager {
            memory: Vec::new(),
            file: None,
            sniffer: Sniffer::new(),
            digest: Sha256::new(),
            size: 0,
            max: app.settings.max_file_bytes,
        }
    }

    /// Adds the next chunk. The outer error is the server's (a 500), the inner one the upload's.
    pub(crate) async fn push(&mut self, app: &AppState, chunk: &[u8]) -> Result<Result<(), Oversize>, ApiError> {
        self.size += chunk.len() as u64;
        if self.size > self.max {
            return Ok(Err(Oversize));
        }
        self.sniffer.feed(chunk);
        self.digest.update(chunk);
        if self.file.is_none() && self.memory.len() + chunk.len() <= IN_MEMORY_UPLOAD {
            self.memory.extend_from_slice(chunk);
            return Ok(Ok(()));
        }
        let (out, _) = match &mut self.file {
            Some(f) => f,
            None => {
                let named = tempfile::NamedTempFile::new_in(app.documents.staging_dir()).map_err(ApiError::internal)?;
                let (f, path) = named.into_parts();
                let mut f = tokio::fs::File::from_std(f);
                f.write_all(&self.memory).await.map_err(ApiError::internal)?;
                self.memory = Vec::new();
                self.file.insert((f, path))
            }
        };
        out.write_all(chunk).await.map_err(ApiError::internal)?;
        Ok(Ok(()))
    }

    /// The staged upload.
    pub(crate) async fn finish(self) -> Result<Staged, ApiError> {
        let body = match self.file {
            Some((mut f, path)) => {
                f.flush().await.map_err(ApiError::internal)?;
                Body::File(path)
            }
            None => Body::Memory(self.memory),
        };
        Ok(Staged { body, kind: self.sniffer.finish(), size: self.size, sha256: self.digest.finalize().into() })
    }
}

/// The size limit answer.
pub(crate) fn too_large(app: &AppState) -> ApiError {
    ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, format!("File exceeds {} MB limit", app.settings.max_file_mb))
}

/// The page limit answer, shaped like the size limit's (`File exceeds 10 MB limit`) so clients handle both alike.
pub(crate) fn too_many_pages(max_pages: u32, pages: &str) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("Document exceeds {max_pages} page limit (it has {pages} pages)"),
    )
}

/// Text stops rendering at the first page beyond the limit, so its count is known only up to there.
fn text_error(max_pages: u32, e: faxbot_documents::text::RenderError) -> ApiError {
    match e {
        faxbot_documents::text::RenderError::TooManyPages(n) => too_many_pages(max_pages, &format!("more than {n}")),
        faxbot_documents::text::RenderError::Io(e) => ApiError::internal(e),
    }
}

fn pdf_error(max_pages: u32, e: PdfError) -> Result<ApiError, std::io::Error> {
    Ok(match e {
        PdfError::Io(e) => return Err(e),
        PdfError::Encrypted => ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "Encrypted PDFs are not supported"),
        PdfError::Damaged(_) => ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "PDF could not be read"),
        PdfError::TooManyPages(n) => too_many_pages(max_pages, &format!("more than {n}")),
        // The reason names object numbers and counts, never content.
        PdfError::Inconsistent(reason) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, format!("PDF page tree is inconsistent: {reason}"))
        }
        PdfError::TooComplex(limit) => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("PDF is too complex: counting its pages exceeds the {limit}"),
        ),
    })
}

/// Turns the upload into the PDF to send and counts its pages, on the blocking pool with a turn of
/// [`crate::work`] whatever the size: an 18 KB PDF once cost seconds to count, so no upload is "small enough"
/// for the async threads.
pub(crate) async fn prepare_pdf(app: &AppState, body: Body, kind: DocumentKind) -> Result<(Body, u32), ApiError> {
    let staging_dir = app.documents.staging_dir().to_path_buf();
    let max_pages = app.settings.max_pages;
    let limits = faxbot_documents::pdf::Limits { time: app.settings.pdf_time_limit, ..Default::default() };
    let result = crate::work::run(move || prepare_blocking(body, kind, &staging_dir, max_pages, &limits)).await?;
    result.map_err(ApiError::internal)?
}

/// The work of [`prepare_pdf`]. The outer error is an I/O failure (a 500), the inner one the client's.
fn prepare_blocking(
    body: Body,
    kind: DocumentKind,
    staging_dir: &std::path::Path,
    max_pages: u32,
    limits: &faxbot_documents::pdf::Limits,
) -> Result<Result<(Body, u32), ApiError>, std::io::Error> {
    match (body, kind) {
        (Body::Memory(bytes), DocumentKind::Pdf) => {
            Ok(match faxbot_documents::pdf::count_pages_limited(std::io::Cursor::new(&bytes), limits) {
                Ok(pages) => Ok((Body::Memory(bytes), pages)),
                Err(e) => Err(pdf_error(max_pages, e)?),
            })
        }
        (Body::Memory(bytes), DocumentKind::Text) => {
            let mut out = Vec::with_capacity(bytes.len() + 2048);
            match faxbot_documents::text::render_text_pdf_limited(&bytes[..], &mut out, &Default::default(), max_pages)
            {
                Ok(pages) => Ok(Ok((Body::Memory(out), pages))),
                Err(faxbot_documents::text::RenderError::Io(e)) => Err(e),
                Err(e) => Ok(Err(text_error(max_pages, e))),
            }
        }
        (Body::File(path), DocumentKind::Pdf) => {
            Ok(match faxbot_documents::pdf::count_pages_in_file_limited(&path, limits) {
                Ok(pages) => Ok((Body::File(path), pages)),
                Err(e) => Err(pdf_error(max_pages, e)?),
            })
        }
        (Body::File(path), DocumentKind::Text) => {
            let input = std::io::BufReader::new(std::fs::File::open(&path)?);
            let out = tempfile::NamedTempFile::new_in(staging_dir)?;
            let (out_file, out_path) = out.into_parts();
            let mut writer = std::io::BufWriter::new(out_file);
            let pages = match faxbot_documents::text::render_text_pdf_limited(
                input,
                &mut writer,
                &Default::default(),
                max_pages,
            ) {
                Ok(pages) => pages,
                Err(faxbot_documents::text::RenderError::Io(e)) => return Err(e),
                Err(e) => return Ok(Err(text_error(max_pages, e))),
            };
            std::io::Write::flush(&mut writer)?;
            Ok(Ok((Body::File(out_path), pages)))
        }
    }
}
