//! `praxis.identity.v1.TokenService`.

use crate::keys::KeyRing;
use praxis_proto::identity::v1::token_service_server::TokenService;
use praxis_proto::identity::v1::{GetJwksRequest, GetJwksResponse, Jwk};
use praxis_runtime::error::internal;
use tonic::{Request, Response, Status};

/// Public: a verifier needs the keys before it can check anyone's token.
pub const GET_JWKS_PATH: &str = "/praxis.identity.v1.TokenService/GetJwks";

pub struct TokenApi {
    pub keys: KeyRing,
}

#[tonic::async_trait]
impl TokenService for TokenApi {
    async fn get_jwks(
        &self,
        _request: Request<GetJwksRequest>,
    ) -> Result<Response<GetJwksResponse>, Status> {
        let set = self
            .keys
            .jwks(chrono::Utc::now())
            .await
            .map_err(|error| internal("jwks", &error))?;
        let jwks_json = serde_json::to_string(&set).map_err(|error| internal("jwks", &error))?;
        let keys = set
            .keys
            .into_iter()
            .map(|key| Jwk {
                kid: key.kid,
                kty: key.kty.into(),
                crv: key.crv.into(),
                alg: key.alg.into(),
                x: key.x,
            })
            .collect();
        Ok(Response::new(GetJwksResponse { keys, jwks_json }))
    }
}
