//! Directory types. Ids are newtypes so a practice id cannot be passed where a user id belongs.

use chrono::{DateTime, Utc};
use praxis_runtime::Caller;

macro_rules! id_type {
    ($name:ident) => {
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn generate() -> Self {
                Self(uuid::Uuid::now_v7().to_string())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

id_type!(EnterpriseId);
id_type!(PracticeId);
id_type!(LineId);
id_type!(ResourceId);
id_type!(UserId);

/// D3: a user's kind; the order of the variants is their rank.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum UserKind {
    /// I7: an integration; ranks below every person and holds nothing but its roles.
    ServiceAccount,
    Staff,
    AdvancedStaff,
    Manager,
    EnterpriseContentManager,
    EnterpriseAdmin,
}

impl UserKind {
    /// The kinds of people (service accounts are made apart, I7).
    pub const ALL: [UserKind; 5] = [
        UserKind::Staff,
        UserKind::AdvancedStaff,
        UserKind::Manager,
        UserKind::EnterpriseContentManager,
        UserKind::EnterpriseAdmin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserKind::Staff => "STAFF",
            UserKind::AdvancedStaff => "ADVANCED_STAFF",
            UserKind::Manager => "MANAGER",
            UserKind::EnterpriseContentManager => "ENTERPRISE_CONTENT_MANAGER",
            UserKind::EnterpriseAdmin => "ENTERPRISE_ADMIN",
            UserKind::ServiceAccount => "SERVICE_ACCOUNT",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain([UserKind::ServiceAccount])
            .find(|kind| kind.as_str() == text)
    }

    pub fn is_enterprise_level(self) -> bool {
        matches!(
            self,
            UserKind::EnterpriseAdmin
                | UserKind::EnterpriseContentManager
                | UserKind::ServiceAccount
        )
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserStatus {
    Invited,
    Active,
    Disabled,
    /// D14: a tombstone; the record and its audit history stay.
    Deleted,
}

impl UserStatus {
    pub const ALL: [UserStatus; 4] = [
        UserStatus::Invited,
        UserStatus::Active,
        UserStatus::Disabled,
        UserStatus::Deleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Invited => "INVITED",
            UserStatus::Active => "ACTIVE",
            UserStatus::Disabled => "DISABLED",
            UserStatus::Deleted => "DELETED",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// D10: the lowest rank that may create users at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinAccess {
    Staff,
    Manager,
    Enterprise,
}

impl MinAccess {
    pub fn as_str(self) -> &'static str {
        match self {
            MinAccess::Staff => "STAFF",
            MinAccess::Manager => "MANAGER",
            MinAccess::Enterprise => "ENTERPRISE",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [MinAccess::Staff, MinAccess::Manager, MinAccess::Enterprise]
            .into_iter()
            .find(|m| m.as_str() == text)
    }

    /// Whether a user of `kind` reaches this level.
    pub fn admits(self, kind: UserKind) -> bool {
        match self {
            MinAccess::Staff => true,
            MinAccess::Manager => kind >= UserKind::Manager,
            MinAccess::Enterprise => kind.is_enterprise_level(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enterprise {
    pub id: EnterpriseId,
    pub display_name: String,
    pub revision: i64,
    pub user_creation_min_access: MinAccess,
    pub policy: super::policy::EnterprisePolicy,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailDomain {
    /// Lowercase.
    pub domain: String,
    pub enterprise_id: EnterpriseId,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub id: LineId,
    pub display_name: String,
    pub phone_number: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    Provider,
    Location,
}

impl ResourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ResourceKind::Provider => "PROVIDER",
            ResourceKind::Location => "LOCATION",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [ResourceKind::Provider, ResourceKind::Location]
            .into_iter()
            .find(|k| k.as_str() == text)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub id: ResourceId,
    pub kind: ResourceKind,
    pub display_name: String,
    /// IANA zone; locations only (D1).
    pub time_zone: Option<String>,
    /// Providers only (D15).
    pub provider_profile: Option<super::persons::ProviderProfile>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Practice {
    pub id: PracticeId,
    pub enterprise_id: EnterpriseId,
    pub display_name: String,
    pub lines: Vec<Line>,
    pub resources: Vec<Resource>,
    pub created_at: DateTime<Utc>,
    /// Moves on every change to the practice itself; its etag.
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    pub practice_id: PracticeId,
    /// STAFF: the lines they work on (at least one, D6). MANAGER and ADVANCED_STAFF: every line
    /// of the practice, filled in when read (D7).
    pub line_ids: Vec<LineId>,
    /// View preferences, not permissions (D6).
    pub resource_filter_ids: Vec<ResourceId>,
}

impl Membership {
    pub fn new(practice_id: PracticeId, line_ids: Vec<LineId>) -> Self {
        Self {
            practice_id,
            line_ids,
            resource_filter_ids: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: UserId,
    pub enterprise_id: EnterpriseId,
    pub email: String,
    pub given_name: String,
    pub family_name: String,
    pub kind: UserKind,
    pub status: UserStatus,
    pub memberships: Vec<Membership>,
    pub created_at: DateTime<Utc>,
    /// Moves on every write; the etag clients send back.
    pub version: i64,
    /// Recorded by identity at each successful login (D19).
    pub last_login_at: Option<DateTime<Utc>>,
}

impl User {
    pub fn practice_ids(&self) -> impl Iterator<Item = &PracticeId> {
        self.memberships
            .iter()
            .map(|membership| &membership.practice_id)
    }
}

/// Who asks. The operator is someone with the data directory in hand (`praxis bootstrap`,
/// `praxis serve --demo`); everyone else comes with a verified token.
#[derive(Debug, Clone)]
pub enum Actor {
    Operator,
    Caller(Caller),
}

/// Tokens of platform operators (who create enterprises) carry this kind and no enterprise.
pub use praxis_runtime::auth::PLATFORM_ADMIN_KIND;

impl Actor {
    /// The audit entry of a write this actor makes (D18).
    pub fn audit(
        &self,
        action: &'static str,
        target: String,
        details: serde_json::Value,
        now: DateTime<Utc>,
    ) -> crate::store::AuditEntry {
        let actor = match self {
            Actor::Operator => "operator".to_owned(),
            Actor::Caller(caller) if caller.kind == PLATFORM_ADMIN_KIND => {
                format!("platform:{}", caller.user_id)
            }
            Actor::Caller(caller) => format!("user:{}", caller.user_id),
        };
        crate::store::AuditEntry::write(actor, action, target, details, now)
    }

    pub fn is_platform_admin(&self) -> bool {
        match self {
            Actor::Operator => true,
            Actor::Caller(caller) => caller.kind == PLATFORM_ADMIN_KIND,
        }
    }

    /// May see the enterprise's data at all: its members and platform admins.
    pub fn reaches(&self, enterprise: &EnterpriseId) -> bool {
        match self {
            Actor::Operator => true,
            Actor::Caller(caller) => {
                caller.kind == PLATFORM_ADMIN_KIND || caller.enterprise_id == enterprise.0
            }
        }
    }
}

/// A page request after validation: size within bounds, cursor decoded.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub size: u64,
    /// Return only rows whose id sorts after this one.
    pub after: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    /// The id to continue after, when more rows follow.
    pub next_after: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    pub practice_id: Option<PracticeId>,
    pub kind: Option<UserKind>,
    /// `None`: every status but DELETED.
    pub status: Option<UserStatus>,
    /// Users bound to this role.
    pub role_id: Option<String>,
    /// Case-insensitive match on name or email.
    pub query: Option<String>,
}

/// What a seeded or bootstrapped user looks like before it exists.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub given_name: String,
    pub family_name: String,
    pub kind: UserKind,
    pub memberships: Vec<Membership>,
    /// D15: the person this login is made from.
    pub person_id: Option<String>,
}
