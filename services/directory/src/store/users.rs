//! Users, their memberships, invitations and notifier messages.

use super::entities::{
    invitation, line, membership, membership_filter, membership_line, outbox, role_binding, user,
};
use super::{AuditEntry, Store, escape_like, split_page, storage};
use crate::domain::*;
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, Func, LikeExpr, Query};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait, DatabaseTransaction, EntityTrait,
    ExprTrait, QueryFilter, QueryOrder, QuerySelect,
};
use std::collections::{BTreeMap, HashSet};

/// An activation link's stored half: the hash of the token the user receives (D13).
pub struct NewInvitation {
    pub token_hash: String,
    pub expires_at: DateTime<Utc>,
}

/// A message for the notifier, written with the change that causes it.
pub struct OutboxMessage {
    pub topic: &'static str,
    pub recipient: String,
    pub payload: String,
}

/// Which users a filtered read may return.
enum Candidates<'a> {
    Ids(&'a [String]),
    Kinds(&'a [&'a str]),
}

/// What an update writes; `None` leaves a field alone.
#[derive(Default)]
pub struct UserChange {
    pub kind: Option<UserKind>,
    pub status: Option<UserStatus>,
    pub given_name: Option<String>,
    pub family_name: Option<String>,
    /// Replaces every membership of the user.
    pub memberships: Option<Vec<Membership>>,
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Store {
    /// Creates a user (with its memberships, invitation and notifier message) in one
    /// transaction, or returns the user an earlier call with the same request id made.
    pub async fn insert_user(
        &self,
        enterprise_id: &EnterpriseId,
        new_user: &NewUser,
        status: UserStatus,
        request_id: Option<&str>,
        invitation: Option<(NewInvitation, OutboxMessage)>,
        audit: &AuditEntry,
    ) -> Result<(User, i64, bool), DomainError> {
        let now = audit.time;
        let txn = self.begin().await?;
        if let Some(request_id) = request_id {
            let existing = user::Entity::find()
                .filter(user::Column::EnterpriseId.eq(enterprise_id.as_str()))
                .filter(user::Column::CreateRequestId.eq(request_id))
                .one(&txn)
                .await
                .map_err(storage)?;
            if let Some(existing) = existing {
                let revision = super::revision_of(&txn, enterprise_id).await?;
                let user = attach_memberships(&txn, vec![existing])
                    .await?
                    .pop()
                    .ok_or(DomainError::NotFound("user"))?;
                return Ok((user, revision, false));
            }
        }
        // The revision before the inserts (see `write`); a replay above changes nothing.
        let revision = Self::record_write(&txn, enterprise_id, audit).await?;
        let id = UserId::generate();
        let row = user::ActiveModel {
            id: Set(id.0.clone()),
            enterprise_id: Set(enterprise_id.0.clone()),
            email: Set(new_user.email.clone()),
            given_name: Set(new_user.given_name.clone()),
            family_name: Set(new_user.family_name.clone()),
            kind: Set(new_user.kind.as_str().to_owned()),
            status: Set(status.as_str().to_owned()),
            version: Set(1),
            create_request_id: Set(request_id.map(str::to_owned)),
            created_at: Set(now),
            deleted_at: Set(None),
            last_login_at: Set(None),
        };
        let inserted = user::Entity::insert(row)
            .exec_with_returning(&txn)
            .await
            .map_err(|error| match storage(error) {
                DomainError::AlreadyExists(_) => DomainError::AlreadyExists("user with this email"),
                other => other,
            })?;
        write_memberships(&txn, &id, new_user.kind, &new_user.memberships).await?;
        if let Some(person_id) = &new_user.person_id {
            super::persons::link_person(&txn, person_id, &id).await?;
        }
        if let Some((invitation, message)) = invitation {
            let row = invitation::ActiveModel {
                id: Set(uuid::Uuid::now_v7().to_string()),
                user_id: Set(id.0.clone()),
                token_hash: Set(invitation.token_hash),
                expires_at: Set(invitation.expires_at),
                used_at: Set(None),
                created_at: Set(now),
            };
            invitation::Entity::insert(row)
                .exec_without_returning(&txn)
                .await
                .map_err(storage)?;
            write_outbox(&txn, enterprise_id, message, now).await?;
        }
        let user = attach_memberships(&txn, vec![inserted])
            .await?
            .pop()
            .ok_or(DomainError::NotFound("user"))?;
        self.commit(txn, enterprise_id, revision).await?;
        Ok((user, revision, true))
    }

    /// Applies `change` if the user is still at `expected_version`: two writers that read the
    /// same version cannot both succeed, so memberships of two kinds never coexist (D4).
    pub async fn update_user(
        &self,
        user_id: &UserId,
        expected_version: i64,
        change: UserChange,
        audit: &AuditEntry,
    ) -> Result<(User, i64), DomainError> {
        let txn = self.begin().await?;
        let mut update = user::Entity::update_many()
            .col_expr(
                user::Column::Version,
                Expr::col(user::Column::Version).add(1),
            )
            .filter(user::Column::Id.eq(user_id.as_str()))
            .filter(user::Column::Version.eq(expected_version));
        if let Some(kind) = change.kind {
            update = update.col_expr(user::Column::Kind, Expr::value(kind.as_str()));
        }
        if let Some(status) = change.status {
            update = update.col_expr(user::Column::Status, Expr::value(status.as_str()));
        }
        if let Some(name) = &change.given_name {
            update = update.col_expr(user::Column::GivenName, Expr::value(name.as_str()));
        }
        if let Some(name) = &change.family_name {
            update = update.col_expr(user::Column::FamilyName, Expr::value(name.as_str()));
        }
        if let Some(deleted_at) = change.deleted_at {
            update = update.col_expr(user::Column::DeletedAt, Expr::value(deleted_at));
        }
        let updated = update.exec(&txn).await.map_err(storage)?;
        if updated.rows_affected != 1 {
            return Err(DomainError::Aborted("the user changed since it was read"));
        }
        let row = user::Entity::find_by_id(user_id.as_str())
            .one(&txn)
            .await
            .map_err(storage)?;
        let row = row.ok_or(DomainError::NotFound("user"))?;
        if let Some(memberships) = &change.memberships {
            membership::Entity::delete_many()
                .filter(membership::Column::UserId.eq(user_id.as_str()))
                .exec(&txn)
                .await
                .map_err(storage)?;
            let kind = UserKind::parse(&row.kind)
                .ok_or_else(|| DomainError::Storage(format!("unknown kind {}", row.kind)))?;
            write_memberships(&txn, user_id, kind, memberships).await?;
        }
        let enterprise_id = EnterpriseId(row.enterprise_id.clone());
        let revision = Self::record_write(&txn, &enterprise_id, audit).await?;
        let user = attach_memberships(&txn, vec![row])
            .await?
            .pop()
            .ok_or(DomainError::NotFound("user"))?;
        self.commit(txn, &enterprise_id, revision).await?;
        Ok((user, revision))
    }

    pub async fn user(&self, id: &UserId) -> Result<Option<User>, DomainError> {
        let row = user::Entity::find_by_id(id.as_str())
            .one(&self.db)
            .await
            .map_err(storage)?;
        Ok(attach_memberships(&self.db, row.into_iter().collect())
            .await?
            .pop())
    }

    /// A user's enterprise, kind and status, without their memberships: enough to know what
    /// they may do as an admin, or whether they can be bound a role (four queries fewer than
    /// `user` on every write's authority check).
    pub async fn user_standing(&self, id: &UserId) -> Result<Option<UserStanding>, DomainError> {
        let Some(row) = user::Entity::find_by_id(id.as_str())
            .one(&self.db)
            .await
            .map_err(storage)?
        else {
            return Ok(None);
        };
        let (kind, status) = kind_and_status(&row)?;
        Ok(Some(UserStanding {
            enterprise_id: EnterpriseId(row.enterprise_id),
            kind,
            status,
        }))
    }

    /// The practices a user is a member of, without their lines and filters.
    pub async fn user_practices(&self, id: &UserId) -> Result<Vec<PracticeId>, DomainError> {
        let rows = membership::Entity::find()
            .filter(membership::Column::UserId.eq(id.as_str()))
            .all(&self.db)
            .await
            .map_err(storage)?;
        Ok(rows
            .into_iter()
            .map(|row| PracticeId(row.practice_id))
            .collect())
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<User>, DomainError> {
        let row = user::Entity::find()
            .filter(user::Column::Email.eq(email))
            .one(&self.db)
            .await
            .map_err(storage)?;
        Ok(attach_memberships(&self.db, row.into_iter().collect())
            .await?
            .pop())
    }

    pub async fn list_users(
        &self,
        enterprise_id: &EnterpriseId,
        filter: &UserFilter,
        page: &PageRequest,
    ) -> Result<Page<User>, DomainError> {
        let rows = match &filter.practice_id {
            None => {
                self.filtered_users(enterprise_id, filter, page, None)
                    .await?
            }
            Some(practice_id) => {
                self.practice_users(enterprise_id, filter, page, practice_id)
                    .await?
            }
        };
        let (rows, next_after) = split_page(rows, page.size, |row| row.id.clone());
        let items = attach_memberships(&self.db, rows).await?;
        Ok(Page { items, next_after })
    }

    /// Up to `page.size + 1` users after the cursor, in id order, passing every filter but the
    /// practice; `only` narrows them to the given ids, `kinds` to the given kinds.
    async fn filtered_users(
        &self,
        enterprise_id: &EnterpriseId,
        filter: &UserFilter,
        page: &PageRequest,
        only: Option<Candidates<'_>>,
    ) -> Result<Vec<user::Model>, DomainError> {
        let mut query = user::Entity::find()
            .filter(user::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .order_by_asc(user::Column::Id)
            .limit(page.size + 1);
        if let Some(after) = &page.after {
            query = query.filter(user::Column::Id.gt(after.as_str()));
        }
        query = match filter.status {
            Some(status) => query.filter(user::Column::Status.eq(status.as_str())),
            None => query.filter(user::Column::Status.ne(UserStatus::Deleted.as_str())),
        };
        if let Some(kind) = filter.kind {
            query = query.filter(user::Column::Kind.eq(kind.as_str()));
        }
        match only {
            Some(Candidates::Ids(ids)) => {
                query = query.filter(user::Column::Id.is_in(ids.iter().map(String::as_str)))
            }
            Some(Candidates::Kinds(kinds)) => {
                query = query.filter(user::Column::Kind.is_in(kinds.iter().copied()))
            }
            None => {}
        }
        if let Some(role_id) = &filter.role_id {
            let bound = Query::select()
                .column(role_binding::Column::UserId)
                .from(role_binding::Entity)
                .and_where(role_binding::Column::RoleId.eq(role_id.as_str()))
                .to_owned();
            query = query.filter(user::Column::Id.in_subquery(bound));
        }
        if let Some(text) = &filter.query {
            let pattern = format!("%{}%", escape_like(&text.to_lowercase()));
            let matches = |column: user::Column| {
                Expr::expr(Func::lower(Expr::col(column)))
                    .like(LikeExpr::new(pattern.as_str()).escape('\\'))
            };
            query = query.filter(
                Condition::any()
                    .add(matches(user::Column::Email))
                    .add(matches(user::Column::GivenName))
                    .add(matches(user::Column::FamilyName)),
            );
        }
        query.all(&self.db).await.map_err(storage)
    }

    /// A practice's users: its members, walked in id order through the (practice, user)
    /// index a chunk at a time, merged with the enterprise-level users, who reach every
    /// practice without a membership (D8). A large practice costs a page, not a scan.
    async fn practice_users(
        &self,
        enterprise_id: &EnterpriseId,
        filter: &UserFilter,
        page: &PageRequest,
        practice_id: &PracticeId,
    ) -> Result<Vec<user::Model>, DomainError> {
        let wanted = usize::try_from(page.size + 1).unwrap_or(usize::MAX);
        let chunk = std::cmp::max((page.size + 1).saturating_mul(4), 64);
        let mut members = Vec::new();
        let mut cursor = page.after.clone();
        loop {
            let mut ids = membership::Entity::find()
                .filter(membership::Column::PracticeId.eq(practice_id.as_str()))
                .order_by_asc(membership::Column::UserId)
                .limit(chunk);
            if let Some(after) = &cursor {
                ids = ids.filter(membership::Column::UserId.gt(after.as_str()));
            }
            let ids: Vec<String> = ids
                .all(&self.db)
                .await
                .map_err(storage)?
                .into_iter()
                .map(|m| m.user_id)
                .collect();
            let exhausted = (ids.len() as u64) < chunk;
            cursor = ids.last().cloned();
            if !ids.is_empty() {
                members.extend(
                    self.filtered_users(enterprise_id, filter, page, Some(Candidates::Ids(&ids)))
                        .await?,
                );
            }
            if members.len() >= wanted || exhausted {
                break;
            }
        }
        let enterprise_level: Vec<&str> = UserKind::ALL
            .iter()
            .filter(|kind| kind.is_enterprise_level())
            .map(|kind| kind.as_str())
            .collect();
        let mut rows = self
            .filtered_users(
                enterprise_id,
                filter,
                page,
                Some(Candidates::Kinds(&enterprise_level)),
            )
            .await?;
        rows.extend(members);
        rows.sort_by(|a, b| a.id.cmp(&b.id));
        rows.dedup_by(|a, b| a.id == b.id);
        rows.truncate(wanted);
        Ok(rows)
    }

    /// Messages not yet handed to the notifier, oldest first.
    pub async fn pending_outbox(
        &self,
        limit: u64,
    ) -> Result<Vec<praxis_runtime::notify::Notification>, DomainError> {
        let rows = outbox::Entity::find()
            .filter(outbox::Column::DeliveredAt.is_null())
            .order_by_asc(outbox::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(storage)?;
        Ok(rows
            .into_iter()
            .map(|row| praxis_runtime::notify::Notification {
                id: row.id,
                enterprise_id: row.enterprise_id,
                channel: praxis_runtime::notify::Channel::Email,
                topic: row.topic,
                recipient: row.recipient,
                payload: row.payload,
            })
            .collect())
    }

    /// Of `ids`, the users who may log in (ACTIVE or INVITED), in one query.
    pub async fn login_capable(&self, ids: &[String]) -> Result<HashSet<String>, DomainError> {
        Ok(user::Entity::find()
            .filter(user::Column::Id.is_in(ids.iter().cloned()))
            .filter(
                user::Column::Status
                    .is_in([UserStatus::Active.as_str(), UserStatus::Invited.as_str()]),
            )
            .all(&self.db)
            .await
            .map_err(storage)?
            .into_iter()
            .map(|row| row.id)
            .collect())
    }

    /// The user an unexpired, unused invitation belongs to.
    pub async fn invitation_user(
        &self,
        token_hash: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<UserId>, DomainError> {
        Ok(invitation::Entity::find()
            .filter(invitation::Column::TokenHash.eq(token_hash))
            .filter(invitation::Column::UsedAt.is_null())
            .filter(invitation::Column::ExpiresAt.gt(now))
            .one(&self.db)
            .await
            .map_err(storage)?
            .map(|row| UserId(row.user_id)))
    }

    /// Spends the invitation and makes its INVITED user ACTIVE, in one audited write (D13);
    /// `false` when the invitation was spent or expired in between.
    pub async fn redeem_invitation(
        &self,
        token_hash: &str,
        user: &User,
        audit: &AuditEntry,
    ) -> Result<bool, DomainError> {
        let now = audit.time;
        let (spent, _) = self
            .write(&user.enterprise_id, audit, async |txn| {
                let spent = invitation::Entity::update_many()
                    .col_expr(invitation::Column::UsedAt, Expr::value(now))
                    .filter(invitation::Column::TokenHash.eq(token_hash))
                    .filter(invitation::Column::UsedAt.is_null())
                    .filter(invitation::Column::ExpiresAt.gt(now))
                    .exec(txn)
                    .await
                    .map_err(storage)?;
                if spent.rows_affected != 1 {
                    return Err(DomainError::NotFound("invitation"));
                }
                activate_invited(txn, &user.id).await?;
                Ok(true)
            })
            .await
            .or_else(|error| match error {
                DomainError::NotFound(_) => Ok((false, 0)),
                other => Err(other),
            })?;
        Ok(spent)
    }

    /// D13: an invited user who logged in took their account without the link (an admin gave
    /// them a temporary password, which they changed at that login): they become ACTIVE and
    /// their unused links are spent. False when they were not INVITED any more.
    pub async fn activate_by_login(
        &self,
        user: &User,
        audit: &AuditEntry,
    ) -> Result<bool, DomainError> {
        let now = audit.time;
        let (activated, _) = self
            .write(&user.enterprise_id, audit, async |txn| {
                if activate_invited(txn, &user.id).await? != 1 {
                    // Someone else activated, disabled or deleted them meanwhile: no write.
                    return Err(DomainError::NotFound("invited user"));
                }
                invitation::Entity::update_many()
                    .col_expr(invitation::Column::UsedAt, Expr::value(now))
                    .filter(invitation::Column::UserId.eq(user.id.as_str()))
                    .filter(invitation::Column::UsedAt.is_null())
                    .exec(txn)
                    .await
                    .map_err(storage)?;
                Ok(true)
            })
            .await
            .or_else(|error| match error {
                DomainError::NotFound(_) => Ok((false, 0)),
                other => Err(other),
            })?;
        Ok(activated)
    }

    /// D19: identity records each successful login; not an audited directory change (identity
    /// audits the login itself) and no revision moves.
    pub async fn record_login(
        &self,
        user_id: &UserId,
        at: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        user::Entity::update_many()
            .col_expr(user::Column::LastLoginAt, Expr::value(at))
            .filter(user::Column::Id.eq(user_id.as_str()))
            .exec(&self.db)
            .await
            .map_err(storage)?;
        Ok(())
    }

    /// Active users of the enterprise whose last login, or creation when they never logged
    /// in, is before `cutoff` (D19).
    pub async fn inactive_users(
        &self,
        enterprise_id: &EnterpriseId,
        cutoff: DateTime<Utc>,
    ) -> Result<Vec<User>, DomainError> {
        let rows = user::Entity::find()
            .filter(user::Column::EnterpriseId.eq(enterprise_id.as_str()))
            .filter(
                user::Column::Status
                    .is_in([UserStatus::Active.as_str(), UserStatus::Invited.as_str()]),
            )
            .filter(
                Condition::any()
                    .add(user::Column::LastLoginAt.lt(cutoff))
                    .add(
                        Condition::all()
                            .add(user::Column::LastLoginAt.is_null())
                            .add(user::Column::CreatedAt.lt(cutoff)),
                    ),
            )
            .all(&self.db)
            .await
            .map_err(storage)?;
        attach_memberships(&self.db, rows).await
    }

    /// Claims a message for one relay for `lease`: several directory replicas relay the same
    /// outbox, and only the one whose claim lands delivers. A relay that dies mid-delivery
    /// loses its claim when the lease runs out, and another delivers (at least once).
    pub async fn claim_outbox(
        &self,
        id: &str,
        now: DateTime<Utc>,
        lease: chrono::Duration,
    ) -> Result<bool, DomainError> {
        let claimed = outbox::Entity::update_many()
            .col_expr(outbox::Column::ClaimedUntil, Expr::value(now + lease))
            .filter(outbox::Column::Id.eq(id))
            .filter(outbox::Column::DeliveredAt.is_null())
            .filter(
                Condition::any()
                    .add(outbox::Column::ClaimedUntil.is_null())
                    .add(outbox::Column::ClaimedUntil.lt(now)),
            )
            .exec(&self.db)
            .await
            .map_err(storage)?;
        Ok(claimed.rows_affected == 1)
    }

    /// Delivered messages keep no payload: an activation link is a credential.
    pub async fn mark_delivered(&self, id: &str, now: DateTime<Utc>) -> Result<(), DomainError> {
        outbox::Entity::update_many()
            .col_expr(outbox::Column::DeliveredAt, Expr::value(now))
            .col_expr(outbox::Column::Payload, Expr::value(""))
            .filter(outbox::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map_err(storage)?;
        Ok(())
    }
}

async fn write_outbox(
    txn: &DatabaseTransaction,
    enterprise_id: &EnterpriseId,
    message: OutboxMessage,
    now: DateTime<Utc>,
) -> Result<(), DomainError> {
    let row = outbox::ActiveModel {
        id: Set(uuid::Uuid::now_v7().to_string()),
        enterprise_id: Set(enterprise_id.0.clone()),
        topic: Set(message.topic.to_owned()),
        recipient: Set(message.recipient),
        payload: Set(message.payload),
        created_at: Set(now),
        delivered_at: Set(None),
        claimed_until: Set(None),
    };
    outbox::Entity::insert(row)
        .exec_without_returning(txn)
        .await
        .map_err(storage)?;
    Ok(())
}

/// Lines are stored only for STAFF: the other practice-level kinds hold every line (D7).
async fn write_memberships(
    txn: &DatabaseTransaction,
    user_id: &UserId,
    kind: UserKind,
    memberships: &[Membership],
) -> Result<(), DomainError> {
    if memberships.is_empty() {
        return Ok(());
    }
    let rows = memberships.iter().map(|m| membership::ActiveModel {
        user_id: Set(user_id.0.clone()),
        practice_id: Set(m.practice_id.0.clone()),
    });
    membership::Entity::insert_many(rows)
        .exec(txn)
        .await
        .map_err(storage)?;
    let lines: Vec<_> = memberships
        .iter()
        .filter(|_| kind == UserKind::Staff)
        .flat_map(|m| {
            m.line_ids.iter().map(|line| membership_line::ActiveModel {
                user_id: Set(user_id.0.clone()),
                practice_id: Set(m.practice_id.0.clone()),
                line_id: Set(line.0.clone()),
            })
        })
        .collect();
    if !lines.is_empty() {
        membership_line::Entity::insert_many(lines)
            .exec(txn)
            .await
            .map_err(storage)?;
    }
    let filters: Vec<_> = memberships
        .iter()
        .flat_map(|m| {
            m.resource_filter_ids
                .iter()
                .map(|resource| membership_filter::ActiveModel {
                    user_id: Set(user_id.0.clone()),
                    practice_id: Set(m.practice_id.0.clone()),
                    resource_id: Set(resource.0.clone()),
                })
        })
        .collect();
    if !filters.is_empty() {
        membership_filter::Entity::insert_many(filters)
            .exec(txn)
            .await
            .map_err(storage)?;
    }
    Ok(())
}

/// Users with their memberships; MANAGER and ADVANCED_STAFF memberships list every current
/// line of the practice (D7).
pub(super) async fn attach_memberships<C: ConnectionTrait>(
    db: &C,
    rows: Vec<user::Model>,
) -> Result<Vec<User>, DomainError> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
    let found = membership_rows(db, ids).await?;
    users_with(rows, found)
}

/// A stored user's kind and status, which the database holds as text.
fn kind_and_status(row: &user::Model) -> Result<(UserKind, UserStatus), DomainError> {
    let kind = UserKind::parse(&row.kind)
        .ok_or_else(|| DomainError::Storage(format!("unknown kind {}", row.kind)))?;
    let status = UserStatus::parse(&row.status)
        .ok_or_else(|| DomainError::Storage(format!("unknown status {}", row.status)))?;
    Ok((kind, status))
}

/// Who a user is, short of their memberships.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserStanding {
    pub enterprise_id: EnterpriseId,
    pub kind: UserKind,
    pub status: UserStatus,
}

/// The membership rows of some users, as stored.
#[derive(Debug, Default, serde::Deserialize)]
pub(super) struct MembershipRows {
    /// By practice.
    pub memberships: Vec<membership::Model>,
    /// By line.
    pub staff_lines: Vec<membership_line::Model>,
    /// By resource.
    pub filters: Vec<membership_filter::Model>,
    /// Every line of the practices the memberships name, by id.
    pub practice_lines: Vec<line::Model>,
}

pub(super) async fn membership_rows<C: ConnectionTrait>(
    db: &C,
    ids: Vec<String>,
) -> Result<MembershipRows, DomainError> {
    let memberships = membership::Entity::find()
        .filter(membership::Column::UserId.is_in(ids.clone()))
        .order_by_asc(membership::Column::PracticeId)
        .all(db)
        .await
        .map_err(storage)?;
    let staff_lines = membership_line::Entity::find()
        .filter(membership_line::Column::UserId.is_in(ids.clone()))
        .order_by_asc(membership_line::Column::LineId)
        .all(db)
        .await
        .map_err(storage)?;
    let filters = membership_filter::Entity::find()
        .filter(membership_filter::Column::UserId.is_in(ids))
        .order_by_asc(membership_filter::Column::ResourceId)
        .all(db)
        .await
        .map_err(storage)?;
    let practices: HashSet<String> = memberships.iter().map(|m| m.practice_id.clone()).collect();
    let practice_lines = if practices.is_empty() {
        Vec::new()
    } else {
        line::Entity::find()
            .filter(line::Column::PracticeId.is_in(practices))
            .order_by_asc(line::Column::Id)
            .all(db)
            .await
            .map_err(storage)?
    };
    Ok(MembershipRows {
        memberships,
        staff_lines,
        filters,
        practice_lines,
    })
}

/// `rows` as users, with the memberships `found` holds for them.
pub(super) fn users_with(
    rows: Vec<user::Model>,
    found: MembershipRows,
) -> Result<Vec<User>, DomainError> {
    let MembershipRows {
        memberships,
        staff_lines,
        filters,
        practice_lines,
    } = found;
    let mut all_lines: BTreeMap<&str, Vec<LineId>> = BTreeMap::new();
    for line in &practice_lines {
        all_lines
            .entry(line.practice_id.as_str())
            .or_default()
            .push(LineId(line.id.clone()));
    }
    let key = |user: &str, practice: &str| (user.to_owned(), practice.to_owned());
    let mut lines_of: BTreeMap<(String, String), Vec<LineId>> = BTreeMap::new();
    for row in staff_lines {
        lines_of
            .entry(key(&row.user_id, &row.practice_id))
            .or_default()
            .push(LineId(row.line_id));
    }
    let mut filters_of: BTreeMap<(String, String), Vec<ResourceId>> = BTreeMap::new();
    for row in filters {
        filters_of
            .entry(key(&row.user_id, &row.practice_id))
            .or_default()
            .push(ResourceId(row.resource_id));
    }
    let mut memberships_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in memberships {
        memberships_of
            .entry(row.user_id)
            .or_default()
            .push(row.practice_id);
    }
    rows.into_iter()
        .map(|row| {
            let (kind, status) = kind_and_status(&row)?;
            let memberships = memberships_of
                .remove(&row.id)
                .unwrap_or_default()
                .into_iter()
                .map(|practice_id| {
                    let k = key(&row.id, &practice_id);
                    let line_ids = match kind {
                        UserKind::Staff => lines_of.remove(&k).unwrap_or_default(),
                        _ => all_lines
                            .get(practice_id.as_str())
                            .cloned()
                            .unwrap_or_default(),
                    };
                    Membership {
                        resource_filter_ids: filters_of.remove(&k).unwrap_or_default(),
                        practice_id: PracticeId(practice_id),
                        line_ids,
                    }
                })
                .collect();
            Ok(User {
                id: UserId(row.id),
                enterprise_id: EnterpriseId(row.enterprise_id),
                email: row.email,
                given_name: row.given_name,
                family_name: row.family_name,
                kind,
                status,
                memberships,
                created_at: row.created_at,
                version: row.version,
                last_login_at: row.last_login_at,
            })
        })
        .collect()
}

/// Makes `user_id` ACTIVE if it is still INVITED; how many rows changed (0 or 1).
async fn activate_invited(txn: &DatabaseTransaction, user_id: &UserId) -> Result<u64, DomainError> {
    Ok(user::Entity::update_many()
        .col_expr(
            user::Column::Status,
            Expr::value(UserStatus::Active.as_str()),
        )
        .filter(user::Column::Id.eq(user_id.as_str()))
        .filter(user::Column::Status.eq(UserStatus::Invited.as_str()))
        .exec(txn)
        .await
        .map_err(storage)?
        .rows_affected)
}
