use crate::db_test;
use crate::helpers::{Db, TestApp, json};

async fn probes_docs_and_json_errors(db: Db) {
    let app = TestApp::spawn(db).await;
    let r = app.client.get(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(json(r).await, serde_json::json!({"status": "ok"}));

    let r = app.client.get(app.url("/health/ready")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let body = json(r).await;
    assert_eq!(body["status"], "ready");
    assert_eq!(body["backend"], "test");
    assert_eq!(body["checks"]["db"], true);
    assert_eq!(body["checks"]["storage"], true);
    assert!(body["checks"]["ami_connected"].is_null());
    assert_eq!(body["storage_error"], serde_json::Value::Null);

    let r = app.client.get(app.url("/no/such/path")).send().await.unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(json(r).await, serde_json::json!({"detail": "Not Found"}));
    let r = app.client.delete(app.url("/health")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    assert_eq!(json(r).await, serde_json::json!({"detail": "Method Not Allowed"}));

    let r = app.client.get(app.url("/openapi.json")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let spec = json(r).await;
    for path in [
        "/fax",
        "/fax/{id}",
        "/health",
        "/health/ready",
        "/admin/api-keys",
        "/admin/api-keys/{key_id}",
        "/admin/api-keys/{key_id}/rotate",
        "/admin/features",
        "/metrics",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} missing from the OpenAPI document");
    }
    assert!(spec["components"]["securitySchemes"]["api_key"].is_object());
    let r = app.client.get(app.url("/docs/")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("swagger"), "docs page should be Swagger UI");
}
db_test!(probes_docs_and_json_errors);

async fn metrics_count_requests_by_route_status_and_revision(db: Db) {
    let app = TestApp::spawn(db).await;
    let r = app.post_fax(Some(app.admin()), crate::helpers::NUMBER, "a.pdf", crate::helpers::one_page_pdf()).await;
    assert_eq!(r.status(), 202);
    let _ = app.get_fax(Some(app.admin()), "00000000000000000000000000000000").await;
    let text = app.client.get(app.url("/metrics")).send().await.unwrap().text().await.unwrap();
    let revision = json(app.client.get(app.url("/health/ready")).send().await.unwrap()).await["revision"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        text.contains(&format!(
            "faxbot_http_requests_total{{method=\"POST\",route=\"/fax\",status=\"202\",revision=\"{revision}\"}} 1"
        )),
        "{text}"
    );
    assert!(text.contains("route=\"/fax/{id}\",status=\"404\""), "{text}");
    assert!(text.contains("faxbot_http_request_duration_seconds_bucket"), "{text}");
    assert!(text.contains("faxbot_jobs_total{plugin=\"test\",outcome=\"accepted\""), "{text}");
    assert!(text.contains("faxbot_queue_depth"), "{text}");
    assert!(!text.contains("5551234567"), "metrics must not carry numbers");
}
db_test!(metrics_count_requests_by_route_status_and_revision);

async fn unexpected_failures_answer_a_generic_500(db: Db) {
    let app = TestApp::spawn(db).await;
    let key = app.create_key(&["fax:send", "fax:read"]).await;
    // Fault injection from outside: the key table disappears under the running server.
    sqlx::any::install_default_drivers();
    let url = match db {
        Db::Sqlite => format!("sqlite://{}", app.data.path().join("data/faxbot.db").display()),
        Db::Postgres => app.pg_url.clone().unwrap(),
    };
    let pool = sqlx::AnyPool::connect(&url).await.unwrap();
    sqlx::query("DROP TABLE api_keys").execute(&pool).await.unwrap();
    pool.close().await;
    let r = app.get_fax(Some(&key), "00000000000000000000000000000000").await;
    assert_eq!(r.status(), 500);
    assert_eq!(
        json(r).await,
        serde_json::json!({"detail": "Internal Server Error"}),
        "no internals leak to the client"
    );
    assert!(app.wait_log("\"message\":\"internal error\"").await, "the failure is logged");
    // Routes that do not need the table keep working.
    assert_eq!(app.client.get(app.url("/health")).send().await.unwrap().status(), 200);
}
db_test!(unexpected_failures_answer_a_generic_500);

/// Keep-alive connections do not last forever: every N-th response closes its connection (kube-proxy balances
/// connections, so this is what lets a new pod, a canary above all, get traffic from existing clients).
async fn keep_alive_connections_are_closed_every_n_responses(db: Db) {
    use std::io::{BufRead, BufReader, Read, Write};
    let app = crate::helpers::Spawn::new(db).env("FAXBOT_CONNECTION_CLOSE_EVERY", "3").start().await;
    let addr = app.base.trim_start_matches("http://").to_string();
    // One keep-alive request; whether its response said `Connection: close`.
    let request = |stream: &mut std::net::TcpStream, reader: &mut BufReader<std::net::TcpStream>| {
        write!(stream, "GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            if line == "\r\n" {
                break;
            }
            headers.push(line.trim().to_ascii_lowercase());
        }
        let length: usize =
            headers.iter().find_map(|h| h.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap())).unwrap();
        reader.read_exact(&mut vec![0; length]).unwrap();
        headers.iter().any(|h| h == "connection: close")
    };
    let connect = || {
        let stream = std::net::TcpStream::connect(&addr).unwrap();
        stream.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
        let reader = BufReader::new(stream.try_clone().unwrap());
        (stream, reader)
    };
    // The harness's own requests moved the count: the first close comes within three requests, and the
    // server then closes the connection.
    let (mut stream, mut reader) = connect();
    let mut sent = 0;
    while !request(&mut stream, &mut reader) {
        sent += 1;
        assert!(sent < 3, "no `Connection: close` within 3 responses");
    }
    assert_eq!(reader.read_to_end(&mut Vec::new()).unwrap(), 0, "closed after `Connection: close`");
    // From there on, exactly every third response closes.
    let (mut stream, mut reader) = connect();
    let closes: Vec<bool> = (0..3).map(|_| request(&mut stream, &mut reader)).collect();
    assert_eq!(closes, [false, false, true]);
    assert_eq!(reader.read_to_end(&mut Vec::new()).unwrap(), 0);
}
db_test!(keep_alive_connections_are_closed_every_n_responses);
