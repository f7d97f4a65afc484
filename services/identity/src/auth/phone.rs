//! SMS as a second factor (I3): a phone number is confirmed by a code sent to it before it
//! receives sign-in codes. The number is sealed at rest: it is personal data.

use super::*;

/// What waits in the cache between sending a confirmation code and its answer.
#[derive(Serialize, Deserialize)]
struct PendingPhone {
    sealed_phone: Vec<u8>,
    code_hash: String,
    expires_at: DateTime<Utc>,
    attempts: u32,
}

const CONFIRMATION_ATTEMPTS: u32 = 5;

fn pending_key(user_id: &str) -> String {
    format!("praxis:identity:phone:{user_id}")
}

fn seal_context(user_id: &str) -> String {
    format!("phone:{user_id}")
}

/// E.164: a plus, a country code not starting with 0, at most 15 digits in all.
pub(super) fn valid_phone(phone: &str) -> bool {
    let Some(digits) = phone.strip_prefix('+') else {
        return false;
    };
    (8..=15).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && !digits.starts_with('0')
}

/// `+*******0123`: enough for the user to recognise their number.
pub(super) fn mask(phone: &str) -> String {
    let keep = phone.len().saturating_sub(4);
    format!("+{}{}", "*".repeat(keep.saturating_sub(1)), &phone[keep..])
}

impl Authenticator {
    /// The user's confirmed phone number, opened.
    pub(super) async fn confirmed_phone(&self, user_id: &str) -> Result<Option<String>, AuthError> {
        let Some(row) = sms_factor::Entity::find_by_id(user_id)
            .one(&self.db)
            .await?
            .filter(|row| row.confirmed_at.is_some())
        else {
            return Ok(None);
        };
        let phone = self
            .sealer
            .open(&row.sealed_phone, &seal_context(user_id))
            .map_err(internal)?;
        String::from_utf8(phone).map(Some).map_err(internal)
    }

    /// Sends a confirmation code to `phone`. Replacing a confirmed number needs a recent
    /// authentication, like other changes to how one logs in.
    pub async fn start_sms_enrollment(
        &self,
        caller: &Caller,
        phone: &str,
    ) -> Result<(String, DateTime<Utc>), AuthError> {
        self.current_session(caller).await?;
        let phone = phone.trim();
        if !valid_phone(phone) {
            return Err(AuthError::Invalid {
                field: "phone_number",
                message: "an international number in E.164 form, e.g. +15555550123".to_owned(),
            });
        }
        if self.confirmed_phone(&caller.user_id).await?.is_some() {
            self.require_recent_authentication(caller)?;
        }
        let account = self
            .account(&caller.user_id)
            .await?
            .filter(|a| a.active)
            .ok_or(AuthError::NotFound("user"))?;
        let now = Utc::now();
        let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
        let pending = PendingPhone {
            sealed_phone: self
                .sealer
                .seal(phone.as_bytes(), &seal_context(&caller.user_id)),
            code_hash: sessions::digest(&format!("{}:{code}", caller.user_id)),
            expires_at: now + Duration::minutes(10),
            attempts: 0,
        };
        self.cache
            .set(
                &pending_key(&caller.user_id),
                &serde_json::to_vec(&pending).map_err(internal)?,
                std::time::Duration::from_secs(600),
            )
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        crate::resets::queue_message(
            &self.db,
            &account,
            praxis_runtime::notify::Channel::Sms,
            phone,
            "identity.phone_verification",
            serde_json::json!({"code": code}),
            now,
        )
        .await?;
        Ok((mask(phone), pending.expires_at))
    }

    /// Confirms the number with the code sent to it; the first factor comes with recovery codes.
    pub async fn confirm_sms_enrollment(
        &self,
        caller: &Caller,
        code: &str,
    ) -> Result<Vec<String>, AuthError> {
        self.current_session(caller).await?;
        let key = pending_key(&caller.user_id);
        let no_pending = || AuthError::Precondition {
            reason: "NO_PENDING_ENROLLMENT",
            message: "send a code to the phone first".to_owned(),
        };
        let bytes = self
            .cache
            .take(&key)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .ok_or_else(no_pending)?;
        let mut pending: PendingPhone = serde_json::from_slice(&bytes).map_err(|_| no_pending())?;
        let now = Utc::now();
        if pending.expires_at <= now {
            return Err(no_pending());
        }
        if pending.code_hash != sessions::digest(&format!("{}:{}", caller.user_id, code.trim())) {
            pending.attempts += 1;
            if pending.attempts < CONFIRMATION_ATTEMPTS {
                let left = (pending.expires_at - now).num_milliseconds().max(1);
                self.cache
                    .set(
                        &key,
                        &serde_json::to_vec(&pending).map_err(internal)?,
                        std::time::Duration::from_millis(u64::try_from(left).unwrap_or(1)),
                    )
                    .await
                    .map_err(|e| AuthError::Unavailable(e.to_string()))?;
            }
            return Err(AuthError::Invalid {
                field: "code",
                message: "wrong or expired code".to_owned(),
            });
        }
        let txn = self.db.begin().await?;
        sms_factor::Entity::delete_by_id(&caller.user_id)
            .exec(&txn)
            .await?;
        sms_factor::Entity::insert(sms_factor::ActiveModel {
            user_id: Set(caller.user_id.clone()),
            sealed_phone: Set(pending.sealed_phone),
            confirmed_at: Set(Some(now)),
            created_at: Set(now),
        })
        .exec_without_returning(&txn)
        .await?;
        let codes = Self::first_recovery_codes(&txn, &caller.user_id).await?;
        AuditNote::by(
            &caller.enterprise_id,
            &caller.user_id,
            "two_factor.sms.enrolled",
            "success",
            &ClientInfo::default(),
            serde_json::json!({}),
        )
        .write(&txn)
        .await?;
        txn.commit().await?;
        Ok(codes)
    }

    /// Changes to how one logs in need an authentication from the last five minutes
    /// (`Reauthenticate`).
    pub(super) fn require_recent_authentication(&self, caller: &Caller) -> Result<(), AuthError> {
        if Utc::now().timestamp() - caller.auth_time > 300 {
            return Err(AuthError::Precondition {
                reason: "REAUTHENTICATION_REQUIRED",
                message: "authenticate again (Reauthenticate) within 5 minutes first".to_owned(),
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phone_numbers_are_e164_and_masked() {
        assert!(valid_phone("+15555550123"));
        assert!(valid_phone("+441632960961"));
        assert!(!valid_phone("15555550123"), "the plus is required");
        assert!(!valid_phone("+0555550123"), "no country code starts with 0");
        assert!(!valid_phone("+1555-555-0123"));
        assert!(!valid_phone("+1234567890123456"), "at most 15 digits");
        assert_eq!(mask("+15555550123"), "+*******0123");
    }
}
