//! In one process, authz reads principals straight from the directory library: same rules, no
//! network hop.

use praxis_authz::principals::{LookupError, PrincipalSource};
use praxis_directory::Directory;
use praxis_directory::domain::{Actor, DomainError, EnterpriseId, UserId};
use praxis_proto::directory::v1 as pb;
use praxis_runtime::Caller;

pub struct DirectoryPrincipals(pub Directory);

#[async_trait::async_trait]
impl PrincipalSource for DirectoryPrincipals {
    async fn principal(
        &self,
        caller: &Caller,
        _authorization: Option<&str>,
        user_id: &str,
    ) -> Result<pb::PrincipalSnapshot, LookupError> {
        let actor = Actor::Caller(caller.clone());
        match self
            .0
            .principal_snapshot(&actor, &UserId(user_id.to_owned()))
            .await
        {
            Ok(snapshot) => Ok(praxis_directory::grpc::snapshot_proto(snapshot)),
            Err(DomainError::NotFound(_)) => Err(LookupError::NotFound),
            Err(DomainError::PermissionDenied(_)) => Err(LookupError::Denied),
            Err(error) => Err(LookupError::Unavailable(error.to_string())),
        }
    }

    async fn revision(
        &self,
        caller: &Caller,
        _authorization: Option<&str>,
        enterprise_id: &str,
    ) -> Result<i64, LookupError> {
        let actor = Actor::Caller(caller.clone());
        match self
            .0
            .get_enterprise(&actor, &EnterpriseId(enterprise_id.to_owned()))
            .await
        {
            Ok(enterprise) => Ok(enterprise.revision),
            Err(DomainError::NotFound(_)) => Err(LookupError::NotFound),
            Err(error) => Err(LookupError::Unavailable(error.to_string())),
        }
    }
}
