//! Passwords (I1): setting with the policy and history, change, temporary passwords, unlock.

use super::*;

impl Authenticator {
    /// Sets `account`'s password after checking the policy and history; `note` is recorded in
    /// the same transaction.
    pub(crate) async fn set_password(
        &self,
        account: &Account,
        password: &str,
        must_change: bool,
        note: Option<AuditNote>,
    ) -> Result<(), AuthError> {
        let problems = passwords::problems(password, &account.password, &account.email);
        if !problems.is_empty() {
            return Err(AuthError::Invalid {
                field: "new_password",
                message: format!("the password needs {}", problems.join(", ")),
            });
        }
        let history = password_history::Entity::find()
            .filter(password_history::Column::UserId.eq(&account.user_id))
            .order_by_desc(password_history::Column::SetAt)
            .all(&self.db)
            .await?;
        let current = credential::Entity::find_by_id(&account.user_id)
            .one(&self.db)
            .await?;
        let mut recent: Vec<String> = current.iter().map(|c| c.password_hash.clone()).collect();
        recent.extend(
            history
                .iter()
                .take(usize::from(account.password.history))
                .map(|h| h.password_hash.clone()),
        );
        if account.password.history > 0 {
            for hash in &recent {
                if self.hasher.verify(password, hash).await {
                    return Err(AuthError::Invalid {
                        field: "new_password",
                        message: format!(
                            "one of the last {} passwords; choose another",
                            account.password.history
                        ),
                    });
                }
            }
        }
        let hash = self.hasher.hash(password).await.map_err(internal)?;
        let now = Utc::now();
        let txn = self.db.begin().await?;
        if let Some(current) = &current {
            password_history::Entity::insert(password_history::ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                user_id: Set(account.user_id.clone()),
                password_hash: Set(current.password_hash.clone()),
                set_at: Set(current.password_set_at),
            })
            .exec_without_returning(&txn)
            .await?;
            credential::Entity::update(credential::ActiveModel {
                user_id: Set(account.user_id.clone()),
                password_hash: Set(hash),
                password_set_at: Set(now),
                must_change: Set(must_change),
                failed_attempts: Set(0),
                locked_until: Set(None),
                ..Default::default()
            })
            .exec(&txn)
            .await?;
        } else {
            credential::Entity::insert(credential::ActiveModel {
                user_id: Set(account.user_id.clone()),
                enterprise_id: Set(account.enterprise_id.clone()),
                password_hash: Set(hash),
                password_set_at: Set(now),
                must_change: Set(must_change),
                failed_attempts: Set(0),
                locked_until: Set(None),
            })
            .exec_without_returning(&txn)
            .await?;
        }
        if let Some(note) = note {
            note.write(&txn).await?;
        }
        txn.commit().await?;
        Ok(())
    }

    pub async fn change_password(
        &self,
        caller: &Caller,
        current: &str,
        new_password: &str,
    ) -> Result<(), AuthError> {
        self.current_session(caller).await?;
        let account = self
            .account(&caller.user_id)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        let credential = credential::Entity::find_by_id(&caller.user_id)
            .one(&self.db)
            .await?
            .ok_or(AuthError::Precondition {
                reason: "NO_PASSWORD",
                message: "no password is set".to_owned(),
            })?;
        if !self.hasher.verify(current, &credential.password_hash).await {
            self.count_failure(&account, &credential, Utc::now())
                .await?;
            self.audit(
                &account.enterprise_id,
                &caller.user_id,
                "password.change",
                "failure",
                &ClientInfo::default(),
                serde_json::json!({"reason": "wrong current password"}),
            )
            .await;
            return Err(AuthError::PermissionDenied("the current password is wrong"));
        }
        let note = AuditNote::by(
            &account.enterprise_id,
            &caller.user_id,
            "password.change",
            "success",
            &ClientInfo::default(),
            serde_json::json!({}),
        );
        self.set_password(&account, new_password, false, Some(note))
            .await?;
        // Other sessions were opened with the old password.
        let others: Vec<String> = sessions::alive(&self.db, &caller.user_id, Utc::now())
            .await?
            .into_iter()
            .map(|row| row.id)
            .filter(|id| *id != caller.session_id)
            .collect();
        self.end_many(
            caller,
            &caller.enterprise_id,
            &caller.user_id,
            &others,
            "password changed",
        )
        .await?;
        Ok(())
    }

    /// An admin's temporary password (D13): changed at the next login; open sessions end.
    /// Enterprise admins set them in their enterprise; platform admins (operators, e.g. for a
    /// new enterprise's first admin) in any.
    pub async fn set_temporary_password(
        &self,
        caller: &Caller,
        user_id: &str,
        password: &str,
    ) -> Result<(), AuthError> {
        let account = if caller.kind == praxis_runtime::auth::PLATFORM_ADMIN_KIND {
            // Operator tokens are minted from the signing key and belong to no session here.
            self.account(user_id)
                .await?
                .ok_or(AuthError::NotFound("user"))?
        } else {
            self.current_session(caller).await?;
            if caller.kind != "ENTERPRISE_ADMIN" {
                return Err(AuthError::PermissionDenied(
                    "only enterprise admins set temporary passwords",
                ));
            }
            self.reachable(caller, user_id).await?
        };
        let note = AuditNote::by(
            &account.enterprise_id,
            &caller.user_id,
            "password.set_temporary",
            "success",
            &ClientInfo::default(),
            serde_json::json!({}),
        )
        .on(user_id);
        self.set_password(&account, password, true, Some(note))
            .await?;
        let ids: Vec<String> = sessions::alive(&self.db, user_id, Utc::now())
            .await?
            .into_iter()
            .map(|row| row.id)
            .collect();
        self.end_many(
            caller,
            &account.enterprise_id,
            user_id,
            &ids,
            "temporary password set",
        )
        .await?;
        Ok(())
    }

    /// Seeds a password directly (bootstrap and demo data); must be changed at first login
    /// when `must_change`.
    pub async fn seed_password(
        &self,
        user_id: &str,
        password: &str,
        must_change: bool,
    ) -> Result<(), AuthError> {
        let account = self
            .account(user_id)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        self.set_password(&account, password, must_change, None)
            .await
    }

    /// Seeds a password only for a user who has none (demo data, run on every start).
    pub async fn seed_password_if_absent(
        &self,
        user_id: &str,
        password: &str,
    ) -> Result<bool, AuthError> {
        if credential::Entity::find_by_id(user_id)
            .one(&self.db)
            .await?
            .is_some()
        {
            return Ok(false);
        }
        self.seed_password(user_id, password, false).await?;
        Ok(true)
    }

    pub async fn unlock_user(&self, caller: &Caller, user_id: &str) -> Result<(), AuthError> {
        self.current_session(caller).await?;
        if caller.kind != "ENTERPRISE_ADMIN" {
            return Err(AuthError::PermissionDenied(
                "only enterprise admins unlock users",
            ));
        }
        let account = self.reachable(caller, user_id).await?;
        let txn = self.db.begin().await?;
        credential::Entity::update_many()
            .col_expr(
                credential::Column::FailedAttempts,
                sea_orm::sea_query::Expr::value(0),
            )
            .col_expr(
                credential::Column::LockedUntil,
                sea_orm::sea_query::Expr::value(Option::<DateTime<Utc>>::None),
            )
            .filter(credential::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        AuditNote::by(
            &account.enterprise_id,
            &caller.user_id,
            "user.unlock",
            "success",
            &ClientInfo::default(),
            serde_json::json!({}),
        )
        .on(user_id)
        .write(&txn)
        .await?;
        txn.commit().await?;
        Ok(())
    }
}
