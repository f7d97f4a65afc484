//! Identity's HTTP endpoints: what a browser or a JWT library reaches without gRPC — the JWK
//! Set and the browser side of SSO (I6).

use crate::auth::ClientInfo;
use crate::keys::KeyRing;
use crate::sso::connections::Connection;
use crate::sso::{Sso, SsoError, oidc::CallbackParams};
use axum::Router;
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

#[derive(Clone)]
struct Http {
    keys: KeyRing,
    sso: Arc<Sso>,
    api_keys: Arc<crate::api_keys::ApiKeys>,
}

/// The browser's device id, kept in a cookie so SSO logins count devices like password logins.
const DEVICE_COOKIE: &str = "praxis_device";

pub async fn serve(
    keys: KeyRing,
    sso: Arc<Sso>,
    api_keys: Arc<crate::api_keys::ApiKeys>,
    listener: tokio::net::TcpListener,
    tls: Option<std::sync::Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> Result<(), crate::StartError> {
    sso.bound_to(listener.local_addr()?);
    let router = Router::new()
        .route("/.well-known/jwks.json", get(jwks))
        .route("/sso/{connection}/start", get(start))
        .route("/sso/{connection}/callback", get(callback))
        .route("/sso/{connection}/acs", axum::routing::post(acs))
        .route("/sso/{connection}/metadata", get(metadata))
        .route("/sso/{connection}/slo", get(single_logout))
        .route("/api-keys/verify", axum::routing::post(verify_api_key))
        .with_state(Http {
            keys,
            sso,
            api_keys,
        });
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "serving identity HTTP");
    praxis_runtime::tls::serve_http(listener, tls, router, shutdown).await?;
    Ok(())
}

async fn jwks(State(http): State<Http>) -> Response {
    match http.keys.jwks(chrono::Utc::now()).await {
        Ok(set) => (
            [
                (header::CACHE_CONTROL, "public, max-age=300"),
                (header::CONTENT_TYPE, "application/jwk-set+json"),
            ],
            axum::Json(set),
        )
            .into_response(),
        Err(error) => {
            tracing::error!(%error, "cannot read signing keys");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.to_owned())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

fn client_info(sso: &Sso, headers: &HeaderMap, peer: SocketAddr) -> ClientInfo {
    let forwarded = sso
        .trust_forwarded_for()
        .then(|| {
            headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .and_then(|ip| ip.trim().parse().ok())
        })
        .flatten();
    ClientInfo {
        device_id: cookie(headers, DEVICE_COOKIE).unwrap_or_default(),
        user_agent: headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
        ip: Some(forwarded.unwrap_or_else(|| peer.ip())),
    }
}

/// A page saying why a login failed; the reason is one identity chose to show.
fn failure(error: &SsoError) -> Response {
    let (status, message) = match error {
        SsoError::Refused(message) => (StatusCode::FORBIDDEN, message.clone()),
        SsoError::NotFound(what) => (StatusCode::NOT_FOUND, format!("{what} not found")),
        SsoError::Unavailable(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "a service this login needs is unavailable; try again shortly".to_owned(),
        ),
        SsoError::Invalid { .. } | SsoError::Precondition { .. } => {
            (StatusCode::BAD_REQUEST, error.to_string())
        }
        _ => (
            StatusCode::INTERNAL_SERVER_ERROR,
            "sign-in failed".to_owned(),
        ),
    };
    let escaped = message
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let body = format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sign-in failed</title></head>\
         <body><h1>Sign-in failed</h1><p id=\"reason\">{escaped}</p></body></html>"
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn see_other(location: &str, set_cookie: Option<String>) -> Response {
    let mut response =
        (StatusCode::SEE_OTHER, [(header::CACHE_CONTROL, "no-store")]).into_response();
    let headers = response.headers_mut();
    match HeaderValue::from_str(location) {
        Ok(value) => {
            headers.insert(header::LOCATION, value);
        }
        Err(_) => return failure(&SsoError::Internal("redirect is not a header value".into())),
    }
    if let Some(cookie) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        headers.insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The enabled connection a browser names; an unknown or disabled one is audited and answered.
async fn connection(http: &Http, id: &str, client: &ClientInfo) -> Result<Connection, Response> {
    match http.sso.usable_connection(id).await {
        Ok(connection) => Ok(connection),
        Err(error) => {
            http.sso
                .audit_refusal(None, &error.to_string(), client)
                .await;
            Err(failure(&error))
        }
    }
}

/// A refused step: logged, audited with its reason, and shown to the person.
async fn refused(
    http: &Http,
    connection: &Connection,
    error: &SsoError,
    client: &ClientInfo,
) -> Response {
    tracing::info!(connection = %connection.id, %error, "SSO step refused");
    http.sso
        .audit_refusal(Some(connection), &error.to_string(), client)
        .await;
    failure(error)
}

#[derive(Debug, serde::Deserialize)]
struct StartParams {
    #[serde(default)]
    return_to: String,
}

async fn start(
    State(http): State<Http>,
    Path(connection_id): Path<String>,
    Query(params): Query<StartParams>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let client = client_info(&http.sso, &headers, peer);
    let connection = match connection(&http, &connection_id, &client).await {
        Ok(connection) => connection,
        Err(answer) => return answer,
    };
    let started = match connection.protocol() {
        "saml" => http.sso.saml_start(&connection, &params.return_to).await,
        _ => http.sso.oidc_start(&connection, &params.return_to).await,
    };
    match started {
        Ok(location) => {
            let device = cookie(&headers, DEVICE_COOKIE).is_none().then(|| {
                format!(
                    "{DEVICE_COOKIE}={}; Path=/sso; Max-Age=31536000; HttpOnly; SameSite=Lax",
                    crate::sso::random_token()
                )
            });
            see_other(&location, device)
        }
        Err(error) => refused(&http, &connection, &error, &client).await,
    }
}

async fn callback(
    State(http): State<Http>,
    Path(connection_id): Path<String>,
    Query(params): Query<CallbackParams>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    let client = client_info(&http.sso, &headers, peer);
    let connection = match connection(&http, &connection_id, &client).await {
        Ok(connection) => connection,
        Err(answer) => return answer,
    };
    match http
        .sso
        .oidc_callback(&connection, params, client.clone())
        .await
    {
        Ok(redirect) => see_other(&redirect.0, None),
        Err(error) => refused(&http, &connection, &error, &client).await,
    }
}

#[derive(Debug, serde::Deserialize)]
struct AcsForm {
    #[serde(rename = "SAMLResponse", default)]
    saml_response: String,
    #[serde(rename = "RelayState", default)]
    relay_state: String,
}

async fn acs(
    State(http): State<Http>,
    Path(connection_id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<AcsForm>,
) -> Response {
    let client = client_info(&http.sso, &headers, peer);
    let connection = match connection(&http, &connection_id, &client).await {
        Ok(connection) => connection,
        Err(answer) => return answer,
    };
    let answered = http
        .sso
        .saml_acs(
            &connection,
            &form.saml_response,
            &form.relay_state,
            client.clone(),
        )
        .await;
    match answered {
        Ok(redirect) => see_other(&redirect.0, None),
        Err(error) => refused(&http, &connection, &error, &client).await,
    }
}

async fn metadata(State(http): State<Http>, Path(connection_id): Path<String>) -> Response {
    let connection = match crate::sso::connections::get(http.sso.db(), &connection_id).await {
        Ok(Some(connection)) if connection.settings.saml.is_some() => connection,
        Ok(_) => return failure(&SsoError::NotFound("SAML connection")),
        Err(error) => return failure(&error),
    };
    match http.sso.saml_metadata(&connection) {
        Ok(xml) => (
            [(header::CONTENT_TYPE, "application/samlmetadata+xml")],
            xml,
        )
            .into_response(),
        Err(error) => failure(&error),
    }
}

/// IdP-initiated single logout (HTTP-Redirect binding).
async fn single_logout(
    State(http): State<Http>,
    Path(connection_id): Path<String>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Response {
    let client = client_info(&http.sso, &headers, peer);
    let connection = match connection(&http, &connection_id, &client).await {
        Ok(connection) => connection,
        Err(answer) => return answer,
    };
    let query = uri.query().unwrap_or_default();
    match http.sso.saml_logout(&connection, query, client.clone()).await {
        Ok(done) => match done.redirect {
            Some(location) => see_other(&location, None),
            None => (
                [
                    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
                    (header::CACHE_CONTROL, "no-store"),
                ],
                format!(
                    "<!doctype html><html><head><meta charset=\"utf-8\"><title>Signed out</title></head>\
                     <body><h1>Signed out</h1><p id=\"ended\">{} sessions ended</p></body></html>",
                    done.ended
                ),
            )
                .into_response(),
        },
        Err(error) => refused(&http, &connection, &error, &client).await,
    }
}

#[derive(Debug, serde::Deserialize)]
struct VerifyApiKey {
    key: String,
}

/// Other services' check of an API key (I7): 200 with the caller, 401, or 429 with the wait.
/// The key itself is the credential here; nothing is said about why a key is refused.
async fn verify_api_key(
    State(http): State<Http>,
    axum::Json(body): axum::Json<VerifyApiKey>,
) -> Response {
    use praxis_runtime::auth::ApiKeyRefusal;
    match http.api_keys.verify(&body.key, chrono::Utc::now()).await {
        Ok(caller) => axum::Json(caller).into_response(),
        Err(ApiKeyRefusal::Invalid) => StatusCode::UNAUTHORIZED.into_response(),
        Err(ApiKeyRefusal::RateLimited(wait)) => (
            StatusCode::TOO_MANY_REQUESTS,
            axum::Json(serde_json::json!({
                "retry_after_ms": u64::try_from(wait.as_millis()).unwrap_or(u64::MAX),
            })),
        )
            .into_response(),
        Err(ApiKeyRefusal::Unavailable(cause)) => {
            tracing::warn!(%cause, "API key check unavailable");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
