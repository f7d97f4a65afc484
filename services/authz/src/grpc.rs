//! `praxis.authz.v1.AuthzService` and `PolicyService`.

use crate::engine::{self, CheckInput, EngineError, Evaluation, ResourceInput};
use crate::lookup::{self, Place, Question};
use crate::policies::{Books, PolicyStore, StoreError, StoredPolicy};
use crate::snapshots::{SnapshotError, Snapshots, may_ask};
use crate::{book, model::Model};
use praxis_proto::authz::v1 as pb;
use praxis_proto::authz::v1::authz_service_server::AuthzService;
use praxis_proto::authz::v1::policy_service_server::PolicyService;
use praxis_runtime::Caller;
use praxis_runtime::error::{FieldViolations, internal, invalid_argument, with_reason};
use std::net::IpAddr;
use std::sync::Arc;
use tonic::{Code, Request, Response, Status};

pub const ERROR_DOMAIN: &str = "authz.praxis";
const MAX_BATCH: usize = 100;
const MAX_POLICY_BYTES: usize = 64 * 1024;
/// Users a LookupSubjects considers at most.
const MAX_SUBJECTS: usize = 10_000;

#[derive(Clone)]
pub struct AuthzApi {
    pub model: Arc<Model>,
    pub snapshots: Arc<Snapshots>,
    pub books: Arc<Books>,
    /// Denied Checks go to the audit outbox here.
    pub db: sea_orm::DatabaseConnection,
}

fn non_empty(value: &str) -> Option<String> {
    Some(value.trim())
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// `feature:action`, both lowercase words.
fn well_formed(permission: &str) -> bool {
    let Some((feature, action)) = permission.split_once(':') else {
        return false;
    };
    let word = |part: &str| {
        !part.is_empty()
            && part.len() <= 64
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
    };
    word(feature) && word(action)
}

struct Validated {
    principal_id: String,
    min_revision: i64,
    input: CheckInput,
}

/// Checks one request; problems go to `violations` under `prefix`.
fn validate(
    model: &Model,
    check: pb::CheckRequest,
    prefix: &str,
    violations: &mut FieldViolations,
) -> Option<Validated> {
    let field = |name: &str| format!("{prefix}{name}");
    let principal_id = check.principal.as_ref().and_then(|p| non_empty(&p.user_id));
    if principal_id.is_none() {
        violations.add(&field("principal.user_id"), "required");
    }
    let permission = check.permission.trim().to_owned();
    if !well_formed(&permission) {
        violations.add(
            &field("permission"),
            "`feature:action` in lowercase, e.g. appointments:read",
        );
    } else if model.action(&permission).is_none() {
        violations.add(
            &field("permission"),
            format!("{permission} is not in the permission catalogue"),
        );
    }
    let resource = check.resource.unwrap_or_default();
    if resource.enterprise_id.trim().is_empty() {
        violations.add(&field("resource.enterprise_id"), "required");
    }
    if resource.r#type.trim().is_empty() {
        violations.add(&field("resource.type"), "required, e.g. patient");
    }
    if check.min_revision < 0 {
        violations.add(&field("min_revision"), "must not be negative");
    }
    let context = check.context.unwrap_or_default();
    let ip = non_empty(&context.ip);
    if ip
        .as_deref()
        .is_some_and(|ip| ip.parse::<IpAddr>().is_err())
    {
        violations.add(&field("context.ip"), "an IPv4 or IPv6 address");
    }
    let time = context
        .time
        .map_or_else(|| chrono::Utc::now().timestamp(), |t| t.seconds);
    let principal_id = principal_id?;
    Some(Validated {
        principal_id,
        min_revision: check.min_revision,
        input: CheckInput {
            permission,
            resource: ResourceInput {
                kind: resource.r#type.trim().to_owned(),
                id: resource.id,
                enterprise_id: resource.enterprise_id.trim().to_owned(),
                practice_id: non_empty(&resource.practice_id),
                location_id: non_empty(&resource.location_id),
                owner_id: non_empty(&resource.owner_id),
                line_id: non_empty(&resource.line_id),
                attributes: resource.attributes,
            },
            time,
            ip,
            amount: context.amount,
        },
    })
}

/// I7: an API key asking about its own principal is allowed only what its scopes name.
fn outside_scopes(caller: &Caller, principal_id: &str, permission: &str) -> bool {
    caller.user_id == principal_id
        && !caller.scopes.is_empty()
        && !caller.scopes.iter().any(|s| s == permission)
}

/// The permission, resource type, freshness and context of a lookup, checked like a Check's.
fn question(
    model: &Model,
    permission: &str,
    resource_type: &str,
    context: Option<pb::Context>,
    min_revision: i64,
    violations: &mut FieldViolations,
) -> Question {
    if min_revision < 0 {
        violations.add("min_revision", "must not be negative");
    }
    let permission = permission.trim().to_owned();
    if !well_formed(&permission) || model.action(&permission).is_none() {
        violations.add(
            "permission",
            "a catalogued `feature:action`, e.g. appointments:read",
        );
    }
    let context = context.unwrap_or_default();
    let ip = non_empty(&context.ip);
    if ip
        .as_deref()
        .is_some_and(|ip| ip.parse::<IpAddr>().is_err())
    {
        violations.add("context.ip", "an IPv4 or IPv6 address");
    }
    Question {
        permission,
        resource_type: non_empty(resource_type).unwrap_or_else(|| lookup::DEFAULT_TYPE.to_owned()),
        time: context
            .time
            .map_or_else(|| chrono::Utc::now().timestamp(), |t| t.seconds),
        ip,
        amount: context.amount,
    }
}

fn denial_record(
    caller: &Caller,
    enterprise_id: &str,
    check: &Validated,
    evaluation: &Evaluation,
) -> crate::audit::Record {
    let resource = &check.input.resource;
    crate::audit::Record {
        enterprise_id: enterprise_id.to_owned(),
        actor: caller.user_id.clone(),
        action: "authz.check",
        target: format!("{}:{}", resource.kind, resource.id),
        outcome: "DENIED",
        ip: check.input.ip.clone(),
        details: serde_json::json!({
            "principal": check.principal_id,
            "permission": check.input.permission,
            "reasons": evaluation.reasons,
            "revision": evaluation.revision,
        }),
    }
}

fn engine_status(error: EngineError) -> Status {
    match error {
        EngineError::Invalid { field, message } => invalid_argument(field, message),
        other => {
            tracing::error!(error = %other, "lookup could not be decided");
            Status::internal("the lookup could not be decided")
        }
    }
}

fn snapshot_status(error: SnapshotError) -> Status {
    match error {
        SnapshotError::NotFound => Status::not_found("principal not found"),
        SnapshotError::Denied => Status::permission_denied(
            "a user may ask about themselves; admins about their enterprise",
        ),
        SnapshotError::RevisionNotReached { .. } => with_reason(
            Code::FailedPrecondition,
            "REVISION_NOT_REACHED",
            ERROR_DOMAIN,
            error.to_string(),
        ),
        SnapshotError::Unavailable(cause) => {
            tracing::warn!(%cause, "principal lookup failed");
            Status::unavailable("directory unavailable; no decision")
        }
    }
}

/// The authenticated caller and the header they came with, taken out of the request rather
/// than copied (a Check is answered many thousands of times a second).
fn credentials<T>(
    request: &mut Request<T>,
) -> Result<(Caller, Option<tonic::metadata::AsciiMetadataValue>), Status> {
    let caller = request
        .extensions_mut()
        .remove::<Caller>()
        .ok_or_else(|| Status::unauthenticated("no authenticated caller"))?;
    Ok((caller, request.metadata_mut().remove("authorization")))
}

fn answer(evaluation: &Evaluation) -> pb::CheckResponse {
    let decision = if evaluation.allow {
        pb::Decision::Allow
    } else {
        pb::Decision::Deny
    };
    pb::CheckResponse {
        decision: decision.into(),
        reasons: evaluation.reasons.clone(),
        decided_at_revision: evaluation.revision,
        obligation: (!evaluation.masked_fields.is_empty()).then(|| pb::Obligation {
            masked_fields: evaluation.masked_fields.clone(),
        }),
    }
}

impl AuthzApi {
    /// A denied Check is recorded (AU2) before it is answered: no denial goes unrecorded.
    async fn record_denials(&self, records: Vec<crate::audit::Record>) -> Result<(), Status> {
        crate::audit::write_all(&self.db, records)
            .await
            .map_err(|error| {
                tracing::error!(%error, "denied check not recorded");
                Status::unavailable("the denial could not be recorded; try again")
            })
    }

    /// Who may ask about `principal` (A1): the principal, an admin of its enterprise, or a
    /// service account of its enterprise that may itself do `authz:check` (within its API key's
    /// scopes), as this engine decides.
    async fn may_ask_about(
        &self,
        caller: &Caller,
        authorization: Option<&str>,
        principal: &crate::principal::CompiledPrincipal,
    ) -> Result<bool, Status> {
        const ASK: &str = "authz:check";
        if may_ask(caller, principal) {
            return Ok(true);
        }
        if caller.kind != "SERVICE_ACCOUNT"
            || caller.enterprise_id != principal.enterprise_id
            || outside_scopes(caller, &caller.user_id, ASK)
        {
            return Ok(false);
        }
        let own = self
            .snapshots
            .principal(caller, authorization, &caller.user_id, 0)
            .await
            .map_err(snapshot_status)?;
        let book = self.book(&own.enterprise_id).await?;
        let question = Question {
            permission: ASK.to_owned(),
            resource_type: "authz".to_owned(),
            time: chrono::Utc::now().timestamp(),
            ip: None,
            amount: None,
        };
        lookup::allowed(&self.model, &book, &own, &question, &Place::default())
            .map_err(engine_status)
    }

    /// The enterprise's policy book; without one there is no decision.
    async fn book(&self, enterprise_id: &str) -> Result<Arc<book::PolicyBook>, Status> {
        self.books.book(enterprise_id).await.map_err(|error| {
            tracing::error!(%error, "policy book unavailable");
            Status::unavailable("the enterprise's policies cannot be loaded; no decision")
        })
    }

    /// The decision, and the audit record a denial needs (written by the caller before it
    /// answers: a denial nobody can find later is not given).
    async fn decide(
        &self,
        caller: &Caller,
        authorization: Option<&str>,
        check: Validated,
        explain: bool,
    ) -> Result<(Evaluation, Option<crate::audit::Record>), Status> {
        let principal = self
            .snapshots
            .principal(
                caller,
                authorization,
                &check.principal_id,
                check.min_revision,
            )
            .await
            .map_err(snapshot_status)?;
        if !self
            .may_ask_about(caller, authorization, &principal)
            .await?
        {
            return Err(snapshot_status(SnapshotError::Denied));
        }
        let book = self.book(&principal.enterprise_id).await?;
        let mut evaluation =
            engine::evaluate(&self.model, &book, &principal, &check.input, explain).map_err(
                |error| match error {
                    EngineError::Invalid { field, message } => invalid_argument(field, message),
                    EngineError::Failed(cause) => internal("decision", &cause),
                },
            )?;
        if outside_scopes(caller, &principal.user_id, &check.input.permission) {
            evaluation.allow = false;
            evaluation.masked_fields.clear();
            evaluation.reasons = vec![format!(
                "{} is outside the scopes of the API key used (I7)",
                check.input.permission
            )];
        }
        tracing::debug!(
            allow = evaluation.allow,
            permission = %check.input.permission,
            "check"
        );
        let denial = (!evaluation.allow && !explain)
            .then(|| denial_record(caller, &principal.enterprise_id, &check, &evaluation));
        Ok((evaluation, denial))
    }
}

#[tonic::async_trait]
impl AuthzService for AuthzApi {
    async fn check(
        &self,
        mut request: Request<pb::CheckRequest>,
    ) -> Result<Response<pb::CheckResponse>, Status> {
        let (caller, header) = credentials(&mut request)?;
        let authorization = header.as_ref().and_then(|value| value.to_str().ok());
        let mut violations = FieldViolations::new();
        let check = validate(&self.model, request.into_inner(), "", &mut violations);
        violations.check()?;
        let check = check.ok_or_else(|| Status::invalid_argument("invalid check"))?;
        let (evaluation, denial) = self.decide(&caller, authorization, check, false).await?;
        self.record_denials(denial.into_iter().collect()).await?;
        Ok(Response::new(answer(&evaluation)))
    }

    async fn batch_check(
        &self,
        mut request: Request<pb::BatchCheckRequest>,
    ) -> Result<Response<pb::BatchCheckResponse>, Status> {
        let (caller, header) = credentials(&mut request)?;
        let authorization = header.as_ref().and_then(|value| value.to_str().ok());
        let checks = request.into_inner().checks;
        if checks.is_empty() || checks.len() > MAX_BATCH {
            return Err(invalid_argument(
                "checks",
                format!("between 1 and {MAX_BATCH} checks"),
            ));
        }
        let mut violations = FieldViolations::new();
        let validated: Vec<Option<Validated>> = checks
            .into_iter()
            .enumerate()
            .map(|(i, check)| {
                validate(
                    &self.model,
                    check,
                    &format!("checks[{i}]."),
                    &mut violations,
                )
            })
            .collect();
        violations.check()?;
        let mut results = Vec::with_capacity(validated.len());
        let mut denials = Vec::new();
        for check in validated {
            let check = check.ok_or_else(|| Status::invalid_argument("invalid check"))?;
            let (evaluation, denial) = self.decide(&caller, authorization, check, false).await?;
            results.push(answer(&evaluation));
            denials.extend(denial);
        }
        // One write for the whole batch: all its denials are recorded, or none is answered.
        self.record_denials(denials).await?;
        Ok(Response::new(pb::BatchCheckResponse { results }))
    }

    async fn lookup_resources(
        &self,
        mut request: Request<pb::LookupResourcesRequest>,
    ) -> Result<Response<pb::LookupResourcesResponse>, Status> {
        let (caller, header) = credentials(&mut request)?;
        let authorization = header.as_ref().and_then(|value| value.to_str().ok());
        let body = request.into_inner();
        let mut violations = FieldViolations::new();
        let principal_id = body.principal.as_ref().and_then(|p| non_empty(&p.user_id));
        if principal_id.is_none() {
            violations.add("principal.user_id", "required");
        }
        let question = question(
            &self.model,
            &body.permission,
            &body.resource_type,
            body.context,
            body.min_revision,
            &mut violations,
        );
        violations.check()?;
        let principal_id = principal_id.unwrap_or_default();
        let principal = self
            .snapshots
            .principal(&caller, authorization, &principal_id, body.min_revision)
            .await
            .map_err(snapshot_status)?;
        if !self
            .may_ask_about(&caller, authorization, &principal)
            .await?
        {
            return Err(snapshot_status(SnapshotError::Denied));
        }
        let book = self.book(&principal.enterprise_id).await?;
        let found = if outside_scopes(&caller, &principal.user_id, &question.permission) {
            lookup::Found {
                revision: principal.revision,
                ..lookup::Found::default()
            }
        } else {
            lookup::resources(&self.model, &book, &principal, &question).map_err(engine_status)?
        };
        Ok(Response::new(pb::LookupResourcesResponse {
            enterprise_wide: found.enterprise_wide,
            practice_ids: found.practices,
            location_ids: found.locations,
            lines: found
                .lines
                .into_iter()
                .map(|(practice_id, line_id)| pb::LineRef {
                    practice_id,
                    line_id,
                })
                .collect(),
            resources: found
                .resources
                .into_iter()
                .map(|(r#type, id)| pb::ResourceRef { r#type, id })
                .collect(),
            decided_at_revision: found.revision,
        }))
    }

    async fn lookup_subjects(
        &self,
        mut request: Request<pb::LookupSubjectsRequest>,
    ) -> Result<Response<pb::LookupSubjectsResponse>, Status> {
        let (caller, header) = credentials(&mut request)?;
        let authorization = header.as_ref().and_then(|value| value.to_str().ok());
        let body = request.into_inner();
        let mut violations = FieldViolations::new();
        let enterprise_id = non_empty(&body.enterprise_id);
        if enterprise_id.is_none() {
            violations.add("enterprise_id", "required");
        }
        let (location, practice) = (non_empty(&body.location_id), non_empty(&body.practice_id));
        if location.is_some() == practice.is_some() {
            violations.add("location_id", "one of location_id and practice_id");
        }
        let question = question(
            &self.model,
            &body.permission,
            &body.resource_type,
            body.context,
            body.min_revision,
            &mut violations,
        );
        violations.check()?;
        let enterprise_id = enterprise_id.unwrap_or_default();
        if !caller.administers(&enterprise_id) {
            return Err(Status::permission_denied(
                "only the enterprise's admins ask who may do what",
            ));
        }
        let users = self
            .snapshots
            .users(&caller, authorization, &enterprise_id, MAX_SUBJECTS)
            .await
            .map_err(snapshot_status)?;
        let book = self.book(&enterprise_id).await?;
        let mut subjects = Vec::new();
        let mut revision = 0;
        for user_id in users {
            let principal = match self
                .snapshots
                .principal(&caller, authorization, &user_id, body.min_revision)
                .await
            {
                Ok(principal) => principal,
                // Deleted between the listing and now.
                Err(SnapshotError::NotFound) => continue,
                Err(error) => return Err(snapshot_status(error)),
            };
            revision = revision.max(principal.revision);
            let place = match &location {
                Some(location) => {
                    let Some((practice, _)) = principal.locations.get(location) else {
                        return Err(Status::not_found("no such location in this enterprise"));
                    };
                    Place {
                        practice: Some(practice.clone()),
                        location: Some(location.clone()),
                        ..Place::default()
                    }
                }
                None => Place {
                    practice: practice.clone(),
                    ..Place::default()
                },
            };
            if lookup::allowed(&self.model, &book, &principal, &question, &place)
                .map_err(engine_status)?
            {
                subjects.push(user_id);
            }
        }
        Ok(Response::new(pb::LookupSubjectsResponse {
            user_ids: subjects,
            decided_at_revision: revision,
        }))
    }

    async fn explain(
        &self,
        mut request: Request<pb::ExplainRequest>,
    ) -> Result<Response<pb::ExplainResponse>, Status> {
        let (caller, header) = credentials(&mut request)?;
        let authorization = header.as_ref().and_then(|value| value.to_str().ok());
        let Some(check) = request.into_inner().check else {
            return Err(invalid_argument("check", "required"));
        };
        let mut violations = FieldViolations::new();
        let check = validate(&self.model, check, "check.", &mut violations);
        violations.check()?;
        let check = check.ok_or_else(|| Status::invalid_argument("invalid check"))?;
        // Explaining records nothing: it is an admin's question, not a denial.
        let (evaluation, _) = self.decide(&caller, authorization, check, true).await?;
        Ok(Response::new(pb::ExplainResponse {
            result: Some(answer(&evaluation)),
            steps: evaluation
                .steps
                .into_iter()
                .map(|step| pb::TraceStep {
                    subject: step.subject,
                    effect: step.effect,
                    detail: step.detail,
                })
                .collect(),
        }))
    }
}

#[derive(Clone)]
pub struct PolicyApi {
    pub model: Arc<Model>,
    pub store: PolicyStore,
    pub books: Arc<Books>,
}

fn policy_proto(stored: StoredPolicy) -> pb::Policy {
    pb::Policy {
        id: stored.id,
        enterprise_id: stored.enterprise_id,
        description: stored.description,
        text: stored.text,
        etag: stored.version.to_string(),
        update_time: Some(prost_types::Timestamp {
            seconds: stored.updated_at.timestamp(),
            nanos: i32::try_from(stored.updated_at.timestamp_subsec_nanos()).unwrap_or(0),
        }),
    }
}

fn valid_policy_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 63
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !id.starts_with('-')
}

fn parse_etag(field: &str, etag: &str) -> Result<Option<i64>, Status> {
    match etag.trim() {
        "" => Ok(None),
        text => text
            .parse()
            .map(Some)
            .map_err(|_| invalid_argument(field, "the etag a read returned")),
    }
}

/// Members of the enterprise read its policies; its admins write them.
fn reach(caller: &Caller, enterprise_id: &str, write: bool) -> Result<(), Status> {
    if caller.enterprise_id != enterprise_id {
        return Err(Status::not_found("enterprise not found"));
    }
    if write && caller.kind != "ENTERPRISE_ADMIN" {
        return Err(Status::permission_denied(
            "only enterprise admins change policies",
        ));
    }
    Ok(())
}

fn store_status(error: StoreError) -> Status {
    match error {
        StoreError::Conflict => with_reason(
            Code::Aborted,
            "ETAG_MISMATCH",
            ERROR_DOMAIN,
            "the policy changed since it was read (or exists already); read it again",
        ),
        StoreError::NotFound => Status::not_found("policy not found"),
        StoreError::Storage(cause) => internal("policy store", &cause),
    }
}

#[tonic::async_trait]
impl PolicyService for PolicyApi {
    async fn put_policy(
        &self,
        request: Request<pb::PutPolicyRequest>,
    ) -> Result<Response<pb::PutPolicyResponse>, Status> {
        let caller = praxis_runtime::auth::caller(&request)?.clone();
        let policy = request.into_inner().policy.unwrap_or_default();
        let mut violations = FieldViolations::new();
        if policy.enterprise_id.trim().is_empty() {
            violations.add("policy.enterprise_id", "required");
        }
        if !valid_policy_id(&policy.id) {
            violations.add(
                "policy.id",
                "1-63 lowercase letters, digits and dashes, not starting with a dash",
            );
        }
        if policy.text.len() > MAX_POLICY_BYTES {
            violations.add("policy.text", "at most 64 KiB");
        } else if let Err(problems) = book::compile_custom(&self.model, &policy.id, &policy.text) {
            for problem in problems {
                violations.add("policy.text", problem.to_string());
            }
        }
        let etag = parse_etag("policy.etag", &policy.etag)?;
        violations.check()?;
        reach(&caller, &policy.enterprise_id, true)?;
        let stored = self
            .store
            .put(
                &policy.enterprise_id,
                &policy.id,
                &policy.description,
                &policy.text,
                etag,
                crate::audit::Record {
                    enterprise_id: policy.enterprise_id.clone(),
                    actor: caller.user_id.clone(),
                    action: "policy.put",
                    target: format!("policy:{}", policy.id),
                    outcome: "SUCCESS",
                    ip: None,
                    details: serde_json::json!({"description": policy.description}),
                },
            )
            .await
            .map_err(store_status)?;
        self.books.invalidate(&policy.enterprise_id);
        tracing::info!(enterprise = %policy.enterprise_id, policy = %policy.id, "custom policy stored");
        Ok(Response::new(pb::PutPolicyResponse {
            policy: Some(policy_proto(stored)),
        }))
    }

    async fn get_policy(
        &self,
        request: Request<pb::GetPolicyRequest>,
    ) -> Result<Response<pb::GetPolicyResponse>, Status> {
        let caller = praxis_runtime::auth::caller(&request)?.clone();
        let body = request.into_inner();
        reach(&caller, &body.enterprise_id, false)?;
        let stored = self
            .store
            .get(&body.enterprise_id, &body.policy_id)
            .await
            .map_err(|e| internal("policy store", &e))?
            .ok_or_else(|| Status::not_found("policy not found"))?;
        Ok(Response::new(pb::GetPolicyResponse {
            policy: Some(policy_proto(stored)),
        }))
    }

    async fn list_policies(
        &self,
        request: Request<pb::ListPoliciesRequest>,
    ) -> Result<Response<pb::ListPoliciesResponse>, Status> {
        let caller = praxis_runtime::auth::caller(&request)?.clone();
        let body = request.into_inner();
        reach(&caller, &body.enterprise_id, false)?;
        let policies = self
            .store
            .list(&body.enterprise_id)
            .await
            .map_err(|e| internal("policy store", &e))?;
        Ok(Response::new(pb::ListPoliciesResponse {
            policies: policies.into_iter().map(policy_proto).collect(),
        }))
    }

    async fn delete_policy(
        &self,
        request: Request<pb::DeletePolicyRequest>,
    ) -> Result<Response<pb::DeletePolicyResponse>, Status> {
        let caller = praxis_runtime::auth::caller(&request)?.clone();
        let body = request.into_inner();
        let etag = parse_etag("etag", &body.etag)?;
        reach(&caller, &body.enterprise_id, true)?;
        self.store
            .delete(
                &body.enterprise_id,
                &body.policy_id,
                etag,
                crate::audit::Record {
                    enterprise_id: body.enterprise_id.clone(),
                    actor: caller.user_id.clone(),
                    action: "policy.delete",
                    target: format!("policy:{}", body.policy_id),
                    outcome: "SUCCESS",
                    ip: None,
                    details: serde_json::json!({}),
                },
            )
            .await
            .map_err(store_status)?;
        self.books.invalidate(&body.enterprise_id);
        Ok(Response::new(pb::DeletePolicyResponse {}))
    }

    async fn validate_policy(
        &self,
        request: Request<pb::ValidatePolicyRequest>,
    ) -> Result<Response<pb::ValidatePolicyResponse>, Status> {
        praxis_runtime::auth::caller(&request)?;
        let text = request.into_inner().text;
        if text.len() > MAX_POLICY_BYTES {
            return Err(invalid_argument("text", "at most 64 KiB"));
        }
        let problems = match book::compile_custom(&self.model, "draft", &text) {
            Ok(_) => Vec::new(),
            Err(problems) => problems,
        };
        Ok(Response::new(pb::ValidatePolicyResponse {
            valid: problems.is_empty(),
            problems: problems
                .into_iter()
                .map(|p| pb::PolicyProblem {
                    message: p.message,
                    line: i32::try_from(p.line).unwrap_or(i32::MAX),
                    column: i32::try_from(p.column).unwrap_or(i32::MAX),
                })
                .collect(),
        }))
    }

    async fn get_schema(
        &self,
        request: Request<pb::GetSchemaRequest>,
    ) -> Result<Response<pb::GetSchemaResponse>, Status> {
        praxis_runtime::auth::caller(&request)?;
        Ok(Response::new(pb::GetSchemaResponse {
            schema: self.model.schema_text.clone(),
        }))
    }
}
