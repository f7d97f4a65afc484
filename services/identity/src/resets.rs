//! Forgotten and admin-initiated password resets (I1) and identity's notification outbox. A reset
//! link carries a random token of which only a hash is stored; it is single use and expires.
//! The message is written in the same transaction as the token and relayed to the notifier
//! afterwards, at least once.

use crate::auth::{AuditNote, AuthError, Authenticator, ClientInfo};
use crate::sessions;
use crate::store::{notification_outbox, reset_token, session};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use praxis_runtime::Caller;
use praxis_runtime::notify::{Channel, Notification, Notifier};
use rand::RngCore;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect, TransactionTrait,
};
use serde::{Deserialize, Serialize};

pub const RESET_TOPIC: &str = "password.reset";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ResetSettings {
    /// The page that takes the token (`?token=`) and asks for the new password.
    pub url: String,
    pub minutes: i64,
}

impl Default for ResetSettings {
    fn default() -> Self {
        Self {
            url: "http://127.0.0.1:8080/reset-password".to_owned(),
            minutes: 30,
        }
    }
}

/// Writes a message for `account`'s email address to the outbox, in `db`'s transaction when it is
/// one; the relay hands it to the notifier after commit.
pub(crate) async fn queue_notification<C: sea_orm::ConnectionTrait>(
    db: &C,
    account: &crate::accounts::Account,
    topic: &str,
    payload: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    queue_message(
        db,
        account,
        Channel::Email,
        &account.email,
        topic,
        payload,
        now,
    )
    .await
}

/// Writes a message for `recipient` on `channel` to the outbox (see [`queue_notification`]).
pub(crate) async fn queue_message<C: sea_orm::ConnectionTrait>(
    db: &C,
    account: &crate::accounts::Account,
    channel: Channel,
    recipient: &str,
    topic: &str,
    payload: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    notification_outbox::Entity::insert(notification_outbox::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        enterprise_id: Set(account.enterprise_id.clone()),
        channel: Set(channel.as_str().to_owned()),
        topic: Set(topic.to_owned()),
        recipient: Set(recipient.to_owned()),
        payload: Set(payload.to_string()),
        created_at: Set(now),
        claimed_until: Set(None),
        delivered_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(())
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Authenticator {
    /// Writes a reset token and its message for `account` in one transaction.
    async fn issue_reset(&self, account: &crate::accounts::Account) -> Result<(), AuthError> {
        let now = Utc::now();
        let settings = &self.settings().reset;
        let token = new_token();
        let expires_at = now + Duration::minutes(settings.minutes);
        let link = format!("{}?token={token}", settings.url);
        let txn = self.db().begin().await?;
        reset_token::Entity::insert(reset_token::ActiveModel {
            token_hash: Set(sessions::digest(&token)),
            user_id: Set(account.user_id.clone()),
            expires_at: Set(expires_at),
            used_at: Set(None),
        })
        .exec_without_returning(&txn)
        .await?;
        queue_notification(
            &txn,
            account,
            RESET_TOPIC,
            serde_json::json!({"link": link, "expires_at": expires_at.to_rfc3339()}),
            now,
        )
        .await?;
        txn.commit().await?;
        Ok(())
    }

    /// Forgotten password: the same answer whether or not the email belongs to anyone.
    pub async fn request_password_reset(
        &self,
        email: &str,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        self.throttle(&client).await?;
        let account = self.account_by_email(email).await?;
        match account.filter(|a| a.active) {
            Some(account) => {
                self.issue_reset(&account).await?;
                self.audit(
                    &account.enterprise_id,
                    &account.user_id,
                    "password.reset_requested",
                    "success",
                    &client,
                    serde_json::json!({}),
                )
                .await;
            }
            None => {
                self.audit(
                    "",
                    "",
                    "password.reset_requested",
                    "ignored",
                    &client,
                    serde_json::json!({"reason": "unknown or inactive email"}),
                )
                .await;
            }
        }
        Ok(())
    }

    /// An enterprise admin sends one of their users a reset link.
    pub async fn send_password_reset(
        &self,
        caller: &Caller,
        user_id: &str,
    ) -> Result<(), AuthError> {
        self.current_session(caller).await?;
        if caller.kind != "ENTERPRISE_ADMIN" {
            return Err(AuthError::PermissionDenied(
                "only enterprise admins send reset links",
            ));
        }
        let account = self.reachable(caller, user_id).await?;
        if !account.active {
            return Err(AuthError::Precondition {
                reason: "USER_NOT_ACTIVE",
                message: "the user is disabled".to_owned(),
            });
        }
        self.issue_reset(&account).await?;
        self.audit(
            &account.enterprise_id,
            &caller.user_id,
            "password.reset_sent",
            "success",
            &ClientInfo::default(),
            serde_json::json!({"user_id": user_id}),
        )
        .await;
        Ok(())
    }

    /// Sets a new password with a reset token; the token is spent and every session ends.
    pub async fn reset_password(
        &self,
        token: &str,
        new_password: &str,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        const INVALID: AuthError =
            AuthError::Unauthenticated("the reset link is invalid, used or expired");
        let now = Utc::now();
        let hash = sessions::digest(token.trim());
        let row = reset_token::Entity::find_by_id(&hash)
            .one(self.db())
            .await?
            .filter(|row| row.used_at.is_none() && row.expires_at > now)
            .ok_or(INVALID)?;
        let account = self
            .account(&row.user_id)
            .await?
            .filter(|a| a.active)
            .ok_or(INVALID)?;
        // Checked before the token is spent, so a refused password leaves the link usable.
        let note = AuditNote::by(
            &account.enterprise_id,
            &account.user_id,
            "password.reset",
            "success",
            &client,
            serde_json::json!({}),
        );
        self.set_password(&account, new_password, false, Some(note))
            .await?;
        let spent = reset_token::Entity::update_many()
            .col_expr(reset_token::Column::UsedAt, Expr::value(now))
            .filter(reset_token::Column::TokenHash.eq(&hash))
            .filter(reset_token::Column::UsedAt.is_null())
            .exec(self.db())
            .await?;
        if spent.rows_affected != 1 {
            return Err(INVALID);
        }
        let open: Vec<String> = session::Entity::find()
            .filter(session::Column::UserId.eq(&account.user_id))
            .filter(session::Column::EndedAt.is_null())
            .all(self.db())
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
        let note = AuditNote::by(
            &account.enterprise_id,
            &account.user_id,
            "session.end",
            "success",
            &client,
            serde_json::json!({"sessions": open, "reason": "password reset"}),
        );
        self.end_sessions(&open, "password reset", now, Some(note))
            .await?;
        Ok(())
    }

    /// Activation (D13): the invitation's token and a first password. The password is checked
    /// before the token is spent, so a refused one leaves the link usable.
    pub async fn activate(
        &self,
        token: &str,
        password: &str,
        client: ClientInfo,
    ) -> Result<(), AuthError> {
        const INVALID: AuthError =
            AuthError::Unauthenticated("the invitation link is invalid, used or expired");
        self.throttle(&client).await?;
        let unavailable = |e: crate::accounts::AccountsError| AuthError::Unavailable(e.to_string());
        let user_id = self
            .accounts()
            .redeem_invitation(token, false)
            .await
            .map_err(unavailable)?
            .ok_or(INVALID)?;
        let account = self
            .account(&user_id)
            .await?
            .filter(|a| a.active)
            .ok_or(INVALID)?;
        let problems = crate::passwords::problems(password, &account.password, &account.email);
        if !problems.is_empty() {
            return Err(AuthError::Invalid {
                field: "password",
                message: format!("the password needs {}", problems.join(", ")),
            });
        }
        self.accounts()
            .redeem_invitation(token, true)
            .await
            .map_err(unavailable)?
            .filter(|spent| *spent == user_id)
            .ok_or(INVALID)?;
        let note = AuditNote::by(
            &account.enterprise_id,
            &account.user_id,
            "user.activate",
            "success",
            &client,
            serde_json::json!({}),
        );
        self.set_password(&account, password, false, Some(note))
            .await?;
        Ok(())
    }

    /// Hands pending messages to `notifier`, oldest first; stops at the first failure so order
    /// holds. Each message is claimed for a minute so concurrent relays do not both send it.
    pub async fn relay_notifications(
        &self,
        notifier: &dyn Notifier,
        now: DateTime<Utc>,
    ) -> Result<usize, AuthError> {
        let pending = notification_outbox::Entity::find()
            .filter(notification_outbox::Column::DeliveredAt.is_null())
            .filter(
                Condition::any()
                    .add(notification_outbox::Column::ClaimedUntil.is_null())
                    .add(notification_outbox::Column::ClaimedUntil.lt(now)),
            )
            .order_by_asc(notification_outbox::Column::Id)
            .limit(100)
            .all(self.db())
            .await?;
        let mut delivered = 0;
        for row in pending {
            let claimed = notification_outbox::Entity::update_many()
                .col_expr(
                    notification_outbox::Column::ClaimedUntil,
                    Expr::value(now + Duration::seconds(60)),
                )
                .filter(notification_outbox::Column::Id.eq(&row.id))
                .filter(
                    Condition::any()
                        .add(notification_outbox::Column::ClaimedUntil.is_null())
                        .add(notification_outbox::Column::ClaimedUntil.lt(now)),
                )
                .exec(self.db())
                .await?;
            if claimed.rows_affected != 1 {
                continue;
            }
            let message = Notification {
                id: row.id.clone(),
                enterprise_id: row.enterprise_id,
                channel: praxis_runtime::notify::Channel::from_name(&row.channel),
                topic: row.topic,
                recipient: row.recipient,
                payload: row.payload,
            };
            if let Err(error) = notifier.deliver(&message).await {
                tracing::warn!(id = %row.id, %error, "notification not delivered; will retry");
                break;
            }
            notification_outbox::Entity::update_many()
                .col_expr(notification_outbox::Column::DeliveredAt, Expr::value(now))
                .filter(notification_outbox::Column::Id.eq(&row.id))
                .exec(self.db())
                .await?;
            delivered += 1;
        }
        Ok(delivered)
    }
}
