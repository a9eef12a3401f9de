//! The document storage plugins: local disk (`local`) and S3 (`s3`).

use super::*;

/// Settings of the local-filesystem storage plugin (`local`).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct LocalStorageSettings {
    /// Directory for documents; created with mode 0700 if missing. Defaults to `<FAX_DATA_DIR>/documents`.
    pub path: Option<String>,
}

impl SettingsCheck for LocalStorageSettings {
    fn check(&self) -> Vec<(String, String)> {
        if self.path.as_deref().is_some_and(|p| p.trim().is_empty()) {
            vec![("path".into(), "must not be empty".into())]
        } else {
            Vec::new()
        }
    }
}

/// Server-side encryption the S3 plugin asks for on every write.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum S3ServerSideEncryption {
    /// SSE-KMS: S3 encrypts with a KMS key (`sseKmsKeyId`, or the account's `aws/s3` key), so key use is
    /// audited in CloudTrail and access can be revoked by key policy — the usual choice for PHI.
    #[serde(rename = "aws:kms")]
    AwsKms,
    /// SSE-S3: S3-managed keys (AES-256).
    #[serde(rename = "AES256")]
    Aes256,
}

impl S3ServerSideEncryption {
    /// The wire value of `x-amz-server-side-encryption`.
    pub fn as_str(self) -> &'static str {
        match self {
            S3ServerSideEncryption::AwsKms => "aws:kms",
            S3ServerSideEncryption::Aes256 => "AES256",
        }
    }
}

/// Settings of the S3 storage plugin (`s3`): documents as objects in one bucket, shared by every replica.
/// The access key is a credential (files `storage.accessKeyId` / `storage.secretAccessKey`), never a setting.
///
/// Documents are PHI, so a binding must say how they are encrypted at rest: `serverSideEncryption` (or an
/// `sseKmsKeyId`, which implies `aws:kms`). Relying on the bucket's default encryption alone takes an
/// explicit `allowUnencrypted: true`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct S3StorageSettings {
    /// Bucket name (S3 naming rules: 3 to 63 lowercase letters, digits, '.' and '-').
    pub bucket: String,
    /// AWS region of the bucket; default `us-east-1` (or `AWS_REGION`).
    pub region: Option<String>,
    /// Endpoint of an S3-compatible server (MinIO, Ceph, a VPC endpoint); https:// required, http:// only
    /// for loopback. Omitted: AWS S3 of the region.
    pub endpoint: Option<String>,
    /// Key prefix inside the bucket (letters, digits, '-', '_', '.' and '/' between segments), so several
    /// deployments can share a bucket and an IAM policy can be scoped to `prefix/*`.
    pub prefix: Option<String>,
    /// Address the bucket as `endpoint/bucket/key` instead of `bucket.endpoint/key` (most S3-compatible
    /// servers need this).
    pub force_path_style: bool,
    /// `aws:kms` or `AES256`; defaults to `aws:kms` when `sseKmsKeyId` is set.
    pub server_side_encryption: Option<S3ServerSideEncryption>,
    /// KMS key id, ARN or alias (`alias/…`) for SSE-KMS; sent as
    /// `x-amz-server-side-encryption-aws-kms-key-id` on every write.
    pub sse_kms_key_id: Option<String>,
    /// Write without asking for server-side encryption (the bucket's default encryption then decides).
    /// Not HIPAA-compliant unless the bucket enforces encryption itself.
    pub allow_unencrypted: bool,
}

impl S3StorageSettings {
    /// The encryption in effect: the explicit choice, else `aws:kms` when a key id is given.
    pub fn effective_encryption(&self) -> Option<S3ServerSideEncryption> {
        self.server_side_encryption.or(self.sse_kms_key_id.as_ref().map(|_| S3ServerSideEncryption::AwsKms))
    }

    /// The prefix without a trailing `/`, if any.
    pub fn normalized_prefix(&self) -> Option<&str> {
        self.prefix.as_deref().map(|p| p.trim_end_matches('/')).filter(|p| !p.is_empty())
    }
}

/// S3 bucket naming rules (general purpose buckets), so a typo fails at validation, not at the first upload.
pub(super) fn bucket_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("is required");
    }
    if !(3..=63).contains(&name.len()) {
        return Some("must be 3 to 63 characters");
    }
    if !name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-') {
        return Some("may contain only lowercase letters, digits, '.' and '-'");
    }
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    if !edge(name.as_bytes().first()) || !edge(name.as_bytes().last()) {
        return Some("must begin and end with a letter or digit");
    }
    if name.contains("..") || name.contains(".-") || name.contains("-.") {
        return Some("must not contain '..', '.-' or '-.'");
    }
    if name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok()) {
        return Some("must not be formatted as an IP address");
    }
    if name.starts_with("xn--")
        || name.starts_with("sthree-")
        || name.ends_with("-s3alias")
        || name.ends_with("--ol-s3")
    {
        return Some("uses a prefix or suffix S3 reserves (xn--, sthree-, -s3alias, --ol-s3)");
    }
    None
}

impl SettingsCheck for S3StorageSettings {
    fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        if let Some(problem) = bucket_name_problem(&self.bucket) {
            problems.push(("bucket".into(), problem.into()));
        }
        if let Some(region) = &self.region
            && (region.is_empty()
                || region.len() > 32
                || !region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
        {
            problems
                .push(("region".into(), "must be 1 to 32 lowercase letters, digits or '-' (e.g. eu-west-1)".into()));
        }
        if let Some(endpoint) = &self.endpoint {
            if !(endpoint.starts_with("https://") || loopback_http(endpoint)) {
                problems.push(("endpoint".into(), "must be an https:// URL (http:// only for loopback)".into()));
            } else if has_userinfo(endpoint) {
                problems.push((
                    "endpoint".into(),
                    "must not embed credentials; use the accessKeyId and secretAccessKey credentials".into(),
                ));
            } else if endpoint.contains(['?', '#']) {
                problems.push(("endpoint".into(), "must not have a query or fragment".into()));
            } else if ip_literal_host(endpoint) && !self.force_path_style {
                // Virtual-hosted addressing puts the bucket in front of the host (`bucket.198.18.0.1`), which
                // is no host name at all: the S3 client panicked on every request (found on a real pod).
                problems.push((
                    "endpoint".into(),
                    "is an IP address: set forcePathStyle: true (the bucket cannot be put in front of an IP)".into(),
                ));
            }
        }
        if let Some(prefix) = &self.prefix {
            let trimmed = prefix.trim_end_matches('/');
            let safe = trimmed.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./".contains(&b));
            let segments_ok = trimmed.split('/').all(|s| !s.is_empty() && s != "." && s != "..");
            if trimmed.is_empty() || trimmed.len() > 256 || !safe || !segments_ok {
                problems.push((
                    "prefix".into(),
                    "must be 1 to 256 letters, digits, '-', '_' or '.', with '/' only between non-empty segments \
                     (no '.' or '..' segments, no leading '/')"
                        .into(),
                ));
            }
        }
        if let Some(key) = &self.sse_kms_key_id {
            if key.is_empty() || key.len() > 2048 || !key.bytes().all(|b| b.is_ascii_graphic()) {
                problems.push((
                    "sseKmsKeyId".into(),
                    "must be a KMS key id, key ARN, alias (alias/…) or alias ARN: 1 to 2048 printable characters \
                     without spaces"
                        .into(),
                ));
            }
            if self.server_side_encryption == Some(S3ServerSideEncryption::Aes256) {
                problems.push((
                    "sseKmsKeyId".into(),
                    "applies only to serverSideEncryption aws:kms (AES256 uses S3-managed keys)".into(),
                ));
            }
        }
        match (self.effective_encryption(), self.allow_unencrypted) {
            (None, false) => problems.push((
                "serverSideEncryption".into(),
                "is required: documents are PHI; set aws:kms (with sseKmsKeyId for your own key) or AES256, or \
                 allowUnencrypted: true to rely on the bucket's default encryption"
                    .into(),
            )),
            (Some(_), true) => problems.push((
                "allowUnencrypted".into(),
                "contradicts serverSideEncryption/sseKmsKeyId; remove one of them".into(),
            )),
            _ => {}
        }
        problems
    }
}
