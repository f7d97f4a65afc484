//! Second factors (I3): TOTP with single-use steps, recovery codes, enrolment.

use super::*;

impl Authenticator {
    /// The second factors this user has: what a 2FA challenge can be answered with (besides an
    /// emailed code, which every user can receive).
    pub(super) async fn enrolled_methods(&self, user_id: &str) -> Result<Vec<Method>, AuthError> {
        let mut methods = Vec::new();
        if self.confirmed_totp(user_id).await?.is_some() {
            methods.push(Method::Otp);
        }
        if self.confirmed_phone(user_id).await?.is_some() {
            methods.push(Method::Sms);
        }
        if passkey::Entity::find()
            .filter(passkey::Column::UserId.eq(user_id))
            .one(&self.db)
            .await?
            .is_some()
        {
            methods.push(Method::Passkey);
        }
        if !methods.is_empty()
            && recovery_code::Entity::find()
                .filter(recovery_code::Column::UserId.eq(user_id))
                .filter(recovery_code::Column::UsedAt.is_null())
                .one(&self.db)
                .await?
                .is_some()
        {
            methods.push(Method::Recovery);
        }
        Ok(methods)
    }

    /// Ten recovery codes when the user has none left unused: a first factor comes with them.
    pub(super) async fn first_recovery_codes<C: ConnectionTrait>(
        db: &C,
        user_id: &str,
    ) -> Result<Vec<String>, AuthError> {
        let unused = recovery_code::Entity::find()
            .filter(recovery_code::Column::UserId.eq(user_id))
            .filter(recovery_code::Column::UsedAt.is_null())
            .one(db)
            .await?;
        match unused {
            Some(_) => Ok(Vec::new()),
            None => Self::new_recovery_codes(db, user_id).await,
        }
    }

    pub(super) async fn confirmed_totp(
        &self,
        user_id: &str,
    ) -> Result<Option<totp::Model>, AuthError> {
        Ok(totp::Entity::find_by_id(user_id)
            .one(&self.db)
            .await?
            .filter(|row| row.confirmed_at.is_some()))
    }

    /// A fresh unconfirmed TOTP secret for `account`, replacing any unconfirmed one.
    pub(super) async fn pending_totp(&self, account: &Account) -> Result<String, AuthError> {
        let secret = otp::new_secret();
        let sealed = self
            .sealer
            .seal(&secret, &format!("totp:{}", account.user_id));
        totp::Entity::delete_by_id(&account.user_id)
            .exec(&self.db)
            .await?;
        totp::Entity::insert(totp::ActiveModel {
            user_id: Set(account.user_id.clone()),
            sealed_secret: Set(sealed),
            confirmed_at: Set(None),
            last_step: Set(None),
        })
        .exec_without_returning(&self.db)
        .await?;
        Ok(otp::otpauth_uri(
            &secret,
            &self.settings.totp_issuer,
            &account.email,
        ))
    }

    pub(super) fn open_secret(&self, row: &totp::Model) -> Result<Vec<u8>, AuthError> {
        self.sealer
            .open(&row.sealed_secret, &format!("totp:{}", row.user_id))
            .map_err(internal)
    }

    /// Checks a TOTP code against the user's factor (confirmed or pending) and spends its step.
    pub(super) async fn spend_totp(
        &self,
        row: &totp::Model,
        code: &str,
    ) -> Result<bool, AuthError> {
        let secret = self.open_secret(row)?;
        let Some(step) = otp::verify(&secret, code, Utc::now().timestamp(), row.last_step) else {
            return Ok(false);
        };
        // Conditional on the step last seen, so two concurrent uses of one code cannot both win.
        let mut update = totp::Entity::update_many()
            .col_expr(
                totp::Column::LastStep,
                sea_orm::sea_query::Expr::value(step),
            )
            .filter(totp::Column::UserId.eq(&row.user_id));
        update = match row.last_step {
            Some(last) => update.filter(totp::Column::LastStep.eq(last)),
            None => update.filter(totp::Column::LastStep.is_null()),
        };
        Ok(update.exec(&self.db).await?.rows_affected == 1)
    }

    pub(super) async fn spend_recovery_code(
        &self,
        user_id: &str,
        code: &str,
    ) -> Result<bool, AuthError> {
        let result = recovery_code::Entity::update_many()
            .col_expr(
                recovery_code::Column::UsedAt,
                sea_orm::sea_query::Expr::value(Utc::now()),
            )
            .filter(recovery_code::Column::CodeHash.eq(recovery_hash(user_id, code)))
            .filter(recovery_code::Column::UserId.eq(user_id))
            .filter(recovery_code::Column::UsedAt.is_null())
            .exec(&self.db)
            .await?;
        Ok(result.rows_affected == 1)
    }

    pub(super) async fn new_recovery_codes<C: ConnectionTrait>(
        db: &C,
        user_id: &str,
    ) -> Result<Vec<String>, AuthError> {
        recovery_code::Entity::delete_many()
            .filter(recovery_code::Column::UserId.eq(user_id))
            .exec(db)
            .await?;
        let codes: Vec<String> = (0..RECOVERY_CODES).map(|_| new_recovery_code()).collect();
        for code in &codes {
            recovery_code::Entity::insert(recovery_code::ActiveModel {
                code_hash: Set(recovery_hash(user_id, code)),
                user_id: Set(user_id.to_owned()),
                used_at: Set(None),
            })
            .exec_without_returning(db)
            .await?;
        }
        Ok(codes)
    }

    pub(super) async fn confirm_totp(&self, account: &Account) -> Result<Vec<String>, AuthError> {
        let user_id = account.user_id.as_str();
        let txn = self.db.begin().await?;
        AuditNote::by(
            &account.enterprise_id,
            user_id,
            "two_factor.totp.enrolled",
            "success",
            &ClientInfo::default(),
            serde_json::json!({}),
        )
        .write(&txn)
        .await?;
        totp::Entity::update_many()
            .col_expr(
                totp::Column::ConfirmedAt,
                sea_orm::sea_query::Expr::value(Utc::now()),
            )
            .filter(totp::Column::UserId.eq(user_id))
            .exec(&txn)
            .await?;
        let codes = Self::new_recovery_codes(&txn, user_id).await?;
        txn.commit().await?;
        Ok(codes)
    }

    pub async fn start_totp_enrollment(&self, caller: &Caller) -> Result<String, AuthError> {
        self.current_session(caller).await?;
        if self.confirmed_totp(&caller.user_id).await?.is_some() {
            return Err(AuthError::Precondition {
                reason: "ALREADY_ENROLLED",
                message: "TOTP is enrolled already".to_owned(),
            });
        }
        let account = self
            .account(&caller.user_id)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        self.pending_totp(&account).await
    }

    pub async fn confirm_totp_enrollment(
        &self,
        caller: &Caller,
        code: &str,
    ) -> Result<Vec<String>, AuthError> {
        self.current_session(caller).await?;
        let row = totp::Entity::find_by_id(&caller.user_id)
            .one(&self.db)
            .await?
            .filter(|row| row.confirmed_at.is_none())
            .ok_or(AuthError::Precondition {
                reason: "NO_PENDING_ENROLLMENT",
                message: "start an enrolment first".to_owned(),
            })?;
        if !self.spend_totp(&row, code).await? {
            return Err(AuthError::Invalid {
                field: "code",
                message: "wrong or expired code".to_owned(),
            });
        }
        let account = self
            .account(&caller.user_id)
            .await?
            .ok_or(AuthError::NotFound("user"))?;
        self.confirm_totp(&account).await
    }

    pub async fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
    ) -> Result<Vec<String>, AuthError> {
        self.current_session(caller).await?;
        self.require_recent_authentication(caller)?;
        if self.enrolled_methods(&caller.user_id).await?.is_empty() {
            return Err(AuthError::Precondition {
                reason: "NOT_ENROLLED",
                message: "no second factor is enrolled".to_owned(),
            });
        }
        let txn = self.db.begin().await?;
        let codes = Self::new_recovery_codes(&txn, &caller.user_id).await?;
        AuditNote::by(
            &caller.enterprise_id,
            &caller.user_id,
            "two_factor.recovery_codes.regenerated",
            "success",
            &ClientInfo::default(),
            serde_json::json!({}),
        )
        .write(&txn)
        .await?;
        txn.commit().await?;
        Ok(codes)
    }
}
