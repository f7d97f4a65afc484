//! Sessions (I4) and tokens (I5): opening with the policy's limits, refresh rotation with reuse
//! detection, introspection, listing and ending, step-up, and D14's ending of inactive users'
//! sessions.

use super::*;

impl Authenticator {
    pub(super) async fn open_session(
        &self,
        account: &Account,
        amr: Vec<String>,
        client: &ClientInfo,
    ) -> Result<Tokens, AuthError> {
        let now = Utc::now();
        let rules = &account.session;
        let alive = sessions::alive(&self.db, &account.user_id, now).await?;
        let limit = usize::try_from(rules.max_concurrent_sessions).unwrap_or(usize::MAX);
        let mut ending = Vec::new();
        if limit > 0 && alive.len() >= limit {
            if !rules.end_oldest_at_limit {
                self.audit(
                    &account.enterprise_id,
                    &account.user_id,
                    "login",
                    "refused",
                    client,
                    serde_json::json!({"reason": "concurrent session limit"}),
                )
                .await;
                return Err(AuthError::Precondition {
                    reason: "SESSION_LIMIT",
                    message: format!(
                        "at most {limit} sessions at a time; end one to start another"
                    ),
                });
            }
            ending = alive[..=alive.len() - limit]
                .iter()
                .map(|row| row.id.clone())
                .collect();
        }
        // A device this user never logged in from, when they have logged in before: tell them.
        let new_device = self
            .device_is_new(&account.user_id, &client.device_id)
            .await?;
        let id = uuid::Uuid::now_v7().to_string();
        let txn = self.db.begin().await?;
        sessions::end(&txn, &ending, "session limit: oldest ended", now).await?;
        if new_device {
            crate::resets::queue_notification(
                &txn,
                account,
                "session.new_device",
                serde_json::json!({
                        "device": if client.user_agent.is_empty() {
                            "an unnamed device".to_owned()
                        } else {
                            client.user_agent.chars().take(120).collect()
                        },
                        "time": now.to_rfc3339(),
                        "ip": client.ip.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string()),
                    }),
                now,
            )
            .await?;
        }
        session::Entity::insert(session::ActiveModel {
            id: Set(id.clone()),
            user_id: Set(account.user_id.clone()),
            enterprise_id: Set(account.enterprise_id.clone()),
            kind: Set(account.kind.clone()),
            device_id: Set(client.device_id.clone()),
            user_agent: Set(client.user_agent.chars().take(512).collect()),
            ip: Set(client.ip_text()),
            amr: Set(serde_json::to_string(&amr).map_err(internal)?),
            auth_time: Set(now),
            created_at: Set(now),
            last_seen_at: Set(now),
            idle_timeout_seconds: Set(i64::from(rules.idle_timeout_minutes) * 60),
            expires_at: Set(now + Duration::hours(i64::from(rules.absolute_lifetime_hours))),
            ended_at: Set(None),
            end_reason: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        let refresh_token = sessions::issue_refresh(&txn, &id, now).await?;
        AuditNote::by(
            &account.enterprise_id,
            &account.user_id,
            "login",
            "success",
            client,
            serde_json::json!({"session_id": id, "amr": amr, "ended_for_limit": ending}),
        )
        .write(&txn)
        .await?;
        txn.commit().await?;
        self.recache_sessions(&ending).await;
        self.accounts.record_login(&account.user_id, now).await;
        let access_token = self.access_token(account, &id, amr, now, now).await?;
        Ok(Tokens {
            access_token,
            access_expires_at: now + self.access_ttl,
            refresh_token,
            session_id: id,
        })
    }

    /// A session for someone an identity provider vouched for (I6); the account is read again,
    /// so a user disabled since the provider's answer gets nothing.
    pub(crate) async fn open_sso_session(
        &self,
        user_id: &str,
        amr: Vec<String>,
        client: &ClientInfo,
    ) -> Result<Tokens, AuthError> {
        let account = self
            .account(user_id)
            .await?
            .filter(|a| a.active)
            .ok_or(AuthError::Unauthenticated("user disabled"))?;
        self.open_session(&account, amr, client).await
    }

    /// Single logout (I6): ends the user's live sessions whose `amr` names `method` (`saml`).
    pub(crate) async fn end_sso_sessions(
        &self,
        account: &Account,
        method: &str,
        client: &ClientInfo,
    ) -> Result<Vec<String>, AuthError> {
        let now = Utc::now();
        let ids: Vec<String> = sessions::alive(&self.db, &account.user_id, now)
            .await?
            .into_iter()
            .filter(|row| {
                serde_json::from_str::<Vec<String>>(&row.amr)
                    .is_ok_and(|amr| amr.iter().any(|m| m == method))
            })
            .map(|row| row.id)
            .collect();
        let note = AuditNote::by(
            &account.enterprise_id,
            &account.user_id,
            "session.end",
            "success",
            client,
            serde_json::json!({"session_ids": ids, "reason": "single logout from the identity provider"}),
        );
        self.end_sessions(&ids, "single logout", now, Some(note))
            .await?;
        Ok(ids)
    }

    pub(super) async fn end_with_audit(
        &self,
        row: &session::Model,
        reason: &str,
        client: &ClientInfo,
    ) -> Result<(), AuthError> {
        let note = AuditNote::by(
            &row.enterprise_id,
            &row.user_id,
            "session.end",
            "success",
            client,
            serde_json::json!({"session_id": row.id, "reason": reason}),
        );
        self.end_sessions(
            std::slice::from_ref(&row.id),
            reason,
            Utc::now(),
            Some(note),
        )
        .await?;
        Ok(())
    }

    pub async fn refresh(&self, token: &str, client: ClientInfo) -> Result<Tokens, AuthError> {
        let now = Utc::now();
        let hash = sessions::digest(token.trim());
        let record = crate::store::refresh_token::Entity::find_by_id(&hash)
            .one(&self.db)
            .await?
            .ok_or(AuthError::Unauthenticated("refresh token not recognised"))?;
        let row = sessions::get(&self.db, &record.session_id)
            .await?
            .ok_or(AuthError::Unauthenticated("refresh token not recognised"))?;
        if record.used_at.is_some() {
            self.end_with_audit(&row, "refresh token reused", &client)
                .await?;
            return Err(AuthError::Unauthenticated(
                "refresh token already used; the session has been ended",
            ));
        }
        if let Some(reason) = sessions::dead_reason(&row, now) {
            if row.ended_at.is_none() {
                let note = AuditNote::by(
                    &row.enterprise_id,
                    &row.user_id,
                    "session.end",
                    "success",
                    &client,
                    serde_json::json!({"session_id": row.id, "reason": reason}),
                );
                self.end_sessions(std::slice::from_ref(&row.id), reason, now, Some(note))
                    .await?;
            }
            return Err(AuthError::Unauthenticated("session ended"));
        }
        let account = self.account(&row.user_id).await?;
        let Some(account) = account.filter(|a| a.active) else {
            self.end_with_audit(&row, "user disabled or deleted", &client)
                .await?;
            return Err(AuthError::Unauthenticated("session ended"));
        };
        if account.session.bind_to_ip && client.ip_text() != row.ip {
            self.end_with_audit(&row, "used from another address", &client)
                .await?;
            return Err(AuthError::Unauthenticated("session ended"));
        }
        if account.session.bind_to_device && client.device_id != row.device_id {
            self.end_with_audit(&row, "used from another device", &client)
                .await?;
            return Err(AuthError::Unauthenticated("session ended"));
        }
        let txn = self.db.begin().await?;
        if !sessions::spend(&txn, &hash, now).await? {
            txn.rollback().await?;
            self.end_with_audit(&row, "refresh token reused", &client)
                .await?;
            return Err(AuthError::Unauthenticated(
                "refresh token already used; the session has been ended",
            ));
        }
        session::Entity::update(session::ActiveModel {
            id: Set(row.id.clone()),
            last_seen_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        let refresh_token = sessions::issue_refresh(&txn, &row.id, now).await?;
        txn.commit().await?;
        self.recache_sessions(std::slice::from_ref(&row.id)).await;
        let amr: Vec<String> = serde_json::from_str(&row.amr).unwrap_or_default();
        let access_token = self
            .access_token(&account, &row.id, amr, row.auth_time, now)
            .await?;
        Ok(Tokens {
            access_token,
            access_expires_at: now + self.access_ttl,
            refresh_token,
            session_id: row.id,
        })
    }

    /// Whether the token verifies and its session is alive (and its user still active).
    pub async fn introspect(
        &self,
        verifier: &TokenVerifier,
        token: &str,
    ) -> Result<Option<Introspection>, AuthError> {
        let Ok(caller) = verifier.verify(token.trim()).await else {
            return Ok(None);
        };
        let Some(row) = self.session(&caller.session_id).await? else {
            return Ok(None);
        };
        if row.user_id != caller.user_id || sessions::dead_reason(&row, Utc::now()).is_some() {
            return Ok(None);
        }
        if !self
            .account(&caller.user_id)
            .await?
            .is_some_and(|account| account.active)
        {
            return Ok(None);
        }
        // The signature was verified above; this only reads the expiry back out.
        let expires_at = token
            .trim()
            .split('.')
            .nth(1)
            .and_then(|payload| {
                use base64::Engine;
                base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .ok()
            })
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|claims| claims.get("exp").and_then(serde_json::Value::as_i64))
            .unwrap_or(0);
        Ok(Some(Introspection { caller, expires_at }))
    }

    /// The caller's session, alive.
    pub(crate) async fn current_session(
        &self,
        caller: &Caller,
    ) -> Result<session::Model, AuthError> {
        let row = self
            .session(&caller.session_id)
            .await?
            .filter(|row| row.user_id == caller.user_id)
            .ok_or(AuthError::Unauthenticated("session ended"))?;
        if sessions::dead_reason(&row, Utc::now()).is_some() {
            return Err(AuthError::Unauthenticated("session ended"));
        }
        Ok(row)
    }

    /// Enterprise admins act on users of their own enterprise; anyone on themselves.
    pub(crate) async fn reachable(
        &self,
        caller: &Caller,
        user_id: &str,
    ) -> Result<Account, AuthError> {
        let account = self
            .account(user_id)
            .await?
            .filter(|a| a.enterprise_id == caller.enterprise_id)
            .ok_or(AuthError::NotFound("user"))?;
        if caller.user_id != user_id && caller.kind != "ENTERPRISE_ADMIN" {
            return Err(AuthError::PermissionDenied(
                "only enterprise admins act on other users",
            ));
        }
        Ok(account)
    }

    pub async fn list_sessions(
        &self,
        caller: &Caller,
        user_id: Option<&str>,
    ) -> Result<Vec<session::Model>, AuthError> {
        self.current_session(caller).await?;
        let user_id = user_id.unwrap_or(&caller.user_id);
        self.reachable(caller, user_id).await?;
        Ok(sessions::alive(&self.db, user_id, Utc::now()).await?)
    }

    pub async fn end_session(&self, caller: &Caller, session_id: &str) -> Result<(), AuthError> {
        self.current_session(caller).await?;
        let row = sessions::get(&self.db, session_id)
            .await?
            .filter(|row| row.user_id == caller.user_id && row.ended_at.is_none())
            .ok_or(AuthError::NotFound("session"))?;
        self.end_with_audit(&row, "ended by the user", &ClientInfo::default())
            .await
    }

    /// Ends the caller's sessions, all or all but the current one.
    pub async fn end_own_sessions(
        &self,
        caller: &Caller,
        keep_current: bool,
    ) -> Result<u64, AuthError> {
        self.current_session(caller).await?;
        let ids: Vec<String> = sessions::alive(&self.db, &caller.user_id, Utc::now())
            .await?
            .into_iter()
            .map(|row| row.id)
            .filter(|id| !keep_current || *id != caller.session_id)
            .collect();
        self.end_many(
            caller,
            &caller.enterprise_id,
            &caller.user_id,
            &ids,
            "ended by the user",
        )
        .await
    }

    pub async fn end_user_sessions(
        &self,
        caller: &Caller,
        user_id: &str,
    ) -> Result<u64, AuthError> {
        self.current_session(caller).await?;
        if caller.kind != "ENTERPRISE_ADMIN" {
            return Err(AuthError::PermissionDenied(
                "only enterprise admins end other users' sessions",
            ));
        }
        self.reachable(caller, user_id).await?;
        let ids: Vec<String> = sessions::alive(&self.db, user_id, Utc::now())
            .await?
            .into_iter()
            .map(|row| row.id)
            .collect();
        self.end_many(
            caller,
            &caller.enterprise_id,
            user_id,
            &ids,
            "ended by an admin",
        )
        .await
    }

    /// Ends `ids` of `user_id` (in `enterprise_id`) for `caller`, audited as theirs.
    pub(super) async fn end_many(
        &self,
        caller: &Caller,
        enterprise_id: &str,
        user_id: &str,
        ids: &[String],
        reason: &str,
    ) -> Result<u64, AuthError> {
        let note = AuditNote::by(
            enterprise_id,
            &caller.user_id,
            "session.end",
            "success",
            &ClientInfo::default(),
            serde_json::json!({"sessions": ids, "reason": reason}),
        )
        .on(user_id);
        self.end_sessions(ids, reason, Utc::now(), Some(note)).await
    }

    /// D14: ends the open sessions of users who are no longer active (disabled, deleted or
    /// gone), of one enterprise or of all; returns how many ended. Runs when directory announces
    /// a change and on a timer, so a disabled user's sessions end even while unused, and do not
    /// come back if the user is enabled again.
    pub async fn end_sessions_of_inactive_users(
        &self,
        enterprise_id: Option<&str>,
    ) -> Result<u64, AuthError> {
        let now = Utc::now();
        let mut query = session::Entity::find()
            .filter(session::Column::EndedAt.is_null())
            .filter(session::Column::ExpiresAt.gt(now));
        if let Some(enterprise_id) = enterprise_id {
            query = query.filter(session::Column::EnterpriseId.eq(enterprise_id));
        }
        let open = query.all(&self.db).await?;
        let mut users: Vec<String> = open.iter().map(|row| row.user_id.clone()).collect();
        users.sort_unstable();
        users.dedup();
        if users.is_empty() {
            return Ok(0);
        }
        // One question to directory for all of them, not one per user.
        let inactive = self
            .accounts
            .inactive(&users)
            .await
            .map_err(|e| AuthError::Unavailable(e.to_string()))?;
        let mut ended = 0;
        for user_id in &inactive {
            let mine: Vec<&session::Model> =
                open.iter().filter(|row| row.user_id == *user_id).collect();
            let ids: Vec<String> = mine.iter().map(|row| row.id.clone()).collect();
            let enterprise = mine
                .first()
                .map(|row| row.enterprise_id.clone())
                .unwrap_or_default();
            // Identity itself ends them (an empty actor is the identity service).
            let note = AuditNote::by(
                &enterprise,
                "",
                "session.end",
                "success",
                &ClientInfo::default(),
                serde_json::json!({"sessions": ids, "reason": "user disabled or deleted (D14)"}),
            )
            .on(user_id);
            ended += self
                .end_sessions(&ids, "user disabled or deleted", now, Some(note))
                .await?;
        }
        Ok(ended)
    }

    /// Step-up (I4): the password (and a code when 2FA is enrolled) again; a new access token
    /// for the same session with a fresh `auth_time`.
    pub async fn reauthenticate(
        &self,
        caller: &Caller,
        password: &str,
        code: &str,
    ) -> Result<StepUp, AuthError> {
        let row = self.current_session(caller).await?;
        let account = self
            .account(&caller.user_id)
            .await?
            .filter(|a| a.active)
            .ok_or(AuthError::Unauthenticated("session ended"))?;
        let credential = credential::Entity::find_by_id(&caller.user_id)
            .one(&self.db)
            .await?
            .ok_or(AuthError::PermissionDenied("no password is set"))?;
        if credential
            .locked_until
            .is_some_and(|until| until > Utc::now())
        {
            return Err(AuthError::PermissionDenied("the account is locked"));
        }
        if !self
            .hasher
            .verify(password, &credential.password_hash)
            .await
        {
            self.count_failure(&account, &credential, Utc::now())
                .await?;
            self.step_up_audit(&account, "failure", "wrong password")
                .await;
            return Err(AuthError::PermissionDenied("wrong password"));
        }
        let mut amr = vec!["pwd".to_owned()];
        let factor = self.confirmed_totp(&caller.user_id).await?;
        if let Some(factor) = factor.filter(|_| !code.trim().is_empty()) {
            if !self.spend_totp(&factor, code).await? {
                self.step_up_audit(&account, "failure", "wrong code").await;
                return Err(AuthError::PermissionDenied("wrong or missing code"));
            }
            amr.push("otp".to_owned());
        } else {
            // Any other second factor (a passkey, SMS, or TOTP without a code given) is asked
            // for through a challenge, as at login.
            let factors = self.enrolled_methods(&caller.user_id).await?;
            if !factors.is_empty() {
                let step = self
                    .challenge_for_session(&account, factors, amr, &row.id)
                    .await?;
                return Ok(StepUp::Challenge(step));
            }
        }
        let (token, expires_at) = self.step_up(&account, &row, amr).await?;
        Ok(StepUp::Done(token, expires_at))
    }

    /// A fresh `auth_time` for the session (I4): recorded with its audit event, then an access
    /// token that carries it.
    pub(super) async fn step_up(
        &self,
        account: &Account,
        row: &session::Model,
        amr: Vec<String>,
    ) -> Result<(String, DateTime<Utc>), AuthError> {
        let now = Utc::now();
        let txn = self.db.begin().await?;
        session::Entity::update(session::ActiveModel {
            id: Set(row.id.clone()),
            auth_time: Set(now),
            amr: Set(serde_json::to_string(&amr).map_err(internal)?),
            last_seen_at: Set(now),
            ..Default::default()
        })
        .exec(&txn)
        .await?;
        AuditNote::by(
            &account.enterprise_id,
            &account.user_id,
            "session.reauthenticate",
            "success",
            &ClientInfo::default(),
            serde_json::json!({"session_id": row.id, "amr": amr}),
        )
        .write(&txn)
        .await?;
        txn.commit().await?;
        self.recache_sessions(std::slice::from_ref(&row.id)).await;
        let token = self.access_token(account, &row.id, amr, now, now).await?;
        Ok((token, now + self.access_ttl))
    }

    async fn step_up_audit(&self, account: &Account, outcome: &str, reason: &str) {
        self.audit(
            &account.enterprise_id,
            &account.user_id,
            "session.reauthenticate",
            outcome,
            &ClientInfo::default(),
            serde_json::json!({"reason": reason}),
        )
        .await;
    }

    /// An access token for `account` in session `session_id`, valid from `now` for the
    /// configured lifetime.
    async fn access_token(
        &self,
        account: &Account,
        session_id: &str,
        amr: Vec<String>,
        auth_time: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<String, AuthError> {
        let subject = TokenSubject {
            user_id: account.user_id.clone(),
            enterprise_id: account.enterprise_id.clone(),
            session_id: session_id.to_owned(),
            kind: account.kind.clone(),
            amr,
            auth_time,
        };
        self.keys
            .issue(&subject, now, self.access_ttl)
            .await
            .map_err(internal)
    }
}
