//! `praxis.identity.v1.SsoService`: connections (I6), home-realm discovery, and the end of a
//! browser login.

use crate::grpc_auth::{ERROR_DOMAIN, timestamp, tokens};
use crate::sso::connections::{
    self, Connection, ConnectionSettings, Mapping, MembershipRule, OidcConfig, Rule, SamlConfig,
    normalize_domain,
};
use crate::sso::{Sso, SsoError};
use praxis_proto::directory::v1 as directory;
use praxis_proto::identity::v1 as pb;
use praxis_proto::identity::v1::sso_service_server::SsoService;
use praxis_runtime::error::{FieldViolations, invalid_argument, with_reason};
use std::sync::Arc;
use tonic::{Code, Request, Response, Status};

pub const PUBLIC_METHODS: [&str; 2] = [
    "/praxis.identity.v1.SsoService/DiscoverLogin",
    "/praxis.identity.v1.SsoService/CompleteSsoLogin",
];

const MAX_SKEW_SECONDS: i32 = 300;

pub struct SsoApi {
    pub sso: Arc<Sso>,
}

fn status(error: SsoError) -> Status {
    match error {
        SsoError::Invalid { field, message } => invalid_argument(&field, message),
        SsoError::Refused(message) => with_reason(
            Code::FailedPrecondition,
            "SSO_REFUSED",
            ERROR_DOMAIN,
            message,
        ),
        SsoError::Precondition { reason, message } => {
            with_reason(Code::FailedPrecondition, reason, ERROR_DOMAIN, message)
        }
        SsoError::PermissionDenied(message) => Status::permission_denied(message),
        SsoError::NotFound(what) => Status::not_found(format!("{what} not found")),
        SsoError::Aborted => Status::aborted(error.to_string()),
        SsoError::Unavailable(cause) => {
            tracing::warn!(%cause, "SSO dependency unavailable");
            Status::unavailable("try again later")
        }
        SsoError::Internal(cause) => praxis_runtime::error::internal("identity", &cause),
    }
}

fn parse_etag(etag: &str) -> Result<Option<i64>, Status> {
    let trimmed = etag.trim().trim_matches('"');
    if trimmed.is_empty() {
        return Ok(None);
    }
    trimmed
        .parse()
        .map(Some)
        .map_err(|_| invalid_argument("etag", "not an etag this service issued"))
}

fn rule_in(rule: pb::GroupRule) -> Rule {
    Rule {
        group: rule.group.trim().to_owned(),
        kind: rule.kind,
        memberships: rule
            .memberships
            .into_iter()
            .map(|m| MembershipRule {
                practice_id: m.practice_id.trim().to_owned(),
                line_ids: m.line_ids,
            })
            .collect(),
        role_ids: rule
            .role_ids
            .into_iter()
            .map(|r| r.trim().to_owned())
            .collect(),
    }
}

fn rule_out(rule: &Rule) -> pb::GroupRule {
    pb::GroupRule {
        group: rule.group.clone(),
        kind: rule.kind,
        memberships: rule
            .memberships
            .iter()
            .map(|m| directory::PracticeMembership {
                practice_id: m.practice_id.clone(),
                line_ids: m.line_ids.clone(),
                resource_filter_ids: Vec::new(),
            })
            .collect(),
        role_ids: rule.role_ids.clone(),
    }
}

fn check_rule(field: &str, rule: &Rule, needs_group: bool, problems: &mut FieldViolations) {
    if needs_group && rule.group.is_empty() {
        problems.add(&format!("{field}.group"), "required");
    }
    let kind = directory::UserKind::try_from(rule.kind).ok();
    match kind {
        None | Some(directory::UserKind::Unspecified) => {
            problems.add(&format!("{field}.kind"), "a user kind");
        }
        Some(_) => {}
    }
    for (index, membership) in rule.memberships.iter().enumerate() {
        if membership.practice_id.is_empty() {
            problems.add(
                &format!("{field}.memberships[{index}].practice_id"),
                "required",
            );
        }
    }
    if rule.role_ids.iter().any(String::is_empty) {
        problems.add(&format!("{field}.role_ids"), "empty role id");
    }
}

fn skew(field: &str, value: i32, problems: &mut FieldViolations) -> u32 {
    if !(0..=MAX_SKEW_SECONDS).contains(&value) {
        problems.add(field, format!("0 to {MAX_SKEW_SECONDS} seconds"));
    }
    u32::try_from(value).unwrap_or(0)
}

impl SsoApi {
    fn to_proto(&self, connection: &Connection) -> pb::SsoConnection {
        let settings = &connection.settings;
        let protocol = match (&settings.oidc, &settings.saml) {
            (_, Some(saml)) => Some(pb::sso_connection::Protocol::Saml(pb::SamlSettings {
                idp_metadata_xml: saml.idp_metadata_xml.clone(),
                idp_entity_id: saml.idp_entity_id.clone(),
                sp_entity_id: self.sso.sp_entity_id(connection),
                allow_idp_initiated: saml.allow_idp_initiated,
                clock_skew_seconds: i32::try_from(saml.clock_skew_seconds).unwrap_or(0),
                allow_rsa_sha1: saml.allow_rsa_sha1,
                sp_certificate: crate::sso::saml::certificate_pem(&saml.sp_certificate),
            })),
            (Some(oidc), None) => Some(pb::sso_connection::Protocol::Oidc(pb::OidcSettings {
                issuer: oidc.issuer.clone(),
                client_id: oidc.client_id.clone(),
                client_secret: String::new(),
                client_secret_set: connection.sealed_secret.is_some(),
                scopes: oidc.scopes.clone(),
                clock_skew_seconds: i32::try_from(oidc.clock_skew_seconds).unwrap_or(0),
            })),
            (None, None) => None,
        };
        let mapping = &settings.mapping;
        pb::SsoConnection {
            id: connection.id.clone(),
            enterprise_id: connection.enterprise_id.clone(),
            display_name: connection.display_name.clone(),
            enabled: connection.enabled,
            domains: connection.domains.clone(),
            protocol,
            mapping: Some(pb::AttributeMapping {
                email: mapping.email.clone(),
                given_name: mapping.given_name.clone(),
                family_name: mapping.family_name.clone(),
                phone: mapping.phone.clone(),
                groups: mapping.groups.clone(),
            }),
            group_rules: settings.rules.iter().map(rule_out).collect(),
            provision_users: settings.provision_users,
            default_rule: settings.default_rule.as_ref().map(rule_out),
            etag: connection.etag(),
            create_time: Some(timestamp(connection.created_at)),
            update_time: Some(timestamp(connection.updated_at)),
            callback_url: match settings.saml {
                Some(_) => self.sso.acs_url(&connection.id),
                None => self.sso.callback_url(&connection.id),
            },
        }
    }

    /// Applies the fields `paths` names from `wanted` onto `connection`, checking each; a new
    /// client secret is sealed, an empty one keeps the stored secret.
    fn apply(
        &self,
        connection: &mut Connection,
        wanted: pb::SsoConnection,
        paths: &[&str],
    ) -> Result<(), Status> {
        let has = |path: &str| paths.contains(&path);
        let mut problems = FieldViolations::new();
        if has("display_name") {
            let name = wanted.display_name.trim();
            if name.is_empty() || name.chars().count() > 100 {
                problems.add("connection.display_name", "1 to 100 characters");
            }
            connection.display_name = name.to_owned();
        }
        if has("enabled") {
            connection.enabled = wanted.enabled;
        }
        if has("domains") {
            let mut domains = Vec::new();
            for (index, domain) in wanted.domains.iter().enumerate() {
                match normalize_domain(domain) {
                    Ok(domain) if !domains.contains(&domain) => domains.push(domain),
                    Ok(_) => {}
                    Err(message) => problems.add(&format!("connection.domains[{index}]"), message),
                }
            }
            if domains.is_empty() {
                problems.add("connection.domains", "at least one email domain");
            }
            connection.domains = domains;
        }
        let settings = &mut connection.settings;
        if has("oidc") || has("saml") {
            match wanted.protocol {
                Some(pb::sso_connection::Protocol::Oidc(oidc)) => {
                    let issuer = oidc.issuer.trim().trim_end_matches('/').to_owned();
                    match url::Url::parse(&issuer) {
                        Ok(url) if matches!(url.scheme(), "https" | "http") => {}
                        _ => problems.add("connection.oidc.issuer", "an http(s) URL"),
                    }
                    if oidc.client_id.trim().is_empty() {
                        problems.add("connection.oidc.client_id", "required");
                    }
                    let secret = oidc.client_secret.trim();
                    if settings.saml.is_some() {
                        // The sealed secret was the SAML SP key.
                        connection.sealed_secret = None;
                    }
                    if !secret.is_empty() {
                        connection.sealed_secret = Some(self.sso.sealer.seal(
                            secret.as_bytes(),
                            &connections::secret_context(&connection.id),
                        ));
                    } else if connection.sealed_secret.is_none() {
                        problems.add("connection.oidc.client_secret", "required");
                    }
                    settings.oidc = Some(OidcConfig {
                        issuer,
                        client_id: oidc.client_id.trim().to_owned(),
                        scopes: oidc
                            .scopes
                            .iter()
                            .map(|s| s.trim().to_owned())
                            .filter(|s| !s.is_empty())
                            .collect(),
                        clock_skew_seconds: skew(
                            "connection.oidc.clock_skew_seconds",
                            oidc.clock_skew_seconds,
                            &mut problems,
                        ),
                    });
                    settings.saml = None;
                }
                Some(pb::sso_connection::Protocol::Saml(saml)) => {
                    let skew = skew(
                        "connection.saml.clock_skew_seconds",
                        saml.clock_skew_seconds,
                        &mut problems,
                    );
                    match crate::sso::saml::read_idp_metadata(&saml.idp_metadata_xml) {
                        Ok(idp_entity_id) => {
                            // A connection that becomes SAML gets its own SP key pair.
                            let sp_certificate = match &settings.saml {
                                Some(old) if connection.sealed_secret.is_some() => {
                                    old.sp_certificate.clone()
                                }
                                _ => {
                                    let (key, certificate) = crate::sso::saml::new_sp_keys(
                                        &format!("praxis-sp-{}", connection.id),
                                    )
                                    .map_err(|e| praxis_runtime::error::internal("identity", &e))?;
                                    connection.sealed_secret =
                                        Some(self.sso.sealer.seal(
                                            &key,
                                            &connections::secret_context(&connection.id),
                                        ));
                                    certificate
                                }
                            };
                            settings.saml = Some(SamlConfig {
                                idp_metadata_xml: saml.idp_metadata_xml,
                                idp_entity_id,
                                sp_entity_id: saml.sp_entity_id.trim().to_owned(),
                                allow_idp_initiated: saml.allow_idp_initiated,
                                clock_skew_seconds: skew,
                                allow_rsa_sha1: saml.allow_rsa_sha1,
                                sp_certificate,
                            });
                            settings.oidc = None;
                        }
                        Err(message) => problems.add("connection.saml.idp_metadata_xml", message),
                    }
                }
                None => problems.add("connection.protocol", "oidc or saml settings"),
            }
        }
        if has("mapping") {
            let m = wanted.mapping.unwrap_or_default();
            settings.mapping = Mapping {
                email: m.email.trim().to_owned(),
                given_name: m.given_name.trim().to_owned(),
                family_name: m.family_name.trim().to_owned(),
                phone: m.phone.trim().to_owned(),
                groups: m.groups.trim().to_owned(),
            };
        }
        if has("group_rules") {
            settings.rules = wanted.group_rules.into_iter().map(rule_in).collect();
            for (index, rule) in settings.rules.iter().enumerate() {
                check_rule(
                    &format!("connection.group_rules[{index}]"),
                    rule,
                    true,
                    &mut problems,
                );
            }
        }
        if has("default_rule") {
            settings.default_rule = wanted
                .default_rule
                .map(rule_in)
                .filter(|r| r.kind != 0 || !r.role_ids.is_empty() || !r.memberships.is_empty());
            if let Some(rule) = &settings.default_rule {
                check_rule("connection.default_rule", rule, false, &mut problems);
            }
        }
        if has("provision_users") {
            settings.provision_users = wanted.provision_users;
        }
        problems.check()
    }
}

const ALL_FIELDS: [&str; 9] = [
    "display_name",
    "enabled",
    "domains",
    "oidc",
    "saml",
    "mapping",
    "group_rules",
    "default_rule",
    "provision_users",
];

fn caller<T>(request: &Request<T>) -> Result<praxis_runtime::Caller, Status> {
    praxis_runtime::auth::caller(request).cloned()
}

#[tonic::async_trait]
impl SsoService for SsoApi {
    async fn create_connection(
        &self,
        request: Request<pb::CreateConnectionRequest>,
    ) -> Result<Response<pb::CreateConnectionResponse>, Status> {
        let caller = caller(&request)?;
        let wanted = request
            .into_inner()
            .connection
            .ok_or_else(|| invalid_argument("connection", "required"))?;
        let enterprise_id = wanted.enterprise_id.trim().to_owned();
        if enterprise_id.is_empty() {
            return Err(invalid_argument("connection.enterprise_id", "required"));
        }
        connections::may_manage(&caller, &enterprise_id).map_err(status)?;
        let now = chrono::Utc::now();
        let mut connection = Connection {
            id: uuid::Uuid::now_v7().to_string(),
            enterprise_id,
            display_name: String::new(),
            enabled: true,
            domains: Vec::new(),
            settings: ConnectionSettings::default(),
            sealed_secret: None,
            version: 1,
            created_at: now,
            updated_at: now,
        };
        let enabled = wanted.enabled;
        self.apply(&mut connection, wanted, &ALL_FIELDS)?;
        connection.enabled = enabled;
        self.check_enterprise_domains(&connection).await?;
        let db = &self.sso.db;
        connections::check_domains_free(db, &connection.domains, None)
            .await
            .map_err(status)?;
        connections::insert(db, &connection).await.map_err(status)?;
        self.audit(&caller, &connection, "sso_connection.create")
            .await;
        Ok(Response::new(pb::CreateConnectionResponse {
            connection: Some(self.to_proto(&connection)),
        }))
    }

    async fn get_connection(
        &self,
        request: Request<pb::GetConnectionRequest>,
    ) -> Result<Response<pb::GetConnectionResponse>, Status> {
        let caller = caller(&request)?;
        let connection = self
            .managed(&caller, &request.get_ref().connection_id)
            .await?;
        Ok(Response::new(pb::GetConnectionResponse {
            connection: Some(self.to_proto(&connection)),
        }))
    }

    async fn list_connections(
        &self,
        request: Request<pb::ListConnectionsRequest>,
    ) -> Result<Response<pb::ListConnectionsResponse>, Status> {
        let caller = caller(&request)?;
        let enterprise_id = request.get_ref().enterprise_id.trim();
        if enterprise_id.is_empty() {
            return Err(invalid_argument("enterprise_id", "required"));
        }
        connections::may_manage(&caller, enterprise_id).map_err(status)?;
        let list = connections::list(&self.sso.db, enterprise_id)
            .await
            .map_err(status)?;
        Ok(Response::new(pb::ListConnectionsResponse {
            connections: list.iter().map(|c| self.to_proto(c)).collect(),
        }))
    }

    async fn update_connection(
        &self,
        request: Request<pb::UpdateConnectionRequest>,
    ) -> Result<Response<pb::UpdateConnectionResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let wanted = body
            .connection
            .ok_or_else(|| invalid_argument("connection", "required"))?;
        let mut connection = self.managed(&caller, &wanted.id).await?;
        let expected = connection.version;
        if parse_etag(&wanted.etag)? != Some(expected) {
            return Err(Status::aborted(
                "the connection changed since it was read (etag)",
            ));
        }
        let paths: Vec<String> = body.update_mask.map(|m| m.paths).unwrap_or_default();
        if paths.is_empty() {
            return Err(invalid_argument("update_mask", "name the fields to change"));
        }
        if let Some(unknown) = paths.iter().find(|p| !ALL_FIELDS.contains(&p.as_str())) {
            return Err(invalid_argument(
                "update_mask",
                format!("{unknown} cannot be changed"),
            ));
        }
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        self.apply(&mut connection, wanted, &paths)?;
        self.check_enterprise_domains(&connection).await?;
        let db = &self.sso.db;
        connections::check_domains_free(db, &connection.domains, Some(&connection.id))
            .await
            .map_err(status)?;
        connection.version += 1;
        connection.updated_at = chrono::Utc::now();
        connections::update(db, &connection, expected)
            .await
            .map_err(status)?;
        self.audit(&caller, &connection, "sso_connection.update")
            .await;
        Ok(Response::new(pb::UpdateConnectionResponse {
            connection: Some(self.to_proto(&connection)),
        }))
    }

    async fn delete_connection(
        &self,
        request: Request<pb::DeleteConnectionRequest>,
    ) -> Result<Response<pb::DeleteConnectionResponse>, Status> {
        let caller = caller(&request)?;
        let body = request.into_inner();
        let connection = self.managed(&caller, &body.connection_id).await?;
        connections::delete(&self.sso.db, &connection.id, parse_etag(&body.etag)?)
            .await
            .map_err(status)?;
        self.audit(&caller, &connection, "sso_connection.delete")
            .await;
        Ok(Response::new(pb::DeleteConnectionResponse {}))
    }

    async fn discover_login(
        &self,
        request: Request<pb::DiscoverLoginRequest>,
    ) -> Result<Response<pb::DiscoverLoginResponse>, Status> {
        let found = self
            .sso
            .discover(&request.get_ref().email)
            .await
            .map_err(status)?;
        Ok(Response::new(match found.connection_id {
            Some(id) => pb::DiscoverLoginResponse {
                method: pb::LoginMethod::Sso.into(),
                start_path: format!("/sso/{id}/start"),
                connection_id: id,
                sso_required: found.sso_required,
            },
            None => pb::DiscoverLoginResponse {
                method: pb::LoginMethod::Password.into(),
                ..Default::default()
            },
        }))
    }

    async fn complete_sso_login(
        &self,
        request: Request<pb::CompleteSsoLoginRequest>,
    ) -> Result<Response<pb::CompleteSsoLoginResponse>, Status> {
        let code = request.get_ref().sso_code.trim();
        if code.is_empty() {
            return Err(invalid_argument("sso_code", "required"));
        }
        let (issued, user_id, amr) = self.sso.complete(code).await.map_err(status)?;
        Ok(Response::new(pb::CompleteSsoLoginResponse {
            tokens: Some(tokens(issued)),
            user_id,
            amr,
        }))
    }
}

impl SsoApi {
    /// A connection serves only its enterprise's allowlisted email domains (D2); anything else
    /// would send another enterprise's people to this one's identity provider.
    async fn check_enterprise_domains(&self, connection: &Connection) -> Result<(), Status> {
        let allowed = self
            .sso
            .auth
            .accounts()
            .enterprise_domains(&connection.enterprise_id)
            .await
            .map_err(|error| {
                tracing::warn!(%error, "enterprise domains unavailable");
                Status::unavailable("try again later")
            })?
            .domains;
        let mut problems = FieldViolations::new();
        for (index, domain) in connection.domains.iter().enumerate() {
            if !allowed.contains(domain) {
                problems.add(
                    &format!("connection.domains[{index}]"),
                    format!("{domain} is not an allowlisted email domain of this enterprise (D2)"),
                );
            }
        }
        problems.check()
    }

    /// The connection, if the caller manages its enterprise; others get NOT_FOUND.
    async fn managed(
        &self,
        caller: &praxis_runtime::Caller,
        id: &str,
    ) -> Result<Connection, Status> {
        let id = id.trim();
        if id.is_empty() {
            return Err(invalid_argument("connection_id", "required"));
        }
        let connection = connections::get(&self.sso.db, id)
            .await
            .map_err(status)?
            .ok_or_else(|| Status::not_found("SSO connection not found"))?;
        connections::may_manage(caller, &connection.enterprise_id)
            .map_err(|_| Status::not_found("SSO connection not found"))?;
        Ok(connection)
    }

    async fn audit(&self, caller: &praxis_runtime::Caller, connection: &Connection, action: &str) {
        self.sso
            .auth
            .audit(
                &connection.enterprise_id,
                &caller.user_id,
                action,
                "success",
                &crate::auth::ClientInfo::default(),
                serde_json::json!({
                    "connection_id": connection.id,
                    "protocol": connection.protocol(),
                    "domains": connection.domains,
                    "enabled": connection.enabled,
                }),
            )
            .await;
    }
}
