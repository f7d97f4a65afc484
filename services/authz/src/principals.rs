//! Where principal snapshots come from: the directory, in process (the all-in-one binary) or over
//! gRPC. A lookup that fails is an error for the caller, never a decision.

use crate::domain::PrincipalSnapshot;
use praxis_proto::directory::v1 as directory;
use praxis_runtime::Caller;
use praxis_runtime::request_context::PropagateTraceContext;
use std::time::Duration;
use tonic::transport::{Channel, Endpoint};

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("principal not found")]
    NotFound,
    #[error("directory unavailable: {0}")]
    Unavailable(String),
}

#[async_trait::async_trait]
pub trait PrincipalSource: Send + Sync {
    /// Reads `user_id` as the caller sees it; `authorization` is the caller's own bearer header,
    /// passed on so the directory applies the same tenant rules to the lookup.
    async fn principal(
        &self,
        caller: &Caller,
        authorization: Option<&str>,
        user_id: &str,
    ) -> Result<PrincipalSnapshot, LookupError>;
}

/// The decision's view of the directory's snapshot.
pub fn snapshot_from(snapshot: directory::PrincipalSnapshot) -> PrincipalSnapshot {
    let kind = directory::UserKind::try_from(snapshot.kind)
        .map(|kind| {
            kind.as_str_name()
                .trim_start_matches("USER_KIND_")
                .to_owned()
        })
        .unwrap_or_default();
    PrincipalSnapshot {
        user_id: snapshot.user_id,
        enterprise_id: snapshot.enterprise_id,
        kind,
        active: snapshot.status == i32::from(directory::UserStatus::Active),
        memberships: snapshot
            .memberships
            .into_iter()
            .map(|m| (m.practice_id, m.line_ids))
            .collect(),
        revision: snapshot.revision,
    }
}

/// The directory across the network.
pub struct GrpcDirectory {
    client: directory::user_service_client::UserServiceClient<
        tonic::service::interceptor::InterceptedService<Channel, PropagateTraceContext>,
    >,
}

impl GrpcDirectory {
    /// Connects lazily: authz starts even while the directory is not up yet.
    pub fn new(url: &str) -> Result<Self, tonic::transport::Error> {
        let channel = Endpoint::from_shared(url.to_owned())?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(2))
            .connect_lazy();
        let client = directory::user_service_client::UserServiceClient::with_interceptor(
            channel,
            PropagateTraceContext,
        );
        Ok(Self { client })
    }
}

#[async_trait::async_trait]
impl PrincipalSource for GrpcDirectory {
    async fn principal(
        &self,
        _caller: &Caller,
        authorization: Option<&str>,
        user_id: &str,
    ) -> Result<PrincipalSnapshot, LookupError> {
        let mut request = tonic::Request::new(directory::GetPrincipalSnapshotRequest {
            user_id: user_id.to_owned(),
        });
        if let Some(value) = authorization.and_then(|value| value.parse().ok()) {
            request.metadata_mut().insert("authorization", value);
        }
        match self.client.clone().get_principal_snapshot(request).await {
            Ok(response) => {
                let snapshot = response
                    .into_inner()
                    .snapshot
                    .ok_or_else(|| LookupError::Unavailable("empty answer".to_owned()))?;
                Ok(snapshot_from(snapshot))
            }
            Err(status) if status.code() == tonic::Code::NotFound => Err(LookupError::NotFound),
            Err(status) => Err(LookupError::Unavailable(format!(
                "{:?}: {}",
                status.code(),
                status.message()
            ))),
        }
    }
}
