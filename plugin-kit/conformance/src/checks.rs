//! The conformance checks: one list, run against the sidecar protocol of any plugin (a sidecar's own URL,
//! or a built-in or manifest plugin served over the protocol by the API server's `external::host`).
//!
//! Each check sends what the Faxbot server would send and judges the answer by the protocol
//! (docs/plugin-protocol.yaml): the conformance numbers choose the branch. Every error body seen on the way
//! is kept and, at the end, searched for the numbers sent (PHI in errors fails the run).

use std::time::Duration;

use faxbot_contract::sidecar::{
    self, ErrorBody, ErrorKind, FaxAnswer, FaxState, SidecarCapability, SidecarManifest, WebhookAnswer, scenario,
};
use serde_json::{Value, json};

/// The one-page PDF every submission carries (the kits' mock server sends the same).
pub use faxbot_plugin_kit::testing::PDF;

/// What the suite is told about the plugin under test.
pub struct Target {
    /// The protocol's base URL.
    pub url: String,
    /// The plugin token, if the plugin requires one.
    pub token: Option<String>,
    /// The simulated provider's callback key, when known: the authentic-callback check runs with it.
    pub sim_webhook_secret: Option<String>,
    /// Whether a built-in plugin is hosted (its id is a built-in's on purpose).
    pub builtin: bool,
}

/// One check's result.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Its name.
    pub name: &'static str,
    /// `None` when it passed, else why not.
    pub failure: Option<String>,
}

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: Value,
}

struct Suite<'a> {
    target: &'a Target,
    client: reqwest::Client,
    errors: Vec<String>,
    outcomes: Vec<Outcome>,
}

/// Runs every check; the outcomes in order.
pub async fn run(target: &Target) -> Vec<Outcome> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap_or_default();
    let mut suite = Suite { target, client, errors: Vec::new(), outcomes: Vec::new() };
    suite.all().await;
    suite.outcomes
}

impl Suite<'_> {
    fn record(&mut self, name: &'static str, result: Result<(), String>) {
        self.outcomes.push(Outcome { name, failure: result.err() });
    }

    async fn call(
        &mut self,
        method: &str,
        path: &str,
        body: Option<Vec<u8>>,
        token: Option<&str>,
    ) -> Result<Answer, String> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).map_err(|e| e.to_string())?;
        let mut builder = self
            .client
            .request(method, format!("{}{path}", self.target.url.trim_end_matches('/')))
            .header(sidecar::PROTOCOL_HEADER, "1");
        if let Some(token) = token {
            builder = builder.bearer_auth(token);
        }
        if let Some(body) = body {
            builder = builder.header("content-type", "application/json").body(body);
        }
        let response = builder.send().await.map_err(|e| format!("{method_path}: {e}", method_path = path))?;
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").and_then(|v| v.to_str().ok()).map(str::to_string);
        let bytes = faxbot_plugin_kit::testing::read_bounded(response)
            .await
            .ok_or_else(|| format!("{path}: the answer is larger than the protocol's limit, or cut off"))?;
        let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).unwrap_or(Value::Null) };
        if !(200..300).contains(&status) {
            self.errors.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        Ok(Answer { status, retry_after, body })
    }

    async fn authed(&mut self, method: &str, path: &str, body: Option<Value>) -> Result<Answer, String> {
        let token = self.target.token.clone();
        self.call(method, path, body.map(|b| b.to_string().into_bytes()), token.as_deref()).await
    }

    fn send_body(&self, to: &str, key: &str, needs_document: bool) -> Value {
        use base64::Engine;
        let document = needs_document.then(|| {
            json!({"contentType": "application/pdf", "base64": base64::engine::general_purpose::STANDARD.encode(PDF)})
        });
        json!({"jobId": key, "to": to, "idempotencyKey": key, "pages": 1, "document": document})
    }

    async fn all(&mut self) {
        let health = self.health().await;
        self.record("health answers ok", health);
        let manifest = match self.manifest().await {
            Ok(m) => {
                self.record("manifest follows the protocol and passes the manifest checks", Ok(()));
                m
            }
            Err(e) => {
                self.record("manifest follows the protocol and passes the manifest checks", Err(e));
                return;
            }
        };
        if self.target.token.is_some() {
            let r = self.token().await;
            self.record("requests without the plugin token are refused", r);
        }
        let r = self.malformed().await;
        self.record("malformed requests are bad_request, without echoing them", r);
        let delivered = self.delivered(&manifest).await;
        let delivered_id = delivered.as_ref().ok().cloned();
        self.record("a fax to the delivered number is sent and reaches delivered", delivered.map(|_| ()));
        if manifest.idempotent {
            let r = self.idempotent(&manifest).await;
            self.record("a repeated submission returns the first fax (idempotent)", r);
        }
        let r = self.transmission_failure(&manifest).await;
        self.record("a failed transmission reaches failed with a reason and no number", r);
        let r = self.rejected(&manifest).await;
        self.record("a refused destination is rejected, not retried", r);
        let r = self.busy(&manifest).await;
        self.record("a busy provider is retryable with a retry hint", r);
        let r = self.unknown().await;
        self.record("an unknown fax is not_found (or rejected), not retryable", r);
        let r = self.cancel(&manifest).await;
        self.record("cancel stops an unfinished fax (or is unsupported)", r);
        let r = self.forged(&manifest).await;
        self.record("forged and unsigned callbacks are refused (or callbacks unsupported)", r);
        if let (Some(secret), Some(id)) = (self.target.sim_webhook_secret.clone(), delivered_id)
            && manifest.capabilities.contains(&SidecarCapability::Webhook)
        {
            let r = self.authentic(&secret, &id).await;
            self.record("an authentic callback reports its fax", r);
        }
        let r = self.no_phi();
        self.record("no error message carries a number that was sent", r);
    }

    async fn health(&mut self) -> Result<(), String> {
        let a = self.call("GET", "/v1/health", None, None).await?;
        if a.status == 200 && a.body["status"] == "ok" { Ok(()) } else { Err(format!("{} {}", a.status, a.body)) }
    }

    async fn manifest(&mut self) -> Result<SidecarManifest, String> {
        let a = self.authed("GET", "/v1/manifest", None).await?;
        if a.status != 200 {
            return Err(format!("GET /v1/manifest answered {}", a.status));
        }
        let m: SidecarManifest = serde_json::from_value(a.body).map_err(|e| format!("not a protocol manifest: {e}"))?;
        let problems: Vec<_> = sidecar::check_manifest(&m)
            .into_iter()
            .filter(|(field, problem)| !(self.target.builtin && field == "id" && problem.contains("built-in")))
            .collect();
        if problems.is_empty() { Ok(m) } else { Err(format!("{problems:?}")) }
    }

    async fn token(&mut self) -> Result<(), String> {
        for token in [None, Some("not-the-token")] {
            let a = self.call("GET", "/v1/manifest", None, token).await?;
            if a.status != 401 || error_kind(&a) != Some(ErrorKind::Unauthenticated) {
                return Err(format!("token {token:?}: answered {} {}", a.status, a.body));
            }
        }
        Ok(())
    }

    async fn malformed(&mut self) -> Result<(), String> {
        let token = self.target.token.clone();
        for body in [
            b"not json".to_vec(),
            br#"{"to": 15555550100}"#.to_vec(),
            br#"{"jobId":"j","to":"+15555550100","idempotencyKey":"k","extra":1}"#.to_vec(),
        ] {
            let a = self.call("POST", "/v1/send", Some(body.clone()), token.as_deref()).await?;
            if a.status != 400 || error_kind(&a) != Some(ErrorKind::BadRequest) {
                return Err(format!("{}: answered {} {}", String::from_utf8_lossy(&body), a.status, a.body));
            }
        }
        Ok(())
    }

    async fn submit(&mut self, m: &SidecarManifest, to: &str, key: &str) -> Result<Answer, String> {
        let body = self.send_body(to, key, m.needs_document);
        self.authed("POST", "/v1/send", Some(body)).await
    }

    /// Polls until the fax is final (bounded: 60 reads, 100 ms apart).
    async fn final_state(&mut self, id: &str) -> Result<FaxAnswer, String> {
        for _ in 0..60 {
            let a = self.authed("GET", &format!("/v1/faxes/{}", encode(id)), None).await?;
            if a.status != 200 {
                return Err(format!("status answered {} {}", a.status, a.body));
            }
            let f: FaxAnswer = serde_json::from_value(a.body).map_err(|e| format!("status answer: {e}"))?;
            if matches!(f.status, FaxState::Delivered | FaxState::Failed) {
                return Ok(f);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err("the fax did not reach a final state within 60 reads".into())
    }

    async fn delivered(&mut self, m: &SidecarManifest) -> Result<String, String> {
        let a = self.submit(m, scenario::DELIVERED, &key()).await?;
        if a.status != 200 {
            return Err(format!("send answered {} {}", a.status, a.body));
        }
        let f: FaxAnswer = serde_json::from_value(a.body).map_err(|e| format!("send answer: {e}"))?;
        if f.provider_id.is_empty() || f.status == FaxState::Failed {
            return Err(format!("send answer {f:?}"));
        }
        let last = self.final_state(&f.provider_id).await?;
        if last.status == FaxState::Delivered { Ok(f.provider_id) } else { Err(format!("ended {last:?}")) }
    }

    async fn idempotent(&mut self, m: &SidecarManifest) -> Result<(), String> {
        let k = key();
        let first = self.submit(m, scenario::DELIVERED, &k).await?;
        let again = self.submit(m, scenario::DELIVERED, &k).await?;
        let (a, b) = (&first.body["providerId"], &again.body["providerId"]);
        if first.status == 200 && again.status == 200 && a == b && a.is_string() {
            Ok(())
        } else {
            Err(format!("first {} {a}, again {} {b}", first.status, again.status))
        }
    }

    async fn transmission_failure(&mut self, m: &SidecarManifest) -> Result<(), String> {
        let a = self.submit(m, scenario::TRANSMISSION_FAILS, &key()).await?;
        if a.status != 200 {
            return Err(format!("send answered {} {}", a.status, a.body));
        }
        let f: FaxAnswer = serde_json::from_value(a.body).map_err(|e| e.to_string())?;
        let last = self.final_state(&f.provider_id).await?;
        match (&last.status, &last.error) {
            (FaxState::Failed, Some(reason)) if !reason.trim().is_empty() => {
                if holds_number(reason) {
                    Err(format!("the reason holds a number: {reason}"))
                } else {
                    Ok(())
                }
            }
            _ => Err(format!("ended {last:?}")),
        }
    }

    async fn rejected(&mut self, m: &SidecarManifest) -> Result<(), String> {
        let a = self.submit(m, scenario::REJECTED, &key()).await?;
        match error_kind(&a) {
            Some(ErrorKind::Rejected) if (400..500).contains(&a.status) => Ok(()),
            _ => Err(format!("answered {} {}", a.status, a.body)),
        }
    }

    async fn busy(&mut self, m: &SidecarManifest) -> Result<(), String> {
        let a = self.submit(m, scenario::BUSY, &key()).await?;
        let kind = error_kind(&a);
        let hint = a.body["error"]["retryAfterMs"].is_u64() || a.retry_after.is_some();
        match kind {
            Some(k) if k.is_retryable() && hint => Ok(()),
            _ => Err(format!("answered {} {} (Retry-After {:?})", a.status, a.body, a.retry_after)),
        }
    }

    async fn unknown(&mut self) -> Result<(), String> {
        let a = self.authed("GET", &format!("/v1/faxes/conformance-unknown-{}", key()), None).await?;
        match error_kind(&a) {
            Some(ErrorKind::NotFound | ErrorKind::Rejected) => Ok(()),
            _ => Err(format!("answered {} {}", a.status, a.body)),
        }
    }

    async fn cancel(&mut self, m: &SidecarManifest) -> Result<(), String> {
        if !m.capabilities.contains(&SidecarCapability::Cancel) {
            let a = self.authed("POST", "/v1/faxes/any/cancel", None).await?;
            return if a.status == 501 && error_kind(&a) == Some(ErrorKind::Unsupported) {
                Ok(())
            } else {
                Err(format!("without the cancel capability: answered {} {}", a.status, a.body))
            };
        }
        let a = self.submit(m, scenario::DELIVERED, &key()).await?;
        let id =
            a.body["providerId"].as_str().ok_or_else(|| format!("send answered {} {}", a.status, a.body))?.to_string();
        let c = self.authed("POST", &format!("/v1/faxes/{}/cancel", encode(&id)), None).await?;
        if !(200..300).contains(&c.status) {
            return Err(format!("cancel answered {} {}", c.status, c.body));
        }
        let last = self.final_state(&id).await?;
        if last.status == FaxState::Failed { Ok(()) } else { Err(format!("a cancelled fax ended {last:?}")) }
    }

    async fn forged(&mut self, m: &SidecarManifest) -> Result<(), String> {
        use base64::Engine;
        let body = base64::engine::general_purpose::STANDARD
            .encode(br#"{"id":"sim-1","providerId":"sim-1","status":"delivered"}"#);
        let takes = m.capabilities.contains(&SidecarCapability::Webhook);
        let forgeries = [
            json!([["content-type", "application/json"]]),
            json!([
                ["content-type", "application/json"],
                ["x-sim-signature", "00".repeat(32)],
                ["x-signature", "forged"],
                ["authorization", "Basic Zm9yZ2VkOmZvcmdlZA=="]
            ]),
        ];
        for headers in forgeries {
            let request =
                json!({"url": "https://faxbot.example.org/webhooks/plugin", "headers": headers, "bodyBase64": body});
            let a = self.authed("POST", "/v1/webhook", Some(request)).await?;
            let ok = if takes {
                a.status == 401 && error_kind(&a) == Some(ErrorKind::Unauthenticated)
            } else {
                a.status == 501 && error_kind(&a) == Some(ErrorKind::Unsupported)
            };
            if !ok {
                return Err(format!("a forged callback answered {} {}", a.status, a.body));
            }
        }
        Ok(())
    }

    async fn authentic(&mut self, secret: &str, id: &str) -> Result<(), String> {
        use base64::Engine;
        let raw = json!({"providerId": id, "status": "delivered"}).to_string();
        let signature = faxbot_plugin_kit::sign(secret, raw.as_bytes());
        let request = json!({
            "url": "https://faxbot.example.org/webhooks/plugin",
            "headers": [["content-type", "application/json"], ["x-sim-signature", signature]],
            "bodyBase64": base64::engine::general_purpose::STANDARD.encode(raw.as_bytes()),
        });
        let a = self.authed("POST", "/v1/webhook", Some(request)).await?;
        let answer: WebhookAnswer =
            serde_json::from_value(a.body.clone()).map_err(|_| format!("answered {} {}", a.status, a.body))?;
        if a.status == 200 && answer.events.iter().any(|e| e.provider_id == id) {
            Ok(())
        } else {
            Err(format!("answered {} {}", a.status, a.body))
        }
    }

    fn no_phi(&self) -> Result<(), String> {
        let numbers = [scenario::DELIVERED, scenario::TRANSMISSION_FAILS, scenario::REJECTED, scenario::BUSY];
        for error in &self.errors {
            let digits: String = error.chars().filter(char::is_ascii_digit).collect();
            for n in numbers {
                let national = &n[2..];
                if error.contains(n) || error.contains(national) || digits.contains(national) && holds_number(error) {
                    return Err(format!("an error holds a number that was sent: {}", mask(error)));
                }
            }
            if error.contains("JVBERi0") {
                return Err("an error holds document bytes".into());
            }
        }
        Ok(())
    }
}

fn error_kind(a: &Answer) -> Option<ErrorKind> {
    serde_json::from_value::<ErrorBody>(a.body.clone()).ok().map(|b| b.error.kind)
}

fn holds_number(text: &str) -> bool {
    faxbot_contract::phi::mask_numbers(text, 7) != text
}

fn mask(text: &str) -> String {
    faxbot_contract::phi::mask_numbers(text, 5)
}

fn key() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

fn encode(id: &str) -> String {
    url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>().replace('+', "%20")
}

/// The outcomes as the report prints them; `true` when all passed.
pub fn report(outcomes: &[Outcome]) -> (String, bool) {
    let mut text = String::new();
    let mut all = true;
    for o in outcomes {
        match &o.failure {
            None => text.push_str(&format!("ok    {}\n", o.name)),
            Some(why) => {
                all = false;
                text.push_str(&format!("FAIL  {}\n      {}\n", o.name, mask(why)));
            }
        }
    }
    let passed = outcomes.iter().filter(|o| o.failure.is_none()).count();
    text.push_str(&format!("{passed} of {} checks passed\n", outcomes.len()));
    (text, all && !outcomes.is_empty())
}
