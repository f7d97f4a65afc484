//! Email and SMS go out through one interface. Services write messages to an outbox in the same
//! transaction as the change that causes them, and a relay hands them to a `Notifier` afterwards,
//! at least once, so nothing is lost if the process dies between commit and send.

use std::sync::Mutex;

/// How a message reaches its recipient.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Channel {
    /// `recipient` is an email address.
    #[default]
    Email,
    /// `recipient` is a phone number in E.164 form.
    Sms,
}

impl Channel {
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Sms => "sms",
        }
    }

    /// Outbox rows store the name; anything unknown is email, the channel every row had before.
    pub fn from_name(name: &str) -> Self {
        match name {
            "sms" => Channel::Sms,
            _ => Channel::Email,
        }
    }
}

/// A message waiting in an outbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    pub enterprise_id: String,
    pub channel: Channel,
    /// e.g. `user.invitation`, `password.reset`
    pub topic: String,
    pub recipient: String,
    /// JSON: what the template for the topic needs (links, codes).
    pub payload: String,
}

#[async_trait::async_trait]
pub trait Notifier: Send + Sync {
    async fn deliver(&self, notification: &Notification) -> Result<(), String>;
}

/// Records that a message would go out, without its content: links and codes are credentials
/// and never reach logs.
pub struct LogNotifier;

#[async_trait::async_trait]
impl Notifier for LogNotifier {
    async fn deliver(&self, notification: &Notification) -> Result<(), String> {
        tracing::info!(id = %notification.id, topic = %notification.topic, "notification handed to the log notifier");
        Ok(())
    }
}

/// Keeps what it is given: a test sink.
#[derive(Default)]
pub struct MemoryNotifier {
    delivered: Mutex<Vec<Notification>>,
}

impl MemoryNotifier {
    pub fn delivered(&self) -> Vec<Notification> {
        self.delivered
            .lock()
            .map(|list| list.clone())
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl Notifier for MemoryNotifier {
    async fn deliver(&self, notification: &Notification) -> Result<(), String> {
        let mut list = self
            .delivered
            .lock()
            .map_err(|_| "sink poisoned".to_owned())?;
        list.push(notification.clone());
        Ok(())
    }
}

/// The email a notification becomes: subject and plain-text body, per topic.
pub fn render(notification: &Notification) -> Result<(String, String), String> {
    let payload: serde_json::Value = serde_json::from_str(&notification.payload)
        .map_err(|e| format!("payload of {}: {e}", notification.id))?;
    let field = |name: &str| {
        payload
            .get(name)
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| format!("{} needs `{name}`", notification.topic))
    };
    let expires = payload
        .get("expires_at")
        .and_then(serde_json::Value::as_str)
        .map(|at| format!("\n\nThe link works once and expires at {at}."))
        .unwrap_or_default();
    match notification.topic.as_str() {
        "user.invitation" => Ok((
            "You are invited to Praxis".to_owned(),
            format!(
                "You have been given an account. Choose your password here:\n\n{}{expires}\n\nIf you did not expect this, ignore this message.",
                field("activation_url")?
            ),
        )),
        "password.reset" => Ok((
            "Reset your Praxis password".to_owned(),
            format!(
                "Someone asked to reset the password of this account. Choose a new one here:\n\n{}{expires}\n\nIf it was not you, ignore this message; your password has not changed.",
                field("link")?
            ),
        )),
        "identity.code" => Ok((
            "Your Praxis sign-in code".to_owned(),
            format!(
                "Your code is {}. It works once, for 10 minutes.\n\nNobody from Praxis will ask you for it.",
                field("code")?
            ),
        )),
        "session.new_device" => Ok((
            "New sign-in to your Praxis account".to_owned(),
            format!(
                "Your account was just used from a new device ({}) at {} from {}.\n\nIf this was not you, change your password and tell your administrator.",
                field("device")?,
                field("time")?,
                field("ip")?
            ),
        )),
        other => Err(format!("no template for topic {other}")),
    }
}

/// The text message a notification becomes; only short topics go by SMS.
pub fn render_sms(notification: &Notification) -> Result<String, String> {
    let payload: serde_json::Value = serde_json::from_str(&notification.payload)
        .map_err(|e| format!("payload of {}: {e}", notification.id))?;
    let code = payload
        .get("code")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| format!("{} needs `code`", notification.topic))?;
    match notification.topic.as_str() {
        "identity.code" => Ok(format!(
            "Your Praxis sign-in code is {code}. It works once, for 10 minutes. Never share it."
        )),
        "identity.phone_verification" => Ok(format!(
            "Your Praxis code to confirm this phone number is {code}. It expires in 10 minutes."
        )),
        other => Err(format!("no SMS template for topic {other}")),
    }
}

/// Where email goes out.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct SmtpConfig {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default)]
    pub username: String,
    #[serde(default)]
    pub password: String,
    /// e.g. `Praxis <no-reply@example.org>`
    pub from: String,
    /// `starttls` (default), `tls` (implicit, port 465) or `none` (loopback relays only).
    #[serde(default = "default_smtp_security")]
    pub security: String,
}

fn default_smtp_port() -> u16 {
    587
}

fn default_smtp_security() -> String {
    "starttls".to_owned()
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("from", &self.from)
            .field("security", &self.security)
            .finish()
    }
}

/// Sends notifications as email over SMTP (`lettre`), rendered with [`render`].
pub struct SmtpNotifier {
    transport: lettre::AsyncSmtpTransport<lettre::Tokio1Executor>,
    from: lettre::message::Mailbox,
}

impl SmtpNotifier {
    pub fn new(config: &SmtpConfig) -> Result<Self, String> {
        use lettre::AsyncSmtpTransport;
        use lettre::transport::smtp::authentication::Credentials;
        let builder = match config.security.as_str() {
            "starttls" => {
                AsyncSmtpTransport::<lettre::Tokio1Executor>::starttls_relay(&config.host)
                    .map_err(|e| e.to_string())?
            }
            "tls" => AsyncSmtpTransport::<lettre::Tokio1Executor>::relay(&config.host)
                .map_err(|e| e.to_string())?,
            "none" => AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(&config.host),
            other => return Err(format!("smtp.security {other:?}: starttls, tls or none")),
        };
        let mut builder = builder
            .port(config.port)
            .timeout(Some(std::time::Duration::from_secs(10)));
        if !config.username.is_empty() {
            builder = builder.credentials(Credentials::new(
                config.username.clone(),
                config.password.clone(),
            ));
        }
        let from = config
            .from
            .parse()
            .map_err(|e| format!("smtp.from {:?}: {e}", config.from))?;
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }
}

#[async_trait::async_trait]
impl Notifier for SmtpNotifier {
    async fn deliver(&self, notification: &Notification) -> Result<(), String> {
        use lettre::AsyncTransport;
        if notification.channel != Channel::Email {
            return Err(format!("{}: SMTP carries email only", notification.id));
        }
        let (subject, body) = render(notification)?;
        let to: lettre::message::Mailbox = notification
            .recipient
            .parse()
            .map_err(|e| format!("recipient of {}: {e}", notification.id))?;
        // 8bit keeps links intact in the raw message (quoted-printable would break them across
        // lines); the templates' lines are far below SMTP's 998-character limit.
        let body = lettre::message::Body::new_with_encoding(
            body.clone(),
            lettre::message::header::ContentTransferEncoding::EightBit,
        )
        .unwrap_or_else(|_| lettre::message::Body::new(body));
        let message = lettre::Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body)
            .map_err(|e| e.to_string())?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| format!("smtp: {e}"))
    }
}

/// An SMS gateway reached by an HTTP webhook: Praxis POSTs `{"to": "+15550100", "body": "…"}`
/// as JSON, and a 2xx answer means the gateway took the message. Most SMS providers, or a
/// small adapter in front of one, accept this shape.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
pub struct SmsConfig {
    pub webhook_url: String,
    /// Sent as `Authorization: Bearer …` when set.
    #[serde(default)]
    pub bearer_token: String,
}

impl std::fmt::Debug for SmsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmsConfig")
            .field("webhook_url", &self.webhook_url)
            .field("bearer_token", &"<redacted>")
            .finish()
    }
}

/// Sends SMS through the webhook in [`SmsConfig`], rendered with [`render_sms`].
pub struct SmsWebhookNotifier {
    client: reqwest::Client,
    config: SmsConfig,
}

impl SmsWebhookNotifier {
    pub fn new(config: &SmsConfig) -> Result<Self, String> {
        reqwest::Url::parse(&config.webhook_url)
            .map_err(|e| format!("sms.webhook_url {:?}: {e}", config.webhook_url))?;
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .map_err(|e| e.to_string())?;
        Ok(Self {
            client,
            config: config.clone(),
        })
    }
}

#[async_trait::async_trait]
impl Notifier for SmsWebhookNotifier {
    async fn deliver(&self, notification: &Notification) -> Result<(), String> {
        if notification.channel != Channel::Sms {
            return Err(format!(
                "{}: the SMS gateway carries SMS only",
                notification.id
            ));
        }
        let body = render_sms(notification)?;
        let mut request = self
            .client
            .post(&self.config.webhook_url)
            .json(&serde_json::json!({"to": notification.recipient, "body": body}));
        if !self.config.bearer_token.is_empty() {
            request = request.bearer_auth(&self.config.bearer_token);
        }
        let response = request.send().await.map_err(|e| format!("sms: {e}"))?;
        if response.status().is_success() {
            Ok(())
        } else {
            Err(format!("sms gateway answered {}", response.status()))
        }
    }
}

/// Hands each notification to the notifier of its channel.
pub struct Routed {
    pub email: std::sync::Arc<dyn Notifier>,
    pub sms: std::sync::Arc<dyn Notifier>,
}

#[async_trait::async_trait]
impl Notifier for Routed {
    async fn deliver(&self, notification: &Notification) -> Result<(), String> {
        match notification.channel {
            Channel::Email => self.email.deliver(notification).await,
            Channel::Sms => self.sms.deliver(notification).await,
        }
    }
}

/// The `smtp` and `sms` sections of a service's configuration (files `[smtp]`, `[sms]` or
/// `PRAXIS_SMTP__*`, `PRAXIS_SMS__*`).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct NotifyConfig {
    pub smtp: Option<SmtpConfig>,
    pub sms: Option<SmsConfig>,
}

/// The configured notifier: SMTP when `smtp` is set and the SMS webhook when `sms` is, else the
/// log sink for that channel.
pub fn from_config(config: &NotifyConfig) -> Result<std::sync::Arc<dyn Notifier>, String> {
    let email: std::sync::Arc<dyn Notifier> = match &config.smtp {
        Some(smtp) => std::sync::Arc::new(SmtpNotifier::new(smtp)?),
        None => std::sync::Arc::new(LogNotifier),
    };
    let sms: std::sync::Arc<dyn Notifier> = match &config.sms {
        Some(sms) => std::sync::Arc::new(SmsWebhookNotifier::new(sms)?),
        None => std::sync::Arc::new(LogNotifier),
    };
    Ok(std::sync::Arc::new(Routed { email, sms }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn note(topic: &str, payload: serde_json::Value) -> Notification {
        Notification {
            id: "n-1".into(),
            enterprise_id: "e-1".into(),
            channel: Channel::Email,
            topic: topic.into(),
            recipient: "ann@example.org".into(),
            payload: payload.to_string(),
        }
    }

    #[test]
    fn every_topic_has_a_template_that_carries_its_link_or_code() {
        let (subject, body) = render(&note(
            "user.invitation",
            serde_json::json!({"activation_url": "https://x/activate?token=abc"}),
        ))
        .expect("invitation");
        assert!(subject.contains("invited"));
        assert!(body.contains("https://x/activate?token=abc"));
        let (_, body) = render(&note(
            "password.reset",
            serde_json::json!({"link": "https://x/reset?token=def", "expires_at": "2026-11-26T10:00:00Z"}),
        ))
        .expect("reset");
        assert!(body.contains("https://x/reset?token=def") && body.contains("expires at"));
        let (_, body) = render(&note(
            "identity.code",
            serde_json::json!({"code": "482913"}),
        ))
        .expect("code");
        assert!(body.contains("482913"));
        let (_, body) = render(&note(
            "session.new_device",
            serde_json::json!({"device": "Firefox on Linux", "time": "10:00", "ip": "198.51.100.7"}),
        ))
        .expect("new device");
        assert!(body.contains("198.51.100.7"));
        assert!(render(&note("password.reset", serde_json::json!({}))).is_err());
        assert!(render(&note("unknown.topic", serde_json::json!({}))).is_err());
    }

    #[test]
    fn smtp_passwords_never_show_in_debug_output() {
        let config = SmtpConfig {
            host: "smtp.example.org".into(),
            port: 587,
            username: "praxis".into(),
            password: "hunter2-secret".into(),
            from: "Praxis <no-reply@example.org>".into(),
            security: "starttls".into(),
        };
        assert!(!format!("{config:?}").contains("hunter2-secret"));
        assert!(
            SmtpNotifier::new(&SmtpConfig {
                security: "plaintext-please".into(),
                ..config
            })
            .is_err()
        );
    }
}
