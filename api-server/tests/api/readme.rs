//! The README's curl walk-through, executed verbatim (only the host and port are swapped for the test
//! server's), so the quick start cannot silently rot.

use crate::helpers::{Db, Spawn};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readme_walkthrough_works_verbatim() {
    let readme = include_str!("../../../README.md");
    let start = readme.find("<!-- walkthrough:start -->").expect("walkthrough start marker");
    let end = readme.find("<!-- walkthrough:end -->").expect("walkthrough end marker");
    let block = &readme[start..end];
    let script = block.split("```sh").nth(1).and_then(|b| b.split("```").next()).expect("sh block");
    assert!(script.contains("curl"), "the walk-through should be curl commands");

    let app = Spawn::new(Db::Sqlite).dev_mode().env("API_KEY_FILE", "data/admin.key").start().await;
    let admin_key = std::fs::read_to_string(app.data.path().join("data/admin.key")).expect("generated admin key");
    app.forbid(admin_key.trim());
    let script = script.replace("http://localhost:8080", &app.base);
    let out = tokio::process::Command::new("bash")
        .arg("-euo")
        .arg("pipefail")
        .arg("-c")
        .arg(&script)
        .current_dir(app.data.path())
        .output()
        .await
        .expect("bash");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "walk-through failed: {stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("{\"status\":\"ok\"}"), "{stdout}");
    assert!(stdout.contains("\"status\":\"SUCCESS\""), "the job should have been sent within the sleep: {stdout}");
    assert!(stdout.contains("\"pages\":1"), "{stdout}");
    let token = stdout.split("\"token\":\"").nth(1).and_then(|t| t.split('"').next()).expect("a key was created");
    assert!(token.starts_with("fbk_live_"));
    app.forbid(token);
    assert!(
        app.logs().iter().any(|l| l.contains("generated a bootstrap admin key")),
        "the server says where the key is"
    );
}
