//! Sessions (I4) and refresh tokens (I5). A session lives until it ends, idles past its timeout
//! or reaches its absolute lifetime; refresh tokens are single use, and presenting a spent one
//! ends the session it belongs to (someone else has a copy).

use crate::store::{refresh_token, session};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder,
};
use sha2::{Digest, Sha256};

pub const REFRESH_PREFIX: &str = "prt_";

pub fn digest(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn new_refresh_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    format!("{REFRESH_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Why a session is not alive at `now`, if it is not.
pub fn dead_reason(row: &session::Model, now: DateTime<Utc>) -> Option<&'static str> {
    if row.ended_at.is_some() {
        Some("ended")
    } else if now >= row.expires_at {
        Some("absolute lifetime reached")
    } else if now >= row.last_seen_at + Duration::seconds(row.idle_timeout_seconds) {
        Some("idle timeout")
    } else {
        None
    }
}

pub async fn get(db: &DatabaseConnection, id: &str) -> Result<Option<session::Model>, DbErr> {
    session::Entity::find_by_id(id).one(db).await
}

/// The user's sessions that are alive, oldest first.
pub async fn alive(
    db: &DatabaseConnection,
    user_id: &str,
    now: DateTime<Utc>,
) -> Result<Vec<session::Model>, DbErr> {
    Ok(session::Entity::find()
        .filter(session::Column::UserId.eq(user_id))
        .filter(session::Column::EndedAt.is_null())
        .filter(session::Column::ExpiresAt.gt(now))
        .order_by_asc(session::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .filter(|row| dead_reason(row, now).is_none())
        .collect())
}

/// Ends the sessions named (if still open); returns how many it ended.
pub async fn end<C: ConnectionTrait>(
    db: &C,
    ids: &[String],
    reason: &str,
    now: DateTime<Utc>,
) -> Result<u64, DbErr> {
    if ids.is_empty() {
        return Ok(0);
    }
    let result = session::Entity::update_many()
        .col_expr(session::Column::EndedAt, Expr::value(now))
        .col_expr(session::Column::EndReason, Expr::value(reason.to_owned()))
        .filter(session::Column::Id.is_in(ids.iter().cloned()))
        .filter(session::Column::EndedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected)
}

/// Stores a new refresh token for `session_id` and returns it.
pub async fn issue_refresh<C: ConnectionTrait>(
    db: &C,
    session_id: &str,
    now: DateTime<Utc>,
) -> Result<String, DbErr> {
    let token = new_refresh_token();
    refresh_token::Entity::insert(refresh_token::ActiveModel {
        token_hash: Set(digest(&token)),
        session_id: Set(session_id.to_owned()),
        created_at: Set(now),
        used_at: Set(None),
    })
    .exec_without_returning(db)
    .await?;
    Ok(token)
}

/// Spends a refresh token: true when this call spent it, false when it was spent already.
pub async fn spend<C: ConnectionTrait>(
    db: &C,
    token_hash: &str,
    now: DateTime<Utc>,
) -> Result<bool, DbErr> {
    let result = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::UsedAt, Expr::value(now))
        .filter(refresh_token::Column::TokenHash.eq(token_hash))
        .filter(refresh_token::Column::UsedAt.is_null())
        .exec(db)
        .await?;
    Ok(result.rows_affected == 1)
}
