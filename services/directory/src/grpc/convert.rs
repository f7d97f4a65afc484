//! proto ↔ domain, in one place.

use crate::domain::*;
use praxis_proto::directory::v1 as pb;

fn timestamp(time: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

impl From<Enterprise> for pb::Enterprise {
    fn from(enterprise: Enterprise) -> Self {
        pb::Enterprise {
            etag: format!("\"{}\"", enterprise.revision),
            id: enterprise.id.0,
            display_name: enterprise.display_name,
            revision: enterprise.revision,
            create_time: Some(timestamp(enterprise.created_at)),
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
        }
    }
}

impl From<Practice> for pb::Practice {
    fn from(practice: Practice) -> Self {
        pb::Practice {
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
    }
}

impl From<UserStatus> for pb::UserStatus {
    fn from(status: UserStatus) -> Self {
        match status {
            UserStatus::Invited => pb::UserStatus::Invited,
            UserStatus::Active => pb::UserStatus::Active,
            UserStatus::Disabled => pb::UserStatus::Disabled,
        }
    }
}

impl From<User> for pb::User {
    fn from(user: User) -> Self {
        pb::User {
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
                })
                .collect(),
            create_time: Some(timestamp(user.created_at)),
        }
    }
}
