//! The shipped Asterisk configuration (`config/asterisk/`) against what Asterisk requires of it, and the AMI
//! fake's enforcement of manager permissions (which makes every SIP test run under the shipped ones).

// Test code: a failed unwrap is a failed test with its message.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use faxbot_fakes::ami::{AmiFake, AmiFakeConfig, Permissions};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

const EXTENSIONS: &str = include_str!("../../config/asterisk/extensions.conf");

/// The options of every call of dialplan application `app` (the text after the last comma).
fn options_of(app: &str) -> Vec<String> {
    EXTENSIONS
        .lines()
        .map(|l| l.split(';').next().unwrap_or(""))
        .filter_map(|l| l.split_once(&format!("{app}("))?.1.rsplit_once(')').map(|(args, _)| args.to_string()))
        .map(|args| args.rsplit_once(',').map(|(_, o)| o.to_string()).unwrap_or_default())
        .collect()
}

#[test]
fn send_and_receive_fall_back_to_audio_when_t38_is_refused() {
    // res_fax: SendFAX `f` allows audio (G.711) fallback on a T.38-capable channel, `z` asks for T.38 when the
    // far end does not offer it; ReceiveFAX `f` allows the fallback too. Without `f` a destination that
    // refuses T.38 fails with T38_NEG_ERROR instead of being sent over audio.
    let send = options_of("SendFAX");
    assert!(!send.is_empty(), "the dialplan sends with SendFAX");
    for options in &send {
        assert!(options.contains('f') && options.contains('z'), "SendFAX options {options:?}");
    }
    let receive = options_of("ReceiveFAX");
    assert!(!receive.is_empty());
    assert!(receive.iter().all(|o| o.contains('f')), "ReceiveFAX options {receive:?}");
}

#[test]
fn inbound_takes_numbers_with_and_without_a_plus() {
    // The receive context matches both forms a trunk may send.
    let rx: Vec<&str> = EXTENSIONS
        .split("\n[")
        .find(|section| section.starts_with("fax-rx]"))
        .expect("a [fax-rx] context")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("exten => "))
        .filter_map(|l| l.split(',').next())
        .collect();
    assert!(rx.contains(&"_+X.") && rx.contains(&"_X."), "{rx:?}");
}

#[test]
fn the_dialplan_has_no_placeholders_to_render() {
    // Rendering placeholders with a blanket substitution would blank the dialplan's own variables; the only
    // secret it needs comes from Asterisk's environment.
    let code: String = EXTENSIONS.lines().map(|l| l.split(';').next().unwrap_or("")).collect::<Vec<_>>().join("\n");
    assert!(!code.contains("${FAXBOT_"), "use ${{ENV(FAXBOT_…)}} instead of a placeholder");
    assert!(code.contains("${ENV(FAXBOT_INBOUND_SECRET)}"));
    let manager = include_str!("../../config/asterisk/manager.conf");
    let placeholders: Vec<&str> = manager.match_indices("${").map(|(i, _)| &manager[i..]).collect();
    assert_eq!(placeholders.len(), 1, "manager.conf: only the AMI secret is rendered");
    assert!(placeholders[0].starts_with("${FAXBOT_AMI_SECRET}"));
}

#[test]
fn the_shipped_manager_user_may_originate_and_check_channels() {
    let p = Permissions::shipped();
    assert!(p.write.iter().any(|c| c == "originate"), "{p:?}");
    assert!(p.write.iter().any(|c| c == "reporting" || c == "call"), "Getvar needs call or reporting: {p:?}");
    assert!(p.read.iter().any(|c| c == "call") && p.read.iter().any(|c| c == "user"), "{p:?}");
    assert!(!p.write.iter().any(|c| c == "all" || c == "system" || c == "command"), "least privilege: {p:?}");
}

#[test]
fn manager_conf_sections_and_comments_are_read() {
    let conf = "[general]\nenabled = yes\nwrite = all\n\n[faxbot]\nsecret = x ; a comment\nread = call, user\n\
                write = originate ; no reporting\n[other]\nwrite = all\n";
    let p = Permissions::from_manager_conf(conf, "faxbot").unwrap();
    assert_eq!(p.read, ["call", "user"]);
    assert_eq!(p.write, ["originate"]);
    assert!(Permissions::from_manager_conf(conf, "missing").is_none());
}

/// Logs in and sends one action; the fake's answer to it.
async fn answer_to(fake: &AmiFake, action: &str) -> String {
    let stream = TcpStream::connect(fake.addr()).await.unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    lines.next_line().await.unwrap(); // greeting
    write
        .write_all(b"Action: Login\r\nUsername: faxbot\r\nSecret: ami-secret\r\nEvents: off\r\nActionID: 1\r\n\r\n")
        .await
        .unwrap();
    write.write_all(format!("{action}ActionID: 2\r\n\r\n").as_bytes()).await.unwrap();
    let mut answer = String::new();
    let read_answer = async {
        let mut ours = false;
        while let Some(line) = lines.next_line().await.unwrap() {
            if line == "ActionID: 2" {
                ours = true;
            }
            if line.is_empty() {
                if ours {
                    break;
                }
                answer.clear();
                continue;
            }
            answer.push_str(&line);
            answer.push('\n');
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read_answer).await.expect("an answer");
    answer
}

#[tokio::test]
async fn getvar_without_the_reporting_or_call_class_is_refused_like_asterisk_does() {
    let narrow = Permissions { read: vec!["call".into(), "user".into()], write: vec!["originate".into()] };
    let fake = AmiFake::start(AmiFakeConfig { permissions: narrow, ..Default::default() }).await.unwrap();
    let answer = answer_to(&fake, "Action: Getvar\r\nChannel: faxbot-x\r\nVariable: FAXSTATUS\r\n").await;
    assert!(answer.contains("Response: Error") && answer.contains("Message: Permission denied"), "{answer}");
    assert_eq!((fake.permission_denied(), fake.getvars()), (1, 0));

    let shipped = AmiFake::start(AmiFakeConfig::default()).await.unwrap();
    let answer = answer_to(&shipped, "Action: Getvar\r\nChannel: faxbot-x\r\nVariable: FAXSTATUS\r\n").await;
    assert!(answer.contains("Message: No such channel"), "{answer}");
    assert_eq!((shipped.permission_denied(), shipped.getvars()), (0, 1));

    let no_originate = Permissions { read: vec!["call".into()], write: vec!["reporting".into()] };
    let fake = AmiFake::start(AmiFakeConfig { permissions: no_originate, ..Default::default() }).await.unwrap();
    let answer = answer_to(
        &fake,
        "Action: Originate\r\nChannel: PJSIP/+15550001111@trunk\r\nContext: fax-tx\r\nExten: s\r\nPriority: 1\r\n",
    )
    .await;
    assert!(answer.contains("Message: Permission denied"), "{answer}");
    assert!(fake.originates().is_empty());
}
