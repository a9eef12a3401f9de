//! The SIP/Asterisk plugin against the faithful AMI fake (`faxbot_fakes::ami`), with the real document
//! pipeline (Ghostscript, tiff2pdf): a fax sent end to end with its TIFF checked, every unanswered and
//! failed-call branch ending in a final state, a refused login, the connection lost mid-fax (the job ends
//! failed or delivered, never stuck, and is never dialled twice), and inbound faxes through the internal
//! callback with a wrong secret, a path escape and a replay.

use std::path::{Path, PathBuf};
use std::time::Duration;

use faxbot_fakes::ami::{AmiFake, AmiFakeConfig, Outcome};
use serde_json::Value;

use crate::db_test;
use crate::helpers::{Db, NUMBER, Spawn, TestApp, json, one_page_pdf, pdf_with_pages};

const AMI_SECRET: &str = "ami-secret-do-not-leak-77d1";
const INBOUND_SECRET: &str = "inbound-secret-do-not-leak-5be0";

/// Whether Ghostscript and tiff2pdf are installed. In CI their absence is a failure, never a skip.
fn tools_available() -> bool {
    let ok = faxbot_documents::fax::Tools::from_env().is_ok_and(|t| t.check().is_ok());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but Ghostscript/tiff2pdf are missing: .ci/run installs ghostscript and libtiff-tools"
        );
        eprintln!(
            "SKIPPING SIP test: Ghostscript (gs) or tiff2pdf is not installed (apt-get install ghostscript libtiff-tools)"
        );
    }
    ok
}

struct Line {
    fake: AmiFake,
    app: TestApp,
    /// Spool and inbound directories (the volume the API server shares with Asterisk).
    work: tempfile::TempDir,
    _config: tempfile::TempDir,
}

impl Line {
    fn spool(&self) -> PathBuf {
        self.work.path().join("spool")
    }
    fn inbound(&self) -> PathBuf {
        self.work.path().join("incoming")
    }
}

async fn setup(db: Db, secret: &str, configure: impl FnOnce(&mut AmiFakeConfig)) -> Line {
    let work = tempfile::tempdir().unwrap();
    let (spool, inbound) = (work.path().join("spool"), work.path().join("incoming"));
    std::fs::create_dir_all(&inbound).unwrap();
    let mut config = AmiFakeConfig {
        users: vec![("faxbot".into(), AMI_SECRET.into())],
        inbound_dir: Some(inbound.clone()),
        ..AmiFakeConfig::default()
    };
    configure(&mut config);
    let fake = AmiFake::start(config).await.unwrap();
    let settings = serde_json::json!({
        "amiHost": "127.0.0.1", "amiPort": fake.addr().port(), "amiUsername": "faxbot",
        "spoolDir": spool, "inboundDir": inbound, "pollIntervalMs": 100, "ringTimeoutSeconds": 30,
        "faxTimeoutSeconds": 60, "stationId": "+1 555 0100", "headerText": "Faxbot test line",
    });
    let (app, config) = Spawn::new(db)
        .env("INBOUND_ENABLED", "true")
        .start_with_config(
            serde_json::json!({"version": 1, "providers": {
                "outbound": {"plugin": "sip", "settings": settings},
                "inbound": {"plugin": "sip", "settings": settings}}}),
            &[("outbound.amiSecret", secret), ("inbound.inboundSecret", INBOUND_SECRET)],
        )
        .await;
    app.forbid(AMI_SECRET);
    app.forbid(INBOUND_SECRET);
    Line { fake, app, work, _config: config }
}

async fn submit(app: &TestApp, to: &str, pdf: Vec<u8>) -> String {
    let r = app.post_fax(Some(app.admin()), to, "a.pdf", pdf).await;
    assert_eq!(r.status(), 202);
    json(r).await["id"].as_str().unwrap().to_string()
}

async fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + timeout;
    while !f() {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn tiffinfo(path: &Path) -> String {
    let out = std::process::Command::new("tiffinfo").arg(path).output().expect("tiffinfo (libtiff-tools) is installed");
    assert!(out.status.success(), "tiffinfo failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn sip_sends_a_fax_through_asterisk(db: Db) {
    if !tools_available() {
        return;
    }
    let line = setup(db, AMI_SECRET, |c| c.default_outcome = Outcome::Hold).await;
    let (fake, app) = (&line.fake, &line.app);
    // Left by a crash two days ago: swept on the next send. A fresh image and other files stay.
    std::fs::create_dir_all(line.spool()).unwrap();
    let two_days_ago = std::time::SystemTime::now() - Duration::from_secs(2 * 86_400);
    for name in ["faxbot-stale.tif", ".faxbot-stale.pdf", "other.tif", "faxbot-fresh.tif"] {
        let f = std::fs::File::create(line.spool().join(name)).unwrap();
        if name != "faxbot-fresh.tif" {
            f.set_modified(two_days_ago).unwrap();
        }
    }
    let id = submit(app, NUMBER, pdf_with_pages(3)).await;
    wait_until("the Originate", Duration::from_secs(20), || !fake.live_channels().is_empty()).await;
    let call = fake.originates().pop().unwrap();
    assert_eq!(call.channel, format!("PJSIP/{NUMBER}@trunk-endpoint"));
    assert_eq!((call.context.as_deref(), call.exten.as_deref()), (Some("fax-tx"), Some("s")));
    assert!(call.is_async);
    assert_eq!(call.timeout_ms, Some(30_000), "Timeout covers ringing only, in milliseconds");
    assert_eq!(call.variable("JOBID"), Some(id.as_str()));
    assert_eq!(call.variable("STATIONID"), Some("+1 555 0100"));
    assert_eq!(call.variable("FAXHEADER"), Some("Faxbot test line"));
    assert!(call.channel_id.starts_with(&format!("faxbot-{id}-")), "{}", call.channel_id);
    // The fax image Asterisk is told to send: a 3-page TIFF-F at fine resolution.
    let file = PathBuf::from(call.variable("FAXFILE").unwrap());
    assert!(file.starts_with(line.spool()), "{}", file.display());
    let info = tiffinfo(&file);
    assert_eq!(info.matches("TIFF Directory").count(), 3, "{info}");
    assert!(info.contains("Image Width: 1728") && info.contains("Image Length: 2156"), "{info}");
    assert!(info.contains("Resolution: 204, 196"), "{info}");
    assert!(info.contains("CCITT Group 4"), "{info}");
    let job = json(app.get_fax(Some(app.admin()), &id).await).await;
    assert_eq!(job["status"], "in_progress", "{job}");

    assert!(fake.finish(&call.channel_id, Outcome::Success { pages: 3 }));
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(20)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(job["backend"], "sip");
    wait_until("the spooled TIFF to be removed", Duration::from_secs(5), || !file.exists()).await;
    let left: std::collections::BTreeSet<String> = std::fs::read_dir(line.spool())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["faxbot-fresh.tif", "other.tif"].map(String::from).into(), "the stale images are swept");
    assert_eq!(fake.originates().len(), 1);
    let (ok, refused) = fake.logins();
    assert!(ok >= 1 && refused == 0);
    app.assert_no_leaks();
}
db_test!(sip_sends_a_fax_through_asterisk);

async fn sip_every_failed_call_reaches_a_final_state(db: Db) {
    if !tools_available() {
        return;
    }
    let line = setup(db, AMI_SECRET, |_| {}).await;
    let (fake, app) = (&line.fake, &line.app);
    let cases: [(&str, Outcome, &str, &str); 7] = [
        ("1111", Outcome::Busy, "FAILED", "line busy"),
        ("2222", Outcome::NoAnswer, "FAILED", "no answer"),
        ("3333", Outcome::Congestion, "FAILED", "congestion"),
        ("4444", Outcome::Unreachable, "FAILED", "could not be placed"),
        ("5555", Outcome::FaxFailed { error: "T38_NEG_ERROR".into() }, "FAILED", "T38_NEG_ERROR"),
        ("6666", Outcome::NoResult, "FAILED", "without a fax result"),
        ("7777", Outcome::Refused, "failed", "Asterisk refused the call"),
    ];
    let mut jobs = Vec::new();
    for (suffix, outcome, _, _) in &cases {
        fake.script(suffix, outcome.clone());
        let number = format!("+1555000{suffix}");
        app.forbid(&number[1..]);
        jobs.push(submit(app, &number, one_page_pdf()).await);
    }
    for (id, (suffix, _, status, text)) in jobs.iter().zip(cases.iter()) {
        let job = app.wait_terminal(Some(app.admin()), id, Duration::from_secs(30)).await;
        assert_eq!(job["status"], *status, "{suffix}: {job}");
        let error = job["error"].as_str().unwrap_or_default();
        assert!(error.contains(text), "{suffix}: {error}");
    }
    assert_eq!(fake.originates().len(), cases.len(), "each job dialled exactly once");
    assert!(fake.live_channels().is_empty());
    app.assert_no_leaks();
}
db_test!(sip_every_failed_call_reaches_a_final_state);

async fn sip_a_refused_login_is_reported_and_nothing_is_dialled(db: Db) {
    if !tools_available() {
        return;
    }
    let line = setup(db, "wrong-ami-secret-0c4f", |_| {}).await;
    let (fake, app) = (&line.fake, &line.app);
    let id = submit(app, NUMBER, one_page_pdf()).await;
    let job = app.wait_terminal(Some(app.admin()), &id, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "failed", "{job}");
    let error = job["error"].as_str().unwrap();
    assert!(error.contains("not connected to the Asterisk manager interface"), "{error}");
    assert!(error.contains("gave up"), "retried before giving up: {error}");
    // The job gives up within a second here; on a busy machine the first refused login may come later, so
    // wait for the fake to have refused one, then for the log line (each wait bounded).
    wait_until("a refused login", Duration::from_secs(30), || fake.logins().1 >= 1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !app.wait_log("AMI login refused").await {
        assert!(std::time::Instant::now() < deadline, "the refused login is logged");
    }
    assert!(fake.originates().is_empty());
    app.forbid("wrong-ami-secret-0c4f");
    app.assert_no_leaks();
}
db_test!(sip_a_refused_login_is_reported_and_nothing_is_dialled);

async fn sip_connection_loss_mid_fax_never_leaves_a_job_stuck_or_dials_twice(db: Db) {
    if !tools_available() {
        return;
    }
    let line = setup(db, AMI_SECRET, |c| c.default_outcome = Outcome::Hold).await;
    let (fake, app) = (&line.fake, &line.app);
    app.forbid("15557654321");
    app.forbid("15559876543");

    // (a) The call ends while the connection is down: its result is lost, the job fails with a clear reason.
    let lost = submit(app, NUMBER, one_page_pdf()).await;
    wait_until("the first call", Duration::from_secs(20), || fake.live_channels().len() == 1).await;
    let first = fake.originates()[0].channel_id.clone();
    fake.refuse_connections(true);
    fake.drop_connections();
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(fake.finish(&first, Outcome::Success { pages: 1 }));
    wait_until("the call to end", Duration::from_secs(5), || fake.live_channels().is_empty()).await;
    fake.refuse_connections(false);
    let job = app.wait_terminal(Some(app.admin()), &lost, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "FAILED", "{job}");
    assert!(job["error"].as_str().unwrap().contains("unknown"), "{job}");

    // (b) The call outlives a dropped connection: the events after the reconnect deliver it.
    let kept = submit(app, "+15557654321", one_page_pdf()).await;
    wait_until("the second call", Duration::from_secs(20), || fake.live_channels().len() == 1).await;
    let second = fake.originates()[1].channel_id.clone();
    let sessions_before = fake.logins().0;
    fake.drop_connections();
    wait_until("a new login", Duration::from_secs(10), || fake.logins().0 > sessions_before).await;
    tokio::time::sleep(Duration::from_millis(300)).await; // a status check sees the live channel meanwhile
    assert!(fake.finish(&second, Outcome::Success { pages: 1 }));
    let job = app.wait_terminal(Some(app.admin()), &kept, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "SUCCESS", "{job}");

    // (c) The answer to the Originate is lost: the call goes ahead but is never dialled a second time.
    line.fake.lose_next_response();
    let uncertain = submit(app, "+15559876543", one_page_pdf()).await;
    wait_until("the third call", Duration::from_secs(20), || fake.originates().len() == 3).await;
    let third = fake.originates()[2].channel_id.clone();
    wait_until("a new login", Duration::from_secs(10), || fake.sessions() == 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(fake.finish(&third, Outcome::Success { pages: 1 }));
    let job = app.wait_terminal(Some(app.admin()), &uncertain, Duration::from_secs(30)).await;
    assert_eq!(job["status"], "SUCCESS", "the call's own events decide: {job}");
    assert_eq!(fake.originates().len(), 3, "no job was dialled twice");
    // The reconnects were reconciled by asking Asterisk about the channels, which the fake allows only with
    // the shipped manager.conf's write classes (Asterisk: Getvar needs `call` or `reporting`).
    assert!(fake.getvars() >= 1, "channel checks ran");
    assert_eq!(fake.permission_denied(), 0, "the shipped manager user may run every action the plugin sends");
    app.assert_no_leaks();
}
db_test!(sip_connection_loss_mid_fax_never_leaves_a_job_stuck_or_dials_twice);

/// A 2-page fax TIFF, made the way Asterisk's ReceiveFAX leaves one (TIFF-F, G4).
async fn received_tiff(dir: &Path) -> Vec<u8> {
    let tools = faxbot_documents::fax::Tools::from_env().unwrap();
    let pdf = dir.join("in.pdf");
    std::fs::write(&pdf, pdf_with_pages(2)).unwrap();
    let tiff = dir.join("in.tif");
    faxbot_documents::fax::pdf_to_fax_tiff(&tools, &pdf, &tiff, &Default::default(), 10).await.unwrap();
    std::fs::read(&tiff).unwrap()
}

async fn sip_inbound_faxes_arrive_through_the_internal_callback(db: Db) {
    if !tools_available() {
        return;
    }
    let line = setup(db, AMI_SECRET, |_| {}).await;
    let (fake, app) = (&line.fake, &line.app);
    let scratch = tempfile::tempdir().unwrap();
    let tiff = received_tiff(scratch.path()).await;
    let url = app.url("/_internal/asterisk/inbound");
    let list = || async {
        json(app.client.get(app.url("/inbound")).header("X-API-Key", app.admin()).send().await.unwrap()).await
    };

    // Wrong or missing secret: 401, nothing stored, the file left alone.
    let r = fake.simulate_inbound(&url, "wrong-secret", &tiff, "+15550001111", "+15550002222").await.unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(list().await.as_array().unwrap().len(), 0);
    assert_eq!(std::fs::read_dir(line.inbound()).unwrap().count(), 1, "a refused callback deletes nothing");
    let r = app.client.post(&url).json(&serde_json::json!({"tiff_path": "/etc/passwd"})).send().await.unwrap();
    assert_eq!(r.status(), 401);

    // A path outside the inbound directory is refused even with the right secret.
    for path in ["/etc/passwd", "../../etc/shadow.tif", "/var/spool/x/.hidden.tif"] {
        let r = app
            .client
            .post(&url)
            .header("X-Internal-Secret", INBOUND_SECRET)
            .json(&serde_json::json!({"tiff_path": path, "uniqueid": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{path}");
    }

    // Inside the directory, but not a received TIFF: a symbolic link to a file elsewhere (a real TIFF, so
    // only the link itself can be the reason), a FIFO (whose open would block), a file that is not a TIFF,
    // and one beyond the size cap (sparse). Each is refused with its reason, nothing is stored, and the
    // link's target is left alone.
    let outside = scratch.path().join("elsewhere.tif");
    std::fs::write(&outside, &tiff).unwrap();
    std::os::unix::fs::symlink(&outside, line.inbound().join("link.tif")).unwrap();
    assert!(std::process::Command::new("mkfifo").arg(line.inbound().join("pipe.tif")).status().unwrap().success());
    std::fs::write(line.inbound().join("text.tif"), b"%PDF-1.4 not a tiff").unwrap();
    let big = std::fs::File::create(line.inbound().join("big.tif")).unwrap();
    big.set_len(65 * 1024 * 1024).unwrap();
    // (The reasons themselves are unit-tested in plugins::sip; the answer is the fixed "Malformed webhook".)
    for name in ["link.tif", "pipe.tif", "text.tif", "big.tif"] {
        let r = app
            .client
            .post(&url)
            .header("X-Internal-Secret", INBOUND_SECRET)
            .json(&serde_json::json!({"tiff_path": format!("/var/spool/asterisk/fax/{name}"), "uniqueid": name}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{name}");
    }
    assert_eq!(list().await.as_array().unwrap().len(), 0);
    assert_eq!(std::fs::read(&outside).unwrap(), tiff, "the link's target is untouched");

    // The real thing: stored as a PDF with its pages, the TIFF removed from the shared volume.
    std::fs::remove_dir_all(line.inbound()).unwrap();
    std::fs::create_dir_all(line.inbound()).unwrap();
    let r = fake.simulate_inbound(&url, INBOUND_SECRET, &tiff, "+15550001111", "+15550002222").await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ok", "{body}");
    let faxes = list().await;
    let faxes = faxes.as_array().unwrap();
    assert_eq!(faxes.len(), 1, "{faxes:?}");
    assert_eq!(faxes[0]["backend"], "sip");
    assert_eq!(faxes[0]["pages"], 2);
    let id = faxes[0]["id"].as_str().unwrap();
    let pdf =
        app.client.get(app.url(&format!("/inbound/{id}/pdf"))).header("X-API-Key", app.admin()).send().await.unwrap();
    assert_eq!(pdf.status(), 200);
    let bytes = pdf.bytes().await.unwrap();
    assert!(bytes.starts_with(b"%PDF-"));
    assert_eq!(faxbot_documents::pdf::count_pages(std::io::Cursor::new(&bytes[..])).unwrap(), 2);
    assert_eq!(std::fs::read_dir(line.inbound()).unwrap().count(), 0, "the received TIFF is removed once stored");

    // Form-encoded (what Asterisk's CURL() posts), then a replay of the same call: nothing new.
    std::fs::write(line.inbound().join("1764000999.7.tif"), &tiff).unwrap();
    let form = "tiff_path=%2Fvar%2Fspool%2Fasterisk%2Ffax%2F1764000999.7.tif&uniqueid=1764000999.7&faxstatus=SUCCESS&faxpages=2";
    for _ in 0..2 {
        std::fs::write(line.inbound().join("1764000999.7.tif"), &tiff).unwrap();
        let r = app
            .client
            .post(&url)
            .header("X-Internal-Secret", INBOUND_SECRET)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    assert_eq!(list().await.as_array().unwrap().len(), 2, "the replay stored nothing new");
    app.forbid("15550001111");
    app.forbid("15550002222");
    app.assert_no_leaks();
}
db_test!(sip_inbound_faxes_arrive_through_the_internal_callback);

/// Two replicas on one PostgreSQL, each with its own AMI session: whichever replica dials a call, both
/// record its events, so every job is dialled once and finishes whichever replica checks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sip_two_replicas_share_calls_and_their_events() {
    if !tools_available() || !crate::helpers::postgres_available() {
        return;
    }
    let line = setup(Db::Postgres, AMI_SECRET, |_| {}).await;
    let (fake, a) = (&line.fake, &line.app);
    let b = Spawn::new(Db::Postgres).reuse(a).start().await;
    b.forbid(AMI_SECRET);
    wait_until("both AMI sessions", Duration::from_secs(20), || fake.sessions() == 2).await;
    let apps = [a, &b];
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(submit(apps[i % 2], NUMBER, one_page_pdf()).await);
    }
    for (i, id) in ids.iter().enumerate() {
        // Read each job through the replica that did not accept it.
        let job = apps[(i + 1) % 2].wait_terminal(Some(a.admin()), id, Duration::from_secs(60)).await;
        assert_eq!(job["status"], "SUCCESS", "{job}");
    }
    let originates = fake.originates();
    assert_eq!(originates.len(), 20, "every job dialled exactly once");
    let jobs: std::collections::BTreeSet<_> = originates.iter().filter_map(|o| o.variable("JOBID")).collect();
    assert_eq!(jobs.len(), 20);
    a.assert_no_leaks();
    b.assert_no_leaks();
}
