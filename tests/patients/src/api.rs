//! The PatientService handlers: find the record, ask authz, record the access, answer.

use praxis_client::audit::{Access, AuditSink};
use praxis_client::proto::audit::v1::Outcome;
use praxis_client::proto::authz::v1 as authz;
use praxis_client::{Authorizer, Caller, Need};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub mod pb {
    tonic::include_proto!("example.patients.v1");
}

use pb::patient_service_server::{PatientService, PatientServiceServer};

#[derive(Clone)]
struct Record {
    enterprise_id: String,
    patient: pb::Patient,
}

pub struct Patients {
    records: Arc<RwLock<HashMap<String, Record>>>,
    authorizer: Authorizer,
    audit: AuditSink,
}

pub fn server(api: Patients) -> PatientServiceServer<Patients> {
    PatientServiceServer::new(api)
}

impl Patients {
    pub fn new(authorizer: Authorizer, audit: AuditSink) -> Self {
        Self {
            records: Arc::default(),
            authorizer,
            audit,
        }
    }

    /// A record of the caller's enterprise; another enterprise's records do not exist for them.
    fn record(&self, caller: &Caller, id: &str) -> Result<Record, Status> {
        let records = self
            .records
            .read()
            .map_err(|_| Status::internal("records unavailable"))?;
        records
            .get(id)
            .filter(|record| record.enterprise_id == caller.enterprise_id)
            .cloned()
            .ok_or_else(|| Status::not_found("no such patient"))
    }

    /// Asks authz for every need; the access is audited whatever the answer, and a refusal
    /// by authz is recorded as DENIED.
    async fn authorize<T>(
        &self,
        request: &Request<T>,
        action: &str,
        patient_id: &str,
        needs: Vec<Need>,
    ) -> Result<Vec<String>, Status> {
        let caller = praxis_client::server::caller(request)?.clone();
        let decided = self.authorizer.require_all(request, needs).await;
        let outcome = match &decided {
            Ok(_) => Outcome::Success,
            Err(status) if status.code() == Code::PermissionDenied => Outcome::Denied,
            // No decision: nothing was accessed, and authz recorded nothing either.
            Err(_) => return decided.map(|_| Vec::new()),
        };
        let access = Access {
            action: action.to_owned(),
            target_type: "patient".to_owned(),
            target_id: patient_id.to_owned(),
            outcome,
            ip: request
                .remote_addr()
                .map(|address| address.ip().to_string())
                .unwrap_or_default(),
            user_agent: request
                .metadata()
                .get("user-agent")
                .and_then(|value| value.to_str().ok())
                .unwrap_or_default()
                .to_owned(),
        };
        // Patient data is not served unless its access is on its way to the audit trail.
        if let Err(error) = self.audit.record(&caller, access) {
            tracing::error!(%error, "access not audited; refusing");
            return Err(Status::unavailable(
                "the access cannot be audited right now",
            ));
        }
        let decisions = decided?;
        Ok(decisions
            .into_iter()
            .flat_map(|decision| decision.masked_fields)
            .collect())
    }
}

fn resource(enterprise_id: &str, practice_id: &str, id: &str) -> authz::Resource {
    authz::Resource {
        r#type: "patient".to_owned(),
        id: id.to_owned(),
        enterprise_id: enterprise_id.to_owned(),
        practice_id: practice_id.to_owned(),
        ..authz::Resource::default()
    }
}

fn required(field: &str, value: &str) -> Result<(), Status> {
    if value.trim().is_empty() {
        let mut details = ErrorDetails::new();
        details.add_bad_request_violation(field, "required");
        return Err(Status::with_error_details(
            Code::InvalidArgument,
            format!("{field} is required"),
            details,
        ));
    }
    Ok(())
}

fn masked(mut patient: pb::Patient, fields: &[String]) -> pb::Patient {
    for field in fields {
        match field.as_str() {
            "name" => patient.name.clear(),
            "notes" => patient.notes.clear(),
            _ => {}
        }
    }
    patient
}

#[tonic::async_trait]
impl PatientService for Patients {
    async fn create_patient(
        &self,
        request: Request<pb::CreatePatientRequest>,
    ) -> Result<Response<pb::CreatePatientResponse>, Status> {
        let caller = praxis_client::server::caller(&request)?.clone();
        let body = request.get_ref().clone();
        required("practice_id", &body.practice_id)?;
        required("name", &body.name)?;
        let id = uuid::Uuid::now_v7().to_string();
        let need = Need::new(
            "patients:create",
            resource(&caller.enterprise_id, &body.practice_id, &id),
        );
        self.authorize(&request, "patient.create", &id, vec![need])
            .await?;
        let patient = pb::Patient {
            id: id.clone(),
            practice_id: body.practice_id,
            name: body.name,
            notes: String::new(),
        };
        self.records
            .write()
            .map_err(|_| Status::internal("records unavailable"))?
            .insert(
                id,
                Record {
                    enterprise_id: caller.enterprise_id,
                    patient: patient.clone(),
                },
            );
        Ok(Response::new(pb::CreatePatientResponse {
            patient: Some(patient),
        }))
    }

    async fn get_patient(
        &self,
        request: Request<pb::GetPatientRequest>,
    ) -> Result<Response<pb::GetPatientResponse>, Status> {
        let caller = praxis_client::server::caller(&request)?.clone();
        let id = request.get_ref().id.clone();
        required("id", &id)?;
        let record = self.record(&caller, &id)?;
        let need = Need::new(
            "patients:read",
            resource(&record.enterprise_id, &record.patient.practice_id, &id),
        );
        let hidden = self
            .authorize(&request, "patient.read", &id, vec![need])
            .await?;
        Ok(Response::new(pb::GetPatientResponse {
            patient: Some(masked(record.patient, &hidden)),
        }))
    }

    async fn update_patient(
        &self,
        request: Request<pb::UpdatePatientRequest>,
    ) -> Result<Response<pb::UpdatePatientResponse>, Status> {
        let caller = praxis_client::server::caller(&request)?.clone();
        let body = request.get_ref().clone();
        required("id", &body.id)?;
        let record = self.record(&caller, &body.id)?;
        let on = resource(&record.enterprise_id, &record.patient.practice_id, &body.id);
        let needs = vec![
            Need::new("patients:read", on.clone()),
            Need::new("patients:edit", on),
        ];
        let hidden = self
            .authorize(&request, "patient.update", &body.id, needs)
            .await?;
        let mut records = self
            .records
            .write()
            .map_err(|_| Status::internal("records unavailable"))?;
        let stored = records
            .get_mut(&body.id)
            .ok_or_else(|| Status::not_found("no such patient"))?;
        stored.patient.notes = body.notes;
        let patient = stored.patient.clone();
        Ok(Response::new(pb::UpdatePatientResponse {
            patient: Some(masked(patient, &hidden)),
        }))
    }
}
