//! S3 storage: documents as objects in one bucket that every replica shares, so a document accepted by one
//! API process can be uploaded to a provider, served or deleted by another.
//!
//! Every write asks for server-side encryption (SSE-KMS with the configured key, or SSE-S3): documents are
//! PHI, and the settings refuse a binding without encryption unless `allowUnencrypted` says so explicitly.
//! Uploads stream from the staging file in parts (one `PUT` for small documents, a multipart upload for
//! large ones) and reads stream the object body, so memory per document stays bounded. S3 acknowledges a
//! `PUT` only once the object is durably stored, which is what `put_file` promises.

use super::{DocumentReader, DocumentStore, StorageError, validate_key};
use async_trait::async_trait;
use faxbot_contract::plugins::{S3_STORAGE, S3ServerSideEncryption, S3StorageSettings};
use futures_util::{StreamExt, TryStreamExt};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, PutPayload, RetryConfig};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Size of one upload part: documents up to this size go up in one `PUT`, larger ones as a multipart
/// upload of parts this size (S3's minimum part size is 5 MiB).
const PART_SIZE: usize = 5 * 1024 * 1024;
/// Parts in flight per upload; with [`PART_SIZE`] this bounds the memory of one large upload to ~10 MiB.
const PARTS_IN_FLIGHT: usize = 2;
/// Readiness must answer before the kubelet's probe times out, whatever the retry policy would allow.
const CHECK_TIMEOUT: Duration = Duration::from_secs(5);

/// The access key of the `s3` plugin; without one the AWS credential chain is used.
#[derive(Clone)]
pub struct S3Credentials {
    /// AWS access key id.
    pub access_key_id: String,
    /// AWS secret access key.
    pub secret_access_key: String,
}

impl std::fmt::Debug for S3Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("S3Credentials(<redacted>)")
    }
}

/// The S3 store: one bucket (under an optional prefix) that every replica of a deployment reads and writes.
pub struct S3Store {
    store: Arc<dyn ObjectStore>,
    bucket: String,
    prefix: Option<String>,
    staging: PathBuf,
}

// Hand-written so that the client (which holds the credentials) can never end up in a log line.
impl std::fmt::Debug for S3Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Store").field("bucket", &self.bucket).field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

/// `https://host` → `https://<bucket>.host`: virtual-hosted addressing on a custom endpoint (object_store
/// expects the bucket already in the endpoint when virtual-hosted requests are on).
fn virtual_hosted_endpoint(endpoint: &str, bucket: &str) -> String {
    match endpoint.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{bucket}.{}", rest.trim_end_matches('/')),
        None => endpoint.to_string(),
    }
}

impl S3Store {
    /// Builds the client from validated settings. `staging` is a local directory for upload staging files
    /// (created with mode 0700; files left by a crash are removed). No request is made here: readiness
    /// ([`DocumentStore::check`]) is what proves the bucket is reachable.
    pub fn new(
        settings: &S3StorageSettings,
        credentials: Option<S3Credentials>,
        staging: &Path,
    ) -> Result<S3Store, StorageError> {
        // `from_env` brings in the AWS credential chain (AWS_* variables, IRSA web identity, container and
        // instance roles); the settings then override what they name.
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(&settings.bucket);
        if let Some(region) = &settings.region {
            builder = builder.with_region(region);
        }
        let mut options =
            ClientOptions::new().with_timeout(Duration::from_secs(60)).with_connect_timeout(Duration::from_secs(5));
        if let Some(endpoint) = &settings.endpoint {
            // The settings allow http:// only for loopback.
            options = options.with_allow_http(endpoint.starts_with("http://"));
            builder = if settings.force_path_style {
                builder.with_endpoint(endpoint.trim_end_matches('/')).with_virtual_hosted_style_request(false)
            } else {
                builder
                    .with_endpoint(virtual_hosted_endpoint(endpoint, &settings.bucket))
                    .with_virtual_hosted_style_request(true)
            };
        } else {
            builder = builder.with_virtual_hosted_style_request(!settings.force_path_style);
        }
        if let Some(c) = credentials {
            builder = builder.with_access_key_id(c.access_key_id).with_secret_access_key(c.secret_access_key);
        }
        // The encryption config key type is not exported; its documented string form is.
        let encryption: object_store::aws::AmazonS3ConfigKey = "aws_server_side_encryption"
            .parse()
            .map_err(|e| StorageError::Misconfigured(format!("S3 encryption setting: {e}")))?;
        builder = match (settings.effective_encryption(), &settings.sse_kms_key_id) {
            (Some(S3ServerSideEncryption::AwsKms), Some(key)) => builder.with_sse_kms_encryption(key),
            // aws:kms without a key id (the account's aws/s3 key) sends no key-id header at all.
            (Some(kind), _) => builder.with_config(encryption, kind.as_str()),
            (None, _) => {
                tracing::warn!(
                    bucket = %settings.bucket,
                    "S3 storage writes WITHOUT requesting server-side encryption (allowUnencrypted): documents are \
                     encrypted at rest only if the bucket's default encryption does it"
                );
                builder
            }
        };
        let retry = RetryConfig { max_retries: 3, retry_timeout: Duration::from_secs(20), ..Default::default() };
        let store = builder
            .with_client_options(options)
            .with_retry(retry)
            .build()
            .map_err(|e| StorageError::Misconfigured(format!("the S3 client could not be built: {e}")))?;

        std::fs::create_dir_all(staging)?;
        std::fs::set_permissions(staging, std::fs::Permissions::from_mode(0o700))?;
        for entry in std::fs::read_dir(staging)? {
            let entry = entry?;
            if entry.file_type()?.is_file() {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        Ok(S3Store {
            store: Arc::new(store),
            bucket: settings.bucket.clone(),
            prefix: settings.normalized_prefix().map(str::to_string),
            staging: staging.to_path_buf(),
        })
    }

    fn location(&self, key: &str) -> Result<ObjectPath, StorageError> {
        validate_key(key)?;
        Ok(match &self.prefix {
            Some(prefix) => ObjectPath::from(format!("{prefix}/{key}")),
            None => ObjectPath::from(key),
        })
    }

    /// Maps a client error once, for every operation: the object_store message names the operation, the
    /// object path (bucket, prefix, `<job id>.pdf`) and the server's error code, never the credentials or
    /// the document.
    fn error(&self, e: object_store::Error) -> StorageError {
        let class = classify(&e);
        let e = without_error_body(&e.to_string());
        match class {
            Class::NotFound => StorageError::NotFound,
            Class::NoSuchBucket => StorageError::Misconfigured(format!("S3 bucket `{}` does not exist", self.bucket)),
            Class::Refused => StorageError::Refused(format!(
                "S3 bucket `{}` refused the request (check the accessKeyId/secretAccessKey credentials and the IAM \
                 and KMS key policies): {e}",
                self.bucket
            )),
            Class::Other => StorageError::Unavailable(format!("S3 bucket `{}`: {e}", self.bucket)),
        }
    }
}

/// S3's error bodies can echo the access key id, the string to sign and request ids
/// (`SignatureDoesNotMatch`); a message keeps the request line, the status and S3's error code only.
fn without_error_body(text: &str) -> String {
    match text.find("<?xml").or_else(|| text.find("<Error>")) {
        Some(at) => {
            let code = text[at..].split("<Code>").nth(1).and_then(|rest| rest.split("</Code>").next());
            format!("{}S3 error code {}", &text[..at], code.unwrap_or("unknown"))
        }
        None => text.to_string(),
    }
}

enum Class {
    NotFound,
    NoSuchBucket,
    Refused,
    Other,
}

/// object_store gives 401/403/404 their own variants on single-object requests but wraps a failed listing
/// as `Generic`, and its status-carrying error type is private; the rendered chain names the status and S3's
/// error code in both cases, so that is what is classified.
fn classify(e: &object_store::Error) -> Class {
    let text = e.to_string();
    if text.contains("<Code>NoSuchBucket</Code>") {
        return Class::NoSuchBucket;
    }
    match e {
        object_store::Error::NotFound { .. } => Class::NotFound,
        object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. } => Class::Refused,
        _ if text.contains("status code: 403") || text.contains("status code: 401") => Class::Refused,
        _ if text.contains("status code: 404") => Class::NotFound,
        _ => Class::Other,
    }
}

#[async_trait]
impl DocumentStore for S3Store {
    fn id(&self) -> &'static str {
        S3_STORAGE
    }

    fn staging_dir(&self) -> &Path {
        &self.staging
    }

    async fn put_file(&self, key: &str, staged: tempfile::TempPath) -> Result<(), StorageError> {
        let location = self.location(key)?;
        let mut file = tokio::fs::File::open(&staged).await?;
        let mut writer = object_store::buffered::BufWriter::with_capacity(self.store.clone(), location, PART_SIZE)
            .with_max_concurrency(PARTS_IN_FLIGHT);
        let copied = async {
            tokio::io::copy(&mut file, &mut writer).await?;
            tokio::io::AsyncWriteExt::shutdown(&mut writer).await
        }
        .await;
        if let Err(e) = copied {
            // An unfinished multipart upload is billed until aborted; the staging file is removed on drop.
            let _ = writer.abort().await;
            return Err(match e.into_inner().map(|inner| inner.downcast::<object_store::Error>()) {
                Some(Ok(os)) => self.error(*os),
                Some(Err(other)) => StorageError::Unavailable(format!("S3 bucket `{}`: {other}", self.bucket)),
                None => StorageError::Unavailable(format!("S3 bucket `{}`: upload failed", self.bucket)),
            });
        }
        drop(staged);
        Ok(())
    }

    async fn put_bytes(&self, key: &str, bytes: Vec<u8>) -> Result<(), StorageError> {
        let location = self.location(key)?;
        self.store.put(&location, PutPayload::from(bytes)).await.map_err(|e| self.error(e))?;
        Ok(())
    }

    async fn open(&self, key: &str) -> Result<DocumentReader, StorageError> {
        let location = self.location(key)?;
        let result = self.store.get(&location).await.map_err(|e| self.error(e))?;
        let stream = result.into_stream().map_err(std::io::Error::other);
        Ok(Box::pin(tokio_util::io::StreamReader::new(stream)))
    }

    async fn delete(&self, key: &str) -> Result<(), StorageError> {
        let location = self.location(key)?;
        match self.store.delete(&location).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(self.error(e)),
        }
    }

    async fn list_older_than(&self, age: Duration) -> Result<Vec<String>, StorageError> {
        let cutoff = chrono::Utc::now() - chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
        let prefix = self.prefix.as_deref().map(ObjectPath::from);
        let mut listing = self.store.list(prefix.as_ref());
        let mut keys = Vec::new();
        while let Some(meta) = listing.next().await {
            let meta = meta.map_err(|e| self.error(e))?;
            let name = match &prefix {
                Some(p) => meta.location.prefix_match(p).map(|mut parts| {
                    let first = parts.next().map(|p| p.as_ref().to_string()).unwrap_or_default();
                    if parts.next().is_some() { String::new() } else { first }
                }),
                None => Some(meta.location.to_string()),
            };
            // Objects under deeper prefixes (another deployment's) are not ours to sweep.
            if let Some(name) = name
                && validate_key(&name).is_ok()
                && meta.last_modified < cutoff
            {
                keys.push(name);
            }
        }
        Ok(keys)
    }

    async fn check(&self) -> Result<(), StorageError> {
        // A one-key listing: proves the endpoint answers, the bucket exists and the credentials are accepted,
        // without writing (a write would cost a KMS call on every probe).
        let prefix = self.prefix.as_deref().map(ObjectPath::from);
        let probe = async {
            let mut listing = self.store.list(prefix.as_ref());
            listing.next().await.transpose()
        };
        match tokio::time::timeout(CHECK_TIMEOUT, probe).await {
            Ok(Ok(_)) => Ok(()),
            // A listing finds no object only when the bucket itself is missing.
            Ok(Err(e)) => Err(match self.error(e) {
                StorageError::NotFound => {
                    StorageError::Misconfigured(format!("S3 bucket `{}` does not exist", self.bucket))
                }
                other => other,
            }),
            Err(_) => Err(StorageError::Unavailable(format!(
                "S3 bucket `{}` did not answer within {}s",
                self.bucket,
                CHECK_TIMEOUT.as_secs()
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bodies_are_reduced_to_the_s3_error_code() {
        let raw = "Error performing GET http://h/b/k.pdf - Server returned non-2xx status code: 403 Forbidden: \
                   <?xml version=\"1.0\"?><Error><Code>SignatureDoesNotMatch</Code>\
                   <AWSAccessKeyId>AKIAEXAMPLE</AWSAccessKeyId><StringToSign>x</StringToSign></Error>";
        let kept = without_error_body(raw);
        assert!(kept.ends_with("403 Forbidden: S3 error code SignatureDoesNotMatch"), "{kept}");
        assert!(!kept.contains("AKIAEXAMPLE"));
        assert_eq!(without_error_body("connection refused"), "connection refused");
    }

    #[test]
    fn virtual_hosted_endpoints_carry_the_bucket() {
        assert_eq!(virtual_hosted_endpoint("https://s3.example.org/", "docs"), "https://docs.s3.example.org");
    }

    #[test]
    fn debug_output_never_shows_credentials() {
        let creds = S3Credentials { access_key_id: "AKIAEXAMPLE".into(), secret_access_key: "sekrit".into() };
        assert!(!format!("{creds:?}").contains("sekrit"));
        let dir = tempfile::tempdir().unwrap();
        let settings = S3StorageSettings {
            bucket: "faxbot-docs".into(),
            endpoint: Some("http://127.0.0.1:9".into()),
            force_path_style: true,
            sse_kms_key_id: Some("alias/faxbot".into()),
            ..Default::default()
        };
        let store = S3Store::new(&settings, Some(creds), &dir.path().join("staging")).unwrap();
        let shown = format!("{store:?}");
        assert!(
            shown.contains("faxbot-docs") && !shown.contains("sekrit") && !shown.contains("AKIAEXAMPLE"),
            "{shown}"
        );
    }
}
