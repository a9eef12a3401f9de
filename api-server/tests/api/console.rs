//! The admin console at `/admin/ui/`, driven in a real headless Chromium (Debian's `chromium` through npm's
//! `playwright-core`, with npm's `axe-core` injected for the accessibility check; `.ci/run` installs all
//! three, into `/var/tmp/faxbot-console`). `console_browser.mjs` beside this file runs the browser and prints
//! what it saw; this test asserts on it, then on the server's log. `FAXBOT_CONSOLE_SCREENSHOTS=<dir>` keeps
//! the screenshots (docs/console.md shows them).

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::helpers::{Db, Spawn, TestApp, one_page_pdf};

/// The destination the console sends to (the simulated line delivers it).
const NUMBER: &str = "+15551230123";
/// The sender of the simulated inbound fax.
const SENDER: &str = "+15557654321";

/// The node_modules with playwright-core and axe-core, and Chromium; `None` (skipped) only outside CI.
fn browser() -> Option<PathBuf> {
    let modules = std::env::var_os("FAXBOT_TEST_CONSOLE_MODULES")
        .map_or_else(|| PathBuf::from("/var/tmp/faxbot-console/node_modules"), PathBuf::from);
    let chromium =
        std::env::var_os("FAXBOT_TEST_CHROMIUM").map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    let present = modules.join("playwright-core").is_dir() && modules.join("axe-core").is_dir() && chromium.is_file();
    if present {
        return Some(modules);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "CI=true but the browser test's tools are missing ({} with playwright-core and axe-core, {}): \
             .ci/run installs them",
            modules.display(),
            chromium.display()
        );
    }
    eprintln!("SKIPPING console browser test: no {} or {}", modules.display(), chromium.display());
    None
}

async fn console_server(db: Db) -> (TestApp, tempfile::TempDir) {
    console_server_in(Spawn::new(db)).await
}

async fn console_server_in(spawn: Spawn) -> (TestApp, tempfile::TempDir) {
    let config = json!({"version": 1, "features": {"adminConsole": true},
        "providers": {"outbound": {"plugin": "test"}, "inbound": {"plugin": "test"}}});
    let (app, dir) = spawn.start_with_config(config, &[]).await;
    for n in [NUMBER, SENDER] {
        app.forbid(n);
        app.forbid(&n[1..]);
    }
    (app, dir)
}

fn step<'a>(out: &'a Value, name: &str) -> &'a Value {
    out["steps"].as_array().and_then(|s| s.iter().find(|s| s["name"] == name)).unwrap_or(&Value::Null)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_signs_in_sends_watches_reveals_and_signs_out_in_a_real_browser() {
    let Some(modules) = browser() else { return };
    let (app, dir) = console_server(Db::Sqlite).await;
    let send_only = app.create_key(&["fax:send"]).await;
    app.forbid(&send_only);
    let r = app
        .client
        .post(app.url("/admin/inbound/simulate"))
        .header("X-API-Key", app.admin())
        .json(&json!({"fr": SENDER, "to": "+15559876543", "pages": 2}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let pdf = dir.path().join("letter.pdf");
    std::fs::write(&pdf, one_page_pdf()).unwrap();
    let screenshots = std::env::var_os("FAXBOT_CONSOLE_SCREENSHOTS").map(PathBuf::from);
    let shots = screenshots.clone().unwrap_or_else(|| dir.path().join("screenshots"));
    std::fs::create_dir_all(&shots).unwrap();
    let args = json!({"url": app.url(""), "adminKey": app.admin(), "sendOnlyKey": send_only, "number": NUMBER,
        "pdf": pdf, "screenshots": shots, "modules": modules});
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/api/console_browser.mjs");
    let run = tokio::task::spawn_blocking(move || Command::new("node").arg(script).arg(args.to_string()).output());
    let output = run.await.unwrap().expect("run node");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "browser script failed:\n{}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    let out: Value = serde_json::from_str(stdout.trim()).expect("the script's JSON");

    // Not signed in: the sign-in page, with the security headers.
    let unsigned = step(&out, "unsigned");
    assert!(unsigned["url"].as_str().unwrap().ends_with("/admin/ui/signin"), "{unsigned}");
    let headers = &unsigned["headers"];
    assert_eq!(headers["x-frame-options"], "DENY");
    let csp = headers["content-security-policy"].as_str().unwrap();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");

    // A key without keys:manage is refused at sign-in, and gets no cookie.
    let refused = step(&out, "signin_refused");
    assert_eq!(refused["status"], 403, "{refused}");
    assert!(refused["error"].as_str().unwrap().contains("keys:manage"), "{refused}");
    assert_eq!(refused["cookies"], 0);

    // The session cookie: HttpOnly, SameSite=Strict, only for the console's path; the key is not in it.
    let signed_in = step(&out, "signed_in");
    assert!(signed_in["url"].as_str().unwrap().ends_with("/admin/ui/"), "{signed_in}");
    let cookies = signed_in["cookies"].as_array().unwrap();
    assert_eq!(cookies.len(), 1, "{cookies:?}");
    let cookie = &cookies[0];
    assert_eq!(cookie["name"], "faxbot_console");
    assert_eq!(cookie["httpOnly"], true);
    assert_eq!(cookie["sameSite"], "Strict");
    assert_eq!(cookie["path"], "/admin/ui");
    assert!(!cookie["value"].as_str().unwrap().contains(app.admin()));

    // Sent from the form, followed to SUCCESS, the number masked.
    let sent = step(&out, "sent");
    assert!(sent["url"].as_str().unwrap().contains("/admin/ui/jobs/"), "{sent}");
    let job = step(&out, "job");
    assert_eq!(job["status"], "SUCCESS", "{job}");
    assert_eq!(job["to"], "********0123");
    assert!(step(&out, "jobs")["rows"].as_u64().unwrap() >= 1);

    // No full number in any page's DOM, title or URL before the reveal, nor in the browser's console.
    assert_eq!(out["dom_leaks"], json!([]), "full number shown before the reveal");
    for url in out["urls"].as_array().unwrap() {
        assert!(!url.as_str().unwrap().contains(&NUMBER[2..]), "{url}");
    }
    for line in out["console"].as_array().unwrap() {
        assert!(!line.as_str().unwrap().contains(&NUMBER[2..]), "browser console: {line}");
    }
    // The pages log nothing and raise nothing; the browser notes the two refusals this test provoked there
    // (the sign-in with a key without keys:manage, 403; the refused plugin setting, 422).
    assert_eq!(
        out["console"],
        json!([
            "Failed to load resource: the server responded with a status of 403 (Forbidden)",
            "Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
        ]),
        "browser console"
    );

    // A form posted from another origin is refused, and reveals nothing.
    let cross = step(&out, "cross_site");
    assert_eq!(cross["status"], 403, "{cross}");
    assert_eq!(cross["leaked"], false);
    assert!(app.wait_log("console_cross_site_refused").await);

    // Reveal: the full number, on a page whose URL and title do not carry it; audited with the key id.
    let revealed = step(&out, "revealed");
    assert_eq!(revealed["status"], 200, "{revealed}");
    assert_eq!(revealed["to"], NUMBER);
    assert!(!revealed["url"].as_str().unwrap().contains(&NUMBER[2..]));
    assert!(!revealed["title"].as_str().unwrap().contains(&NUMBER[2..]));
    assert!(app.wait_log("\"event\":\"console_number_revealed\"").await);
    let reveal_line = app.logs().into_iter().find(|l| l.contains("console_number_revealed")).unwrap();
    assert!(reveal_line.contains("\"key_id\":\"env\""), "{reveal_line}");

    // A key created (its token shown once, not on the next visit), then revoked.
    let created = step(&out, "key_created");
    assert_eq!(created["status"], 200, "{created}");
    let token = created["token"].as_str().unwrap();
    assert!(token.starts_with("fbk_live_"), "{created}");
    // Shown to the browser once, and never written to the server's log.
    app.forbid(token);
    let revoked = step(&out, "key_revoked");
    assert_eq!(revoked["state"], "revoked", "{revoked}");
    assert_eq!(revoked["token_shown_again"], false);
    assert!(app.wait_log("\"event\":\"api_key_revoked\"").await);

    // A plugin setting refused with the schema's message beside the field, then saved and applied.
    let refused_setting = step(&out, "setting_refused");
    assert_eq!(refused_setting["status"], 422, "{refused_setting}");
    // (The limit itself, 600000, is masked by the PHI guard that every validation message passes.)
    assert!(refused_setting["error"].as_str().unwrap().contains("must be at most"), "{refused_setting}");
    assert_eq!(refused_setting["kept"], "9999999");
    let saved = step(&out, "setting_saved");
    assert_eq!(saved["status"], 200, "{saved}");
    assert!(saved["notice"].as_str().unwrap().contains("saved and applied"), "{saved}");
    assert_eq!(saved["value"], "300");
    let document: Value = serde_json::from_slice(&std::fs::read(dir.path().join("faxbot.json")).unwrap()).unwrap();
    assert_eq!(document["providers"]["outbound"]["settings"]["deliveryLatencyMs"], 300);

    // The received fax: masked, downloaded once through its link, which then refuses.
    let inbound = step(&out, "inbound");
    assert_eq!(inbound["from"], "********4321", "{inbound}");
    assert_eq!(inbound["pdf"], true, "{inbound}");
    assert!(inbound["downloaded"].as_u64().unwrap() > 100);
    assert_eq!(inbound["link_has_number"], false);
    assert_eq!(inbound["reuse_status"], 403, "a one-time link");
    assert!(app.wait_log("\"event\":\"inbound_token_issued\"").await);

    // The audit trail page shows the reveal with the key id.
    let audit = step(&out, "audit");
    assert!(audit["rows"].as_u64().unwrap() >= 1, "{audit}");
    assert!(audit["text"].as_str().unwrap().contains("key_id=env"), "{audit}");

    // Signed out: the cookie is gone and the pages lead to the sign-in form again.
    assert_eq!(step(&out, "signed_out")["cookies"], 0);
    assert!(step(&out, "after_signout")["url"].as_str().unwrap().ends_with("/admin/ui/signin"));

    // Accessibility: no serious or critical violation on any page.
    let axe = out["axe"].as_object().unwrap();
    assert_eq!(axe.len(), 11, "{axe:?}");
    for (page, violations) in axe {
        for v in violations.as_array().unwrap() {
            assert!(!matches!(v["impact"].as_str(), Some("serious" | "critical")), "{page}: {v}");
        }
    }
    assert_eq!(out["screenshots"].as_array().unwrap().len(), 22);
    for title in out["titles"].as_array().unwrap() {
        assert!(title.as_str().unwrap().ends_with("· Faxbot console"), "{title}");
    }
    app.assert_no_leaks();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_is_off_unless_the_feature_flag_is_on() {
    let app = Spawn::new(Db::Sqlite).start().await;
    for path in ["/admin/ui/", "/admin/ui/signin", "/admin/ui/static/console.js"] {
        let r = app.client.get(app.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 404, "{path}");
    }
}

crate::db_test!(forged_forms_are_refused_and_sessions_end_with_their_key);
async fn forged_forms_are_refused_and_sessions_end_with_their_key(db: Db) {
    let (app, _dir) = console_server_in(Spawn::new(db).env("FAXBOT_AUTH_FAILURES_PER_MINUTE", "3")).await;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let r = client
        .post(app.url("/admin/ui/signin"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(urlencoded(&[("key", app.admin())]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "loopback: {cookie}");
    let session = cookie.split(';').next().unwrap().to_string();
    // The CSRF token not first, or wrong: 403, and no job.
    for csrf in [None, Some("wrong")] {
        let mut form = reqwest::multipart::Form::new();
        if let Some(csrf) = csrf {
            form = form.text("csrf", csrf);
        }
        form = form.text("to", NUMBER).part("file", reqwest::multipart::Part::bytes(one_page_pdf()).file_name("a.pdf"));
        let r = client.post(app.url("/admin/ui/send")).header("Cookie", &session).multipart(form).send().await.unwrap();
        assert_eq!(r.status(), 403, "{csrf:?}");
    }
    // Another origin: refused before anything else.
    let r = client
        .post(app.url("/admin/ui/signout"))
        .header("Cookie", &session)
        .header("Origin", "http://127.0.0.1:1")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(urlencoded(&[("csrf", "x")]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    // Nothing was accepted, whatever the filter.
    for query in ["", "?status=SUCCESS&backend=test&since=2026-01-01", "?status=bogus&since=not-a-date"] {
        let r = client.get(app.url(&format!("/admin/ui/jobs{query}"))).header("Cookie", &session).send().await.unwrap();
        assert_eq!(r.status(), 200, "{query}");
        assert!(r.text().await.unwrap().contains("No jobs match."), "{query}");
    }
    // A session opened with a database key ends when the key is revoked.
    let admin_key = app.create_key(&["keys:manage", "fax:read"]).await;
    let r = client
        .post(app.url("/admin/ui/signin"))
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(urlencoded(&[("key", &admin_key)]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let keyed = r.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    let r = client.get(app.url("/admin/ui/jobs")).header("Cookie", &keyed).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let key_id = admin_key.split('_').nth(2).unwrap();
    let r = app
        .client
        .delete(app.url(&format!("/admin/api-keys/{key_id}")))
        .header("X-API-Key", app.admin())
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.status());
    let r = client.get(app.url("/admin/ui/jobs")).header("Cookie", &keyed).send().await.unwrap();
    assert_eq!(r.status(), 303);
    assert_eq!(r.headers()["location"], "/admin/ui/signin");
    // Behind a proxy under a real name the cookie is Secure.
    let r = client
        .post(app.url("/admin/ui/signin"))
        .header("Host", "fax.example.org")
        .header("Origin", "https://fax.example.org")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body(urlencoded(&[("key", app.admin())]))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("; Secure"));
    // Guessing keys at the sign-in form is limited like guessing them in headers: after 3 failures a minute
    // (this server's setting), 429 before any lookup, even for a good key.
    crate::helpers::start_of_a_minute().await;
    let mut statuses = Vec::new();
    for key in
        ["fbk_live_0123456789ab_guess1", "fbk_live_0123456789ab_guess2", "fbk_live_0123456789ab_guess3", app.admin()]
    {
        let r = client
            .post(app.url("/admin/ui/signin"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(urlencoded(&[("key", key)]))
            .send()
            .await
            .unwrap();
        statuses.push(r.status().as_u16());
    }
    assert_eq!(statuses, [401, 401, 401, 429]);
    app.assert_no_leaks();
}

/// `application/x-www-form-urlencoded`, as a browser sends a form.
fn urlencoded(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish()
}
