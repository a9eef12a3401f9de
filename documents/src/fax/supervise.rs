//! Running a converter (Ghostscript, tiff2pdf) as a supervised subprocess.
//!
//! The converters parse untrusted documents, so they run with as little as
//! possible: no shell (explicit arguments), stdin closed, an environment
//! cleared down to `PATH` and `TMPDIR`, a private working directory, a hard
//! timeout after which the process is killed and reaped, and output captured
//! into fixed-size tail buffers. Their messages can quote document content
//! (Ghostscript's `Error: /undefined in <token>`), so only recognisable
//! diagnostic lines survive, with long digit runs masked.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::Command;

use super::ConvertError;

/// Bytes of each output stream kept (the tail); older output is dropped.
const TAIL_BYTES: usize = 8 * 1024;
/// Length of the sanitised excerpt placed in [`ConvertError::Failed`].
const EXCERPT_CHARS: usize = 400;

/// One converter invocation.
pub(crate) struct Invocation<'a> {
    /// Short tool name for errors ("gs", "tiff2pdf").
    pub tool: &'static str,
    pub program: &'a Path,
    pub args: Vec<OsString>,
    /// Private directory: working directory and `TMPDIR`.
    pub workdir: &'a Path,
    pub timeout: Duration,
}

/// Runs the invocation to completion; `Ok` only on exit status 0.
pub(crate) async fn run(inv: Invocation<'_>) -> Result<(), ConvertError> {
    let mut command = Command::new(inv.program);
    command
        .args(&inv.args)
        .current_dir(inv.workdir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/bin:/bin".into()))
        .env("TMPDIR", inv.workdir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::PermissionDenied => {
            ConvertError::ToolMissing(inv.program.to_path_buf())
        }
        _ => ConvertError::Io(e),
    })?;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let finished = tokio::time::timeout(inv.timeout, async {
        let (out, err, status) = tokio::join!(tail(stdout), tail(stderr), child.wait());
        (out, err, status)
    })
    .await;
    let (out, err, status) = match finished {
        Ok(done) => done,
        Err(_elapsed) => {
            // Kill and reap so no converter outlives its conversion (kill_on_drop alone does not wait).
            let _ = child.start_kill();
            let _ = child.wait().await;
            return Err(ConvertError::TimedOut(inv.timeout));
        }
    };
    let status: ExitStatus = status?;
    if status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&out).into_owned();
    text.push('\n');
    text.push_str(&String::from_utf8_lossy(&err));
    Err(ConvertError::Failed { tool: inv.tool.to_string(), status, stderr_tail: sanitise(&text) })
}

/// Reads a stream to its end, keeping only its last [`TAIL_BYTES`].
async fn tail<R: AsyncRead + Unpin>(stream: Option<R>) -> Vec<u8> {
    let Some(mut stream) = stream else { return Vec::new() };
    let mut kept = Vec::with_capacity(TAIL_BYTES);
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return kept,
            Ok(n) => {
                kept.extend_from_slice(&chunk[..n]);
                if kept.len() > TAIL_BYTES {
                    kept.drain(..kept.len() - TAIL_BYTES);
                }
            }
        }
    }
}

/// Keeps the converters' own diagnostic lines and drops everything that may
/// echo the document (operand stacks, tokens after `in`, quoted strings);
/// digit runs of five or more are masked so no phone number survives.
pub(crate) fn sanitise(output: &str) -> String {
    let mut lines = Vec::new();
    for line in output.lines() {
        let line = line.trim();
        let kept = if let Some(rest) = line.strip_prefix("Error: ") {
            // "Error: /undefined in <document token>": the error name only.
            format!("Error: {}", rest.split_whitespace().next().unwrap_or_default())
        } else if line.starts_with("****")
            || line.starts_with("GPL Ghostscript")
            || line.contains("Unrecoverable error")
            || line.starts_with("tiff2pdf:")
            || line.starts_with("TIFF")
            || line.contains("Error")
            || line.contains("error")
        {
            strip_quoted(line)
        } else {
            continue;
        };
        lines.push(mask_digits(&kept));
    }
    let mut joined = lines.join(" | ");
    if joined.chars().count() > EXCERPT_CHARS {
        let skip = joined.chars().count() - EXCERPT_CHARS;
        joined = format!("…{}", joined.chars().skip(skip).collect::<String>());
    }
    joined
}

/// Removes `(...)` PostScript strings and `"..."` / `'...'` quotations,
/// where converters put names and text taken from the document.
fn strip_quoted(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut depth = 0usize;
    let mut quote: Option<char> = None;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push('…');
                out.push(c);
            }
            (Some(_), _) => {}
            (None, '(') => {
                if depth == 0 {
                    out.push_str("(…");
                }
                depth += 1;
            }
            (None, ')') if depth > 0 => {
                depth -= 1;
                if depth == 0 {
                    out.push(')');
                }
            }
            (None, _) if depth > 0 => {}
            (None, '"' | '\'') => {
                quote = Some(c);
                out.push(c);
            }
            (None, c) if c.is_control() => out.push(' '),
            (None, c) => out.push(c),
        }
    }
    out
}

fn mask_digits(line: &str) -> String {
    faxbot_contract::phi::mask_numbers(line, faxbot_contract::phi::LOG_MIN_DIGITS)
}

/// Finds `name` on `PATH` as an executable file.
pub(crate) fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
}

/// Whether `path` is a regular file with an execute bit set.
pub(crate) fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sanitising_keeps_diagnostics_and_drops_document_text() {
        let gs = "Error: /undefined in Jane_Doe_DOB_19700101\nOperand stack:\n   (Patient Jane Doe) 5551234567\n\
                  Execution stack:\n   %interp_exit .runexec2\n   **** Error: page 2 has (John Smith) in it\n\
                  GPL Ghostscript 10.00.0: Unrecoverable error, exit code 1\n";
        let s = sanitise(gs);
        assert_eq!(
            s,
            "Error: /undefined | **** Error: page 2 has (…) in it | GPL Ghostscript 10.00.0: Unrecoverable error, exit code 1"
        );
        assert_eq!(mask_digits("call +15551234567 at 1234"), "call …4567 at 1234");
        let long = "Error: x\n".repeat(500);
        assert!(sanitise(&long).chars().count() <= EXCERPT_CHARS + 1);
    }
}
