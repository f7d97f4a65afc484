//! Passwords (I1): Argon2id with OWASP's parameters (19 MiB, 2 passes, 1 lane), the enterprise's
//! rules, a shipped blocklist, and history. Hashing is CPU-bound for tens of milliseconds, so it
//! runs on the blocking pool, at most one per core at a time, never on the async workers.

use crate::accounts::PasswordRules;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use std::sync::{Arc, LazyLock};
use tokio::sync::Semaphore;

const BLOCKLIST_TEXT: &str = include_str!("../data/common-passwords.txt");
pub const MAX_LENGTH: usize = 128;

static BLOCKLIST: LazyLock<std::collections::HashSet<String>> = LazyLock::new(|| {
    BLOCKLIST_TEXT
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(str::to_lowercase)
        .collect()
});

fn argon2() -> Argon2<'static> {
    // OWASP Password Storage Cheat Sheet: m=19456 KiB, t=2, p=1.
    let params = Params::new(19_456, 2, 1, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("password hashing failed: {0}")]
    Failed(String),
}

/// Hashes and verifies off the async runtime, bounded to the machine's cores.
#[derive(Clone)]
pub struct Hasher {
    permits: Arc<Semaphore>,
    /// Verified against when the email is unknown, so both answers take as long.
    decoy: Arc<String>,
}

impl Hasher {
    pub fn new() -> Result<Self, HashError> {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let decoy = hash_now("decoy password nobody has")?;
        Ok(Self {
            permits: Arc::new(Semaphore::new(cores)),
            decoy: Arc::new(decoy),
        })
    }

    pub async fn hash(&self, password: &str) -> Result<String, HashError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| HashError::Failed(e.to_string()))?;
        let password = password.to_owned();
        tokio::task::spawn_blocking(move || hash_now(&password))
            .await
            .map_err(|e| HashError::Failed(e.to_string()))?
    }

    /// True when `password` matches `hash`; an unreadable hash matches nothing.
    pub async fn verify(&self, password: &str, hash: &str) -> bool {
        let Ok(_permit) = self.permits.acquire().await else {
            return false;
        };
        let (password, hash) = (password.to_owned(), hash.to_owned());
        tokio::task::spawn_blocking(move || verify_now(&password, &hash))
            .await
            .unwrap_or(false)
    }

    /// Spends the time a verification takes, for unknown emails.
    pub async fn verify_decoy(&self, password: &str) {
        let decoy = self.decoy.clone();
        let _ = self.verify(password, &decoy).await;
    }
}

fn hash_now(password: &str) -> Result<String, HashError> {
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon2()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| HashError::Failed(e.to_string()))
}

fn verify_now(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            argon2()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// What is wrong with a proposed password, if anything (history is checked separately).
pub fn problems(password: &str, rules: &PasswordRules, email: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let length = password.chars().count();
    if length < usize::from(rules.min_length) {
        problems.push(format!("at least {} characters", rules.min_length));
    }
    if length > MAX_LENGTH {
        problems.push(format!("at most {MAX_LENGTH} characters"));
    }
    let has = |test: fn(char) -> bool| password.chars().any(test);
    if rules.require_uppercase && !has(char::is_uppercase) {
        problems.push("an uppercase letter".to_owned());
    }
    if rules.require_lowercase && !has(char::is_lowercase) {
        problems.push("a lowercase letter".to_owned());
    }
    if rules.require_digit && !has(|c| c.is_ascii_digit()) {
        problems.push("a digit".to_owned());
    }
    if rules.require_symbol && !has(|c| !c.is_alphanumeric() && !c.is_whitespace()) {
        problems.push("a symbol".to_owned());
    }
    let lowered = password.to_lowercase();
    if BLOCKLIST.contains(&lowered) {
        problems.push("one of the most common passwords".to_owned());
    }
    let local = email.split('@').next().unwrap_or_default().to_lowercase();
    if local.len() >= 4 && lowered.contains(&local) {
        problems.push("not containing the email address".to_owned());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn i1_the_policy_and_the_blocklist_apply() {
        let strict = PasswordRules {
            min_length: 12,
            require_uppercase: true,
            require_lowercase: true,
            require_digit: true,
            require_symbol: true,
            ..PasswordRules::default()
        };
        assert!(problems("Correct-Horse-9-Battery", &strict, "ann@x.test").is_empty());
        assert_eq!(
            problems("short", &strict, "ann@x.test").len(),
            4,
            "length, upper, digit, symbol"
        );
        let lenient = PasswordRules {
            min_length: 8,
            ..PasswordRules::default()
        };
        assert!(!problems("Password123", &lenient, "ann@x.test").is_empty());
        assert!(!problems("Welcome2026", &lenient, "ann@x.test").is_empty());
        assert!(!problems("annabelle-secret-9", &lenient, "annabelle@x.test").is_empty());
        assert!(problems("plum orbit candle", &lenient, "ann@x.test").is_empty());
        assert!(!problems(&"x".repeat(129), &lenient, "ann@x.test").is_empty());
    }

    #[tokio::test]
    async fn i1_argon2id_hashes_verify_and_are_salted() {
        let hasher = Hasher::new().expect("hasher");
        let hash = hasher.hash("plum orbit candle").await.expect("hash");
        assert!(
            hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{hash}"
        );
        assert!(hasher.verify("plum orbit candle", &hash).await);
        assert!(!hasher.verify("plum orbit candles", &hash).await);
        assert!(!hasher.verify("plum orbit candle", "not a hash").await);
        let again = hasher.hash("plum orbit candle").await.expect("hash");
        assert_ne!(hash, again, "a fresh salt every time");
    }
}
