//! Email goes out over SMTP to a server we did not write (Python's aiosmtpd). Needs a Python
//! with aiosmtpd in PRAXIS_TEST_PYTHON, which CI sets.

use praxis_runtime::notify::{Notification, Notifier, SmtpConfig, SmtpNotifier};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

#[tokio::test]
async fn reset_links_reach_a_real_smtp_server_intact() {
    let Ok(python) = std::env::var("PRAXIS_TEST_PYTHON") else {
        eprintln!(
            "reset_links_reach_a_real_smtp_server_intact: PRAXIS_TEST_PYTHON unset; CI runs it"
        );
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new(python)
        .args([
            "-u",
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            &format!("127.0.0.1:{port}"),
            "-c",
            "aiosmtpd.handlers.Debugging",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("aiosmtpd");
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let stdout = server.stdout.take().unwrap();
    let (lines, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });

    let notifier = SmtpNotifier::new(&SmtpConfig {
        host: "127.0.0.1".into(),
        port,
        username: String::new(),
        password: String::new(),
        from: "Praxis <no-reply@praxis.test>".into(),
        security: "none".into(),
    })
    .unwrap();
    let link = "https://praxis.test/reset-password?token=AbC-dEf_123";
    notifier
        .deliver(&Notification {
            id: "n-1".into(),
            enterprise_id: "e-1".into(),
            channel: praxis_runtime::notify::Channel::Email,
            topic: "password.reset".into(),
            recipient: "ann@clinic.test".into(),
            payload: serde_json::json!({"link": link, "expires_at": "2026-11-26T16:00:00Z"})
                .to_string(),
        })
        .await
        .expect("delivered");
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        if let Ok(line) = received.recv_timeout(Duration::from_millis(200)) {
            let done = line.contains("END MESSAGE");
            seen.push(line);
            if done {
                break;
            }
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    let text = seen.join("\n");
    assert!(
        text.contains("Subject: Reset your Praxis password"),
        "{text}"
    );
    assert!(text.contains("To: ann@clinic.test"), "{text}");
    assert!(text.contains(link), "the link arrives intact: {text}");

    // Unknown topics and unreadable recipients are refused, not sent half-formed.
    let refused = notifier
        .deliver(&Notification {
            id: "n-2".into(),
            enterprise_id: "e-1".into(),
            channel: praxis_runtime::notify::Channel::Email,
            topic: "password.reset".into(),
            recipient: "not an address".into(),
            payload: serde_json::json!({"link": link}).to_string(),
        })
        .await;
    assert!(refused.is_err());
}

/// SMS go to the configured webhook as JSON with the bearer token; a gateway that refuses is an
/// error, so the outbox keeps the message for another try.
#[tokio::test]
async fn sms_codes_reach_the_webhook_gateway() {
    use praxis_runtime::notify::{Channel, SmsConfig, SmsWebhookNotifier};
    let received = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let status = std::sync::Arc::new(std::sync::atomic::AtomicU16::new(202));
    let app = axum::Router::new().route(
        "/sms",
        axum::routing::post({
            let received = received.clone();
            let status = status.clone();
            move |headers: axum::http::HeaderMap, body: String| async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                received.lock().unwrap().push((auth, body));
                axum::http::StatusCode::from_u16(status.load(std::sync::atomic::Ordering::SeqCst))
                    .unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    let config = SmsConfig {
        webhook_url: format!("http://{address}/sms"),
        bearer_token: "gateway-secret".into(),
    };
    assert!(!format!("{config:?}").contains("gateway-secret"));
    let notifier = SmsWebhookNotifier::new(&config).unwrap();
    let text = Notification {
        id: "n-2".into(),
        enterprise_id: "e-1".into(),
        channel: Channel::Sms,
        topic: "identity.code".into(),
        recipient: "+15555550123".into(),
        payload: serde_json::json!({"code": "482913"}).to_string(),
    };
    notifier.deliver(&text).await.expect("delivered");
    let (auth, body) = received.lock().unwrap()[0].clone();
    assert_eq!(auth, "Bearer gateway-secret");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["to"], "+15555550123");
    assert!(body["body"].as_str().unwrap().contains("482913"));

    status.store(503, std::sync::atomic::Ordering::SeqCst);
    assert!(
        notifier.deliver(&text).await.is_err(),
        "a refusal is not a delivery"
    );
    let email = Notification {
        channel: Channel::Email,
        ..text
    };
    assert!(
        notifier.deliver(&email).await.is_err(),
        "email never goes to the SMS gateway"
    );
}
