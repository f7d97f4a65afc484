//! `RoleService` (D16) and `RoleBindingService` (D17).

use super::convert::timestamp;
use super::{actor, mask_paths, required};
use crate::domain::catalogue::FEATURES;
use crate::domain::roles::{
    self as domain, BindingFilter, BindingScope, RoleDraft, RoleId, RoleRules, RoleUpdate,
};
use crate::domain::users::{etag_of, parse_etag};
use crate::domain::{Directory, EnterpriseId, PracticeId, ResourceId, UserId};
use praxis_proto::directory::v1::role_binding_service_server::RoleBindingService;
use praxis_proto::directory::v1::role_service_server::RoleService;
use praxis_proto::directory::v1::*;
use praxis_runtime::error::invalid_argument;
use tonic::{Request, Response, Status};

pub struct RoleApi {
    pub directory: Directory,
}

pub struct RoleBindingApi {
    pub directory: Directory,
}

fn optional(value: &str) -> Option<&str> {
    Some(value.trim()).filter(|v| !v.is_empty())
}

fn permission_from(p: Option<praxis_proto::directory::v1::Permission>) -> domain::Permission {
    let p = p.unwrap_or_default();
    domain::Permission::new(p.feature.trim(), p.action.trim())
}

fn grants_from(grants: Vec<Grant>) -> Result<Vec<domain::Grant>, Status> {
    grants
        .into_iter()
        .enumerate()
        .map(|(index, grant)| {
            let scope = match GrantScope::try_from(grant.scope) {
                Ok(GrantScope::Own) => domain::GrantScope::Own,
                Ok(GrantScope::All) => domain::GrantScope::All,
                _ => {
                    return Err(invalid_argument(
                        &format!("role.grants[{index}].scope"),
                        "OWN or ALL",
                    ));
                }
            };
            Ok(domain::Grant {
                permission: permission_from(grant.permission),
                scope,
            })
        })
        .collect()
}

fn masks_from(masks: Vec<FieldMaskRule>) -> Vec<domain::FieldMaskRule> {
    masks
        .into_iter()
        .map(|m| domain::FieldMaskRule {
            resource_type: m.resource_type,
            fields: m.fields,
        })
        .collect()
}

fn to_proto_permission(p: domain::Permission) -> praxis_proto::directory::v1::Permission {
    praxis_proto::directory::v1::Permission {
        feature: p.feature,
        action: p.action,
    }
}

impl From<domain::Role> for Role {
    fn from(role: domain::Role) -> Self {
        Role {
            id: role.id.0,
            enterprise_id: role.enterprise_id.0,
            display_name: role.display_name,
            description: role.description,
            parent_role_id: role.parent_role_id.map(|p| p.0).unwrap_or_default(),
            grants: role
                .grants
                .into_iter()
                .map(|g| Grant {
                    permission: Some(to_proto_permission(g.permission)),
                    scope: match g.scope {
                        domain::GrantScope::Own => GrantScope::Own,
                        domain::GrantScope::All => GrantScope::All,
                    }
                    .into(),
                })
                .collect(),
            denials: role.denials.into_iter().map(to_proto_permission).collect(),
            field_masks: role
                .field_masks
                .into_iter()
                .map(|m| FieldMaskRule {
                    resource_type: m.resource_type,
                    fields: m.fields,
                })
                .collect(),
            built_in: role.built_in,
            etag: etag_of(role.version),
            create_time: Some(timestamp(role.created_at)),
        }
    }
}

impl From<domain::RoleBinding> for RoleBinding {
    fn from(binding: domain::RoleBinding) -> Self {
        let (practice_id, location_id, resource_type, resource_id) = match binding.scope {
            BindingScope::Enterprise => Default::default(),
            BindingScope::Practice(p) => (p.0, String::new(), String::new(), String::new()),
            BindingScope::Location(l) => (String::new(), l.0, String::new(), String::new()),
            BindingScope::Resource { kind, id } => (String::new(), String::new(), kind, id),
        };
        RoleBinding {
            id: binding.id,
            enterprise_id: binding.enterprise_id.0,
            user_id: binding.user_id.0,
            role_id: binding.role_id.0,
            practice_id,
            location_id,
            valid_from: binding.valid_from.map(timestamp),
            valid_until: binding.valid_until.map(timestamp),
            weekly_window: binding.weekly_window.map(|w| WeeklyWindow {
                days: w.days.into_iter().map(i32::from).collect(),
                start_minute: i32::from(w.start_minute),
                end_minute: i32::from(w.end_minute),
            }),
            create_time: Some(timestamp(binding.created_at)),
            resource_type,
            resource_id,
            source: binding.source.unwrap_or_default(),
        }
    }
}

pub(super) fn time_from(
    field: &str,
    value: Option<prost_types::Timestamp>,
) -> Result<Option<chrono::DateTime<chrono::Utc>>, Status> {
    value
        .map(|t| {
            let nanos =
                u32::try_from(t.nanos).map_err(|_| invalid_argument(field, "not a valid time"))?;
            chrono::DateTime::from_timestamp(t.seconds, nanos)
                .ok_or_else(|| invalid_argument(field, "not a valid time"))
        })
        .transpose()
}

#[tonic::async_trait]
impl RoleService for RoleApi {
    async fn list_permissions(
        &self,
        _request: Request<ListPermissionsRequest>,
    ) -> Result<Response<ListPermissionsResponse>, Status> {
        let features = FEATURES
            .iter()
            .map(|f| FeatureActions {
                feature: f.name.to_owned(),
                actions: f.actions.iter().map(|a| (*a).to_owned()).collect(),
                phi: f.phi,
            })
            .collect();
        Ok(Response::new(ListPermissionsResponse { features }))
    }

    async fn create_role(
        &self,
        request: Request<CreateRoleRequest>,
    ) -> Result<Response<CreateRoleResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let role = body
            .role
            .ok_or_else(|| invalid_argument("role", "required"))?;
        let draft = RoleDraft {
            display_name: role.display_name,
            description: role.description,
            parent_role_id: optional(&role.parent_role_id).map(|p| RoleId(p.to_owned())),
            rules: RoleRules {
                grants: grants_from(role.grants)?,
                denials: role
                    .denials
                    .into_iter()
                    .map(|p| permission_from(Some(p)))
                    .collect(),
                field_masks: masks_from(role.field_masks),
            },
        };
        let (role, revision) = self
            .directory
            .create_role(&actor, &enterprise_id, draft, chrono::Utc::now())
            .await?;
        Ok(Response::new(CreateRoleResponse {
            role: Some(role.into()),
            revision,
        }))
    }

    async fn get_role(
        &self,
        request: Request<GetRoleRequest>,
    ) -> Result<Response<GetRoleResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let id = RoleId(required("role_id", &body.role_id)?.to_owned());
        let role = match optional(&body.enterprise_id) {
            Some(enterprise) => {
                self.directory
                    .get_role(&actor, &EnterpriseId(enterprise.to_owned()), &id)
                    .await?
            }
            None if crate::domain::catalogue::is_built_in(&id.0) => {
                return Err(invalid_argument(
                    "enterprise_id",
                    "required to read a built-in template",
                ));
            }
            None => self.directory.get_custom_role(&actor, &id).await?,
        };
        Ok(Response::new(GetRoleResponse {
            role: Some(role.into()),
        }))
    }

    async fn list_roles(
        &self,
        request: Request<ListRolesRequest>,
    ) -> Result<Response<ListRolesResponse>, Status> {
        let actor = actor(&request)?;
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &request.get_ref().enterprise_id)?.to_owned());
        let (roles, revision) = self.directory.list_roles(&actor, &enterprise_id).await?;
        Ok(Response::new(ListRolesResponse {
            roles: roles.into_iter().map(Into::into).collect(),
            revision,
        }))
    }

    async fn update_role(
        &self,
        request: Request<UpdateRoleRequest>,
    ) -> Result<Response<UpdateRoleResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let role = body
            .role
            .ok_or_else(|| invalid_argument("role", "required"))?;
        let id = RoleId(required("role.id", &role.id)?.to_owned());
        let paths = mask_paths(
            body.update_mask,
            &[
                "display_name",
                "description",
                "parent_role_id",
                "grants",
                "denials",
                "field_masks",
            ],
        )?;
        let has = |path: &str| paths.iter().any(|p| p == path);
        let update = RoleUpdate {
            display_name: has("display_name").then(|| role.display_name.clone()),
            description: has("description").then(|| role.description.clone()),
            parent_role_id: has("parent_role_id")
                .then(|| optional(&role.parent_role_id).map(|p| RoleId(p.to_owned()))),
            grants: if has("grants") {
                Some(grants_from(role.grants)?)
            } else {
                None
            },
            denials: has("denials").then(|| {
                role.denials
                    .into_iter()
                    .map(|p| permission_from(Some(p)))
                    .collect()
            }),
            field_masks: has("field_masks").then(|| masks_from(role.field_masks)),
        };
        let (role, revision) = self
            .directory
            .update_role(
                &actor,
                &id,
                update,
                parse_etag(&role.etag)?,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(UpdateRoleResponse {
            role: Some(role.into()),
            revision,
        }))
    }

    async fn delete_role(
        &self,
        request: Request<DeleteRoleRequest>,
    ) -> Result<Response<DeleteRoleResponse>, Status> {
        let actor = actor(&request)?;
        let id = RoleId(required("role_id", &request.get_ref().role_id)?.to_owned());
        let etag = parse_etag(&request.get_ref().etag)?;
        let revision = self
            .directory
            .delete_role(&actor, &id, etag, chrono::Utc::now())
            .await?;
        Ok(Response::new(DeleteRoleResponse { revision }))
    }

    async fn copy_role(
        &self,
        request: Request<CopyRoleRequest>,
    ) -> Result<Response<CopyRoleResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let source = RoleId(required("source_role_id", &body.source_role_id)?.to_owned());
        let (role, revision) = self
            .directory
            .copy_role(
                &actor,
                &enterprise_id,
                &source,
                &body.display_name,
                chrono::Utc::now(),
            )
            .await?;
        Ok(Response::new(CopyRoleResponse {
            role: Some(role.into()),
            revision,
        }))
    }
}

#[tonic::async_trait]
impl RoleBindingService for RoleBindingApi {
    async fn create_role_binding(
        &self,
        request: Request<CreateRoleBindingRequest>,
    ) -> Result<Response<CreateRoleBindingResponse>, Status> {
        let actor = actor(&request)?;
        let binding = request
            .into_inner()
            .binding
            .ok_or_else(|| invalid_argument("binding", "required"))?;
        let user_id = UserId(required("binding.user_id", &binding.user_id)?.to_owned());
        let role_id = RoleId(required("binding.role_id", &binding.role_id)?.to_owned());
        let scope = match (
            optional(&binding.practice_id),
            optional(&binding.location_id),
        ) {
            (None, None) => BindingScope::Enterprise,
            (Some(p), None) => BindingScope::Practice(PracticeId(p.to_owned())),
            (None, Some(l)) => BindingScope::Location(ResourceId(l.to_owned())),
            (Some(_), Some(_)) => {
                return Err(invalid_argument(
                    "binding.location_id",
                    "one scope: a practice or a location",
                ));
            }
        };
        let weekly_window = binding
            .weekly_window
            .map(|w| {
                let days = w
                    .days
                    .iter()
                    .map(|d| u8::try_from(*d))
                    .collect::<Result<Vec<_>, _>>();
                match (
                    days,
                    u16::try_from(w.start_minute),
                    u16::try_from(w.end_minute),
                ) {
                    (Ok(days), Ok(start_minute), Ok(end_minute)) => Ok(domain::WeeklyWindow {
                        days,
                        start_minute,
                        end_minute,
                    }),
                    _ => Err(invalid_argument(
                        "binding.weekly_window",
                        "days 1..7 and minutes 0..1440",
                    )),
                }
            })
            .transpose()?;
        let draft = domain::RoleBinding {
            id: String::new(),
            enterprise_id: EnterpriseId(String::new()),
            user_id,
            role_id,
            scope,
            valid_from: time_from("binding.valid_from", binding.valid_from)?,
            valid_until: time_from("binding.valid_until", binding.valid_until)?,
            weekly_window,
            created_at: chrono::Utc::now(),
            source: None,
        };
        let (binding, revision) = self
            .directory
            .create_binding(&actor, draft, chrono::Utc::now())
            .await?;
        Ok(Response::new(CreateRoleBindingResponse {
            binding: Some(binding.into()),
            revision,
        }))
    }

    async fn list_role_bindings(
        &self,
        request: Request<ListRoleBindingsRequest>,
    ) -> Result<Response<ListRoleBindingsResponse>, Status> {
        let actor = actor(&request)?;
        let body = request.into_inner();
        let enterprise_id =
            EnterpriseId(required("enterprise_id", &body.enterprise_id)?.to_owned());
        let filter = BindingFilter {
            user_id: optional(&body.user_id).map(|u| UserId(u.to_owned())),
            role_id: optional(&body.role_id).map(|r| RoleId(r.to_owned())),
            practice_id: optional(&body.practice_id).map(|p| PracticeId(p.to_owned())),
            location_id: optional(&body.location_id).map(|l| ResourceId(l.to_owned())),
        };
        let (bindings, revision) = self
            .directory
            .list_bindings(&actor, &enterprise_id, &filter)
            .await?;
        Ok(Response::new(ListRoleBindingsResponse {
            bindings: bindings.into_iter().map(Into::into).collect(),
            revision,
        }))
    }

    async fn delete_role_binding(
        &self,
        request: Request<DeleteRoleBindingRequest>,
    ) -> Result<Response<DeleteRoleBindingResponse>, Status> {
        let actor = actor(&request)?;
        let id = required("binding_id", &request.get_ref().binding_id)?.to_owned();
        let revision = self
            .directory
            .delete_binding(&actor, &id, chrono::Utc::now())
            .await?;
        Ok(Response::new(DeleteRoleBindingResponse { revision }))
    }
}
