//! Login: the password with lockout, throttling and network rules, then the challenges
//! (2FA, 2FA enrolment, password change) and emailed one-time codes.

use super::*;

impl Authenticator {
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        client: ClientInfo,
    ) -> Result<Step, AuthError> {
        let now = Utc::now();
        self.throttle(&client).await?;
        let account = self.account_by_email(email).await?;
        let credential = match &account {
            Some(account) => {
                credential::Entity::find_by_id(&account.user_id)
                    .one(&self.db)
                    .await?
            }
            None => None,
        };
        let (Some(account), Some(credential)) = (account, credential) else {
            self.hasher.verify_decoy(password).await;
            self.audit(
                "",
                "",
                "login",
                "failure",
                &client,
                serde_json::json!({"reason": "unknown email or no password set"}),
            )
            .await;
            return Err(AuthError::InvalidCredentials);
        };
        let matches = self
            .hasher
            .verify(password, &credential.password_hash)
            .await;
        let locked = credential.locked_until.is_some_and(|until| until > now);
        let refusal = if !account.active {
            Some("user disabled")
        } else if locked {
            Some("account locked")
        } else if !matches {
            Some("wrong password")
        } else {
            None
        };
        if let Some(reason) = refusal {
            if !matches && !locked {
                self.count_failure(&account, &credential, now).await?;
            }
            self.audit(
                &account.enterprise_id,
                &account.user_id,
                "login",
                "failure",
                &client,
                serde_json::json!({"reason": reason}),
            )
            .await;
            return Err(AuthError::InvalidCredentials);
        }
        if credential.failed_attempts != 0 || credential.locked_until.is_some() {
            credential::Entity::update(credential::ActiveModel {
                user_id: Set(credential.user_id.clone()),
                failed_attempts: Set(0),
                locked_until: Set(None),
                ..Default::default()
            })
            .exec(&self.db)
            .await?;
        }
        if account.sso_required {
            self.audit(
                &account.enterprise_id,
                &account.user_id,
                "login",
                "refused",
                &client,
                serde_json::json!({"reason": "the enterprise requires SSO (I6)"}),
            )
            .await;
            return Err(AuthError::Precondition {
                reason: "SSO_REQUIRED",
                message: "this enterprise logs in through its identity provider; use SSO".into(),
            });
        }
        if !account.network_allows(client.ip) {
            self.audit(
                &account.enterprise_id,
                &account.user_id,
                "login",
                "denied",
                &client,
                serde_json::json!({"reason": "address outside the network rules (I8)"}),
            )
            .await;
            return Err(AuthError::PermissionDenied(
                "logins from this network are not allowed",
            ));
        }
        let expired = account.password.max_age_days > 0
            && credential.password_set_at
                + Duration::days(i64::from(account.password.max_age_days))
                < now;
        if credential.must_change || expired {
            return self
                .challenge(
                    &account,
                    ChallengeKind::PasswordChange,
                    vec!["pwd".into()],
                    client,
                )
                .await;
        }
        self.after_password(&account, vec!["pwd".into()], client)
            .await
    }

    /// One more failed password; at the enterprise's threshold the account locks (I2).
    pub(super) async fn count_failure(
        &self,
        account: &Account,
        credential: &credential::Model,
        now: DateTime<Utc>,
    ) -> Result<(), AuthError> {
        let rules = &account.password;
        let threshold = match rules.lockout_threshold {
            0 => self.settings.lockout_threshold,
            n => i32::from(n),
        };
        let minutes = match rules.lockout_minutes {
            0 => self.settings.lockout_minutes,
            n => i64::from(n),
        };
        let failed = credential.failed_attempts + 1;
        let locked_until = (failed >= threshold).then(|| now + Duration::minutes(minutes));
        credential::Entity::update(credential::ActiveModel {
            user_id: Set(credential.user_id.clone()),
            failed_attempts: Set(failed),
            locked_until: Set(locked_until.or(credential.locked_until)),
            ..Default::default()
        })
        .exec(&self.db)
        .await?;
        Ok(())
    }

    /// After the password (and any password change): a second factor, its enrolment, a check
    /// by email from a device never seen before (I2), or a session.
    pub(super) async fn after_password(
        &self,
        account: &Account,
        amr: Vec<String>,
        client: ClientInfo,
    ) -> Result<Step, AuthError> {
        let factors = self.enrolled_methods(&account.user_id).await?;
        if !factors.is_empty() {
            return self
                .two_factor_challenge(account, factors, amr, client)
                .await;
        }
        if account.two_factor_required {
            return self
                .challenge(account, ChallengeKind::TwoFactorEnrollment, amr, client)
                .await;
        }
        if self
            .device_is_new(&account.user_id, &client.device_id)
            .await?
        {
            // No factor of their own: the emailed code alone.
            return self
                .two_factor_challenge(account, Vec::new(), amr, client)
                .await;
        }
        let tokens = self.open_session(account, amr, &client).await?;
        Ok(Step::Done {
            tokens,
            recovery_codes: Vec::new(),
        })
    }

    /// Whether this user has logged in before, but never from `device_id`.
    pub(super) async fn device_is_new(
        &self,
        user_id: &str,
        device_id: &str,
    ) -> Result<bool, AuthError> {
        let seen_before = session::Entity::find()
            .filter(session::Column::UserId.eq(user_id))
            .one(&self.db)
            .await?
            .is_some();
        Ok(seen_before
            && session::Entity::find()
                .filter(session::Column::UserId.eq(user_id))
                .filter(session::Column::DeviceId.eq(device_id))
                .one(&self.db)
                .await?
                .is_none())
    }

    pub(super) async fn challenge(
        &self,
        account: &Account,
        kind: ChallengeKind,
        amr: Vec<String>,
        client: ClientInfo,
    ) -> Result<Step, AuthError> {
        self.issue_challenge(account, kind, Vec::new(), amr, client, None)
            .await
            .map(Step::Challenge)
    }

    /// A 2FA challenge answerable by `factors` (the user's enrolled ones) or an emailed code.
    async fn two_factor_challenge(
        &self,
        account: &Account,
        factors: Vec<Method>,
        amr: Vec<String>,
        client: ClientInfo,
    ) -> Result<Step, AuthError> {
        self.issue_challenge(
            account,
            ChallengeKind::TwoFactor,
            factors,
            amr,
            client,
            None,
        )
        .await
        .map(Step::Challenge)
    }

    /// A step-up challenge for `session_id` (see `reauthenticate`).
    pub(super) async fn challenge_for_session(
        &self,
        account: &Account,
        factors: Vec<Method>,
        amr: Vec<String>,
        session_id: &str,
    ) -> Result<Challenge, AuthError> {
        self.issue_challenge(
            account,
            ChallengeKind::StepUp,
            factors,
            amr,
            ClientInfo::default(),
            Some(session_id),
        )
        .await
    }

    async fn issue_challenge(
        &self,
        account: &Account,
        kind: ChallengeKind,
        factors: Vec<Method>,
        amr: Vec<String>,
        client: ClientInfo,
        session_id: Option<&str>,
    ) -> Result<Challenge, AuthError> {
        let now = Utc::now();
        let otpauth_uri = match kind {
            ChallengeKind::TwoFactorEnrollment => Some(self.pending_totp(account).await?),
            _ => None,
        };
        // Every second-factor challenge can be answered by a code sent to the user's email.
        let methods = match kind {
            ChallengeKind::TwoFactor | ChallengeKind::StepUp => {
                let mut methods = factors;
                methods.push(Method::Email);
                methods
            }
            _ => Vec::new(),
        };
        let (passkey_request, passkey) = if methods.contains(&Method::Passkey) {
            let (request, state) = self.passkey_request(&account.user_id).await?;
            (Some(request), Some(state))
        } else {
            (None, None)
        };
        let id = uuid::Uuid::new_v4().simple().to_string();
        let state = ChallengeState {
            user_id: account.user_id.clone(),
            kind,
            amr,
            client,
            attempts: 0,
            expires_at: now + Duration::seconds(self.settings.challenge_seconds),
            methods: methods.clone(),
            email_code: None,
            code_method: None,
            codes_sent: 0,
            passkey,
            session_id: session_id.map(str::to_owned),
        };
        self.put_challenge(&id, &state).await?;
        Ok(Challenge {
            id,
            kind,
            expires_at: state.expires_at,
            otpauth_uri,
            methods,
            passkey_request,
        })
    }

    pub(super) async fn put_challenge(
        &self,
        id: &str,
        state: &ChallengeState,
    ) -> Result<(), AuthError> {
        let left = (state.expires_at - Utc::now()).num_milliseconds().max(1);
        let bytes = serde_json::to_vec(state).map_err(internal)?;
        self.cache
            .set(
                &challenge_key(id),
                &bytes,
                std::time::Duration::from_millis(u64::try_from(left).unwrap_or(1)),
            )
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))
    }

    pub async fn complete_challenge(
        &self,
        id: &str,
        code: &str,
        new_password: &str,
        passkey_assertion: &str,
    ) -> Result<Step, AuthError> {
        let bytes = self
            .cache
            .take(&challenge_key(id))
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .ok_or(AuthError::Unauthenticated(
                "challenge unknown, used or expired",
            ))?;
        let mut state: ChallengeState = serde_json::from_slice(&bytes)
            .map_err(|_| AuthError::Unauthenticated("challenge unknown, used or expired"))?;
        if state.expires_at <= Utc::now() {
            return Err(AuthError::Unauthenticated(
                "challenge unknown, used or expired",
            ));
        }
        let account = self
            .account(&state.user_id)
            .await?
            .filter(|a| a.active)
            .ok_or(AuthError::InvalidCredentials)?;
        match state.kind {
            ChallengeKind::PasswordChange => {
                let note = AuditNote::by(
                    &account.enterprise_id,
                    &account.user_id,
                    "password.change",
                    "success",
                    &state.client,
                    serde_json::json!({"reason": "required at login"}),
                );
                if let Err(error) = self
                    .set_password(&account, new_password, false, Some(note))
                    .await
                {
                    self.retry(id, &mut state).await?;
                    return Err(error);
                }
                self.after_password(&account, state.amr.clone(), state.client.clone())
                    .await
            }
            ChallengeKind::TwoFactor => {
                let (ok, method) = self
                    .answer_second_factor(&state, code, passkey_assertion)
                    .await?;
                if !ok {
                    self.audit(
                        &account.enterprise_id,
                        &account.user_id,
                        "login.second_factor",
                        "failure",
                        &state.client,
                        serde_json::json!({"reason": "wrong, reused or expired answer", "method": method.as_str()}),
                    )
                    .await;
                    self.retry(id, &mut state).await?;
                    return Err(AuthError::Unauthenticated("wrong code"));
                }
                let mut amr = state.amr.clone();
                amr.push(method.as_str().to_owned());
                let tokens = self.open_session(&account, amr, &state.client).await?;
                Ok(Step::Done {
                    tokens,
                    recovery_codes: Vec::new(),
                })
            }
            ChallengeKind::StepUp => {
                let (ok, method) = self
                    .answer_second_factor(&state, code, passkey_assertion)
                    .await?;
                if !ok {
                    self.audit(
                        &account.enterprise_id,
                        &account.user_id,
                        "session.reauthenticate",
                        "failure",
                        &state.client,
                        serde_json::json!({"reason": "wrong, reused or expired answer", "method": method.as_str()}),
                    )
                    .await;
                    self.retry(id, &mut state).await?;
                    return Err(AuthError::Unauthenticated("wrong code"));
                }
                // The session must still be alive and the user's.
                let row = match &state.session_id {
                    Some(session_id) => self.session(session_id).await?,
                    None => None,
                }
                .filter(|row| {
                    row.user_id == account.user_id
                        && sessions::dead_reason(row, Utc::now()).is_none()
                })
                .ok_or(AuthError::Unauthenticated("session ended"))?;
                let mut amr = state.amr.clone();
                amr.push(method.as_str().to_owned());
                let (access_token, access_expires_at) = self.step_up(&account, &row, amr).await?;
                Ok(Step::Done {
                    tokens: Tokens {
                        access_token,
                        access_expires_at,
                        // The session's refresh token is unchanged.
                        refresh_token: String::new(),
                        session_id: row.id,
                    },
                    recovery_codes: Vec::new(),
                })
            }
            ChallengeKind::TwoFactorEnrollment => {
                let row = totp::Entity::find_by_id(&account.user_id)
                    .one(&self.db)
                    .await?
                    .ok_or(AuthError::Unauthenticated(
                        "enrolment expired; log in again",
                    ))?;
                if !self.spend_totp(&row, code).await? {
                    self.retry(id, &mut state).await?;
                    return Err(AuthError::Unauthenticated("wrong code"));
                }
                let recovery_codes = self.confirm_totp(&account).await?;
                let mut amr = state.amr.clone();
                amr.push(Method::Otp.as_str().to_owned());
                let tokens = self.open_session(&account, amr, &state.client).await?;
                Ok(Step::Done {
                    tokens,
                    recovery_codes,
                })
            }
        }
    }

    /// The answer to a second-factor challenge, checked against the methods it was issued
    /// with: a passkey assertion, a sent code, a TOTP code or a recovery code.
    async fn answer_second_factor(
        &self,
        state: &ChallengeState,
        code: &str,
        passkey_assertion: &str,
    ) -> Result<(bool, Method), AuthError> {
        if !passkey_assertion.is_empty() {
            let ok = match &state.passkey {
                Some(ceremony) => {
                    self.verify_passkey(&state.user_id, ceremony, passkey_assertion)
                        .await?
                }
                None => false,
            };
            return Ok((ok, Method::Passkey));
        }
        let code = code.trim();
        if let (Some((hash, until)), Some(method)) = (&state.email_code, state.code_method)
            && *until > Utc::now()
            && *hash == sessions::digest(&format!("{}:{code}", state.user_id))
        {
            return Ok((true, method));
        }
        if state.methods.contains(&Method::Otp) && code.len() == otp::DIGITS as usize {
            let Some(row) = self.confirmed_totp(&state.user_id).await? else {
                return Ok((false, Method::Otp));
            };
            return Ok((self.spend_totp(&row, code).await?, Method::Otp));
        }
        if state.methods.contains(&Method::Recovery) {
            return Ok((
                self.spend_recovery_code(&state.user_id, code).await?,
                Method::Recovery,
            ));
        }
        Ok((false, state.code_method.unwrap_or(Method::Email)))
    }

    /// Sends a one-time code for a 2FA challenge (I3) by email or, to a confirmed phone, by SMS:
    /// six digits, kept only as a hash in the challenge, valid 10 minutes and once (the
    /// challenge is spent when answered), at most three sends per challenge. Returns the masked
    /// address and the code's expiry.
    pub async fn send_challenge_code(
        &self,
        id: &str,
        channel: Method,
    ) -> Result<(String, DateTime<Utc>), AuthError> {
        const UNKNOWN: AuthError = AuthError::Unauthenticated("challenge unknown, used or expired");
        let bytes = self
            .cache
            .take(&challenge_key(id))
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?
            .ok_or(UNKNOWN)?;
        let mut state: ChallengeState = serde_json::from_slice(&bytes).map_err(|_| UNKNOWN)?;
        if state.expires_at <= Utc::now() {
            return Err(UNKNOWN);
        }
        if !matches!(state.kind, ChallengeKind::TwoFactor | ChallengeKind::StepUp) {
            self.put_challenge(id, &state).await?;
            return Err(AuthError::Precondition {
                reason: "NOT_A_TWO_FACTOR_CHALLENGE",
                message: "codes are sent only for 2FA challenges".to_owned(),
            });
        }
        if !matches!(channel, Method::Email | Method::Sms) || !state.methods.contains(&channel) {
            self.put_challenge(id, &state).await?;
            return Err(AuthError::Precondition {
                reason: "METHOD_NOT_AVAILABLE",
                message: format!("this challenge takes no {} code", channel.as_str()),
            });
        }
        if state.codes_sent >= 3 {
            self.put_challenge(id, &state).await?;
            return Err(AuthError::Throttled);
        }
        let account = self
            .account(&state.user_id)
            .await?
            .filter(|a| a.active)
            .ok_or(UNKNOWN)?;
        let code = format!("{:06}", rand::rngs::OsRng.gen_range(0..1_000_000u32));
        let until = Utc::now() + Duration::minutes(10);
        let (channel_name, recipient, masked) = match channel {
            Method::Sms => {
                let phone = self.confirmed_phone(&state.user_id).await?.ok_or(UNKNOWN)?;
                let masked = phone::mask(&phone);
                (praxis_runtime::notify::Channel::Sms, phone, masked)
            }
            _ => (
                praxis_runtime::notify::Channel::Email,
                account.email.clone(),
                mask_email(&account.email),
            ),
        };
        // A new code replaces any earlier one, of either channel.
        state.email_code = Some((
            sessions::digest(&format!("{}:{code}", state.user_id)),
            until,
        ));
        state.code_method = Some(channel);
        state.codes_sent += 1;
        // The challenge outlives the code if need be, so the code's ten minutes hold.
        state.expires_at = state.expires_at.max(until);
        self.put_challenge(id, &state).await?;
        crate::resets::queue_message(
            &self.db,
            &account,
            channel_name,
            &recipient,
            "identity.code",
            serde_json::json!({"code": code}),
            Utc::now(),
        )
        .await?;
        Ok((masked, until))
    }

    /// Puts a challenge back after a wrong answer, unless it has had its attempts.
    pub(super) async fn retry(
        &self,
        id: &str,
        state: &mut ChallengeState,
    ) -> Result<(), AuthError> {
        state.attempts += 1;
        if state.attempts < self.settings.challenge_attempts {
            self.put_challenge(id, state).await?;
        }
        Ok(())
    }
}

fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => format!(
            "{}***@{domain}",
            local.chars().next().map(String::from).unwrap_or_default()
        ),
        None => "***".to_owned(),
    }
}
