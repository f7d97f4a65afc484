//! proto ↔ domain, in one place.

use crate::domain::*;
use praxis_proto::directory::v1 as pb;

pub fn timestamp(time: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

impl From<Enterprise> for pb::Enterprise {
    fn from(enterprise: Enterprise) -> Self {
        pb::Enterprise {
            etag: crate::domain::users::etag_of(enterprise.revision),
            user_creation_min_access: pb::MinAccess::from(enterprise.user_creation_min_access)
                .into(),
            id: enterprise.id.0,
            display_name: enterprise.display_name,
            revision: enterprise.revision,
            create_time: Some(timestamp(enterprise.created_at)),
            policy: Some(super::policy::to_proto(enterprise.policy)),
        }
    }
}

impl From<Line> for pb::Line {
    fn from(line: Line) -> Self {
        pb::Line {
            id: line.id.0,
            display_name: line.display_name,
            phone_number: line.phone_number,
        }
    }
}

impl From<ResourceKind> for pb::ResourceKind {
    fn from(kind: ResourceKind) -> Self {
        match kind {
            ResourceKind::Provider => pb::ResourceKind::Provider,
            ResourceKind::Location => pb::ResourceKind::Location,
        }
    }
}

impl From<Resource> for pb::Resource {
    fn from(resource: Resource) -> Self {
        pb::Resource {
            id: resource.id.0,
            kind: pb::ResourceKind::from(resource.kind).into(),
            display_name: resource.display_name,
            time_zone: resource.time_zone.unwrap_or_default(),
            provider_profile: resource.provider_profile.map(|p| pb::ProviderProfile {
                credentials: p.credentials,
                specialties: p.specialties,
                license_number: p.license_number,
                npi: p.npi,
                bio: p.bio,
                photo_url: p.photo_url,
                location_ids: p.location_ids.into_iter().map(|l| l.0).collect(),
                person_id: p.person_id.unwrap_or_default(),
            }),
        }
    }
}

pub fn provider_profile(p: pb::ProviderProfile) -> crate::domain::persons::ProviderProfile {
    let trimmed = |values: Vec<String>| {
        values
            .into_iter()
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect()
    };
    crate::domain::persons::ProviderProfile {
        credentials: trimmed(p.credentials),
        specialties: trimmed(p.specialties),
        license_number: p.license_number.trim().to_owned(),
        npi: p.npi.trim().to_owned(),
        bio: p.bio,
        photo_url: p.photo_url.trim().to_owned(),
        location_ids: p
            .location_ids
            .into_iter()
            .map(|l| ResourceId(l.trim().to_owned()))
            .collect(),
        person_id: Some(p.person_id.trim().to_owned()).filter(|id| !id.is_empty()),
    }
}

impl From<Practice> for pb::Practice {
    fn from(practice: Practice) -> Self {
        pb::Practice {
            etag: crate::domain::users::etag_of(practice.version),
            id: practice.id.0,
            enterprise_id: practice.enterprise_id.0,
            display_name: practice.display_name,
            lines: practice.lines.into_iter().map(Into::into).collect(),
            resources: practice.resources.into_iter().map(Into::into).collect(),
            create_time: Some(timestamp(practice.created_at)),
        }
    }
}

impl From<UserKind> for pb::UserKind {
    fn from(kind: UserKind) -> Self {
        match kind {
            UserKind::Staff => pb::UserKind::Staff,
            UserKind::AdvancedStaff => pb::UserKind::AdvancedStaff,
            UserKind::Manager => pb::UserKind::Manager,
            UserKind::EnterpriseContentManager => pb::UserKind::EnterpriseContentManager,
            UserKind::EnterpriseAdmin => pb::UserKind::EnterpriseAdmin,
            UserKind::ServiceAccount => pb::UserKind::ServiceAccount,
        }
    }
}

/// `None` for UNSPECIFIED (no filter); an error for numbers this version does not know.
pub fn user_kind(value: i32) -> Result<Option<UserKind>, ()> {
    match pb::UserKind::try_from(value).map_err(|_| ())? {
        pb::UserKind::Unspecified => Ok(None),
        pb::UserKind::Staff => Ok(Some(UserKind::Staff)),
        pb::UserKind::AdvancedStaff => Ok(Some(UserKind::AdvancedStaff)),
        pb::UserKind::Manager => Ok(Some(UserKind::Manager)),
        pb::UserKind::EnterpriseContentManager => Ok(Some(UserKind::EnterpriseContentManager)),
        pb::UserKind::EnterpriseAdmin => Ok(Some(UserKind::EnterpriseAdmin)),
        pb::UserKind::ServiceAccount => Ok(Some(UserKind::ServiceAccount)),
    }
}

impl From<UserStatus> for pb::UserStatus {
    fn from(status: UserStatus) -> Self {
        match status {
            UserStatus::Invited => pb::UserStatus::Invited,
            UserStatus::Active => pb::UserStatus::Active,
            UserStatus::Disabled => pb::UserStatus::Disabled,
            UserStatus::Deleted => pb::UserStatus::Deleted,
        }
    }
}

impl From<User> for pb::User {
    fn from(user: User) -> Self {
        pb::User {
            etag: crate::domain::users::etag_of(user.version),
            id: user.id.0,
            enterprise_id: user.enterprise_id.0,
            email: user.email,
            given_name: user.given_name,
            family_name: user.family_name,
            kind: pb::UserKind::from(user.kind).into(),
            status: pb::UserStatus::from(user.status).into(),
            memberships: user
                .memberships
                .into_iter()
                .map(|membership| pb::PracticeMembership {
                    practice_id: membership.practice_id.0,
                    line_ids: membership.line_ids.into_iter().map(|line| line.0).collect(),
                    resource_filter_ids: membership
                        .resource_filter_ids
                        .into_iter()
                        .map(|r| r.0)
                        .collect(),
                })
                .collect(),
            create_time: Some(timestamp(user.created_at)),
        }
    }
}

/// `None` for UNSPECIFIED (no filter); an error for numbers this version does not know.
pub fn user_status(value: i32) -> Result<Option<UserStatus>, ()> {
    match pb::UserStatus::try_from(value).map_err(|_| ())? {
        pb::UserStatus::Unspecified => Ok(None),
        pb::UserStatus::Invited => Ok(Some(UserStatus::Invited)),
        pb::UserStatus::Active => Ok(Some(UserStatus::Active)),
        pb::UserStatus::Disabled => Ok(Some(UserStatus::Disabled)),
        pb::UserStatus::Deleted => Ok(Some(UserStatus::Deleted)),
    }
}

impl From<MinAccess> for pb::MinAccess {
    fn from(min_access: MinAccess) -> Self {
        match min_access {
            MinAccess::Staff => pb::MinAccess::Staff,
            MinAccess::Manager => pb::MinAccess::Manager,
            MinAccess::Enterprise => pb::MinAccess::Enterprise,
        }
    }
}

pub fn min_access(value: i32) -> Option<MinAccess> {
    match pb::MinAccess::try_from(value).ok()? {
        pb::MinAccess::Unspecified => None,
        pb::MinAccess::Staff => Some(MinAccess::Staff),
        pb::MinAccess::Manager => Some(MinAccess::Manager),
        pb::MinAccess::Enterprise => Some(MinAccess::Enterprise),
    }
}

pub fn membership(membership: pb::PracticeMembership) -> Membership {
    Membership {
        practice_id: PracticeId(membership.practice_id.trim().to_owned()),
        line_ids: membership
            .line_ids
            .into_iter()
            .map(|id| LineId(id.trim().to_owned()))
            .collect(),
        resource_filter_ids: membership
            .resource_filter_ids
            .into_iter()
            .map(|id| ResourceId(id.trim().to_owned()))
            .collect(),
    }
}

impl From<EmailDomain> for pb::EmailDomain {
    fn from(domain: EmailDomain) -> Self {
        pb::EmailDomain {
            enterprise_id: domain.enterprise_id.0,
            domain: domain.domain,
            create_time: Some(timestamp(domain.created_at)),
        }
    }
}
