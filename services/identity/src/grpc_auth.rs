//! `praxis.identity.v1.AuthService`, `SessionService` and `TwoFactorService`.

use crate::auth::{
    AuthError, Authenticator, Challenge, ChallengeKind, ClientInfo, Method, PasskeyInfo, Step,
    StepUp, Tokens,
};
use crate::store::session;
use chrono::{DateTime, Utc};
use praxis_proto::identity::v1 as pb;
use praxis_proto::identity::v1::auth_service_server::AuthService;
use praxis_proto::identity::v1::session_service_server::SessionService;
use praxis_proto::identity::v1::two_factor_service_server::TwoFactorService;
use praxis_runtime::error::{FieldViolations, invalid_argument, with_reason};
use praxis_runtime::{Caller, TokenVerifier};
use std::net::IpAddr;
use std::sync::Arc;
use tonic::{Code, Request, Response, Status};

pub const ERROR_DOMAIN: &str = "identity.praxis";

/// Reached without a token: they are how one gets a token.
pub const PUBLIC_METHODS: [&str; 7] = [
    "/praxis.identity.v1.AuthService/SendChallengeCode",
    "/praxis.identity.v1.AuthService/ActivateAccount",
    "/praxis.identity.v1.AuthService/Login",
    "/praxis.identity.v1.AuthService/CompleteChallenge",
    "/praxis.identity.v1.AuthService/Refresh",
    "/praxis.identity.v1.AuthService/RequestPasswordReset",
    "/praxis.identity.v1.AuthService/ResetPassword",
];

#[derive(Clone)]
pub struct AuthApi {
    pub auth: Arc<Authenticator>,
    pub verifier: Arc<TokenVerifier>,
}

fn status(error: AuthError) -> Status {
    match error {
        AuthError::InvalidCredentials => Status::unauthenticated(error.to_string()),
        AuthError::Unauthenticated(message) => Status::unauthenticated(message),
        AuthError::Throttled => with_reason(
            Code::ResourceExhausted,
            "TOO_MANY_ATTEMPTS",
            ERROR_DOMAIN,
            error.to_string(),
        ),
        AuthError::Invalid { field, message } => invalid_argument(field, message),
        AuthError::Precondition { reason, message } => {
            with_reason(Code::FailedPrecondition, reason, ERROR_DOMAIN, message)
        }
        AuthError::PermissionDenied(message) => Status::permission_denied(message),
        AuthError::NotFound(what) => Status::not_found(format!("{what} not found")),
        AuthError::Unavailable(cause) => {
            tracing::warn!(%cause, "identity dependency unavailable");
            Status::unavailable("try again later")
        }
        AuthError::Internal(cause) => praxis_runtime::error::internal("identity", &cause),
    }
}

pub(crate) fn timestamp(time: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn seconds(unix: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: unix,
        nanos: 0,
    }
}

impl AuthApi {
    /// The client's address: the connection's, or the first `x-forwarded-for` hop when identity
    /// sits behind a trusted proxy.
    fn client<T>(&self, request: &Request<T>, client: Option<pb::Client>) -> ClientInfo {
        let forwarded = self
            .auth
            .settings()
            .trust_forwarded_for
            .then(|| {
                request
                    .metadata()
                    .get("x-forwarded-for")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.split(',').next())
                    .and_then(|v| v.trim().parse::<IpAddr>().ok())
            })
            .flatten();
        let ip = forwarded.or_else(|| request.remote_addr().map(|a| a.ip()));
        let client = client.unwrap_or_default();
        ClientInfo {
            device_id: client.device_id.chars().take(128).collect(),
            user_agent: client.user_agent,
            ip,
        }
    }
}

pub(crate) fn tokens(tokens: Tokens) -> pb::Tokens {
    pb::Tokens {
        access_token: tokens.access_token,
        access_token_expire_time: Some(timestamp(tokens.access_expires_at)),
        refresh_token: tokens.refresh_token,
        session_id: tokens.session_id,
    }
}

fn login_step(step: Step) -> pb::LoginStep {
    match step {
        Step::Done {
            tokens: issued,
            recovery_codes,
        } => pb::LoginStep {
            outcome: Some(pb::login_step::Outcome::Tokens(tokens(issued))),
            recovery_codes,
        },
        Step::Challenge(challenge) => pb::LoginStep {
            outcome: Some(pb::login_step::Outcome::Challenge(challenge_proto(
                challenge,
            ))),
            recovery_codes: Vec::new(),
        },
    }
}

fn challenge_proto(challenge: Challenge) -> pb::Challenge {
    pb::Challenge {
        challenge_id: challenge.id,
        kind: match challenge.kind {
            ChallengeKind::TwoFactor => pb::ChallengeKind::TwoFactor,
            ChallengeKind::TwoFactorEnrollment => pb::ChallengeKind::TwoFactorEnrollment,
            ChallengeKind::PasswordChange => pb::ChallengeKind::PasswordChange,
            ChallengeKind::StepUp => pb::ChallengeKind::StepUp,
        }
        .into(),
        expire_time: Some(timestamp(challenge.expires_at)),
        otpauth_uri: challenge.otpauth_uri.unwrap_or_default(),
        methods: challenge
            .methods
            .iter()
            .map(|m| m.as_str().to_owned())
            .collect(),
        passkey_request_options: challenge.passkey_request.unwrap_or_default(),
    }
}

fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    praxis_runtime::auth::caller(request).cloned()
}

#[tonic::async_trait]
impl AuthService for AuthApi {
    async fn login(
        &self,
        request: Request<pb::LoginRequest>,
    ) -> Result<Response<pb::LoginResponse>, Status> {
        let client = self.client(&request, request.get_ref().client.clone());
        let body = request.into_inner();
        let mut violations = FieldViolations::new();
        if body.email.trim().is_empty() || body.email.len() > 320 {
            violations.add("email", "required, at most 320 characters");
        }
        if body.password.is_empty() || body.password.len() > 4 * crate::passwords::MAX_LENGTH {
            violations.add("password", "required");
        }
        violations.check()?;
        let step = self
            .auth
            .login(body.email.trim(), &body.password, client)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::LoginResponse {
            step: Some(login_step(step)),
        }))
    }

    async fn complete_challenge(
        &self,
        request: Request<pb::CompleteChallengeRequest>,
    ) -> Result<Response<pb::CompleteChallengeResponse>, Status> {
        let body = request.into_inner();
        if body.challenge_id.trim().is_empty() {
            return Err(invalid_argument("challenge_id", "required"));
        }
        let step = self
            .auth
            .complete_challenge(
                body.challenge_id.trim(),
                &body.code,
                &body.new_password,
                &body.passkey_assertion,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::CompleteChallengeResponse {
            step: Some(login_step(step)),
        }))
    }

    async fn send_challenge_code(
        &self,
        request: Request<pb::SendChallengeCodeRequest>,
    ) -> Result<Response<pb::SendChallengeCodeResponse>, Status> {
        let body = request.into_inner();
        if body.challenge_id.trim().is_empty() {
            return Err(invalid_argument("challenge_id", "required"));
        }
        let channel = match pb::CodeChannel::try_from(body.channel) {
            Ok(pb::CodeChannel::Unspecified | pb::CodeChannel::Email) => Method::Email,
            Ok(pb::CodeChannel::Sms) => Method::Sms,
            Err(_) => return Err(invalid_argument("channel", "EMAIL or SMS")),
        };
        let (sent_to, until) = self
            .auth
            .send_challenge_code(body.challenge_id.trim(), channel)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SendChallengeCodeResponse {
            sent_to,
            code_expire_time: Some(timestamp(until)),
        }))
    }

    async fn refresh(
        &self,
        request: Request<pb::RefreshRequest>,
    ) -> Result<Response<pb::RefreshResponse>, Status> {
        let client = self.client(&request, request.get_ref().client.clone());
        let body = request.into_inner();
        if !body
            .refresh_token
            .trim()
            .starts_with(crate::sessions::REFRESH_PREFIX)
        {
            return Err(invalid_argument("refresh_token", "a refresh token (prt_…)"));
        }
        let issued = self
            .auth
            .refresh(&body.refresh_token, client)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RefreshResponse {
            tokens: Some(tokens(issued)),
        }))
    }

    async fn introspect(
        &self,
        request: Request<pb::IntrospectRequest>,
    ) -> Result<Response<pb::IntrospectResponse>, Status> {
        caller(&request)?;
        let body = request.into_inner();
        let answer = self
            .auth
            .introspect(&self.verifier, &body.access_token)
            .await
            .map_err(status)?;
        Ok(Response::new(match answer {
            None => pb::IntrospectResponse::default(),
            Some(found) => pb::IntrospectResponse {
                active: true,
                user_id: found.caller.user_id,
                enterprise_id: found.caller.enterprise_id,
                session_id: found.caller.session_id,
                kind: found.caller.kind,
                amr: found.caller.amr,
                auth_time: Some(seconds(found.caller.auth_time)),
                expire_time: Some(seconds(found.expires_at)),
            },
        }))
    }

    async fn reauthenticate(
        &self,
        request: Request<pb::ReauthenticateRequest>,
    ) -> Result<Response<pb::ReauthenticateResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        if body.password.is_empty() {
            return Err(invalid_argument("password", "required"));
        }
        let step = self
            .auth
            .reauthenticate(&caller, &body.password, &body.code)
            .await
            .map_err(status)?;
        Ok(Response::new(match step {
            StepUp::Done(access_token, expires_at) => pb::ReauthenticateResponse {
                access_token,
                access_token_expire_time: Some(timestamp(expires_at)),
                challenge: None,
            },
            StepUp::Challenge(challenge) => pb::ReauthenticateResponse {
                challenge: Some(challenge_proto(challenge)),
                ..Default::default()
            },
        }))
    }

    async fn change_password(
        &self,
        request: Request<pb::ChangePasswordRequest>,
    ) -> Result<Response<pb::ChangePasswordResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        if body.current_password.is_empty() {
            return Err(invalid_argument("current_password", "required"));
        }
        self.auth
            .change_password(&caller, &body.current_password, &body.new_password)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ChangePasswordResponse {}))
    }

    async fn set_temporary_password(
        &self,
        request: Request<pb::SetTemporaryPasswordRequest>,
    ) -> Result<Response<pb::SetTemporaryPasswordResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        if body.user_id.trim().is_empty() {
            return Err(invalid_argument("user_id", "required"));
        }
        self.auth
            .set_temporary_password(&caller, body.user_id.trim(), &body.temporary_password)
            .await
            .map_err(|error| match error {
                AuthError::Invalid { message, .. } => {
                    invalid_argument("temporary_password", message)
                }
                other => status(other),
            })?;
        Ok(Response::new(pb::SetTemporaryPasswordResponse {}))
    }

    async fn unlock_user(
        &self,
        request: Request<pb::UnlockUserRequest>,
    ) -> Result<Response<pb::UnlockUserResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        self.auth
            .unlock_user(&caller, body.user_id.trim())
            .await
            .map_err(status)?;
        Ok(Response::new(pb::UnlockUserResponse {}))
    }

    async fn request_password_reset(
        &self,
        request: Request<pb::RequestPasswordResetRequest>,
    ) -> Result<Response<pb::RequestPasswordResetResponse>, Status> {
        let client = self.client(&request, None);
        let body = request.into_inner();
        if body.email.trim().is_empty() || body.email.len() > 320 {
            return Err(invalid_argument(
                "email",
                "required, at most 320 characters",
            ));
        }
        self.auth
            .request_password_reset(body.email.trim(), client)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RequestPasswordResetResponse {}))
    }

    async fn reset_password(
        &self,
        request: Request<pb::ResetPasswordRequest>,
    ) -> Result<Response<pb::ResetPasswordResponse>, Status> {
        let client = self.client(&request, None);
        let body = request.into_inner();
        if body.token.trim().is_empty() {
            return Err(invalid_argument("token", "required"));
        }
        self.auth
            .reset_password(&body.token, &body.new_password, client)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ResetPasswordResponse {}))
    }

    async fn send_password_reset(
        &self,
        request: Request<pb::SendPasswordResetRequest>,
    ) -> Result<Response<pb::SendPasswordResetResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        self.auth
            .send_password_reset(&caller, body.user_id.trim())
            .await
            .map_err(status)?;
        Ok(Response::new(pb::SendPasswordResetResponse {}))
    }

    async fn activate_account(
        &self,
        request: Request<pb::ActivateAccountRequest>,
    ) -> Result<Response<pb::ActivateAccountResponse>, Status> {
        let client = self.client(&request, None);
        let body = request.into_inner();
        if body.token.trim().is_empty() {
            return Err(invalid_argument("token", "required"));
        }
        self.auth
            .activate(body.token.trim(), &body.password, client)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ActivateAccountResponse {}))
    }
}

fn session_proto(row: session::Model, current: &str) -> pb::Session {
    pb::Session {
        current: row.id == current,
        id: row.id,
        device_id: row.device_id,
        user_agent: row.user_agent,
        ip: row.ip,
        create_time: Some(timestamp(row.created_at)),
        last_seen_time: Some(timestamp(row.last_seen_at)),
        expire_time: Some(timestamp(row.expires_at)),
    }
}

fn count(ended: u64) -> i32 {
    i32::try_from(ended).unwrap_or(i32::MAX)
}

#[tonic::async_trait]
impl SessionService for AuthApi {
    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let user = Some(body.user_id.trim()).filter(|u| !u.is_empty());
        let rows = self
            .auth
            .list_sessions(&caller, user)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListSessionsResponse {
            sessions: rows
                .into_iter()
                .map(|row| session_proto(row, &caller.session_id))
                .collect(),
        }))
    }

    async fn end_session(
        &self,
        request: Request<pb::EndSessionRequest>,
    ) -> Result<Response<pb::EndSessionResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        self.auth
            .end_session(&caller, body.session_id.trim())
            .await
            .map_err(status)?;
        Ok(Response::new(pb::EndSessionResponse {}))
    }

    async fn end_other_sessions(
        &self,
        request: Request<pb::EndOtherSessionsRequest>,
    ) -> Result<Response<pb::EndOtherSessionsResponse>, Status> {
        let caller = caller(&request)?;
        let ended = self
            .auth
            .end_own_sessions(&caller, true)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::EndOtherSessionsResponse {
            ended: count(ended),
        }))
    }

    async fn end_all_sessions(
        &self,
        request: Request<pb::EndAllSessionsRequest>,
    ) -> Result<Response<pb::EndAllSessionsResponse>, Status> {
        let caller = caller(&request)?;
        let ended = self
            .auth
            .end_own_sessions(&caller, false)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::EndAllSessionsResponse {
            ended: count(ended),
        }))
    }

    async fn end_user_sessions(
        &self,
        request: Request<pb::EndUserSessionsRequest>,
    ) -> Result<Response<pb::EndUserSessionsResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let ended = self
            .auth
            .end_user_sessions(&caller, body.user_id.trim())
            .await
            .map_err(status)?;
        Ok(Response::new(pb::EndUserSessionsResponse {
            ended: count(ended),
        }))
    }
}

#[tonic::async_trait]
impl TwoFactorService for AuthApi {
    async fn start_totp_enrollment(
        &self,
        request: Request<pb::StartTotpEnrollmentRequest>,
    ) -> Result<Response<pb::StartTotpEnrollmentResponse>, Status> {
        let caller = caller(&request)?;
        let otpauth_uri = self
            .auth
            .start_totp_enrollment(&caller)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::StartTotpEnrollmentResponse {
            otpauth_uri,
        }))
    }

    async fn confirm_totp_enrollment(
        &self,
        request: Request<pb::ConfirmTotpEnrollmentRequest>,
    ) -> Result<Response<pb::ConfirmTotpEnrollmentResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let recovery_codes = self
            .auth
            .confirm_totp_enrollment(&caller, &body.code)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ConfirmTotpEnrollmentResponse {
            recovery_codes,
        }))
    }

    async fn regenerate_recovery_codes(
        &self,
        request: Request<pb::RegenerateRecoveryCodesRequest>,
    ) -> Result<Response<pb::RegenerateRecoveryCodesResponse>, Status> {
        let caller = caller(&request)?;
        let recovery_codes = self
            .auth
            .regenerate_recovery_codes(&caller)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::RegenerateRecoveryCodesResponse {
            recovery_codes,
        }))
    }

    async fn start_sms_enrollment(
        &self,
        request: Request<pb::StartSmsEnrollmentRequest>,
    ) -> Result<Response<pb::StartSmsEnrollmentResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let (sent_to, until) = self
            .auth
            .start_sms_enrollment(&caller, &body.phone_number)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::StartSmsEnrollmentResponse {
            sent_to,
            code_expire_time: Some(timestamp(until)),
        }))
    }

    async fn confirm_sms_enrollment(
        &self,
        request: Request<pb::ConfirmSmsEnrollmentRequest>,
    ) -> Result<Response<pb::ConfirmSmsEnrollmentResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let recovery_codes = self
            .auth
            .confirm_sms_enrollment(&caller, &body.code)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ConfirmSmsEnrollmentResponse {
            recovery_codes,
        }))
    }

    async fn start_passkey_registration(
        &self,
        request: Request<pb::StartPasskeyRegistrationRequest>,
    ) -> Result<Response<pb::StartPasskeyRegistrationResponse>, Status> {
        let caller = caller(&request)?;
        let (registration_id, creation_options) = self
            .auth
            .start_passkey_registration(&caller)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::StartPasskeyRegistrationResponse {
            registration_id,
            creation_options,
        }))
    }

    async fn finish_passkey_registration(
        &self,
        request: Request<pb::FinishPasskeyRegistrationRequest>,
    ) -> Result<Response<pb::FinishPasskeyRegistrationResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let mut violations = FieldViolations::new();
        if body.registration_id.trim().is_empty() {
            violations.add("registration_id", "required");
        }
        if body.credential.trim().is_empty() || body.credential.len() > 64 * 1024 {
            violations.add("credential", "required, at most 64 KiB");
        }
        violations.check()?;
        let (passkey, recovery_codes) = self
            .auth
            .finish_passkey_registration(
                &caller,
                &body.registration_id,
                &body.credential,
                &body.name,
            )
            .await
            .map_err(status)?;
        Ok(Response::new(pb::FinishPasskeyRegistrationResponse {
            passkey: Some(passkey_out(passkey)),
            recovery_codes,
        }))
    }

    async fn list_passkeys(
        &self,
        request: Request<pb::ListPasskeysRequest>,
    ) -> Result<Response<pb::ListPasskeysResponse>, Status> {
        let caller = caller(&request)?;
        let passkeys = self.auth.list_passkeys(&caller).await.map_err(status)?;
        Ok(Response::new(pb::ListPasskeysResponse {
            passkeys: passkeys.into_iter().map(passkey_out).collect(),
        }))
    }

    async fn delete_passkey(
        &self,
        request: Request<pb::DeletePasskeyRequest>,
    ) -> Result<Response<pb::DeletePasskeyResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        if body.passkey_id.trim().is_empty() {
            return Err(invalid_argument("passkey_id", "required"));
        }
        self.auth
            .delete_passkey(&caller, &body.passkey_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::DeletePasskeyResponse {}))
    }
}

fn passkey_out(passkey: PasskeyInfo) -> pb::Passkey {
    pb::Passkey {
        id: passkey.id,
        name: passkey.name,
        create_time: Some(timestamp(passkey.created_at)),
        last_use_time: passkey.last_used_at.map(timestamp),
    }
}
