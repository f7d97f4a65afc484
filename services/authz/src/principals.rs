//! Where principal snapshots come from: the directory, in process (the all-in-one binary) or over
//! gRPC. A lookup that fails is an error for the caller, never a decision.

use praxis_proto::directory::v1 as directory;
use praxis_runtime::Caller;
use praxis_runtime::request_context::PropagateTraceContext;
use std::time::Duration;
use tonic::transport::Channel;

#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    #[error("principal not found")]
    NotFound,
    #[error("not allowed to read this principal")]
    Denied,
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
    ) -> Result<directory::PrincipalSnapshot, LookupError>;

    /// The enterprise's current revision, to confirm cached data is still current.
    async fn revision(
        &self,
        caller: &Caller,
        authorization: Option<&str>,
        enterprise_id: &str,
    ) -> Result<i64, LookupError>;

    /// Every active user of the enterprise, as the caller may list them (A6 lookups), at most
    /// `limit`.
    async fn users(
        &self,
        caller: &Caller,
        authorization: Option<&str>,
        enterprise_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, LookupError>;
}

/// The directory across the network.
type Traced = tonic::service::interceptor::InterceptedService<Channel, PropagateTraceContext>;

pub struct GrpcDirectory {
    users: directory::user_service_client::UserServiceClient<Traced>,
    enterprises: directory::enterprise_service_client::EnterpriseServiceClient<Traced>,
}

fn with_authorization<T>(message: T, authorization: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(value) = authorization.and_then(|value| value.parse().ok()) {
        request.metadata_mut().insert("authorization", value);
    }
    request
}

fn lookup_error(status: tonic::Status) -> LookupError {
    match status.code() {
        tonic::Code::NotFound => LookupError::NotFound,
        tonic::Code::PermissionDenied => LookupError::Denied,
        code => LookupError::Unavailable(format!("{code:?}: {}", status.message())),
    }
}

impl GrpcDirectory {
    /// Connects lazily: authz starts even while the directory is not up yet.
    pub fn new(
        url: &str,
        tls: &praxis_runtime::tls::TlsConfig,
    ) -> Result<Self, praxis_runtime::tls::TlsError> {
        let channel = tls
            .endpoint(url)?
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(2))
            .connect_lazy();
        Ok(Self {
            users: directory::user_service_client::UserServiceClient::with_interceptor(
                channel.clone(),
                PropagateTraceContext,
            ),
            enterprises:
                directory::enterprise_service_client::EnterpriseServiceClient::with_interceptor(
                    channel,
                    PropagateTraceContext,
                ),
        })
    }
}

#[async_trait::async_trait]
impl PrincipalSource for GrpcDirectory {
    async fn principal(
        &self,
        _caller: &Caller,
        authorization: Option<&str>,
        user_id: &str,
    ) -> Result<directory::PrincipalSnapshot, LookupError> {
        let request = with_authorization(
            directory::GetPrincipalSnapshotRequest {
                user_id: user_id.to_owned(),
            },
            authorization,
        );
        let response = self
            .users
            .clone()
            .get_principal_snapshot(request)
            .await
            .map_err(lookup_error)?;
        response
            .into_inner()
            .snapshot
            .ok_or_else(|| LookupError::Unavailable("empty answer".to_owned()))
    }

    async fn revision(
        &self,
        _caller: &Caller,
        authorization: Option<&str>,
        enterprise_id: &str,
    ) -> Result<i64, LookupError> {
        let request = with_authorization(
            directory::GetEnterpriseRequest {
                enterprise_id: enterprise_id.to_owned(),
            },
            authorization,
        );
        let response = self
            .enterprises
            .clone()
            .get_enterprise(request)
            .await
            .map_err(lookup_error)?;
        response
            .into_inner()
            .enterprise
            .map(|enterprise| enterprise.revision)
            .ok_or_else(|| LookupError::Unavailable("empty answer".to_owned()))
    }
    async fn users(
        &self,
        _caller: &Caller,
        authorization: Option<&str>,
        enterprise_id: &str,
        limit: usize,
    ) -> Result<Vec<String>, LookupError> {
        let mut users = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = with_authorization(
                directory::ListUsersRequest {
                    enterprise_id: enterprise_id.to_owned(),
                    status: directory::UserStatus::Active.into(),
                    page_size: 500,
                    page_token: page_token.clone(),
                    ..Default::default()
                },
                authorization,
            );
            let page = self
                .users
                .clone()
                .list_users(request)
                .await
                .map_err(lookup_error)?
                .into_inner();
            users.extend(page.users.into_iter().map(|user| user.id));
            if users.len() >= limit || page.next_page_token.is_empty() {
                users.truncate(limit);
                return Ok(users);
            }
            page_token = page.next_page_token;
        }
    }
}
