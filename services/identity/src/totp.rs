//! TOTP (RFC 6238 over RFC 4226 HOTP): HMAC-SHA1, 30-second steps, 6 digits, what every
//! authenticator app speaks. A code is accepted for the current step and one step either side,
//! and a step once used is never accepted again (the caller keeps the last used step).

use data_encoding::BASE32_NOPAD;
use hmac::{Hmac, Mac};
use rand::RngCore;

pub const STEP_SECONDS: i64 = 30;
pub const DIGITS: u32 = 6;
const SKEW_STEPS: i64 = 1;

pub fn new_secret() -> Vec<u8> {
    let mut secret = vec![0u8; 20];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    secret
}

pub fn step(unix_seconds: i64) -> i64 {
    unix_seconds.div_euclid(STEP_SECONDS)
}

/// HOTP value of `counter` (RFC 4226 §5.3), `digits` long.
pub fn hotp(secret: &[u8], counter: u64, digits: u32) -> String {
    let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[digest.len() - 1] & 0x0f);
    let binary = (u32::from(digest[offset] & 0x7f) << 24)
        | (u32::from(digest[offset + 1]) << 16)
        | (u32::from(digest[offset + 2]) << 8)
        | u32::from(digest[offset + 3]);
    let modulus = 10u32.pow(digits);
    format!("{:0width$}", binary % modulus, width = digits as usize)
}

pub fn code_at(secret: &[u8], unix_seconds: i64) -> String {
    hotp(
        secret,
        u64::try_from(step(unix_seconds)).unwrap_or(0),
        DIGITS,
    )
}

/// The step `code` belongs to, if it is valid at `unix_seconds` (±1 step) and its step is
/// after `last_used_step`.
pub fn verify(
    secret: &[u8],
    code: &str,
    unix_seconds: i64,
    last_used_step: Option<i64>,
) -> Option<i64> {
    let code = code.trim();
    if code.len() != DIGITS as usize || !code.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = step(unix_seconds);
    (now - SKEW_STEPS..=now + SKEW_STEPS)
        .filter(|candidate| last_used_step.is_none_or(|last| *candidate > last))
        .find(|candidate| {
            let counter = u64::try_from(*candidate).unwrap_or(0);
            constant_time_eq(hotp(secret, counter, DIGITS).as_bytes(), code.as_bytes())
        })
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The otpauth URI authenticator apps scan (the Key Uri Format).
pub fn otpauth_uri(secret: &[u8], issuer: &str, account: &str) -> String {
    let encode = |text: &str| {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' | b'@' => {
                    char::from(b).to_string()
                }
                other => format!("%{other:02X}"),
            })
            .collect::<String>()
    };
    format!(
        "otpauth://totp/{}:{}?secret={}&issuer={}&algorithm=SHA1&digits={DIGITS}&period={STEP_SECONDS}",
        encode(issuer),
        encode(account),
        BASE32_NOPAD.encode(secret),
        encode(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 appendix B, SHA-1 rows, from the file the pyotp interop check reads too.
    #[test]
    fn i3_rfc6238_test_vectors() {
        let table: serde_json::Value =
            serde_json::from_str(include_str!("../../../tests/interop/rfc6238_vectors.json"))
                .expect("vectors");
        let secret = table["secret_ascii"].as_str().expect("secret").as_bytes();
        let digits = u32::try_from(table["digits"].as_u64().expect("digits")).expect("digits");
        let vectors = table["vectors"].as_array().expect("vectors");
        assert_eq!(vectors.len(), 6);
        for vector in vectors {
            let time = vector["time"].as_u64().expect("time");
            let expected = vector["code"].as_str().expect("code");
            assert_eq!(hotp(secret, time / 30, digits), expected, "t={time}");
        }
    }

    #[test]
    fn i3_skew_is_one_step_and_a_step_is_used_once() {
        let secret = new_secret();
        let now = 1_764_000_000;
        let code = code_at(&secret, now);
        let step_now = step(now);
        assert_eq!(verify(&secret, &code, now, None), Some(step_now));
        assert_eq!(verify(&secret, &code, now + 30, None), Some(step_now));
        assert_eq!(verify(&secret, &code, now - 30, None), Some(step_now));
        assert_eq!(
            verify(&secret, &code, now + 90, None),
            None,
            "3 steps later"
        );
        assert_eq!(
            verify(&secret, &code, now, Some(step_now)),
            None,
            "replayed"
        );
        assert_eq!(verify(&secret, "12345", now, None), None);
        assert_eq!(verify(&secret, "abcdef", now, None), None);
        let uri = otpauth_uri(&secret, "Praxis", "ann@demo.test");
        assert!(uri.starts_with("otpauth://totp/Praxis:ann@demo.test?secret="));
        assert!(uri.contains(&BASE32_NOPAD.encode(&secret)));
    }
}
