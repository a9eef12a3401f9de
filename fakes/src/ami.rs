//! A faithful fake of Asterisk's manager interface (AMI) for fax, following `providers.md` §3 and §5.3.
//!
//! A real TCP server on loopback: the greeting line, `Login` (a bad secret is answered after a delay and the
//! socket closed, as Asterisk does), `Ping`, `Logoff`, `Getvar`, `Originate` (async, with forced `ChannelId`
//! and repeated `Variable` headers) and the unknown-action and permission errors. Each originated call plays
//! the event sequence of a scripted [`Outcome`] — answered and sent, busy, congested, unanswered, fax failure,
//! hangup without a result, or held until the test finishes it — and events go to every logged-in session
//! whose `Events` filter allows their class, interleaved with unrelated noise. Calls run independently of
//! connections: dropping the connections mid-fax loses the events emitted meanwhile, exactly the case a
//! client must reconcile.
//!
//! Manager permissions are enforced as Asterisk's `main/manager.c` does: an action runs only when the user's
//! `write` classes share a class with the action's (`Originate`: `originate`; `Getvar`: `call` or
//! `reporting`), otherwise `Permission denied`; an event reaches a session only when its class is in the
//! user's `read` classes *and* the session's `Events` filter. By default the fake takes both lists from the
//! `[faxbot]` user of the shipped `config/asterisk/manager.conf`, so a permission missing there fails the
//! tests, as it would fail against Asterisk (a `write = originate` without `reporting` once made every
//! channel check answer "Permission denied").

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};

/// How a call to a destination goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Answered; the fax is sent with this many pages.
    Success {
        /// Pages transferred.
        pages: u32,
    },
    /// `OriginateResponse: Failure`, Reason 5.
    Busy,
    /// Reason 8.
    Congestion,
    /// Reason 3 (rang until the originate timeout).
    NoAnswer,
    /// Reason 0 (no such channel / trunk down).
    Unreachable,
    /// Answered, then the fax fails with this `FAXERROR`.
    FaxFailed {
        /// e.g. `T38_NEG_ERROR`.
        error: String,
    },
    /// Answered, `SendFAX` ends, but no result event follows (SendFAX returned -1 on a far-end hangup and the
    /// dialplan after it never ran).
    NoResult,
    /// Answered, then nothing until [`AmiFake::finish`].
    Hold,
    /// The Originate itself is refused (`Response: Error`).
    Refused,
}

/// Fake settings.
#[derive(Clone, Debug)]
pub struct AmiFakeConfig {
    /// Accepted `(username, secret)` pairs.
    pub users: Vec<(String, String)>,
    /// Version in the greeting line.
    pub version: String,
    /// Delay before a failed login is answered (Asterisk: about 1 s).
    pub login_failure_delay: Duration,
    /// Delay between the events of a call.
    pub step: Duration,
    /// Emit `FAXStatus` progress events (res_fax `statusevents=yes`).
    pub status_events: bool,
    /// Interleave unrelated events (`Newchannel`, `VarSet` with a very long value, `Newexten`).
    pub noise: bool,
    /// Outcome for destinations no script matches.
    pub default_outcome: Outcome,
    /// Where simulated received faxes are written.
    pub inbound_dir: Option<PathBuf>,
    /// The manager user's permission classes (every user in `users` gets these).
    pub permissions: Permissions,
}

/// A manager user's `read` and `write` permission classes (`manager.conf`), lowercase; `all` grants every
/// class.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Permissions {
    /// Classes of the events the user may receive.
    pub read: Vec<String>,
    /// Classes of the actions the user may run.
    pub write: Vec<String>,
}

/// The shipped manager configuration, which the fake enforces by default.
const SHIPPED_MANAGER_CONF: &str = include_str!("../../config/asterisk/manager.conf");

impl Permissions {
    /// The `[faxbot]` user's permissions in the shipped `config/asterisk/manager.conf`.
    pub fn shipped() -> Permissions {
        Permissions::from_manager_conf(SHIPPED_MANAGER_CONF, "faxbot")
            .expect("config/asterisk/manager.conf has a [faxbot] user with read and write")
    }

    /// The `read` and `write` lines of user `[user]` in a `manager.conf` (comments after `;` ignored).
    pub fn from_manager_conf(conf: &str, user: &str) -> Option<Permissions> {
        let mut section = String::new();
        let (mut read, mut write) = (None, None);
        for line in conf.lines() {
            let line = line.split(';').next().unwrap_or("").trim();
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.trim().to_string();
                continue;
            }
            if section != user {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else { continue };
            let classes =
                || value.split(',').map(|c| c.trim().to_ascii_lowercase()).filter(|c| !c.is_empty()).collect();
            match key.trim() {
                "read" => read = Some(classes()),
                "write" => write = Some(classes()),
                _ => {}
            }
        }
        Some(Permissions { read: read?, write: write? })
    }

    fn grants(classes: &[String], any_of: &[&str]) -> bool {
        classes.iter().any(|c| c == "all" || any_of.contains(&c.as_str()))
    }
}

impl Default for AmiFakeConfig {
    fn default() -> Self {
        AmiFakeConfig {
            users: vec![("faxbot".into(), "ami-secret".into())],
            version: "13.0.0".into(),
            login_failure_delay: Duration::from_millis(100),
            step: Duration::from_millis(10),
            status_events: true,
            noise: true,
            default_outcome: Outcome::Success { pages: 1 },
            inbound_dir: None,
            permissions: Permissions::shipped(),
        }
    }
}

/// One Originate as received.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginateRecord {
    /// `Channel`.
    pub channel: String,
    /// `Context`.
    pub context: Option<String>,
    /// `Exten`.
    pub exten: Option<String>,
    /// `Timeout` (ms).
    pub timeout_ms: Option<u64>,
    /// `Async`.
    pub is_async: bool,
    /// `ChannelId` (the forced Uniqueid).
    pub channel_id: String,
    /// Every `Variable` assignment, comma lists split.
    pub variables: Vec<(String, String)>,
    /// `CallerID`.
    pub caller_id: Option<String>,
}

impl OriginateRecord {
    /// The value of channel variable `name`.
    pub fn variable(&self, name: &str) -> Option<&str> {
        self.variables.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
struct State {
    sessions: HashMap<u64, Session>,
    scripts: Vec<(String, Outcome)>,
    originates: Vec<OriginateRecord>,
    live: HashMap<String, Live>,
    logins_ok: usize,
    logins_failed: usize,
    refuse: bool,
    lose_next_response: bool,
    pings: usize,
    getvars: usize,
    permission_denied: usize,
}

struct Session {
    tx: mpsc::UnboundedSender<Vec<u8>>,
    logged_in: bool,
    /// `None` = all classes.
    classes: Option<Vec<String>>,
    /// The user's `read` permission classes (set at login).
    read: Vec<String>,
    close: Option<oneshot::Sender<()>>,
}

struct Live {
    finish: Option<oneshot::Sender<Outcome>>,
}

/// A running fake. Dropping it stops accepting connections.
pub struct AmiFake {
    addr: SocketAddr,
    config: Arc<AmiFakeConfig>,
    state: Arc<Mutex<State>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AmiFake {
    fn drop(&mut self) {
        self.task.abort();
        self.drop_connections();
    }
}

fn lock(state: &Mutex<State>) -> std::sync::MutexGuard<'_, State> {
    state.lock().unwrap_or_else(|p| p.into_inner())
}

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);
static NEXT_CHANNEL: AtomicU64 = AtomicU64::new(1);

type Fields = Vec<(String, String)>;

impl AmiFake {
    /// Starts the fake on an ephemeral loopback port.
    pub async fn start(config: AmiFakeConfig) -> std::io::Result<AmiFake> {
        Self::start_on(config, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts the fake on `addr` (the test node's bridge address, for API servers in pods).
    pub async fn start_on(config: AmiFakeConfig, addr: SocketAddr) -> std::io::Result<AmiFake> {
        let listener = TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let config = Arc::new(config);
        let state = Arc::new(Mutex::new(State::default()));
        let task = tokio::spawn({
            let (config, state) = (config.clone(), state.clone());
            async move {
                while let Ok((stream, _)) = listener.accept().await {
                    if lock(&state).refuse {
                        drop(stream);
                        continue;
                    }
                    tokio::spawn(serve(stream, config.clone(), state.clone()));
                }
            }
        });
        Ok(AmiFake { addr, config, state, task })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Destinations whose digits end in `suffix` get `outcome` (later scripts win).
    pub fn script(&self, suffix: &str, outcome: Outcome) {
        lock(&self.state).scripts.push((suffix.to_string(), outcome));
    }

    /// Every Originate received so far.
    pub fn originates(&self) -> Vec<OriginateRecord> {
        lock(&self.state).originates.clone()
    }

    /// `(successful, refused)` logins so far.
    pub fn logins(&self) -> (usize, usize) {
        let s = lock(&self.state);
        (s.logins_ok, s.logins_failed)
    }

    /// Pings answered so far.
    pub fn pings(&self) -> usize {
        lock(&self.state).pings
    }

    /// `Getvar` actions answered (channel checks).
    pub fn getvars(&self) -> usize {
        lock(&self.state).getvars
    }

    /// Actions refused with `Permission denied` (a manager user missing a write class).
    pub fn permission_denied(&self) -> usize {
        lock(&self.state).permission_denied
    }

    /// Sessions logged in right now.
    pub fn sessions(&self) -> usize {
        lock(&self.state).sessions.values().filter(|s| s.logged_in).count()
    }

    /// Channels of calls still in progress.
    pub fn live_channels(&self) -> Vec<String> {
        lock(&self.state).live.keys().cloned().collect()
    }

    /// Closes every connection now; calls in progress go on (their events reach whoever is connected).
    pub fn drop_connections(&self) {
        let mut s = lock(&self.state);
        for (_, mut session) in s.sessions.drain() {
            if let Some(close) = session.close.take() {
                let _ = close.send(());
            }
        }
    }

    /// While set, new connections are closed at once (Asterisk down or restarting).
    pub fn refuse_connections(&self, refuse: bool) {
        lock(&self.state).refuse = refuse;
    }

    /// The next Originate starts its call but its response is never sent: the connection closes instead
    /// (the "accepted but answer lost" case).
    pub fn lose_next_response(&self) {
        lock(&self.state).lose_next_response = true;
    }

    /// Ends a held call with `outcome` (only answered outcomes make sense: success, fax failure, no result).
    pub fn finish(&self, channel_id: &str, outcome: Outcome) -> bool {
        let finish = lock(&self.state).live.get_mut(channel_id).and_then(|l| l.finish.take());
        finish.is_some_and(|f| f.send(outcome).is_ok())
    }

    /// Simulates a received fax the way `config/asterisk/extensions.conf` hands it over: the TIFF is written
    /// to the inbound directory, the receive-side events are raised, and the JSON callback is posted to `url`
    /// with `X-Internal-Secret`.
    pub async fn simulate_inbound(
        &self,
        url: &str,
        secret: &str,
        tiff: &[u8],
        from: &str,
        to: &str,
    ) -> std::io::Result<reqwest::Response> {
        let dir = self.config.inbound_dir.clone().ok_or_else(|| std::io::Error::other("no inbound_dir configured"))?;
        let uniqueid = format!("1764000000.{}", NEXT_CHANNEL.fetch_add(1, Ordering::Relaxed));
        let path = dir.join(format!("{uniqueid}.tif"));
        tokio::fs::write(&path, tiff).await?;
        let pages = count_ifds(tiff);
        let channel = format!("PJSIP/trunk-endpoint-{:08x}", NEXT_CHANNEL.fetch_add(1, Ordering::Relaxed));
        let snap = snapshot(&channel, &uniqueid, "fax-rx", to);
        let file = path.display().to_string();
        broadcast(
            &self.state,
            "call",
            event("ReceiveFAX", "call,all", &snap, &[("PagesTransferred", &pages.to_string()), ("FileName", &file)]),
        );
        broadcast(
            &self.state,
            "user",
            event(
                "UserEvent",
                "user,all",
                &snap,
                &[("UserEvent", "FaxReceived"), ("File", &file), ("Status", "SUCCESS"), ("Pages", &pages.to_string())],
            ),
        );
        broadcast(
            &self.state,
            "call",
            event("Hangup", "call,all", &snap, &[("Cause", "16"), ("Cause-txt", "Normal Clearing")]),
        );
        let body = serde_json::json!({
            "tiff_path": file, "to_number": to, "from_number": from,
            "faxstatus": "SUCCESS", "faxpages": pages.to_string(), "uniqueid": uniqueid,
        });
        reqwest::Client::new()
            .post(url)
            .header("X-Internal-Secret", secret)
            .json(&body)
            .send()
            .await
            .map_err(std::io::Error::other)
    }
}

fn count_ifds(tiff: &[u8]) -> u32 {
    // Enough for the small files tests hand in: walk the IFD chain.
    let le = tiff.starts_with(b"II");
    let rd16 = |o: usize| {
        tiff.get(o..o + 2).map(|b| if le { u16::from_le_bytes([b[0], b[1]]) } else { u16::from_be_bytes([b[0], b[1]]) })
    };
    let rd32 = |o: usize| {
        tiff.get(o..o + 4).map(|b| {
            let a = [b[0], b[1], b[2], b[3]];
            if le { u32::from_le_bytes(a) } else { u32::from_be_bytes(a) }
        })
    };
    let (mut off, mut n) = (rd32(4).unwrap_or(0) as usize, 0);
    while off != 0 && n < 10_000 {
        let Some(entries) = rd16(off) else { break };
        n += 1;
        off = rd32(off + 2 + 12 * entries as usize).unwrap_or(0) as usize;
    }
    n
}

fn snapshot(channel: &str, uniqueid: &str, context: &str, exten: &str) -> Fields {
    [
        ("Channel", channel),
        ("ChannelState", "6"),
        ("ChannelStateDesc", "Up"),
        ("CallerIDNum", "<unknown>"),
        ("CallerIDName", "<unknown>"),
        ("ConnectedLineNum", "<unknown>"),
        ("ConnectedLineName", "<unknown>"),
        ("Language", "en"),
        ("AccountCode", ""),
        ("Context", context),
        ("Exten", exten),
        ("Priority", "1"),
        ("Uniqueid", uniqueid),
        ("Linkedid", uniqueid),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn event(name: &str, privilege: &str, snapshot: &Fields, extra: &[(&str, &str)]) -> Fields {
    let mut f: Fields = vec![("Event".into(), name.into()), ("Privilege".into(), privilege.into())];
    f.extend(snapshot.iter().cloned());
    f.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    f
}

fn encode(fields: &Fields) -> Vec<u8> {
    let mut out = String::new();
    for (k, v) in fields {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    out.into_bytes()
}

fn broadcast(state: &Mutex<State>, class: &str, fields: Fields) {
    let bytes = encode(&fields);
    for s in lock(state).sessions.values() {
        let wanted = s.logged_in
            && Permissions::grants(&s.read, &[class])
            && s.classes.as_ref().is_none_or(|c| c.iter().any(|x| x == class));
        if wanted {
            let _ = s.tx.send(bytes.clone());
        }
    }
}

fn get<'a>(fields: &'a Fields, key: &str) -> Option<&'a str> {
    fields.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)).map(|(_, v)| v.as_str())
}

fn response(action_id: Option<&str>, kind: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut f: Fields = vec![("Response".into(), kind.into())];
    if let Some(id) = action_id {
        f.push(("ActionID".into(), id.into()));
    }
    f.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    encode(&f)
}

async fn serve(stream: TcpStream, config: Arc<AmiFakeConfig>, state: Arc<Mutex<State>>) {
    let id = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
    let (read, mut write) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let (close_tx, mut close_rx) = oneshot::channel();
    lock(&state).sessions.insert(
        id,
        Session { tx: tx.clone(), logged_in: false, classes: None, read: Vec::new(), close: Some(close_tx) },
    );
    let _ = tx.send(format!("Asterisk Call Manager/{}\r\n", config.version).into_bytes());
    let writer = tokio::spawn(async move {
        loop {
            tokio::select! {
                bytes = rx.recv() => match bytes {
                    // An empty buffer is the "close now" marker.
                    Some(b) if b.is_empty() => break,
                    Some(b) => if write.write_all(&b).await.is_err() { break },
                    None => break,
                },
                _ = &mut close_rx => break,
            }
        }
        let _ = write.shutdown().await;
    });
    let mut lines = BufReader::new(read).lines();
    let mut fields: Fields = Vec::new();
    loop {
        let line = tokio::select! {
            l = lines.next_line() => l,
            _ = tokio::time::sleep(Duration::from_millis(50)), if writer.is_finished() => break,
        };
        let Ok(Some(line)) = line else { break };
        let line = line.trim_end_matches('\r').to_string();
        if line.is_empty() {
            if fields.is_empty() {
                continue;
            }
            let action = std::mem::take(&mut fields);
            if !handle(id, &action, &tx, &config, &state).await {
                break;
            }
            continue;
        }
        if let Some((k, v)) = line.split_once(':') {
            fields.push((k.trim().to_string(), v.trim_start().to_string()));
        }
    }
    lock(&state).sessions.remove(&id);
    let _ = tx.send(Vec::new());
    let _ = writer.await;
}

/// Handles one action; `false` closes the connection.
async fn handle(
    session: u64,
    action: &Fields,
    tx: &mpsc::UnboundedSender<Vec<u8>>,
    config: &Arc<AmiFakeConfig>,
    state: &Arc<Mutex<State>>,
) -> bool {
    let aid = get(action, "ActionID");
    let Some(name) = get(action, "Action") else {
        let _ = tx.send(response(aid, "Error", &[("Message", "Missing action in request")]));
        return true;
    };
    let logged_in = lock(state).sessions.get(&session).is_some_and(|s| s.logged_in);
    let name = name.to_ascii_lowercase();
    if name == "login" {
        let user = get(action, "Username").unwrap_or_default();
        let secret = get(action, "Secret").unwrap_or_default();
        if config.users.iter().any(|(u, s)| u == user && s == secret) {
            let classes = match get(action, "Events").map(|e| e.to_ascii_lowercase()) {
                None => None,
                Some(e) if e == "on" || e == "all" => None,
                Some(e) if e == "off" => Some(Vec::new()),
                Some(e) => Some(e.split(',').map(|c| c.trim().to_string()).collect()),
            };
            {
                let mut s = lock(state);
                s.logins_ok += 1;
                if let Some(sess) = s.sessions.get_mut(&session) {
                    sess.logged_in = true;
                    sess.classes = classes.clone();
                    sess.read = config.permissions.read.clone();
                }
            }
            let _ = tx.send(response(aid, "Success", &[("Message", "Authentication accepted")]));
            if Permissions::grants(&config.permissions.read, &["system"])
                && classes.as_ref().is_none_or(|c| c.iter().any(|x| x == "system"))
            {
                let _ = tx.send(encode(&vec![
                    ("Event".into(), "FullyBooted".into()),
                    ("Privilege".into(), "system,all".into()),
                    ("Uptime".into(), "1234".into()),
                    ("LastReload".into(), "1234".into()),
                    ("Status".into(), "Fully Booted".into()),
                ]));
            }
            return true;
        }
        lock(state).logins_failed += 1;
        tokio::time::sleep(config.login_failure_delay).await;
        let _ = tx.send(response(aid, "Error", &[("Message", "Authentication failed")]));
        let _ = tx.send(Vec::new());
        return false;
    }
    if !logged_in {
        let _ = tx.send(response(aid, "Error", &[("Message", "Permission denied")]));
        return true;
    }
    // The action's classes (main/manager.c registers Getvar with EVENT_FLAG_CALL | EVENT_FLAG_REPORTING,
    // Originate with EVENT_FLAG_ORIGINATE; Ping and Logoff need none).
    let needs: &[&str] = match name.as_str() {
        "getvar" => &["call", "reporting"],
        "originate" => &["originate"],
        _ => &[],
    };
    if !needs.is_empty() && !Permissions::grants(&config.permissions.write, needs) {
        lock(state).permission_denied += 1;
        let _ = tx.send(response(aid, "Error", &[("Message", "Permission denied")]));
        return true;
    }
    match name.as_str() {
        "ping" => {
            lock(state).pings += 1;
            let _ = tx.send(response(aid, "Success", &[("Ping", "Pong"), ("Timestamp", "1764000000.000000")]));
        }
        "logoff" => {
            let _ = tx.send(response(aid, "Goodbye", &[("Message", "Thanks for all the fish.")]));
            let _ = tx.send(Vec::new());
            return false;
        }
        "getvar" => {
            lock(state).getvars += 1;
            let channel = get(action, "Channel").unwrap_or_default();
            let variable = get(action, "Variable").unwrap_or_default().to_string();
            if lock(state).live.contains_key(channel) {
                let _ = tx.send(response(aid, "Success", &[("Variable", &variable), ("Value", "")]));
            } else {
                let _ = tx.send(response(aid, "Error", &[("Message", "No such channel")]));
            }
        }
        "originate" => return originate(action, aid, tx, config, state),
        other => {
            let msg = format!("Invalid/unknown command: {other}. Use Action: ListCommands to show available commands.");
            let _ = tx.send(response(aid, "Error", &[("Message", &msg)]));
        }
    }
    true
}

fn originate(
    action: &Fields,
    aid: Option<&str>,
    tx: &mpsc::UnboundedSender<Vec<u8>>,
    config: &Arc<AmiFakeConfig>,
    state: &Arc<Mutex<State>>,
) -> bool {
    let Some(channel) = get(action, "Channel") else {
        let _ = tx.send(response(aid, "Error", &[("Message", "Channel not specified")]));
        return true;
    };
    if get(action, "Exten").is_some() && (get(action, "Context").is_none() || get(action, "Priority").is_none()) {
        let _ = tx.send(response(aid, "Error", &[("Message", "Exten requires Context and Priority")]));
        return true;
    }
    let channel_id = get(action, "ChannelId")
        .map(str::to_string)
        .unwrap_or_else(|| format!("1764000000.{}", NEXT_CHANNEL.fetch_add(1, Ordering::Relaxed)));
    let variables = action
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("Variable"))
        .flat_map(|(_, v)| v.split(','))
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let record = OriginateRecord {
        channel: channel.to_string(),
        context: get(action, "Context").map(str::to_string),
        exten: get(action, "Exten").map(str::to_string),
        timeout_ms: get(action, "Timeout").and_then(|t| t.parse().ok()),
        is_async: get(action, "Async").is_some_and(|a| a.eq_ignore_ascii_case("true")),
        channel_id: channel_id.clone(),
        variables,
        caller_id: get(action, "CallerID").map(str::to_string),
    };
    // The destination sits between the technology and the endpoint: PJSIP/<number>@trunk.
    let number = channel.split('/').nth(1).unwrap_or_default().split('@').next().unwrap_or_default();
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let (finish_tx, finish_rx) = oneshot::channel();
    let (outcome, lose) = {
        let mut s = lock(state);
        s.originates.push(record.clone());
        if s.live.contains_key(&channel_id) {
            drop(s);
            let _ = tx.send(response(aid, "Error", &[("Message", "Originate failed: channel id in use")]));
            return true;
        }
        let outcome = s
            .scripts
            .iter()
            .rev()
            .find(|(suffix, _)| digits.ends_with(suffix.as_str()))
            .map(|(_, o)| o.clone())
            .unwrap_or_else(|| config.default_outcome.clone());
        if outcome == Outcome::Refused {
            drop(s);
            let _ = tx.send(response(aid, "Error", &[("Message", "Originate failed")]));
            return true;
        }
        s.live.insert(channel_id.clone(), Live { finish: Some(finish_tx) });
        (outcome, std::mem::take(&mut s.lose_next_response))
    };
    if lose {
        let _ = tx.send(Vec::new());
    } else {
        let _ = tx.send(response(aid, "Success", &[("Message", "Originate successfully queued")]));
    }
    tokio::spawn(run_call(record, outcome, aid.map(str::to_string), finish_rx, config.clone(), state.clone()));
    !lose
}

async fn run_call(
    record: OriginateRecord,
    outcome: Outcome,
    action_id: Option<String>,
    finish: oneshot::Receiver<Outcome>,
    config: Arc<AmiFakeConfig>,
    state: Arc<Mutex<State>>,
) {
    let step = config.step;
    let uid = record.channel_id.clone();
    let chan = format!("PJSIP/trunk-endpoint-{:08x}", NEXT_CHANNEL.fetch_add(1, Ordering::Relaxed));
    let context = record.context.clone().unwrap_or_default();
    let snap = snapshot(&chan, &uid, &context, "s");
    let emit = |class: &str, fields: Fields| broadcast(&state, class, fields);
    let noise = |n: usize| {
        if config.noise {
            let long = "x".repeat(8 * 1024);
            let other = snapshot("PJSIP/other-00000099", "1764000000.99", "default", "100");
            match n % 3 {
                0 => emit("call", event("Newchannel", "call,all", &other, &[])),
                1 => {
                    emit("dialplan", event("VarSet", "dialplan,all", &other, &[("Variable", "LONG"), ("Value", &long)]))
                }
                _ => emit(
                    "dialplan",
                    event("Newexten", "dialplan,all", &snap, &[("Application", "Set"), ("AppData", "X=1")]),
                ),
            }
        }
    };
    let originate_response = |success: bool, reason: &str| {
        let mut f: Fields = vec![("Event".into(), "OriginateResponse".into()), ("Privilege".into(), "call,all".into())];
        if let Some(id) = &action_id {
            f.push(("ActionID".into(), id.clone()));
        }
        for (k, v) in [
            ("Response", if success { "Success" } else { "Failure" }),
            ("Channel", chan.as_str()),
            ("Context", context.as_str()),
            ("Exten", "s"),
            ("Reason", reason),
            ("Uniqueid", uid.as_str()),
            ("CallerIDNum", "<unknown>"),
            ("CallerIDName", "<unknown>"),
        ] {
            f.push((k.into(), v.into()));
        }
        f
    };
    let hangup = |cause: &str, text: &str| event("Hangup", "call,all", &snap, &[("Cause", cause), ("Cause-txt", text)]);
    tokio::time::sleep(step).await;
    noise(0);
    let unanswered = match &outcome {
        Outcome::Busy => Some(("5", "17", "User busy")),
        Outcome::Congestion => Some(("8", "34", "Circuit/channel congestion")),
        Outcome::NoAnswer => Some(("3", "19", "No answer")),
        Outcome::Unreachable => Some(("0", "3", "No route to destination")),
        _ => None,
    };
    if let Some((reason, cause, text)) = unanswered {
        emit("call", originate_response(false, reason));
        tokio::time::sleep(step).await;
        emit("call", hangup(cause, text));
        lock(&state).live.remove(&uid);
        return;
    }
    emit("call", originate_response(true, "4"));
    tokio::time::sleep(step).await;
    noise(1);
    if config.status_events {
        for status in ["Allocating Resources", "T.38 Negotiated", "FAX Transmission In Progress"] {
            emit(
                "call",
                event(
                    "FAXStatus",
                    "call,all",
                    &snap,
                    &[("Operation", "send"), ("Status", status), ("LocalStationID", "")],
                ),
            );
        }
    }
    let outcome = if outcome == Outcome::Hold { finish.await.unwrap_or(Outcome::NoResult) } else { outcome };
    tokio::time::sleep(step).await;
    noise(2);
    let file = record.variable("FAXFILE").unwrap_or_default().to_string();
    let job = record.variable("JOBID").unwrap_or_default().to_string();
    let (pages, result) = match &outcome {
        Outcome::Success { pages } => (*pages, Some(("SUCCESS", String::new()))),
        Outcome::FaxFailed { error } => (0, Some(("FAILED", error.clone()))),
        _ => (0, None),
    };
    let pages = pages.to_string();
    emit(
        "call",
        event(
            "SendFAX",
            "call,all",
            &snap,
            &[
                ("LocalStationID", ""),
                ("RemoteStationID", "REMOTE"),
                ("PagesTransferred", &pages),
                ("Resolution", "8040x7700"),
                ("TransferRate", "14400"),
                ("FileName", &file),
            ],
        ),
    );
    if let Some((status, error)) = result {
        // The hangup handler's report (config/asterisk/extensions.conf `fax-report`).
        emit(
            "user",
            event(
                "UserEvent",
                "user,all",
                &snap,
                &[
                    ("UserEvent", "FaxResult"),
                    ("JobID", &job),
                    ("Status", status),
                    ("Error", &error),
                    ("Pages", &pages),
                    ("Rate", "14400"),
                    ("Resolution", "8040x7700"),
                    ("Mode", "T38"),
                    ("Remote", "REMOTE"),
                ],
            ),
        );
    }
    tokio::time::sleep(step).await;
    emit("call", hangup("16", "Normal Clearing"));
    lock(&state).live.remove(&uid);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ifds_are_counted() {
        // Header + two IFDs with zero entries.
        let mut t = b"II*\0".to_vec();
        t.extend_from_slice(&8u32.to_le_bytes());
        t.extend_from_slice(&0u16.to_le_bytes());
        t.extend_from_slice(&14u32.to_le_bytes());
        t.extend_from_slice(&0u16.to_le_bytes());
        t.extend_from_slice(&0u32.to_le_bytes());
        assert_eq!(count_ifds(&t), 2);
    }
}
