//! What an actor may do in an enterprise, read from the directory's own records: a token's
//! kind may be minutes old, the directory's is current (a demoted admin loses rights at once).

use super::*;
use std::collections::HashSet;

#[derive(Debug, Clone)]
pub enum Authority {
    /// The operator or a platform admin.
    Platform,
    /// An active enterprise admin of this enterprise.
    Admin,
    /// An active user of another kind, with the practices they belong to.
    Member {
        kind: UserKind,
        practices: HashSet<PracticeId>,
    },
    /// Inactive, unknown, or of another enterprise.
    Nobody,
}

impl Authority {
    pub fn administers(&self) -> bool {
        matches!(self, Authority::Platform | Authority::Admin)
    }

    /// D10: may create a user of `kind` with memberships in `practices`.
    pub fn may_create(
        &self,
        min_access: MinAccess,
        kind: UserKind,
        practices: &[&PracticeId],
    ) -> Result<(), DomainError> {
        let (own_kind, own_practices) = match self {
            Authority::Platform | Authority::Admin => return Ok(()),
            Authority::Nobody => {
                return Err(DomainError::PermissionDenied(
                    "not an active user of this enterprise",
                ));
            }
            Authority::Member { kind, practices } => (*kind, practices),
        };
        if !min_access.admits(own_kind) {
            return Err(DomainError::PermissionDenied(
                "the enterprise's user_creation_min_access is above your kind (D10)",
            ));
        }
        let creatable: &[UserKind] = match own_kind {
            UserKind::Staff | UserKind::AdvancedStaff => &[UserKind::Staff],
            UserKind::Manager => &[UserKind::Staff, UserKind::AdvancedStaff, UserKind::Manager],
            UserKind::EnterpriseContentManager
            | UserKind::EnterpriseAdmin
            | UserKind::ServiceAccount => &[],
        };
        if !creatable.contains(&kind) {
            return Err(DomainError::PermissionDenied(
                "your kind may not grant that kind (D10)",
            ));
        }
        if practices
            .iter()
            .any(|practice| !own_practices.contains(*practice))
        {
            return Err(DomainError::PermissionDenied(
                "only in your own practices (D10)",
            ));
        }
        Ok(())
    }

    /// D11: may edit or disable `target`. STAFF and ADVANCED_STAFF never edit others; managers
    /// edit practice-level users below enterprise level, all of whose practices are theirs,
    /// while they hold the creation right.
    pub fn may_manage(&self, min_access: MinAccess, target: &User) -> Result<(), DomainError> {
        match self {
            Authority::Platform | Authority::Admin => Ok(()),
            Authority::Member {
                kind: UserKind::Manager,
                practices,
            } => {
                let practice_level = target.kind <= UserKind::Manager;
                let within = !target.memberships.is_empty()
                    && target.practice_ids().all(|p| practices.contains(p));
                if practice_level && within && min_access.admits(UserKind::Manager) {
                    Ok(())
                } else {
                    Err(DomainError::PermissionDenied(
                        "managers manage users of their own practices only (D11)",
                    ))
                }
            }
            _ => Err(DomainError::PermissionDenied(
                "only managers and enterprise admins edit other users (D11)",
            )),
        }
    }
}

impl Directory {
    pub(super) async fn authority(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
    ) -> Result<Authority, DomainError> {
        let caller = match actor {
            Actor::Operator => return Ok(Authority::Platform),
            Actor::Caller(caller) if caller.kind == PLATFORM_ADMIN_KIND => {
                return Ok(Authority::Platform);
            }
            Actor::Caller(caller) => caller,
        };
        // The user's row first: an admin's authority needs nothing more, and every write asks.
        let user_id = UserId(caller.user_id.clone());
        let Some(standing) = self.store().user_standing(&user_id).await? else {
            return Ok(Authority::Nobody);
        };
        if standing.enterprise_id != *enterprise_id || standing.status != UserStatus::Active {
            return Ok(Authority::Nobody);
        }
        Ok(match standing.kind {
            UserKind::EnterpriseAdmin => Authority::Admin,
            kind => Authority::Member {
                kind,
                practices: self
                    .store()
                    .user_practices(&user_id)
                    .await?
                    .into_iter()
                    .collect(),
            },
        })
    }
}
