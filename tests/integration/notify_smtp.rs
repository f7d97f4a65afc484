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
            topic: "password.reset".into(),
            recipient: "not an address".into(),
            payload: serde_json::json!({"link": link}).to_string(),
        })
        .await;
    assert!(refused.is_err());
}
