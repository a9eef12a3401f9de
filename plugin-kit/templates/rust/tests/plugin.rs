//! The plugin through the kit's mock of the Faxbot server.

use std::sync::Arc;

use @@MODULE@@::@@TYPE@@;
use faxbot_plugin_kit::testing::MockFaxbot;
use faxbot_plugin_kit::{SIGNATURE_HEADER, check_manifest, scenario, sign};
use faxbot_plugin_kit::Plugin;

#[test]
fn the_manifest_passes_the_checks() {
    assert!(check_manifest(&@@TYPE@@::new(None).manifest()).is_empty());
}

#[tokio::test]
async fn a_fax_is_sent_and_delivered() {
    let faxbot = MockFaxbot::start(Arc::new(@@TYPE@@::new(None)), Some("token")).await.unwrap();
    let sent = faxbot.send(scenario::DELIVERED, "job-1").await;
    assert_eq!(sent.status, 200, "{:?}", sent.body);
    let id = sent.body["providerId"].as_str().unwrap().to_string();
    assert_eq!(faxbot.status(&id).await.body["status"], "delivered");
}

#[tokio::test]
async fn refusals_have_the_right_kind() {
    let faxbot = MockFaxbot::start(Arc::new(@@TYPE@@::new(None)), Some("token")).await.unwrap();
    assert_eq!(faxbot.send(scenario::REJECTED, "job-2").await.body["error"]["kind"], "rejected");
    let busy = faxbot.send(scenario::BUSY, "job-3").await;
    assert_eq!((busy.status, busy.retry_after.as_deref()), (503, Some("1")));
    assert_eq!(faxbot.call("GET", "/v1/manifest", None, Some("wrong")).await.status, 401);
}

#[tokio::test]
async fn only_signed_callbacks_are_read() {
    let faxbot = MockFaxbot::start(Arc::new(@@TYPE@@::new(Some("secret".into()))), None).await.unwrap();
    let body = br#"{"providerId":"sim-1","status":"delivered"}"#;
    assert_eq!(faxbot.webhook(body, &[(SIGNATURE_HEADER, "forged")]).await.status, 401);
    let signed = faxbot.webhook(body, &[(SIGNATURE_HEADER, &sign("secret", body))]).await;
    assert_eq!(signed.body["events"][0]["providerId"], "sim-1");
}
