use crate::db_test;
use crate::helpers::{Db, NUMBER, Spawn, TestApp, json, one_page_pdf, pdf_with_pages};
use std::time::Duration;

fn assert_wire_timestamp(v: &serde_json::Value) {
    let s = v.as_str().expect("timestamp string");
    let ok = s.len() == 19 || (s.len() == 26 && s.as_bytes()[19] == b'.');
    assert!(ok && s.as_bytes()[10] == b'T' && !s.ends_with('Z'), "naive ISO timestamp expected, got {s}");
}

async fn accepted_job_has_the_reference_shape_and_completes(db: Db) {
    let app = TestApp::spawn(db).await;
    let r = app.post_fax(Some(app.admin()), NUMBER, "doc.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202);
    let raw = r.text().await.unwrap();
    let keys: Vec<&str> = [
        "\"id\"",
        "\"to\"",
        "\"status\"",
        "\"error\"",
        "\"pages\"",
        "\"backend\"",
        "\"provider_sid\"",
        "\"created_at\"",
        "\"updated_at\"",
    ]
    .to_vec();
    let positions: Vec<usize> =
        keys.iter().map(|k| raw.find(k).unwrap_or_else(|| panic!("{k} missing in {raw}"))).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "fields out of reference order: {raw}");
    let body: serde_json::Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(body.as_object().unwrap().len(), 9);
    let id = body["id"].as_str().unwrap();
    assert!(id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));
    assert_eq!(body["to"], NUMBER);
    assert_eq!(body["status"], "queued");
    assert_eq!(body["error"], serde_json::Value::Null);
    assert_eq!(body["pages"], 1);
    assert_eq!(body["backend"], "test");
    assert_eq!(body["provider_sid"], serde_json::Value::Null);
    assert_wire_timestamp(&body["created_at"]);
    assert_wire_timestamp(&body["updated_at"]);

    let done = app.wait_terminal(Some(app.admin()), id, Duration::from_secs(20)).await;
    assert_eq!(done["status"], "SUCCESS");
    assert!(done["provider_sid"].as_str().unwrap().starts_with("sim_"));
    assert_eq!(done["error"], serde_json::Value::Null);
    assert_eq!(done["created_at"], body["created_at"]);
    assert_ne!(done["updated_at"], body["updated_at"]);

    // Numbers without '+' are echoed unchanged.
    let r = app.post_fax(Some(app.admin()), "15557654321", "doc.pdf", one_page_pdf()).await;
    assert_eq!(r.status(), 202);
    assert_eq!(json(r).await["to"], "15557654321");

    let r = app.get_fax(Some(app.admin()), "ffffffffffffffffffffffffffffffff").await;
    assert_eq!(r.status(), 404);
    assert_eq!(json(r).await, serde_json::json!({"detail": "Job not found"}));
    let r = app.get_fax(Some(app.admin()), "not-an-id").await;
    assert_eq!(r.status(), 404);
}
db_test!(accepted_job_has_the_reference_shape_and_completes);

async fn page_counts_for_text_and_multi_page_pdfs(db: Db) {
    let app = TestApp::spawn(db).await;
    for pages in [1u32, 5, 50] {
        let r = app.post_fax(Some(app.admin()), NUMBER, "multi.pdf", pdf_with_pages(pages)).await;
        assert_eq!(r.status(), 202);
        assert_eq!(json(r).await["pages"], pages, "{pages}-page PDF");
    }
    // PDFs from other producers: Ghostscript, qpdf object streams and xref streams, linearized files,
    // incremental updates (fixtures of the documents crate, page counts cross-checked with pdfinfo).
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../documents/tests/fixtures");
    for (file, pages) in [
        ("gs-5pages.pdf", 5),
        ("objstm-50pages.pdf", 50),
        ("linearized-objstm-50pages.pdf", 50),
        ("incremental-xrefstream-21pages.pdf", 21),
        ("broken-startxref-5pages.pdf", 5),
    ] {
        let r = app.post_fax(Some(app.admin()), NUMBER, file, std::fs::read(fixtures.join(file)).unwrap()).await;
        assert_eq!(r.status(), 202, "{file}");
        assert_eq!(json(r).await["pages"], pages, "{file}");
    }
    let r = app
        .post_fax(
            Some(app.admin()),
            NUMBER,
            "locked.pdf",
            std::fs::read(fixtures.join("encrypted-aes256-5pages.pdf")).unwrap(),
        )
        .await;
    assert_eq!(r.status(), 415);
    assert_eq!(json(r).await, serde_json::json!({"detail": "Encrypted PDFs are not supported"}));
    // Text: 57 lines fit on a page, so 58 lines make two pages; a 200-character line wraps onto 3 lines.
    let text57 = (0..57).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n");
    let r = app.post_fax(Some(app.admin()), NUMBER, "note.txt", text57.clone().into_bytes()).await;
    assert_eq!(json(r).await["pages"], 1);
    let r = app.post_fax(Some(app.admin()), NUMBER, "note.txt", format!("{text57}\nline 58").into_bytes()).await;
    assert_eq!(json(r).await["pages"], 2);
    let r = app.post_fax(Some(app.admin()), NUMBER, "notes", "héllo wörld — ünïcode\n".repeat(3).into_bytes()).await;
    assert_eq!(r.status(), 202, "UTF-8 text is accepted whatever the file name");
    assert_eq!(json(r).await["pages"], 1);
}
db_test!(page_counts_for_text_and_multi_page_pdfs);

async fn bad_input_gets_the_reference_errors(db: Db) {
    let app = TestApp::spawn(db).await;
    let key = Some(app.admin());
    for bad in
        ["12345", "+1 555 123 4567", "555-123-4567", "++15551234567", "abc", "+123456789012345678901", "15551234567\n"]
    {
        let r = app.post_fax(key, bad, "a.pdf", one_page_pdf()).await;
        assert_eq!(r.status(), 400, "{bad:?}");
        assert_eq!(json(r).await, serde_json::json!({"detail": "'to' must be E.164 or digits only"}));
    }
    let r = app.post_fax(key, NUMBER, "img.png", b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec()).await;
    assert_eq!(r.status(), 415);
    assert_eq!(json(r).await, serde_json::json!({"detail": "Only PDF and TXT are allowed"}));
    // Invalid UTF-8 far beyond the first 64 KiB is still caught (the reference only sniffed 64 KiB).
    let mut late_binary = vec![b'a'; 200 * 1024];
    late_binary.extend_from_slice(&[0xff, 0xfe, 0x00]);
    let r = app.post_fax(key, NUMBER, "a.txt", late_binary).await;
    assert_eq!(r.status(), 415);
    let r = app.post_fax(key, NUMBER, "broken.pdf", b"%PDF-1.4\nthis is not really a pdf\n".to_vec()).await;
    assert_eq!(r.status(), 415);
    assert_eq!(json(r).await, serde_json::json!({"detail": "PDF could not be read"}));
    let r = app.post_fax(key, NUMBER, "empty.txt", Vec::new()).await;
    assert_eq!(r.status(), 400);
    assert_eq!(json(r).await, serde_json::json!({"detail": "File is empty"}));

    // 422: missing fields, in FastAPI's shape.
    let form = reqwest::multipart::Form::new().text("to", NUMBER);
    let r = app.client.post(app.url("/fax")).header("X-API-Key", app.admin()).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(
        json(r).await,
        serde_json::json!({"detail": [{"type": "missing", "loc": ["body", "file"], "msg": "Field required", "input": null}]})
    );
    let form = reqwest::multipart::Form::new()
        .part("file", reqwest::multipart::Part::bytes(one_page_pdf()).file_name("a.pdf"));
    let r = app.client.post(app.url("/fax")).header("X-API-Key", app.admin()).multipart(form).send().await.unwrap();
    assert_eq!(r.status(), 422);
    assert_eq!(json(r).await["detail"][0]["loc"], serde_json::json!(["body", "to"]));
    let r = app
        .client
        .post(app.url("/fax"))
        .header("X-API-Key", app.admin())
        .json(&serde_json::json!({"to": NUMBER}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 422);
    let detail = json(r).await["detail"].clone();
    assert_eq!(detail.as_array().unwrap().len(), 2, "JSON bodies list both fields as missing");
}
db_test!(bad_input_gets_the_reference_errors);

async fn ten_mib_is_accepted_and_one_byte_more_is_refused(db: Db) {
    // 10 MiB of text is over 2,000 pages: raise the page limit to the page counter's cap.
    let app = Spawn::new(db).env("MAX_PAGES", "10000").start().await;
    let limit = 10 * 1024 * 1024;
    let line = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz0123456789\n";
    let mut exact = line.repeat(limit / line.len() + 1).into_bytes();
    exact.truncate(limit);
    let r = app.post_fax(Some(app.admin()), NUMBER, "big.txt", exact.clone()).await;
    assert_eq!(r.status(), 202, "exactly 10 MiB is accepted");
    assert!(json(r).await["pages"].as_i64().unwrap() > 1000);
    exact.push(b'x');
    let r = app.post_fax(Some(app.admin()), NUMBER, "big.txt", exact).await;
    assert_eq!(r.status(), 413);
    assert_eq!(json(r).await, serde_json::json!({"detail": "File exceeds 10 MB limit"}));
    let staging: Vec<_> = std::fs::read_dir(app.data.path().join("data/documents/.staging")).unwrap().collect();
    assert!(staging.is_empty(), "a refused upload leaves no staging file behind");
}
db_test!(ten_mib_is_accepted_and_one_byte_more_is_refused);

async fn size_limit_is_configurable(db: Db) {
    let app = Spawn::new(db).env("MAX_FILE_SIZE_MB", "1").start().await;
    let r = app.post_fax(Some(app.admin()), NUMBER, "a.txt", vec![b'a'; 1024 * 1024 + 1]).await;
    assert_eq!(r.status(), 413);
    assert_eq!(json(r).await, serde_json::json!({"detail": "File exceeds 1 MB limit"}));
}
db_test!(size_limit_is_configurable);

/// Documents in `data/documents`, the staging area excluded.
fn stored_documents(app: &TestApp) -> usize {
    std::fs::read_dir(app.data.path().join("data/documents"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name() != ".staging")
        .count()
}

async fn page_limit_is_enforced_with_a_precise_error(db: Db) {
    let app = Spawn::new(db).start().await;
    let r = app.post_fax(Some(app.admin()), NUMBER, "hundred.pdf", pdf_with_pages(100)).await;
    assert_eq!(r.status(), 202, "exactly the default limit of 100 pages is accepted");
    assert_eq!(json(r).await["pages"], 100);
    let before = stored_documents(&app);
    let r = app.post_fax(Some(app.admin()), NUMBER, "long.pdf", pdf_with_pages(101)).await;
    assert_eq!(r.status(), 413);
    assert_eq!(json(r).await, serde_json::json!({"detail": "Document exceeds 100 page limit (it has 101 pages)"}));
    assert_eq!(stored_documents(&app), before, "nothing of a refused document is stored");
    drop(app);

    let app = Spawn::new(db).env("MAX_PAGES", "5").start().await;
    let r = app.post_fax(Some(app.admin()), NUMBER, "five.pdf", pdf_with_pages(5)).await;
    assert_eq!(r.status(), 202);
    let before = stored_documents(&app);
    let r = app.post_fax(Some(app.admin()), NUMBER, "six.pdf", pdf_with_pages(6)).await;
    assert_eq!(r.status(), 413);
    assert_eq!(json(r).await, serde_json::json!({"detail": "Document exceeds 5 page limit (it has 6 pages)"}));
    // Text stops rendering at the first page beyond the limit (10 MiB of form feeds would otherwise be ten
    // million pages), so its count is "more than" the limit; a large upload takes the staged-file path.
    let text6 = (0..6 * 57).map(|i| format!("line {i}")).collect::<Vec<_>>().join("\n");
    let r = app.post_fax(Some(app.admin()), NUMBER, "note.txt", text6.into_bytes()).await;
    assert_eq!(
        json(r).await,
        serde_json::json!({"detail": "Document exceeds 5 page limit (it has more than 5 pages)"})
    );
    let big = format!("{}\n", "x".repeat(83)).repeat(1500).into_bytes();
    let r = app.post_fax(Some(app.admin()), NUMBER, "big.txt", big).await;
    assert_eq!(r.status(), 413);
    assert_eq!(
        json(r).await,
        serde_json::json!({"detail": "Document exceeds 5 page limit (it has more than 5 pages)"})
    );
    let feeds = vec![b'\x0c'; 10 * 1024 * 1024];
    let r = app.post_fax(Some(app.admin()), NUMBER, "feeds.txt", feeds).await;
    assert_eq!(r.status(), 413);
    assert_eq!(
        json(r).await,
        serde_json::json!({"detail": "Document exceeds 5 page limit (it has more than 5 pages)"})
    );
    let fixtures = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../documents/tests/fixtures");
    let r = app
        .post_fax(Some(app.admin()), NUMBER, "objstm.pdf", std::fs::read(fixtures.join("objstm-50pages.pdf")).unwrap())
        .await;
    assert_eq!(json(r).await, serde_json::json!({"detail": "Document exceeds 5 page limit (it has 50 pages)"}));
    assert_eq!(stored_documents(&app), before, "nothing of a refused document is stored");
    let staging: Vec<_> = std::fs::read_dir(app.data.path().join("data/documents/.staging")).unwrap().collect();
    assert!(staging.is_empty(), "a refused upload leaves no staging file behind");
}
db_test!(page_limit_is_enforced_with_a_precise_error);

/// A PDF without a cross-reference table (the counter reconstructs it by scanning, as viewers do).
fn scanned_pdf(objects: &[&str]) -> Vec<u8> {
    let mut pdf = String::from("%PDF-1.4\n");
    for (i, body) in objects.iter().enumerate() {
        pdf.push_str(&format!("{} 0 obj\n{body}\nendobj\n", i + 1));
    }
    pdf.push_str("trailer\n<< /Root 1 0 R >>\n%%EOF\n");
    pdf.into_bytes()
}

async fn page_trees_that_renderers_would_count_differently_are_refused(db: Db) {
    let app = Spawn::new(db).start().await;
    let before = stored_documents(&app);
    // One page object listed 500 times (Ghostscript renders 500), and a tree of 3 pages declaring /Count 1.
    let kids = vec!["3 0 R"; 500].join(" ");
    let listed_twice = scanned_pdf(&[
        "<< /Type /Catalog /Pages 2 0 R >>",
        &format!("<< /Type /Pages /Kids [{kids}] /Count 500 >>"),
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] >>",
    ]);
    let miscounted = scanned_pdf(&[
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R >>",
        "<< /Type /Page /Parent 2 0 R >>",
        "<< /Type /Page /Parent 2 0 R >>",
    ]);
    for (name, pdf, reason) in [
        ("listed.pdf", listed_twice, "PDF page tree is inconsistent: object 3 appears more than once in the page tree"),
        (
            "miscounted.pdf",
            miscounted,
            "PDF page tree is inconsistent: the page tree has 3 pages but declares /Count 1",
        ),
    ] {
        let r = app.post_fax(Some(app.admin()), NUMBER, name, pdf).await;
        assert_eq!(r.status(), 422, "{name}");
        assert_eq!(json(r).await, serde_json::json!({"detail": reason}));
    }
    assert_eq!(stored_documents(&app), before, "nothing stored");
}
db_test!(page_trees_that_renderers_would_count_differently_are_refused);

async fn idempotency_key_makes_retries_safe(db: Db) {
    let app = TestApp::spawn(db).await;
    let send = |key: &'static str, api_key: String, body: Vec<u8>| {
        let form = reqwest::multipart::Form::new()
            .text("to", NUMBER)
            .part("file", reqwest::multipart::Part::bytes(body).file_name("a.pdf"));
        app.client
            .post(app.url("/fax"))
            .header("X-API-Key", api_key)
            .header("Idempotency-Key", key)
            .multipart(form)
            .send()
    };
    let admin = app.admin().to_string();
    let first = send("order-4711", admin.clone(), one_page_pdf()).await.unwrap();
    assert_eq!(first.status(), 202);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first = json(first).await;
    let again = send("order-4711", admin.clone(), one_page_pdf()).await.unwrap();
    assert_eq!(again.status(), 202);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(json(again).await["id"], first["id"], "the retry returns the original job");

    let other_doc = send("order-4711", admin.clone(), pdf_with_pages(2)).await.unwrap();
    assert_eq!(other_doc.status(), 409);
    assert_eq!(
        json(other_doc).await,
        serde_json::json!({"detail": "Idempotency-Key was already used for a different request"})
    );

    // Keys are scoped to the caller: another API key may use the same value for its own job.
    let other_caller = app.create_key(&["fax:send"]).await;
    let r = send("order-4711", other_caller, one_page_pdf()).await.unwrap();
    assert_eq!(r.status(), 202);
    assert_ne!(json(r).await["id"], first["id"]);

    let r = send("has space", admin.clone(), one_page_pdf()).await.unwrap();
    assert_eq!(r.status(), 400);

    // Concurrent duplicates (a client retrying while the first attempt is still running) make one job.
    let attempts = futures_util::future::join_all((0..8).map(|_| send("race-1", admin.clone(), one_page_pdf()))).await;
    let mut ids = std::collections::HashSet::new();
    for r in attempts {
        let r = r.unwrap();
        assert_eq!(r.status(), 202);
        ids.insert(json(r).await["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "eight concurrent requests with one key created {} jobs", ids.len());
}
db_test!(idempotency_key_makes_retries_safe);
