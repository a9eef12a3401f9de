//! The SIP/Asterisk plugin (`sip`): its settings and their checks.

use super::*;

/// Settings of the SIP/Asterisk plugin (`sip`): faxes go out over the hospital's own SIP trunk through
/// Asterisk, driven over the Asterisk Manager Interface (AMI), so PHI never passes through a cloud provider.
/// The AMI secret and the inbound callback secret are credentials (files), never settings.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(deny_unknown_fields, rename_all = "camelCase", default)]
pub struct SipSettings {
    /// Host name or IP of Asterisk's manager interface (required for sending).
    pub ami_host: String,
    /// AMI TCP port.
    pub ami_port: u16,
    /// AMI user (a `manager.conf` section with read `call,user` and write `originate,reporting`).
    pub ami_username: String,
    /// Dial string of the outbound leg; `{number}` becomes the E.164 destination (`+` and digits).
    pub channel_template: String,
    /// Dialplan context that runs `SendFAX` on the answered channel (see `config/asterisk/extensions.conf`).
    pub context: String,
    /// Directory where the API server writes the fax TIFFs; a volume Asterisk mounts too. The default lies
    /// on the data volume the operator mounts at `/var/lib/faxbot` (the root filesystem is read-only).
    pub spool_dir: String,
    /// The same directory as Asterisk sees it, when it is mounted at another path there.
    pub asterisk_spool_dir: Option<String>,
    /// Directory where Asterisk writes received faxes, as the API server sees it. The inbound callback names
    /// only a file in it; any other path is refused.
    pub inbound_dir: String,
    /// How long the far end may ring before the call counts as unanswered.
    #[schemars(range(min = 5, max = 300))]
    pub ring_timeout_seconds: u32,
    /// How long an answered call may take to transmit the whole fax before it is given up.
    #[schemars(range(min = 30, max = 7200))]
    pub fax_timeout_seconds: u32,
    /// Milliseconds between status checks of a call in progress (results arrive as AMI events; the check
    /// only reads what was recorded).
    #[schemars(range(min = 50, max = 60000))]
    pub poll_interval_ms: u64,
    /// Vertical resolution of the fax image.
    pub resolution: FaxResolution,
    /// Paper size every page is fitted to.
    pub paper_size: FaxPaperSize,
    /// TIFF compression: `g4` (T.6, smallest) or `g3` (T.4 1-D, most compatible).
    pub compression: FaxCompression,
    /// Transmitting station id (TSI), for example the sending fax number.
    pub station_id: Option<String>,
    /// Header line printed on each page by the fax stack.
    pub header_text: Option<String>,
}

/// Fax image resolution.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FaxResolution {
    /// 204×196 dpi.
    #[default]
    Fine,
    /// 204×98 dpi.
    Standard,
}

/// Paper size of fax pages.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FaxPaperSize {
    /// US letter.
    #[default]
    Letter,
    /// ISO A4.
    A4,
}

/// Fax TIFF compression.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum FaxCompression {
    /// CCITT T.6 (Group 4).
    #[default]
    G4,
    /// CCITT T.4 one-dimensional (Group 3).
    G3,
}

impl Default for SipSettings {
    fn default() -> Self {
        SipSettings {
            ami_host: String::new(),
            ami_port: 5038,
            ami_username: String::new(),
            channel_template: "PJSIP/{number}@trunk-endpoint".into(),
            context: "fax-tx".into(),
            spool_dir: "/var/lib/faxbot/spool/outbound".into(),
            asterisk_spool_dir: None,
            inbound_dir: "/var/lib/faxbot/spool/inbound".into(),
            ring_timeout_seconds: 60,
            fax_timeout_seconds: 900,
            poll_interval_ms: 2000,
            resolution: FaxResolution::Fine,
            paper_size: FaxPaperSize::Letter,
            compression: FaxCompression::G4,
            station_id: None,
            header_text: None,
        }
    }
}

/// Characters that cannot break out of an AMI header or a dialplan argument list (AMI lines end at CR/LF,
/// `Variable:` values are split at commas, `UserEvent` bodies at commas and `|`).
pub(super) fn ami_safe(value: &str) -> bool {
    value.chars().all(|c| !c.is_control() && c != ',' && c != '|' && c != ';')
}

impl SettingsCheck for SipSettings {
    fn check(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let host_ok = !self.ami_host.is_empty()
            && self.ami_host.len() <= 253
            && self.ami_host.bytes().all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b));
        if !host_ok {
            problems.push(("amiHost".into(), "must be a host name or IP address".into()));
        }
        if self.ami_port == 0 {
            problems.push(("amiPort".into(), "must be between 1 and 65535".into()));
        }
        if self.ami_username.is_empty() || self.ami_username.len() > 64 || !ami_safe(&self.ami_username) {
            problems
                .push(("amiUsername".into(), "must be 1 to 64 characters without commas or control characters".into()));
        }
        if self.channel_template.matches("{number}").count() != 1
            || !ami_safe(&self.channel_template)
            || self.channel_template.len() > 200
        {
            problems.push((
                "channelTemplate".into(),
                "must contain `{number}` exactly once, e.g. PJSIP/{number}@trunk-endpoint".into(),
            ));
        }
        let word = |v: &str| {
            !v.is_empty() && v.len() <= 80 && v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b))
        };
        if !word(&self.context) {
            problems.push(("context".into(), "must be a dialplan context name (letters, digits, - and _)".into()));
        }
        let dir =
            |v: &str| v.starts_with('/') && !v.split('/').any(|part| part == "..") && ami_safe(v) && v.len() <= 200;
        for (field, value) in [
            ("spoolDir", Some(&self.spool_dir)),
            ("asteriskSpoolDir", self.asterisk_spool_dir.as_ref()),
            ("inboundDir", Some(&self.inbound_dir)),
        ] {
            if let Some(v) = value
                && !dir(v)
            {
                problems
                    .push((field.into(), "must be an absolute path without `..`, commas or control characters".into()));
            }
        }
        if !(5..=300).contains(&self.ring_timeout_seconds) {
            problems.push(("ringTimeoutSeconds".into(), "must be between 5 and 300".into()));
        }
        if !(30..=7200).contains(&self.fax_timeout_seconds) {
            problems.push(("faxTimeoutSeconds".into(), "must be between 30 and 7200".into()));
        }
        if !(50..=60_000).contains(&self.poll_interval_ms) {
            problems.push(("pollIntervalMs".into(), "must be between 50 and 60000".into()));
        }
        if let Some(id) = &self.station_id
            && (id.is_empty() || id.len() > 20 || !id.bytes().all(|b| b.is_ascii_digit() || b" +".contains(&b)))
        {
            problems.push(("stationId".into(), "must be 1 to 20 digits, spaces or +".into()));
        }
        // Asterisk removes `"` and `\` from an Originate `Variable:` value, so a header with them would be
        // printed on every page other than it was configured: refused instead of silently altered.
        if let Some(h) = &self.header_text
            && (h.chars().count() > 50 || !ami_safe(h) || !h.is_ascii() || h.contains(['"', '\\']))
        {
            problems.push((
                "headerText".into(),
                "must be at most 50 ASCII characters without , | ; \" or \\ (Asterisk drops quotes and backslashes)"
                    .into(),
            ));
        }
        problems
    }
}
