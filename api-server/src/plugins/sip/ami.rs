//! A small Asterisk Manager Interface (AMI) client: one TCP session with login, ActionID correlation,
//! keep-alive pings, reconnection with backoff and a clean Logoff.
//!
//! The wire protocol (`shared/reference/providers.md` §3.1) is a greeting line followed by messages of
//! `Key: Value` lines, each message ended by an empty line. Keys repeat (a multimap), reads split and merge
//! messages arbitrarily, and only responses and action-specific events carry the ActionID.
//!
//! Why not a crate: the AMI crates on crates.io are young single-maintainer projects, and what this plugin
//! needs from a client is exactly the part they abstract away — telling "nothing was sent" (safe to retry)
//! apart from "sent, answer lost" (retrying could dial a second call) — so the client is small and ours.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::{Mutex, broadcast, oneshot, watch};

/// Longest line accepted from the server; AMI values are short, a longer line is a broken peer.
const MAX_LINE: usize = 64 * 1024;
/// Most fields in one message.
const MAX_FIELDS: usize = 1024;
/// Events buffered per subscriber before the slowest one starts missing them.
const EVENT_BUFFER: usize = 4096;

/// One AMI message (response or event): its fields in order, keys possibly repeated.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Message {
    fields: Vec<(String, String)>,
}

impl std::fmt::Debug for Message {
    // Values can carry dialled numbers and caller ids (PHI): Debug shows the message kind only.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Message")
            .field("event", &self.event())
            .field("response", &self.response())
            .field("fields", &self.fields.len())
            .finish()
    }
}

impl Message {
    /// A message from fields (tests and the fake build them this way).
    pub fn from_fields<K: Into<String>, V: Into<String>>(fields: impl IntoIterator<Item = (K, V)>) -> Self {
        Message { fields: fields.into_iter().map(|(k, v)| (k.into(), v.into())).collect() }
    }

    /// The first value of `key`; AMI keys are case-insensitive.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    /// Every value of a repeated key, in order.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields.iter().filter(move |(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
    }

    /// The event name, for an event.
    pub fn event(&self) -> Option<&str> {
        self.get("Event")
    }

    /// The response kind (`Success`, `Error`, `Goodbye`…), for a response.
    pub fn response(&self) -> Option<&str> {
        self.get("Response")
    }

    /// Whether this is a successful response.
    pub fn is_success(&self) -> bool {
        self.response().is_some_and(|r| r.eq_ignore_ascii_case("success"))
    }
}

/// An action to send. Values are checked when it is encoded: a CR or LF in a value would end the header
/// early and let the rest be read as further headers (AMI header injection).
#[derive(Clone, PartialEq, Eq)]
pub struct Action {
    name: String,
    fields: Vec<(String, String)>,
}

impl std::fmt::Debug for Action {
    // Originate carries the destination and Login the secret: only the action's name is shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Action").field("name", &self.name).finish_non_exhaustive()
    }
}

impl Action {
    /// An action named `name` (`Login`, `Originate`, `Ping`…).
    pub fn new(name: &str) -> Self {
        Action { name: name.to_string(), fields: Vec::new() }
    }

    /// Adds a header; repeated names are kept (several `Variable:` headers).
    pub fn field(mut self, key: &str, value: impl Into<String>) -> Self {
        self.fields.push((key.to_string(), value.into()));
        self
    }

    /// The wire form with `action_id`.
    pub fn encode(&self, action_id: &str) -> Result<Vec<u8>, AmiError> {
        let clean = |s: &str| !s.contains(['\r', '\n']);
        let key_ok = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !key_ok(&self.name) || !clean(action_id) {
            return Err(AmiError::Invalid("action name or id"));
        }
        let mut out = format!("Action: {}\r\nActionID: {action_id}\r\n", self.name);
        for (k, v) in &self.fields {
            if !key_ok(k) || !clean(v) {
                return Err(AmiError::Invalid("header with a line break or an invalid name"));
            }
            out.push_str(k);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        out.push_str("\r\n");
        Ok(out.into_bytes())
    }
}

/// Reads AMI messages from a byte stream, whatever the TCP segmentation.
pub struct MessageReader<R> {
    inner: BufReader<R>,
    line: Vec<u8>,
}

impl<R: AsyncRead + Unpin> MessageReader<R> {
    /// Wraps a stream positioned after the greeting line.
    pub fn new(inner: BufReader<R>) -> Self {
        MessageReader { inner, line: Vec::with_capacity(256) }
    }

    /// One line without its terminator (`\r\n`, or a bare `\n` from lenient peers); `None` at a clean EOF.
    pub async fn line(&mut self) -> std::io::Result<Option<String>> {
        self.line.clear();
        loop {
            let buf = self.inner.fill_buf().await?;
            if buf.is_empty() {
                return if self.line.is_empty() {
                    Ok(None)
                } else {
                    Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "AMI stream ended mid-line"))
                };
            }
            let (used, done) = match buf.iter().position(|&b| b == b'\n') {
                Some(i) => (i + 1, true),
                None => (buf.len(), false),
            };
            if self.line.len() + used > MAX_LINE {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "AMI line too long"));
            }
            self.line.extend_from_slice(&buf[..used]);
            self.inner.consume(used);
            if done {
                while matches!(self.line.last(), Some(b'\n' | b'\r')) {
                    self.line.pop();
                }
                return Ok(Some(String::from_utf8_lossy(&self.line).into_owned()));
            }
        }
    }

    /// The next complete message; `None` at a clean EOF between messages.
    pub async fn next_message(&mut self) -> std::io::Result<Option<Message>> {
        let mut fields = Vec::new();
        loop {
            let Some(line) = self.line().await? else {
                return if fields.is_empty() {
                    Ok(None)
                } else {
                    Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, "AMI stream ended mid-message"))
                };
            };
            if line.is_empty() {
                if fields.is_empty() {
                    continue; // stray blank line between messages
                }
                return Ok(Some(Message { fields }));
            }
            if fields.len() >= MAX_FIELDS {
                return Err(std::io::Error::new(std::io::ErrorKind::InvalidData, "AMI message has too many fields"));
            }
            // Split at the first colon only: values contain colons (times, SIP URIs).
            if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_string(), v.strip_prefix(' ').unwrap_or(v).to_string()));
            }
            // A line without a colon (command output) carries nothing this client uses.
        }
    }
}

/// Why an action has no answer. The variants say whether Asterisk may have acted on it, which decides
/// whether repeating it is safe.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum AmiError {
    /// No logged-in session: nothing was sent, repeating is safe.
    #[error("not connected to the Asterisk manager interface")]
    NotConnected,
    /// The session ended after the action was written: Asterisk may have acted on it.
    #[error("the AMI connection was lost before Asterisk answered")]
    Lost,
    /// No answer in time: Asterisk may have acted on it.
    #[error("Asterisk did not answer within {0:?}")]
    Timeout(Duration),
    /// The action could not be encoded; nothing was sent.
    #[error("invalid AMI action: {0}")]
    Invalid(&'static str),
}

impl AmiError {
    /// Whether Asterisk may have received and acted on the action.
    pub fn maybe_sent(&self) -> bool {
        matches!(self, AmiError::Lost | AmiError::Timeout(_))
    }
}

/// Connection settings.
#[derive(Clone)]
pub struct AmiConfig {
    /// `host:port`.
    pub address: String,
    /// AMI user.
    pub username: String,
    /// AMI secret (never logged).
    pub secret: String,
    /// Keep-alive ping period; a ping without an answer within `action_timeout` ends the session.
    pub ping_interval: Duration,
    /// How long an action waits for its response.
    pub action_timeout: Duration,
    /// First reconnect delay; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest reconnect delay.
    pub max_backoff: Duration,
}

impl std::fmt::Debug for AmiConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmiConfig")
            .field("address", &self.address)
            .field("username", &self.username)
            .field("ping_interval", &self.ping_interval)
            .finish_non_exhaustive()
    }
}

/// The session state others observe.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Connection {
    /// Logged in right now.
    pub connected: bool,
    /// Increments with every successful login.
    pub epoch: u64,
    /// When the current session logged in (micros since the epoch); events from before it may have been missed.
    pub since_micros: i64,
    /// Set when an event subscriber fell behind and events were dropped (micros since the epoch).
    pub gap_micros: i64,
}

struct Inner {
    config: AmiConfig,
    writer: Mutex<Option<OwnedWriteHalf>>,
    pending: std::sync::Mutex<HashMap<String, oneshot::Sender<Message>>>,
    events: broadcast::Sender<Arc<Message>>,
    state: watch::Sender<Connection>,
    next_id: AtomicU64,
    stop: watch::Sender<bool>,
}

/// A shared AMI client. Cloning is cheap; the session task runs until [`AmiClient::shutdown`].
#[derive(Clone)]
pub struct AmiClient {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for AmiClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmiClient").field("config", &self.inner.config).finish_non_exhaustive()
    }
}

impl AmiClient {
    /// Starts the session task; it connects, logs in and keeps reconnecting in the background.
    pub fn spawn(config: AmiConfig) -> AmiClient {
        let (events, _) = broadcast::channel(EVENT_BUFFER);
        let (state, _) = watch::channel(Connection::default());
        let (stop, _) = watch::channel(false);
        let client = AmiClient {
            inner: Arc::new(Inner {
                config,
                writer: Mutex::new(None),
                pending: std::sync::Mutex::new(HashMap::new()),
                events,
                state,
                next_id: AtomicU64::new(1),
                stop,
            }),
        };
        tokio::spawn(client.clone().run());
        client
    }

    /// Every event from now on. Subscribe before sending the action whose events matter.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Message>> {
        self.inner.events.subscribe()
    }

    /// Watches the session state.
    pub fn connection(&self) -> watch::Receiver<Connection> {
        self.inner.state.subscribe()
    }

    /// Records that events were dropped (a subscriber lagged), so callers know to reconcile.
    pub fn note_gap(&self) {
        let now = now_micros();
        self.inner.state.send_modify(|c| c.gap_micros = now);
    }

    /// Sends an action and waits for its response (a `Response: Error` is returned as a message, not an error).
    pub async fn action(&self, action: Action) -> Result<Message, AmiError> {
        let id = format!("faxbot-{}", self.inner.next_id.fetch_add(1, Ordering::Relaxed));
        let bytes = action.encode(&id)?;
        let (tx, rx) = oneshot::channel();
        {
            let mut writer = self.inner.writer.lock().await;
            let Some(w) = writer.as_mut() else { return Err(AmiError::NotConnected) };
            lock(&self.inner.pending).insert(id.clone(), tx);
            // A peer that stops reading must not block every other action behind this lock.
            let written = tokio::time::timeout(self.inner.config.action_timeout, w.write_all(&bytes)).await;
            if !matches!(written, Ok(Ok(()))) {
                match written {
                    Ok(Err(e)) => tracing::warn!(error = %e, "writing to the AMI connection failed"),
                    _ => tracing::warn!("writing to the AMI connection timed out"),
                }
                *writer = None;
                lock(&self.inner.pending).remove(&id);
                return Err(AmiError::Lost);
            }
        }
        match tokio::time::timeout(self.inner.config.action_timeout, rx).await {
            Ok(Ok(message)) => Ok(message),
            Ok(Err(_)) => Err(AmiError::Lost),
            Err(_) => {
                lock(&self.inner.pending).remove(&id);
                Err(AmiError::Timeout(self.inner.config.action_timeout))
            }
        }
    }

    /// Logs off (politely, bounded) and stops reconnecting.
    pub async fn shutdown(&self) {
        if self.inner.state.borrow().connected {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.action(Action::new("Logoff"))).await;
        }
        self.inner.stop.send_replace(true);
        if let Some(mut w) = self.inner.writer.lock().await.take() {
            let _ = w.shutdown().await;
        }
    }

    async fn run(self) {
        let mut stop = self.inner.stop.subscribe();
        let mut backoff = self.inner.config.min_backoff;
        loop {
            if *stop.borrow() {
                break;
            }
            let started = std::time::Instant::now();
            let result = tokio::select! {
                r = self.session() => r,
                _ = stop.changed() => Ok(()),
            };
            self.disconnected().await;
            match result {
                Ok(()) if *stop.borrow() => break,
                Ok(()) => tracing::warn!("the AMI connection was closed by Asterisk; reconnecting"),
                Err(e) => tracing::warn!(error = %e, "AMI session failed; reconnecting"),
            }
            // A session that lived a while resets the backoff; a flapping one backs off further.
            if started.elapsed() > self.inner.config.max_backoff {
                backoff = self.inner.config.min_backoff;
            }
            let jitter = rand::random_range(0.8..1.2);
            tokio::select! {
                _ = tokio::time::sleep(backoff.mul_f64(jitter)) => {}
                _ = stop.changed() => {}
            }
            backoff = (backoff * 2).min(self.inner.config.max_backoff);
        }
        tracing::info!("AMI client stopped");
    }

    async fn disconnected(&self) {
        *self.inner.writer.lock().await = None;
        // Dropping the waiters answers every in-flight action with `Lost`.
        lock(&self.inner.pending).clear();
        self.inner.state.send_modify(|c| c.connected = false);
    }

    async fn session(&self) -> Result<(), SessionError> {
        let config = &self.inner.config;
        let stream = tokio::time::timeout(config.action_timeout, TcpStream::connect(&config.address))
            .await
            .map_err(|_| SessionError::Protocol("connecting timed out"))??;
        stream.set_nodelay(true)?;
        let (read, mut write) = stream.into_split();
        let mut reader = MessageReader::new(BufReader::new(read));
        // The greeting: one line naming the protocol and its version (which varies; not checked).
        let greeting = tokio::time::timeout(config.action_timeout, reader.line())
            .await
            .map_err(|_| SessionError::Protocol("no AMI greeting"))??
            .ok_or(SessionError::Protocol("connection closed before the AMI greeting"))?;
        if !greeting.starts_with("Asterisk Call Manager/") {
            return Err(SessionError::Protocol("the peer is not an Asterisk manager interface"));
        }
        let login = Action::new("Login")
            .field("Username", config.username.clone())
            .field("Secret", config.secret.clone())
            .field("Events", "call,user");
        write.write_all(&login.encode("faxbot-login").map_err(|_| SessionError::Protocol("bad credentials"))?).await?;
        // Asterisk answers a bad login after about a second, then closes the socket.
        let answer = tokio::time::timeout(config.action_timeout + Duration::from_secs(2), async {
            loop {
                match reader.next_message().await? {
                    Some(m) if m.get("ActionID") == Some("faxbot-login") => return Ok(Some(m)),
                    Some(_) => continue,
                    None => return Ok::<_, std::io::Error>(None),
                }
            }
        })
        .await
        .map_err(|_| SessionError::Protocol("no answer to Login"))??;
        match answer {
            Some(m) if m.is_success() => {}
            Some(m) => {
                let message = m.get("Message").unwrap_or("refused").chars().take(120).collect();
                tracing::error!(user = %config.username, message = %message, "AMI login refused; check the amiSecret credential");
                return Err(SessionError::LoginRefused(message));
            }
            None => return Err(SessionError::Protocol("connection closed during Login")),
        }
        *self.inner.writer.lock().await = Some(write);
        let now = now_micros();
        self.inner.state.send_modify(|c| {
            c.connected = true;
            c.epoch += 1;
            c.since_micros = now;
        });
        tracing::info!(address = %config.address, "AMI session logged in");

        let (dead_tx, mut dead_rx) = oneshot::channel::<()>();
        let pinger = tokio::spawn({
            let client = self.clone();
            async move {
                let mut tick = tokio::time::interval(client.inner.config.ping_interval);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    match client.action(Action::new("Ping")).await {
                        Ok(_) => {}
                        Err(e) => {
                            tracing::warn!(error = %e, "AMI keep-alive ping failed");
                            let _ = dead_tx.send(());
                            return;
                        }
                    }
                }
            }
        });
        let outcome = loop {
            tokio::select! {
                message = reader.next_message() => match message {
                    Ok(Some(m)) => self.route(m),
                    Ok(None) => break Ok(()),
                    Err(e) => break Err(e.into()),
                },
                _ = &mut dead_rx => break Err(SessionError::Protocol("keep-alive ping unanswered")),
            }
        };
        pinger.abort();
        outcome
    }

    fn route(&self, message: Message) {
        if message.event().is_none()
            && let Some(id) = message.get("ActionID")
            && let Some(waiter) = lock(&self.inner.pending).remove(id)
        {
            let _ = waiter.send(message);
            return;
        }
        if message.event().is_some() {
            // No subscriber is fine (nothing in flight); a lagging one notices through `RecvError::Lagged`.
            let _ = self.inner.events.send(Arc::new(message));
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error("AMI I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("AMI protocol error: {0}")]
    Protocol(&'static str),
    #[error("AMI login refused: {0}")]
    LoginRefused(String),
}

fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn now_micros() -> i64 {
    crate::domain::Timestamp::now().micros()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A stream that hands out its bytes in the given pieces, one piece per read at most (TCP segmentation).
    struct Pieces(std::collections::VecDeque<Vec<u8>>);

    impl AsyncRead for Pieces {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            if let Some(mut piece) = self.0.pop_front() {
                let n = piece.len().min(buf.remaining());
                buf.put_slice(&piece[..n]);
                if n < piece.len() {
                    self.0.push_front(piece.split_off(n));
                }
            }
            std::task::Poll::Ready(Ok(()))
        }
    }

    /// `bytes` cut at `cuts` (fractions of the length).
    fn pieces(bytes: &[u8], cuts: &[f64]) -> Pieces {
        let mut at: Vec<usize> = cuts.iter().map(|c| (bytes.len() as f64 * c) as usize).collect();
        at.sort_unstable();
        let (mut out, mut from) = (std::collections::VecDeque::new(), 0);
        for to in at.into_iter().chain(std::iter::once(bytes.len())) {
            if to > from {
                out.push_back(bytes[from..to].to_vec());
                from = to;
            }
        }
        Pieces(out)
    }

    /// Every message until the end of the stream or the first error (which ends the session).
    fn read_to_end(stream: Pieces) -> (Vec<Message>, Option<std::io::Error>) {
        let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
        runtime.block_on(async move {
            let mut reader = MessageReader::new(BufReader::with_capacity(512, stream));
            let mut messages = Vec::new();
            loop {
                match reader.next_message().await {
                    Ok(Some(m)) => messages.push(m),
                    Ok(None) => return (messages, None),
                    Err(e) => return (messages, Some(e)),
                }
            }
        })
    }

    /// `len` bytes from `seed` (xorshift), one in eight a line end and one in eight a colon, so the noise
    /// forms lines and fields. Generated from a seed because proptest builds large byte vectors slowly.
    fn noise(mut seed: u64, len: usize) -> Vec<u8> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                match seed % 8 {
                    0 => b'\n',
                    1 => b':',
                    _ => (seed >> 8) as u8,
                }
            })
            .collect()
    }

    fn field() -> impl Strategy<Value = (String, String)> {
        ("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,40}")
    }

    proptest! {
        #[test]
        fn messages_read_back_however_the_stream_is_cut(
            messages in prop::collection::vec(prop::collection::vec(field(), 1..12), 0..8),
            cuts in prop::collection::vec(0.0..1.0f64, 0..20),
            bare_newlines in any::<bool>(),
        ) {
            let eol = if bare_newlines { "\n" } else { "\r\n" };
            let mut wire = String::new();
            for fields in &messages {
                for (k, v) in fields {
                    wire.push_str(&format!("{k}: {v}{eol}"));
                }
                wire.push_str(eol);
            }
            let (read, error) = read_to_end(pieces(wire.as_bytes(), &cuts));
            prop_assert!(error.is_none(), "{error:?}");
            let want: Vec<Message> = messages.into_iter().map(Message::from_fields).collect();
            prop_assert_eq!(read, want);
        }

        #[test]
        fn arbitrary_bytes_end_in_messages_or_an_error(
            seed in any::<u64>(),
            len in 0usize..8192,
            cuts in prop::collection::vec(0.0..1.0f64, 0..20),
        ) {
            let bytes = noise(seed, len);
            let (read, _) = read_to_end(pieces(&bytes, &cuts));
            for m in read {
                prop_assert!(!m.fields.is_empty() && m.fields.len() <= MAX_FIELDS);
            }
        }
    }

    async fn read_all(input: &[u8], chunk: usize) -> Vec<Message> {
        // Feed the bytes in small pieces, as TCP may.
        let (mut tx, rx) = tokio::io::duplex(64);
        let data = input.to_vec();
        tokio::spawn(async move {
            for piece in data.chunks(chunk) {
                tx.write_all(piece).await.unwrap();
            }
        });
        let mut reader = MessageReader::new(BufReader::new(rx));
        let mut out = Vec::new();
        while let Some(m) = reader.next_message().await.unwrap() {
            out.push(m);
        }
        out
    }

    #[tokio::test]
    async fn messages_survive_any_segmentation_and_keep_repeated_keys() {
        let wire = b"Response: Success\r\nActionID: 7\r\nMessage: Authentication accepted\r\n\r\n\
Event: SendFAX\r\nPrivilege: call,all\r\nFileName: /a.tif\r\nFileName: /b.tif\r\nRemoteStationID: x: y\r\n\r\n\
Event: Bare\nKey:NoSpace\n\n";
        for chunk in [1, 2, 3, 7, 64, 4096] {
            let messages = read_all(wire, chunk).await;
            assert_eq!(messages.len(), 3, "chunk {chunk}");
            assert!(messages[0].is_success());
            assert_eq!(messages[0].get("actionid"), Some("7"), "keys are case-insensitive");
            assert_eq!(messages[1].all("FileName").collect::<Vec<_>>(), vec!["/a.tif", "/b.tif"]);
            assert_eq!(messages[1].get("RemoteStationID"), Some("x: y"), "values keep their colons");
            assert_eq!(messages[2].get("Key"), Some("NoSpace"), "bare LF and no space after the colon");
        }
    }

    #[tokio::test]
    async fn oversized_lines_and_truncated_messages_are_errors() {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        tokio::spawn(async move {
            tx.write_all(&vec![b'a'; MAX_LINE + 10]).await.unwrap();
        });
        let mut reader = MessageReader::new(BufReader::new(rx));
        assert_eq!(reader.next_message().await.unwrap_err().kind(), std::io::ErrorKind::InvalidData);

        let (mut tx, rx) = tokio::io::duplex(64);
        tokio::spawn(async move {
            tx.write_all(b"Event: Hangup\r\nCause: 16\r\n").await.unwrap();
        });
        let mut reader = MessageReader::new(BufReader::new(rx));
        assert_eq!(reader.next_message().await.unwrap_err().kind(), std::io::ErrorKind::UnexpectedEof);
    }

    fn config(port: u16, secret: &str) -> AmiConfig {
        AmiConfig {
            address: format!("127.0.0.1:{port}"),
            username: "faxbot".into(),
            secret: secret.into(),
            ping_interval: Duration::from_millis(50),
            action_timeout: Duration::from_secs(2),
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(200),
        }
    }

    async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !f() {
            assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn the_client_logs_in_pings_reconnects_and_logs_off() {
        use faxbot_fakes::ami::{AmiFake, AmiFakeConfig};
        let fake = AmiFake::start(AmiFakeConfig::default()).await.unwrap();
        let client = AmiClient::spawn(config(fake.addr().port(), "ami-secret"));
        let mut state = client.connection();
        state.wait_for(|c| c.connected).await.unwrap();
        assert_eq!(state.borrow().epoch, 1);
        // Responses are matched by ActionID, also when several actions are in flight.
        let answers = futures_util::future::join_all((0..20).map(|_| client.action(Action::new("Ping")))).await;
        assert!(answers.iter().all(|a| a.as_ref().is_ok_and(|m| m.get("Ping") == Some("Pong"))));
        let unknown = client.action(Action::new("Frobnicate")).await.unwrap();
        assert!(!unknown.is_success() && unknown.get("Message").unwrap().contains("Invalid/unknown command"));
        // Keep-alive pings run on their own.
        let before = fake.pings();
        wait_for("keep-alive pings", || fake.pings() >= before + 3).await;
        // A dropped connection: in-flight and new actions fail as they must, then the session comes back.
        fake.refuse_connections(true);
        fake.drop_connections();
        state.wait_for(|c| !c.connected).await.unwrap();
        assert_eq!(client.action(Action::new("Ping")).await, Err(AmiError::NotConnected));
        fake.refuse_connections(false);
        state.wait_for(|c| c.connected).await.unwrap();
        assert_eq!(state.borrow().epoch, 2);
        // An action whose response never comes because the connection closes: Asterisk may have acted.
        fake.lose_next_response();
        let lost = client
            .action(
                Action::new("Originate")
                    .field("Channel", "PJSIP/+15550001234@t")
                    .field("Context", "fax-tx")
                    .field("Exten", "s")
                    .field("Priority", "1")
                    .field("Async", "true"),
            )
            .await;
        assert_eq!(lost, Err(AmiError::Lost));
        assert!(lost.unwrap_err().maybe_sent());
        state.wait_for(|c| c.connected && c.epoch == 3).await.unwrap();
        client.shutdown().await;
        wait_for("the Logoff", || fake.sessions() == 0).await;
        assert_eq!(fake.logins(), (3, 0));
    }

    #[tokio::test]
    async fn a_refused_login_is_retried_with_backoff_and_never_connects() {
        use faxbot_fakes::ami::{AmiFake, AmiFakeConfig};
        let fake =
            AmiFake::start(AmiFakeConfig { login_failure_delay: Duration::from_millis(10), ..Default::default() })
                .await
                .unwrap();
        let client = AmiClient::spawn(config(fake.addr().port(), "wrong"));
        wait_for("refused logins", || fake.logins().1 >= 3).await;
        assert!(!client.connection().borrow().connected);
        assert_eq!(client.action(Action::new("Ping")).await, Err(AmiError::NotConnected));
        client.shutdown().await;
    }

    #[tokio::test]
    async fn a_peer_that_is_not_asterisk_is_refused() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let _ = s.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
            }
        });
        let client = AmiClient::spawn(config(port, "x"));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!client.connection().borrow().connected);
        client.shutdown().await;
    }

    #[test]
    fn actions_refuse_header_injection() {
        let ok = Action::new("Originate").field("Variable", "JOBID=1").field("Variable", "FAXFILE=/x.tif");
        assert_eq!(
            String::from_utf8(ok.encode("9").unwrap()).unwrap(),
            "Action: Originate\r\nActionID: 9\r\nVariable: JOBID=1\r\nVariable: FAXFILE=/x.tif\r\n\r\n"
        );
        let bad = Action::new("Originate").field("Channel", "PJSIP/1@t\r\nAction: Hangup");
        assert_eq!(bad.encode("1"), Err(AmiError::Invalid("header with a line break or an invalid name")));
        assert!(Action::new("Ping").encode("a\nb").is_err());
        assert!(format!("{:?}", Action::new("Login").field("Secret", "hunter2")).contains("Login"));
        assert!(!format!("{:?}", Action::new("Login").field("Secret", "hunter2")).contains("hunter2"));
    }
}
