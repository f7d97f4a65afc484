//! Typed clients for the three services. Each wraps tonic's generated client on a
//! [`PraxisChannel`](crate::channel::PraxisChannel): the generated client is there for any call
//! (`raw()`), and the calls that are safe to repeat go through [`Retry`].

use crate::channel::{Balanced, ClientError, Credential, Outgoing, PraxisChannel, Target};
use crate::retry::Retry;
use praxis_proto::audit::v1 as audit;
use praxis_proto::authz::v1 as authz;
use praxis_proto::directory::v1 as directory;
use praxis_proto::identity::v1 as identity;
use tonic::Status;
use tonic::service::interceptor::InterceptedService;

/// Where the Praxis services answer.
#[derive(Debug, Clone)]
pub struct Config {
    pub directory: Target,
    pub identity: Target,
    pub authz: Target,
    pub retry: Retry,
}

/// The three services' channels; cheap to clone, one per process is enough.
#[derive(Clone)]
pub struct Praxis {
    directory: Balanced,
    identity: Balanced,
    authz: Balanced,
    retry: Retry,
    credential: Credential,
}

impl Praxis {
    /// Channels connect lazily: this succeeds while the services are still starting.
    pub fn connect(config: &Config, credential: Credential) -> Result<Self, ClientError> {
        Ok(Self {
            directory: config.directory.channel()?,
            identity: config.identity.channel()?,
            authz: config.authz.channel()?,
            retry: config.retry,
            credential,
        })
    }

    /// The same channels, calling with another credential (e.g. the user a request is for).
    pub fn with_credential(&self, credential: Credential) -> Self {
        Self {
            credential,
            ..self.clone()
        }
    }

    fn intercepted(&self, channel: &Balanced) -> PraxisChannel {
        InterceptedService::new(channel.clone(), Outgoing::new(self.credential.clone()))
    }

    pub fn authz(&self) -> AuthzClient {
        AuthzClient {
            raw: authz::authz_service_client::AuthzServiceClient::new(
                self.intercepted(&self.authz),
            ),
            retry: self.retry,
        }
    }

    pub fn identity(&self) -> IdentityClient {
        IdentityClient {
            raw: identity::auth_service_client::AuthServiceClient::new(
                self.intercepted(&self.identity),
            ),
            tokens: identity::token_service_client::TokenServiceClient::new(
                self.intercepted(&self.identity),
            ),
            retry: self.retry,
        }
    }

    pub fn users(&self) -> UsersClient {
        UsersClient {
            raw: directory::user_service_client::UserServiceClient::new(
                self.intercepted(&self.directory),
            ),
            retry: self.retry,
        }
    }

    pub fn practices(
        &self,
    ) -> directory::practice_service_client::PracticeServiceClient<PraxisChannel> {
        directory::practice_service_client::PracticeServiceClient::new(
            self.intercepted(&self.directory),
        )
    }

    pub fn audit(&self) -> audit::audit_service_client::AuditServiceClient<PraxisChannel> {
        audit::audit_service_client::AuditServiceClient::new(self.intercepted(&self.directory))
    }
}

#[derive(Clone)]
pub struct AuthzClient {
    raw: authz::authz_service_client::AuthzServiceClient<PraxisChannel>,
    retry: Retry,
}

impl AuthzClient {
    pub fn raw(&self) -> authz::authz_service_client::AuthzServiceClient<PraxisChannel> {
        self.raw.clone()
    }

    pub async fn check(
        &self,
        request: authz::CheckRequest,
    ) -> Result<authz::CheckResponse, Status> {
        self.retry
            .call(&self.raw, request, |mut client, request| async move {
                client.check(request).await
            })
            .await
    }

    pub async fn batch_check(
        &self,
        request: authz::BatchCheckRequest,
    ) -> Result<authz::BatchCheckResponse, Status> {
        self.retry
            .call(&self.raw, request, |mut client, request| async move {
                client.batch_check(request).await
            })
            .await
    }

    pub async fn lookup_resources(
        &self,
        request: authz::LookupResourcesRequest,
    ) -> Result<authz::LookupResourcesResponse, Status> {
        self.retry
            .call(&self.raw, request, |mut client, request| async move {
                client.lookup_resources(request).await
            })
            .await
    }
}

#[derive(Clone)]
pub struct IdentityClient {
    raw: identity::auth_service_client::AuthServiceClient<PraxisChannel>,
    tokens: identity::token_service_client::TokenServiceClient<PraxisChannel>,
    retry: Retry,
}

impl IdentityClient {
    /// Logins, 2FA, sessions: none of these is repeated on failure.
    pub fn raw(&self) -> identity::auth_service_client::AuthServiceClient<PraxisChannel> {
        self.raw.clone()
    }

    pub async fn introspect(
        &self,
        request: identity::IntrospectRequest,
    ) -> Result<identity::IntrospectResponse, Status> {
        self.retry
            .call(&self.raw, request, |mut client, request| async move {
                client.introspect(request).await
            })
            .await
    }

    pub async fn jwks(&self) -> Result<identity::GetJwksResponse, Status> {
        self.retry
            .call(
                &self.tokens,
                identity::GetJwksRequest {},
                |mut client, request| async move { client.get_jwks(request).await },
            )
            .await
    }
}

#[derive(Clone)]
pub struct UsersClient {
    raw: directory::user_service_client::UserServiceClient<PraxisChannel>,
    retry: Retry,
}

impl UsersClient {
    pub fn raw(&self) -> directory::user_service_client::UserServiceClient<PraxisChannel> {
        self.raw.clone()
    }

    pub async fn get_user(
        &self,
        request: directory::GetUserRequest,
    ) -> Result<directory::GetUserResponse, Status> {
        self.retry
            .call(&self.raw, request, |mut client, request| async move {
                client.get_user(request).await
            })
            .await
    }

    pub async fn list_users(
        &self,
        request: directory::ListUsersRequest,
    ) -> Result<directory::ListUsersResponse, Status> {
        self.retry
            .call(&self.raw, request, |mut client, request| async move {
                client.list_users(request).await
            })
            .await
    }
}
