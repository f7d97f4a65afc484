//! Asking authz whether the caller may do something, from inside a handler. The caller's own
//! credential goes to authz (a principal may always ask about itself), so a downstream service
//! needs no standing permission of its own.
//!
//! Decisions are kept a few seconds per credential, question and enterprise revision. A newer
//! revision seen in any answer for the enterprise makes the older decisions unreachable, so a
//! role change shows as soon as authz has answered anything at the new revision, and at the
//! latest when the few seconds are over. When authz cannot answer, the handler gets an error:
//! never an ALLOW.

use crate::channel::Credential;
use crate::clients::Praxis;
use praxis_proto::authz::v1 as pb;
use praxis_runtime::auth::Caller;
use prost::Message;
use std::time::Duration;
use tonic::{Code, Status};

/// One thing a handler needs to be allowed.
#[derive(Debug, Clone)]
pub struct Need {
    /// `feature:action`, e.g. `patients:read`.
    pub permission: String,
    pub resource: pb::Resource,
    pub context: Option<pb::Context>,
}

impl Need {
    pub fn new(permission: impl Into<String>, resource: pb::Resource) -> Self {
        Self {
            permission: permission.into(),
            resource,
            context: None,
        }
    }
}

/// What authz said about one [`Need`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub allow: bool,
    pub reasons: Vec<String>,
    /// Fields to hide from this caller (an obligation of the ALLOW).
    pub masked_fields: Vec<String>,
    pub revision: i64,
}

impl Decision {
    fn from_answer(answer: pb::CheckResponse) -> Self {
        Self {
            allow: answer.decision == pb::Decision::Allow as i32,
            reasons: answer.reasons,
            masked_fields: answer
                .obligation
                .map(|obligation| obligation.masked_fields)
                .unwrap_or_default(),
            revision: answer.decided_at_revision,
        }
    }
}

#[derive(Clone)]
pub struct Authorizer {
    praxis: Praxis,
    decisions: moka::future::Cache<[u8; 32], Decision>,
    /// The newest revision seen per enterprise.
    revisions: moka::sync::Cache<String, i64>,
}

impl Authorizer {
    /// `keep`: how long a decision is reused (zero: never).
    pub fn new(praxis: Praxis, keep: Duration) -> Self {
        Self {
            praxis,
            decisions: moka::future::Cache::builder()
                .max_capacity(100_000)
                .time_to_live(keep.max(Duration::from_millis(1)))
                .build(),
            revisions: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3600))
                .build(),
        }
    }

    /// Ok when the caller of `request` may do `need`; PERMISSION_DENIED with authz's reasons
    /// when not; UNAVAILABLE when no decision could be had.
    pub async fn require<T>(
        &self,
        request: &tonic::Request<T>,
        need: Need,
    ) -> Result<Decision, Status> {
        let mut decisions = self.require_all(request, vec![need]).await?;
        decisions
            .pop()
            .ok_or_else(|| Status::internal("no decision returned"))
    }

    /// Ok when every need is allowed (one BatchCheck for those not decided recently).
    pub async fn require_all<T>(
        &self,
        request: &tonic::Request<T>,
        needs: Vec<Need>,
    ) -> Result<Vec<Decision>, Status> {
        let caller = praxis_runtime::auth::caller(request)?;
        let credential = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| Status::unauthenticated("no credential to ask authz with"))?;
        let decisions = self
            .decide(
                caller,
                &Credential::from_header(credential),
                &credential_digest(credential.as_bytes()),
                needs,
            )
            .await?;
        if let Some(denied) = decisions.iter().find(|decision| !decision.allow) {
            return Err(Status::permission_denied(if denied.reasons.is_empty() {
                "not allowed".to_owned()
            } else {
                denied.reasons.join("; ")
            }));
        }
        Ok(decisions)
    }

    /// The decisions for `needs`, in order, for `caller` (who asks with `credential`).
    pub async fn decide(
        &self,
        caller: &Caller,
        credential: &Credential,
        credential_digest: &[u8; 32],
        needs: Vec<Need>,
    ) -> Result<Vec<Decision>, Status> {
        let revision = self
            .revisions
            .get(&caller.enterprise_id)
            .unwrap_or_default();
        let keys: Vec<[u8; 32]> = needs
            .iter()
            .map(|need| question_key(credential_digest, need, revision))
            .collect();
        let mut decided: Vec<Option<Decision>> = Vec::with_capacity(needs.len());
        for key in &keys {
            decided.push(self.decisions.get(key).await);
        }
        let missing: Vec<usize> = (0..needs.len()).filter(|&i| decided[i].is_none()).collect();
        if !missing.is_empty() {
            let checks = missing
                .iter()
                .map(|&i| check_request(caller, &needs[i]))
                .collect::<Vec<_>>();
            let answers = self.ask(credential, checks).await?;
            if answers.len() != missing.len() {
                return Err(Status::unavailable(
                    "authz answered a different number of checks",
                ));
            }
            for (&i, answer) in missing.iter().zip(answers) {
                let decision = Decision::from_answer(answer);
                self.saw_revision(&caller.enterprise_id, decision.revision);
                self.decisions.insert(keys[i], decision.clone()).await;
                decided[i] = Some(decision);
            }
        }
        decided
            .into_iter()
            .map(|decision| decision.ok_or_else(|| Status::internal("a need was not decided")))
            .collect()
    }

    async fn ask(
        &self,
        credential: &Credential,
        mut checks: Vec<pb::CheckRequest>,
    ) -> Result<Vec<pb::CheckResponse>, Status> {
        let authz = self.praxis.with_credential(credential.clone()).authz();
        let answers = if checks.len() == 1 {
            let check = checks.remove(0);
            authz.check(check).await.map(|answer| vec![answer])
        } else {
            authz
                .batch_check(pb::BatchCheckRequest { checks })
                .await
                .map(|answer| answer.results)
        };
        answers.map_err(fail_closed)
    }

    fn saw_revision(&self, enterprise_id: &str, revision: i64) {
        let newest = self.revisions.get(enterprise_id).unwrap_or_default();
        if revision > newest {
            self.revisions.insert(enterprise_id.to_owned(), revision);
        }
    }
}

/// authz's failure as the handler's: the caller's own problems pass through, anything else is
/// "no decision" (UNAVAILABLE), which callers must treat as a refusal.
fn fail_closed(status: Status) -> Status {
    match status.code() {
        Code::Unauthenticated | Code::PermissionDenied | Code::InvalidArgument => status,
        code => {
            tracing::warn!(?code, message = status.message(), "authz gave no decision");
            Status::unavailable("authorization is unavailable; the request is refused")
        }
    }
}

fn check_request(caller: &Caller, need: &Need) -> pb::CheckRequest {
    pb::CheckRequest {
        principal: Some(pb::Principal {
            user_id: caller.user_id.clone(),
        }),
        permission: need.permission.clone(),
        resource: Some(need.resource.clone()),
        min_revision: 0,
        context: need.context.clone(),
    }
}

pub fn credential_digest(credential: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    sha2::Sha256::digest(credential).into()
}

/// The question as bytes: credential, permission, resource, context and revision, each
/// length-prefixed so no two questions share a key.
fn question_key(credential: &[u8; 32], need: &Need, revision: i64) -> [u8; 32] {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(credential);
    for part in [
        need.permission.as_bytes().to_vec(),
        need.resource.encode_to_vec(),
        need.context
            .as_ref()
            .map(Message::encode_to_vec)
            .unwrap_or_default(),
    ] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(&part);
    }
    hasher.update(revision.to_be_bytes());
    hasher.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(permission: &str, id: &str) -> Need {
        Need::new(
            permission,
            pb::Resource {
                r#type: "patient".into(),
                id: id.into(),
                ..pb::Resource::default()
            },
        )
    }

    #[test]
    fn questions_differ_by_every_part() {
        let alice = credential_digest(b"Bearer alice");
        let bob = credential_digest(b"Bearer bob");
        let base = question_key(&alice, &need("patients:read", "p-1"), 3);
        assert_eq!(base, question_key(&alice, &need("patients:read", "p-1"), 3));
        for other in [
            question_key(&bob, &need("patients:read", "p-1"), 3),
            question_key(&alice, &need("patients:edit", "p-1"), 3),
            question_key(&alice, &need("patients:read", "p-2"), 3),
            question_key(&alice, &need("patients:read", "p-1"), 4),
        ] {
            assert_ne!(base, other);
        }
    }

    #[test]
    fn no_answer_is_never_an_allow() {
        for status in [
            Status::unavailable("down"),
            Status::internal("bug"),
            Status::deadline_exceeded("slow"),
            Status::unknown("?"),
        ] {
            assert_eq!(fail_closed(status).code(), Code::Unavailable);
        }
        assert_eq!(
            fail_closed(Status::permission_denied("not yours")).code(),
            Code::PermissionDenied
        );
    }
}
