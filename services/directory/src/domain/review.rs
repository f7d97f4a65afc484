//! D19: access reviews, and disabling accounts idle past the enterprise's limit.

use super::roles::BindingFilter;
use super::*;
use crate::store::UserChange;
use chrono::{DateTime, Duration, Utc};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessFlag {
    Inactive,
    NeverLoggedIn,
    ExpiringRole,
    ExpiredRole,
}

#[derive(Debug, Clone)]
pub struct ReviewEntry {
    pub user: User,
    pub role_ids: Vec<String>,
    pub flags: Vec<AccessFlag>,
}

/// Bindings ending within this window are flagged as expiring.
pub const EXPIRING_WITHIN: Duration = Duration::days(14);

impl Directory {
    pub async fn review_access(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        inactive_days: u32,
        page: &PageRequest,
        now: DateTime<Utc>,
    ) -> Result<(Page<ReviewEntry>, i64), DomainError> {
        let enterprise = self.visible_enterprise(actor, enterprise_id).await?;
        if !self.authority(actor, enterprise_id).await?.administers() {
            return Err(DomainError::PermissionDenied(
                "only enterprise admins review access (D19)",
            ));
        }
        let users = self
            .store
            .list_users(enterprise_id, &UserFilter::default(), page)
            .await?;
        let inactive_before = now - Duration::days(i64::from(inactive_days));
        let mut entries = Vec::with_capacity(users.items.len());
        for user in users.items {
            let filter = BindingFilter {
                user_id: Some(user.id.clone()),
                ..BindingFilter::default()
            };
            let bindings = self.store.bindings(enterprise_id, &filter).await?;
            let mut flags = Vec::new();
            match user.last_login_at {
                None => flags.push(AccessFlag::NeverLoggedIn),
                Some(at) if at < inactive_before => flags.push(AccessFlag::Inactive),
                Some(_) => {}
            }
            if user.last_login_at.is_none() && user.created_at < inactive_before {
                flags.push(AccessFlag::Inactive);
            }
            if bindings
                .iter()
                .any(|b| b.valid_until.is_some_and(|until| until <= now))
            {
                flags.push(AccessFlag::ExpiredRole);
            }
            if bindings.iter().any(|b| {
                b.valid_until
                    .is_some_and(|until| until > now && until <= now + EXPIRING_WITHIN)
            }) {
                flags.push(AccessFlag::ExpiringRole);
            }
            let role_ids = bindings.into_iter().map(|b| b.role_id.0).collect();
            entries.push(ReviewEntry {
                user,
                role_ids,
                flags,
            });
        }
        Ok((
            Page {
                items: entries,
                next_after: users.next_after,
            },
            enterprise.revision,
        ))
    }

    /// Disables every account idle past its enterprise's `inactivity_limit_days`; returns how
    /// many. Each is an ordinary audited disable by `system:inactivity`.
    pub async fn disable_inactive_users(&self, now: DateTime<Utc>) -> Result<usize, DomainError> {
        let mut disabled = 0;
        for enterprise_id in self.store.enterprise_ids().await? {
            let Some(enterprise) = self.store.enterprise(&enterprise_id).await? else {
                continue;
            };
            let limit = enterprise.policy.inactivity_limit_days;
            if limit == 0 {
                continue;
            }
            let cutoff = now - Duration::days(i64::from(limit));
            for user in self.store.inactive_users(&enterprise_id, cutoff).await? {
                let audit = crate::store::AuditEntry::write(
                    "system:inactivity".to_owned(),
                    "user.disable",
                    format!("user:{}", user.id),
                    serde_json::json!({"reason": "inactive", "limit_days": limit}),
                    now,
                );
                let change = UserChange {
                    status: Some(UserStatus::Disabled),
                    ..UserChange::default()
                };
                match self
                    .store
                    .update_user(&user.id, user.version, change, &audit)
                    .await
                {
                    Ok(_) => disabled += 1,
                    // Changed meanwhile: the next sweep looks again.
                    Err(DomainError::Aborted(_)) => {}
                    Err(other) => return Err(other),
                }
            }
        }
        Ok(disabled)
    }
}
