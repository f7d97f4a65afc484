//! In one process, authz reads principals straight from the directory library: same rules, no
//! network hop.

use praxis_authz::domain::PrincipalSnapshot;
use praxis_authz::principals::{LookupError, PrincipalSource};
use praxis_directory::Directory;
use praxis_directory::domain::{Actor, DomainError, UserId, UserStatus};
use praxis_runtime::Caller;

pub struct DirectoryPrincipals(pub Directory);

#[async_trait::async_trait]
impl PrincipalSource for DirectoryPrincipals {
    async fn principal(
        &self,
        caller: &Caller,
        _authorization: Option<&str>,
        user_id: &str,
    ) -> Result<PrincipalSnapshot, LookupError> {
        let actor = Actor::Caller(caller.clone());
        match self
            .0
            .principal_snapshot(&actor, &UserId(user_id.to_owned()))
            .await
        {
            Ok(snapshot) => Ok(PrincipalSnapshot {
                user_id: snapshot.user.id.0,
                enterprise_id: snapshot.user.enterprise_id.0,
                kind: snapshot.user.kind.as_str().to_owned(),
                active: snapshot.user.status == UserStatus::Active,
                memberships: snapshot
                    .user
                    .memberships
                    .into_iter()
                    .map(|m| {
                        (
                            m.practice_id.0,
                            m.line_ids.into_iter().map(|line| line.0).collect(),
                        )
                    })
                    .collect(),
                revision: snapshot.revision,
            }),
            Err(DomainError::NotFound(_)) => Err(LookupError::NotFound),
            Err(error) => Err(LookupError::Unavailable(error.to_string())),
        }
    }
}
