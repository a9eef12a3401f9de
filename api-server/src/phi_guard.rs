//! The PHI guard: the last check on text leaving the process, and the counters a canary is judged on.
//!
//! Every log line the server writes passes through [`GuardedStdout`]: string values of the JSON line (the
//! message and every text field, not ids, levels or timestamps) are searched for phone-number-like runs
//! ([`faxbot_contract::phi::mask_standalone_numbers`]), and a run found is masked to its last four digits
//! before the line is written. Error texts, job errors and events are masked where they are made
//! ([`guard_text`]). Either way the catch is counted in `faxbot_phi_guard_hits_total{revision,sink}`: a
//! healthy server never needs the guard, so a revision whose pods count hits is putting numbers where
//! they must not go, and its canary is rolled back (the operator reads the counter).
//!
//! The audit trail has its own sink besides stdout when `AUDIT_LOG_FILE` is set ([`AuditFile`]); a failed
//! write of an audit event is counted in `faxbot_audit_write_failures_total{revision}`: an audit trail that
//! cannot be written is a compliance failure, and a canary that causes one is rolled back too.
//!
//! The counters are process-wide statics because the log writer exists before the server's metrics
//! registry and outlives reloads; [`register`] adds them to a registry, and the current config revision
//! ([`set_revision`]) labels each count.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex, RwLock};

use faxbot_contract::phi::{GUARD_MIN_DIGITS, LOG_MIN_DIGITS, mask_numbers, mask_standalone_numbers, may_hold_number};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Where the guard caught a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sink {
    /// A log line (stdout or the audit file).
    Log,
    /// Free text from outside (a provider's message, a parser's error) on its way into a job error, an
    /// error body or an event.
    Text,
}

impl Sink {
    fn label(self) -> &'static str {
        match self {
            Sink::Log => "log",
            Sink::Text => "text",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HitLabels {
    revision: String,
    sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RevisionLabels {
    revision: String,
}

static REVISION: RwLock<String> = RwLock::new(String::new());
static HITS: LazyLock<Family<HitLabels, Counter>> = LazyLock::new(Family::default);
static AUDIT_FAILURES: LazyLock<Family<RevisionLabels, Counter>> = LazyLock::new(Family::default);

/// Labels later counts with `revision` (the server calls it whenever the config revision it serves changes).
pub fn set_revision(revision: &str) {
    if let Ok(mut current) = REVISION.write() {
        revision.clone_into(&mut current);
    }
}

fn revision() -> String {
    REVISION.read().map(|r| r.clone()).unwrap_or_default()
}

/// Counts one catch.
pub fn hit(sink: Sink) {
    HITS.get_or_create(&HitLabels { revision: revision(), sink: sink.label().into() }).inc();
}

/// Hits counted so far for `sink`, over every revision.
#[cfg(test)]
fn hits(sink: Sink) -> u64 {
    let mut total = 0;
    // `Family` has no iterator; the text exposition is the one complete view of it.
    let mut registry = Registry::default();
    registry.register("guard", "", HITS.clone());
    let mut text = String::new();
    if prometheus_client::encoding::text::encode(&mut text, &registry).is_ok() {
        let needle = format!("sink=\"{}\"", sink.label());
        for line in text.lines().filter(|l| l.starts_with("guard_total{") && l.contains(&needle)) {
            total += line.rsplit(' ').next().and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        }
    }
    total
}

/// Adds the guard's counters to `registry` (prefixed as the registry is).
pub fn register(registry: &mut Registry) {
    registry.register(
        "phi_guard_hits",
        "Phone-number-like values the PHI guard masked on their way out, by config revision and sink",
        HITS.clone(),
    );
    registry.register(
        "audit_write_failures",
        "Audit events that could not be written to the audit file, by config revision",
        AUDIT_FAILURES.clone(),
    );
}

/// Masks number-like runs in free text (five digits or more, [`LOG_MIN_DIGITS`]) to their last four
/// (`…4567`) and counts the catch: a rejected document's error (serde quotes the offending value) or a
/// provider's message cannot put a phone number into a log line, an event or a job error. The project's one
/// masking rule ([`faxbot_contract::phi`]).
pub fn guard_text(text: &str) -> String {
    let masked = mask_numbers(text, LOG_MIN_DIGITS);
    if masked != text {
        hit(Sink::Text);
    }
    masked
}

/// Keys of a JSON log line whose values are not free text: structure written by the formatter, and ids
/// (hexadecimal, so they hold digit runs that are not numbers).
fn exempt(key: &str) -> bool {
    matches!(
        key,
        "timestamp" | "level" | "target" | "revision" | "filename" | "line_number" | "threadId" | "threadName"
    ) || key.ends_with("id")
        || key.ends_with("_sid")
}

/// Masks the free text of one JSON value in place; returns whether anything was masked.
fn guard_value(value: &mut serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(s) => {
            let masked = mask_standalone_numbers(s, GUARD_MIN_DIGITS);
            let changed = masked != *s;
            *s = masked;
            changed
        }
        serde_json::Value::Array(items) => items.iter_mut().fold(false, |acc, v| guard_value(v) | acc),
        serde_json::Value::Object(map) => {
            map.iter_mut().filter(|(k, _)| !exempt(k)).fold(false, |acc, (_, v)| guard_value(v) | acc)
        }
        _ => false,
    }
}

/// A JSON log line after its leading `timestamp` value (exempt from the guard, and always a long digit run),
/// or the whole line when it does not start with one.
fn after_timestamp(body: &str) -> &str {
    body.strip_prefix("{\"timestamp\":\"").and_then(|rest| rest.find('"').map(|end| &rest[end + 1..])).unwrap_or(body)
}

/// One log line, guarded: JSON lines field by field; other lines (the `pretty` format) after their
/// timestamp. `None` when nothing needed masking (the line is written as it is).
pub fn guard_line(line: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(line).ok()?;
    let body = text.trim_end_matches('\n');
    // Most lines hold no long digit run outside their timestamp: those are passed on without being parsed.
    if body.starts_with('{') && !may_hold_number(after_timestamp(body), GUARD_MIN_DIGITS) {
        return None;
    }
    if body.starts_with('{')
        && let Ok(mut value) = serde_json::from_str::<serde_json::Value>(body)
    {
        if !guard_value(&mut value) {
            return None;
        }
        let mut out = serde_json::to_vec(&value).ok()?;
        out.push(b'\n');
        return Some(out);
    }
    // Not JSON: keep the leading timestamp token, guard the rest.
    let (head, rest) = body.split_at(body.find(' ').unwrap_or(0));
    let masked = mask_standalone_numbers(rest, GUARD_MIN_DIGITS);
    (masked != rest).then(|| format!("{head}{masked}\n").into_bytes())
}

/// Writes one formatted event to `out`, guarded and counted.
fn write_guarded(out: &mut impl Write, buf: &[u8]) -> io::Result<()> {
    match guard_line(buf) {
        Some(masked) => {
            hit(Sink::Log);
            out.write_all(&masked)
        }
        None => out.write_all(buf),
    }
}

/// The server's stdout, behind the guard. The formatter writes each event with one `write_all` of the whole
/// line, so each `write` call here is one line.
#[derive(Clone, Copy, Debug, Default)]
pub struct GuardedStdout;

impl Write for GuardedStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        write_guarded(&mut io::stdout().lock(), buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        io::stdout().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for GuardedStdout {
    type Writer = GuardedStdout;

    fn make_writer(&'a self) -> Self::Writer {
        GuardedStdout
    }
}

/// The audit file: audit events appended one JSON line each. Opened at start; when it cannot be opened or
/// written, each event that did not reach it is counted (and the event still reaches stdout).
#[derive(Debug)]
pub struct AuditFile {
    path: PathBuf,
    file: Mutex<Option<std::fs::File>>,
}

impl AuditFile {
    /// Opens (creates) `path` for appending; a failure is reported once here and then counted per event.
    pub fn open(path: &Path) -> AuditFile {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path);
        if let Err(e) = &file {
            // stdout, not tracing: the subscriber is not installed yet.
            println!(
                "{}",
                serde_json::json!({"level": "ERROR", "target": "faxbot_api::phi_guard",
                    "message": "the audit file cannot be opened; audit events reach stdout only",
                    "error": e.to_string()})
            );
        }
        AuditFile { path: path.to_path_buf(), file: Mutex::new(file.ok()) }
    }

    fn append(&self, buf: &[u8]) -> io::Result<()> {
        let mut file = self.file.lock().map_err(|_| io::Error::other("audit file lock poisoned"))?;
        match file.as_mut() {
            Some(f) => write_guarded(f, buf),
            None => Err(io::Error::new(io::ErrorKind::NotFound, format!("{} is not open", self.path.display()))),
        }
    }
}

/// A writer for one audit event.
#[derive(Debug)]
pub struct AuditFileWriter<'a>(&'a AuditFile);

impl Write for AuditFileWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Err(e) = self.0.append(buf) {
            AUDIT_FAILURES.get_or_create(&RevisionLabels { revision: revision() }).inc();
            return Err(e);
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for AuditFile {
    type Writer = AuditFileWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        AuditFileWriter(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guarded(line: &str) -> String {
        guard_line(line.as_bytes()).map(|b| String::from_utf8(b).unwrap()).unwrap_or_else(|| line.to_string())
    }

    #[test]
    fn numbers_in_text_fields_are_masked_ids_and_structure_are_not() {
        let line = r#"{"timestamp":"2026-12-05T17:05:53.123456Z","level":"INFO","message":"sending to +15551234567","job_id":"3f2a1882045512345678","fields":{"to":"15551234567","bytes":33554432},"target":"faxbot_api::queue"}"#;
        let out = guarded(line);
        assert!(out.contains(r#""message":"sending to …4567""#), "{out}");
        assert!(out.contains(r#""to":"…4567""#), "{out}");
        assert!(out.contains(r#""job_id":"3f2a1882045512345678""#), "ids stay: {out}");
        assert!(out.contains("2026-12-05T17:05:53.123456Z"), "timestamps stay: {out}");
        assert!(out.contains(r#""bytes":33554432"#), "numeric fields are not text: {out}");
        assert!(out.ends_with('\n'));
    }

    #[test]
    fn long_digit_runs_in_free_text_are_masked() {
        assert_eq!(guard_text("invalid value \"+15551234567\" at 12"), "invalid value \"…4567\" at 12");
        assert_eq!(guard_text("1234"), "1234");
        assert_eq!(guard_text("a12345"), "a…2345");
    }

    #[test]
    fn the_pre_check_skips_only_the_timestamp() {
        assert_eq!(after_timestamp(r#"{"timestamp":"2026-12-05T17:05:53Z","message":"x"}"#), r#","message":"x"}"#);
        assert_eq!(after_timestamp(r#"{"message":"x"}"#), r#"{"message":"x"}"#, "no leading timestamp: all of it");
        // A number right after the timestamp, or in a line whose fields come in another order, is still caught.
        for line in [
            r#"{"timestamp":"2026-12-05T17:05:53Z","message":"+15551234567"}"#,
            r#"{"message":"to 1 (555) 123-4567","timestamp":"2026-12-05T17:05:53Z"}"#,
        ] {
            assert!(guarded(line).contains("…4567"), "{line}");
        }
    }

    #[test]
    fn clean_lines_pass_untouched() {
        let line = "{\"timestamp\":\"2026-12-05T17:05:53Z\",\"message\":\"listening on 0.0.0.0:8080\",\"key_id\":\"12345678901234\"}\n";
        assert_eq!(guard_line(line.as_bytes()), None);
        assert_eq!(guard_line(b"2026-12-05T17:05:53Z  INFO faxbot: revision 42 ready\n"), None);
        assert_eq!(
            guarded("2026-12-05T17:05:53Z  INFO faxbot: to 5551234567\n"),
            "2026-12-05T17:05:53Z  INFO faxbot: to …4567\n"
        );
    }

    #[test]
    fn catches_are_counted() {
        // Other tests of this binary count too, in parallel: only increases are certain here (that clean
        // text is not counted is `clean_lines_pass_untouched`).
        let before = hits(Sink::Text);
        assert_eq!(guard_text("provider said: number 5551234567 busy"), "provider said: number …4567 busy");
        assert_eq!(guard_text("provider said: busy"), "provider said: busy");
        assert!(hits(Sink::Text) > before);
        let before = hits(Sink::Log);
        let mut out = Vec::new();
        write_guarded(&mut out, b"{\"message\":\"to +15551234567\"}\n").unwrap();
        write_guarded(&mut out, b"{\"message\":\"fine\"}\n").unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "{\"message\":\"to …4567\"}\n{\"message\":\"fine\"}\n");
        assert!(hits(Sink::Log) > before);
    }

    #[test]
    fn an_unwritable_audit_file_counts_every_event() {
        let dir = tempfile::tempdir().unwrap();
        let audit = AuditFile::open(&dir.path().join("missing-dir/audit.log"));
        let failures = || AUDIT_FAILURES.get_or_create(&RevisionLabels { revision: revision() }).get();
        let before = failures();
        let mut w = tracing_subscriber::fmt::MakeWriter::make_writer(&audit);
        assert!(w.write(b"{\"event\":\"job_created\"}\n").is_err());
        assert!(failures() > before);
        let path = dir.path().join("audit.log");
        let audit = AuditFile::open(&path);
        let mut w = tracing_subscriber::fmt::MakeWriter::make_writer(&audit);
        w.write_all(b"{\"event\":\"job_created\",\"to\":\"+15551234567\"}\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"event\":\"job_created\",\"to\":\"…4567\"}\n");
    }
}
