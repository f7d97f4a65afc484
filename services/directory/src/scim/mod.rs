//! The SCIM 2.0 service provider (RFC 7643/7644) on directory's HTTP listener: discovery
//! (`ServiceProviderConfig`, `ResourceTypes`, `Schemas`) and `Users` and `Groups` with create,
//! get, list (`filter`, `startIndex`, `count`), replace, PATCH and delete, with ETags. Each
//! request carries an enterprise's SCIM token (`DirectorySyncService`) and acts in that
//! enterprise only.
//!
//! Resources are kept as their client sent them. Mapping them onto Praxis users (kind,
//! practices, roles from group rules; `active: false` disabling the user) is the next step of
//! directory sync and is not done here yet.

pub mod filter;
pub mod patch;
pub mod projection;
mod schemas;

use crate::domain::sync::{ScimClient, ScimResource, ScimType};
use crate::domain::{Directory, DomainError};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

const SCIM_JSON: &str = "application/scim+json";
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const LIST_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";
/// The most resources one list answer holds (advertised as `filter.maxResults`).
const MAX_RESULTS: usize = 200;

/// Where directory serves SCIM (`[scim]`, `PRAXIS_SCIM__LISTEN`); off when unset.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ScimSettings {
    pub listen: Option<String>,
    /// How SCIM clients reach this server, e.g. `https://login.clinic.example` behind an
    /// ingress that ends TLS; resource locations are built on it. Unset: from the request's
    /// Host header and this listener's own scheme.
    pub public_url: Option<String>,
}

/// The section as it appears in directory's config file.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct ScimFileConfig {
    pub scim: ScimSettings,
}

#[derive(Clone)]
struct Scim {
    directory: Directory,
    scheme: &'static str,
    public_url: Option<Arc<str>>,
}

/// A SCIM error answer (RFC 7644 §3.12).
struct ScimError {
    status: StatusCode,
    scim_type: Option<&'static str>,
    detail: String,
}

impl ScimError {
    fn new(status: StatusCode, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self {
            status,
            scim_type,
            detail: detail.into(),
        }
    }
}

fn scim_json(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, HeaderValue::from_static(SCIM_JSON))],
        body.to_string(),
    )
        .into_response()
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            "status": self.status.as_u16().to_string(),
            "detail": self.detail,
        });
        if let (Some(scim_type), Some(fields)) = (self.scim_type, body.as_object_mut()) {
            fields.insert("scimType".to_owned(), Value::String(scim_type.to_owned()));
        }
        let mut response = scim_json(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"scim\""),
            );
        }
        response
    }
}

impl From<DomainError> for ScimError {
    fn from(error: DomainError) -> Self {
        match error {
            DomainError::NotFound(what) => {
                Self::new(StatusCode::NOT_FOUND, None, format!("{what} not found"))
            }
            DomainError::AlreadyExists(what) => Self::new(
                StatusCode::CONFLICT,
                Some("uniqueness"),
                format!("{what} already exists"),
            ),
            DomainError::InvalidArgument(problems) => Self::new(
                StatusCode::BAD_REQUEST,
                Some("invalidValue"),
                problems
                    .iter()
                    .map(|(field, problem)| format!("{field}: {problem}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
            DomainError::Aborted(why) => Self::new(StatusCode::PRECONDITION_FAILED, None, why),
            DomainError::PermissionDenied(why) => Self::new(StatusCode::FORBIDDEN, None, why),
            DomainError::FailedPrecondition { message, .. } => {
                Self::new(StatusCode::BAD_REQUEST, Some("invalidValue"), message)
            }
            DomainError::Storage(cause) => {
                tracing::error!(%cause, "SCIM request failed in storage");
                Self::new(StatusCode::SERVICE_UNAVAILABLE, None, "try again later")
            }
        }
    }
}

pub fn router(directory: Directory, tls: bool, public_url: Option<&str>) -> Router {
    let state = Scim {
        directory,
        scheme: if tls { "https" } else { "http" },
        public_url: public_url
            .map(|url| url.trim().trim_end_matches('/'))
            .filter(|url| !url.is_empty())
            .map(Arc::from),
    };
    let resources = |resource_type: ScimType| {
        Router::new()
            .route(
                "/",
                get(move |state, client, query, headers| {
                    list(state, resource_type, client, query, headers)
                })
                .post(move |state, client, headers, body| {
                    create(state, resource_type, client, headers, body)
                }),
            )
            .route(
                "/.search",
                axum::routing::post(move |state, client, headers, body| {
                    search_post(state, resource_type, client, headers, body)
                }),
            )
            .route(
                "/{id}",
                get(move |state, client, path, query, headers| {
                    fetch(state, resource_type, client, path, query, headers)
                })
                .put(move |state, client, path, headers, body| {
                    replace(state, resource_type, client, path, headers, body)
                })
                .patch(move |state, client, path, headers, body| {
                    modify(state, resource_type, client, path, headers, body)
                })
                .delete(move |state, client, path| remove(state, resource_type, client, path)),
            )
    };
    let discovery = Router::new()
        .route(
            "/.search",
            axum::routing::post(|| async {
                ScimError::new(
                    StatusCode::NOT_IMPLEMENTED,
                    None,
                    "search one resource type at a time: POST /Users/.search or /Groups/.search",
                )
            }),
        )
        .route("/ServiceProviderConfig", get(service_provider_config))
        .route("/ResourceTypes", get(resource_types))
        .route("/ResourceTypes/{id}", get(resource_type))
        .route("/Schemas", get(all_schemas))
        .route("/Schemas/{id}", get(one_schema));
    Router::new()
        .nest(
            "/scim/v2",
            discovery
                .nest("/Users", resources(ScimType::User))
                .nest("/Groups", resources(ScimType::Group)),
        )
        .fallback(|| async { ScimError::new(StatusCode::NOT_FOUND, None, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ScimError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                None,
                "method not allowed here",
            )
        })
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state)
}

/// Serves SCIM until `shutdown`; over TLS when `tls` is given.
pub async fn serve(
    directory: Directory,
    listener: tokio::net::TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    public_url: Option<&str>,
    shutdown: CancellationToken,
) -> Result<(), crate::StartError> {
    tracing::info!(address = %listener.local_addr()?, tls = tls.is_some(), "serving SCIM");
    let app = router(directory, tls.is_some(), public_url);
    praxis_runtime::tls::serve_http(listener, tls, app, shutdown).await?;
    Ok(())
}

/// Every request names an enterprise's SCIM token; the client it is goes into the extensions.
async fn authenticate(State(scim): State<Scim>, mut request: Request, next: Next) -> Response {
    let token = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| {
            value
                .strip_prefix("Bearer ")
                .or_else(|| value.strip_prefix("bearer "))
        })
        .map(str::trim)
        .unwrap_or_default()
        .to_owned();
    match scim
        .directory
        .authenticate_scim(&token, chrono::Utc::now())
        .await
    {
        Ok(client) => {
            request.extensions_mut().insert(client);
            next.run(request).await
        }
        Err(DomainError::Storage(cause)) => {
            tracing::error!(%cause, "SCIM tokens cannot be checked");
            ScimError::new(StatusCode::SERVICE_UNAVAILABLE, None, "try again later").into_response()
        }
        Err(_) => ScimError::new(
            StatusCode::UNAUTHORIZED,
            None,
            "a valid SCIM bearer token is required",
        )
        .into_response(),
    }
}

/// `http(s)://<host>/scim/v2`, as the client reached it.
fn base(scim: &Scim, headers: &HeaderMap) -> String {
    if let Some(public) = &scim.public_url {
        return format!("{public}/scim/v2");
    }
    let host = headers
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .filter(|host| {
            host.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        })
        .unwrap_or("localhost");
    format!("{}://{host}/scim/v2", scim.scheme)
}

fn endpoint(resource_type: ScimType) -> &'static str {
    match resource_type {
        ScimType::User => "Users",
        ScimType::Group => "Groups",
    }
}

fn core_schema(resource_type: ScimType) -> &'static str {
    match resource_type {
        ScimType::User => patch::CORE_USER,
        ScimType::Group => patch::CORE_GROUP,
    }
}

fn etag(version: i64) -> String {
    format!("W/\"{version}\"")
}

/// The version an `If-Match` names; `None` when absent or `*`.
fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ScimError> {
    let Some(value) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or_default().trim();
    if text == "*" {
        return Ok(None);
    }
    text.trim_start_matches("W/")
        .trim_matches('"')
        .parse::<i64>()
        .map(Some)
        .map_err(|_| {
            ScimError::new(
                StatusCode::PRECONDITION_FAILED,
                None,
                "If-Match names no version of this resource",
            )
        })
}

fn rendered(scim: &Scim, headers: &HeaderMap, resource: &ScimResource) -> Value {
    let mut body = resource.body.clone();
    let location = format!(
        "{}/{}/{}",
        base(scim, headers),
        endpoint(resource.resource_type),
        resource.id
    );
    if let Some(fields) = body.as_object_mut() {
        fields.insert("id".to_owned(), Value::String(resource.id.clone()));
        if !fields.contains_key("schemas") {
            fields.insert(
                "schemas".to_owned(),
                json!([core_schema(resource.resource_type)]),
            );
        }
        fields.insert(
            "meta".to_owned(),
            json!({
                "resourceType": resource.resource_type.as_str(),
                "created": resource.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "lastModified": resource.updated_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                "location": location,
                "version": etag(resource.version),
            }),
        );
    }
    body
}

fn answer(
    scim: &Scim,
    headers: &HeaderMap,
    status: StatusCode,
    resource: &ScimResource,
) -> Response {
    answer_shown(scim, headers, status, resource, &ListQuery::default())
}

/// [`answer`] with the attributes the request asked for (`attributes`, `excludedAttributes`).
fn answer_shown(
    scim: &Scim,
    headers: &HeaderMap,
    status: StatusCode,
    resource: &ScimResource,
    query: &ListQuery,
) -> Response {
    let body = projection::project(
        rendered(scim, headers, resource),
        query.attributes.as_deref(),
        query.excluded_attributes.as_deref(),
    );
    let mut response = scim_json(status, &body);
    if let Ok(value) = HeaderValue::from_str(&etag(resource.version)) {
        response.headers_mut().insert(header::ETAG, value);
    }
    if status == StatusCode::CREATED
        && let Some(Ok(location)) = body
            .pointer("/meta/location")
            .and_then(Value::as_str)
            .map(HeaderValue::from_str)
    {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// A request body as JSON, or the SCIM answer for one that is not.
fn json_body<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ScimError> {
    serde_json::from_slice(body).map_err(|error| {
        ScimError::new(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            error.to_string(),
        )
    })
}

/// The request body as a JSON object naming the resource type's core schema.
fn resource_body(resource_type: ScimType, body: &Bytes) -> Result<Value, ScimError> {
    let value: Value = json_body(body)?;
    let names_schema = value
        .get("schemas")
        .and_then(Value::as_array)
        .is_some_and(|schemas| {
            schemas.iter().any(|schema| {
                schema
                    .as_str()
                    .is_some_and(|s| s.eq_ignore_ascii_case(core_schema(resource_type)))
            })
        });
    if !value.is_object() || !names_schema {
        return Err(ScimError::new(
            StatusCode::BAD_REQUEST,
            Some("invalidSyntax"),
            format!("schemas must include {}", core_schema(resource_type)),
        ));
    }
    validate(resource_type, &value)?;
    Ok(value)
}

/// Types the core schema fixes, so what is stored reads back as the schema says.
fn validate(resource_type: ScimType, value: &Value) -> Result<(), ScimError> {
    let invalid =
        |detail: &str| ScimError::new(StatusCode::BAD_REQUEST, Some("invalidValue"), detail);
    if resource_type == ScimType::User
        && let Some(active) = value.get("active")
        && !active.is_boolean()
    {
        return Err(invalid("active is a boolean"));
    }
    if let Some(members) = value.get("members")
        && !members.as_array().is_some_and(|m| {
            m.iter()
                .all(|item| item.get("value").is_some_and(Value::is_string))
        })
    {
        return Err(invalid("members is a list of {\"value\": id}"));
    }
    Ok(())
}

#[derive(serde::Deserialize, Default)]
struct ListQuery {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<i64>,
    count: Option<i64>,
    attributes: Option<String>,
    #[serde(rename = "excludedAttributes")]
    excluded_attributes: Option<String>,
}

/// `POST …/.search`: the same question in a body, lists as JSON arrays.
#[derive(serde::Deserialize)]
struct SearchRequest {
    filter: Option<String>,
    #[serde(rename = "startIndex")]
    start_index: Option<i64>,
    count: Option<i64>,
    #[serde(default)]
    attributes: Vec<String>,
    #[serde(rename = "excludedAttributes", default)]
    excluded_attributes: Vec<String>,
}

async fn list(
    State(scim): State<Scim>,
    resource_type: ScimType,
    axum::Extension(client): axum::Extension<ScimClient>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    search(&scim, resource_type, &client, &headers, query).await
}

async fn search_post(
    State(scim): State<Scim>,
    resource_type: ScimType,
    axum::Extension(client): axum::Extension<ScimClient>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let request: SearchRequest = json_body(&body)?;
    let joined = |list: Vec<String>| (!list.is_empty()).then(|| list.join(","));
    let query = ListQuery {
        filter: request.filter,
        start_index: request.start_index,
        count: request.count,
        attributes: joined(request.attributes),
        excluded_attributes: joined(request.excluded_attributes),
    };
    search(&scim, resource_type, &client, &headers, query).await
}

async fn search(
    scim: &Scim,
    resource_type: ScimType,
    client: &ScimClient,
    headers: &HeaderMap,
    query: ListQuery,
) -> Result<Response, ScimError> {
    let filter = query
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
        .map(filter::parse)
        .transpose()
        .map_err(|error| ScimError::new(StatusCode::BAD_REQUEST, Some("invalidFilter"), error))?;
    let mut matching = Vec::new();
    for resource in scim.directory.scim_list(client, resource_type).await? {
        let body = rendered(scim, headers, &resource);
        if filter.as_ref().is_none_or(|f| f.matches(&body)) {
            matching.push(body);
        }
    }
    // 1-based; anything below 1 means 1. A count below 0 means 0.
    let start = usize::try_from(query.start_index.unwrap_or(1).max(1)).unwrap_or(1);
    let count = usize::try_from(query.count.unwrap_or(100).max(0))
        .unwrap_or(0)
        .min(MAX_RESULTS);
    let total = matching.len();
    let page: Vec<Value> = matching
        .into_iter()
        .skip(start - 1)
        .take(count)
        .map(|body| {
            projection::project(
                body,
                query.attributes.as_deref(),
                query.excluded_attributes.as_deref(),
            )
        })
        .collect();
    Ok(list_response(total, start, page))
}

async fn create(
    State(scim): State<Scim>,
    resource_type: ScimType,
    axum::Extension(client): axum::Extension<ScimClient>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let value = resource_body(resource_type, &body)?;
    let resource = scim
        .directory
        .scim_create(&client, resource_type, value, chrono::Utc::now())
        .await?;
    Ok(answer(&scim, &headers, StatusCode::CREATED, &resource))
}

async fn fetch(
    State(scim): State<Scim>,
    resource_type: ScimType,
    axum::Extension(client): axum::Extension<ScimClient>,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    let resource = scim.directory.scim_get(&client, resource_type, &id).await?;
    Ok(answer_shown(
        &scim,
        &headers,
        StatusCode::OK,
        &resource,
        &query,
    ))
}

async fn replace(
    State(scim): State<Scim>,
    resource_type: ScimType,
    axum::Extension(client): axum::Extension<ScimClient>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let expected = if_match(&headers)?;
    let value = resource_body(resource_type, &body)?;
    let resource = scim
        .directory
        .scim_replace(
            &client,
            resource_type,
            &id,
            value,
            expected,
            chrono::Utc::now(),
        )
        .await?;
    Ok(answer(&scim, &headers, StatusCode::OK, &resource))
}

async fn modify(
    State(scim): State<Scim>,
    resource_type: ScimType,
    axum::Extension(client): axum::Extension<ScimClient>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ScimError> {
    let expected = if_match(&headers)?;
    let operations: Value = json_body(&body)?;
    let current = scim.directory.scim_get(&client, resource_type, &id).await?;
    let patched = patch::apply(&current.body, &operations).map_err(|error| {
        ScimError::new(StatusCode::BAD_REQUEST, Some(error.scim_type), error.detail)
    })?;
    validate(resource_type, &patched)?;
    let resource = scim
        .directory
        .scim_replace(
            &client,
            resource_type,
            &id,
            patched,
            // The If-Match version when sent (412 when stale), else the one patched: a write
            // in between is refused rather than overwritten.
            Some(expected.unwrap_or(current.version)),
            chrono::Utc::now(),
        )
        .await?;
    Ok(answer(&scim, &headers, StatusCode::OK, &resource))
}

async fn remove(
    State(scim): State<Scim>,
    resource_type: ScimType,
    axum::Extension(client): axum::Extension<ScimClient>,
    Path(id): Path<String>,
) -> Result<Response, ScimError> {
    scim.directory
        .scim_delete(&client, resource_type, &id, chrono::Utc::now())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A ListResponse (RFC 7644 §3.4.2) of one page.
fn list_response(total: usize, start: usize, page: Vec<Value>) -> Response {
    scim_json(
        StatusCode::OK,
        &json!({
            "schemas": [LIST_SCHEMA],
            "totalResults": total,
            "startIndex": start,
            "itemsPerPage": page.len(),
            "Resources": page,
        }),
    )
}

/// The one of `all` whose `id` is `id`.
fn one_of(all: Vec<Value>, id: &str, what: &str) -> Result<Response, ScimError> {
    all.into_iter()
        .find(|item| item["id"].as_str() == Some(id))
        .map(|item| scim_json(StatusCode::OK, &item))
        .ok_or_else(|| ScimError::new(StatusCode::NOT_FOUND, None, format!("no such {what}")))
}

async fn service_provider_config(State(scim): State<Scim>, headers: HeaderMap) -> Response {
    scim_json(
        StatusCode::OK,
        &schemas::service_provider_config(&base(&scim, &headers), MAX_RESULTS),
    )
}

async fn resource_types(State(scim): State<Scim>, headers: HeaderMap) -> Response {
    let all = schemas::resource_types(&base(&scim, &headers));
    list_response(all.len(), 1, all)
}

async fn resource_type(
    State(scim): State<Scim>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    one_of(
        schemas::resource_types(&base(&scim, &headers)),
        &id,
        "resource type",
    )
}

async fn all_schemas(State(scim): State<Scim>, headers: HeaderMap) -> Response {
    let all = schemas::schemas(&base(&scim, &headers));
    list_response(all.len(), 1, all)
}

async fn one_schema(
    State(scim): State<Scim>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ScimError> {
    one_of(schemas::schemas(&base(&scim, &headers)), &id, "schema")
}
