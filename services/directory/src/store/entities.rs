//! sea-orm entities of the directory's own tables.

pub mod enterprise {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "enterprises")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub display_name: String,
        pub revision: i64,
        pub user_creation_min_access: String,
        /// JSON of the enterprise policy.
        pub policy: String,
        pub create_request_id: Option<String>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod practice {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "practices")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub enterprise_id: String,
        pub display_name: String,
        pub create_request_id: Option<String>,
        pub created_at: DateTimeUtc,
        pub version: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod line {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
    #[sea_orm(table_name = "lines")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub practice_id: String,
        pub display_name: String,
        pub phone_number: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod resource {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
    #[sea_orm(table_name = "resources")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub practice_id: String,
        pub kind: String,
        pub display_name: String,
        pub time_zone: Option<String>,
        /// JSON of the provider profile (D15).
        pub profile: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod user {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
    #[sea_orm(table_name = "users")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub enterprise_id: String,
        pub email: String,
        pub given_name: String,
        pub family_name: String,
        pub kind: String,
        pub status: String,
        /// Moves on every write to the user: the etag, and the guard of concurrent writes.
        pub version: i64,
        pub create_request_id: Option<String>,
        pub created_at: DateTimeUtc,
        pub deleted_at: Option<DateTimeUtc>,
        pub last_login_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

macro_rules! link_entity {
    ($module:ident, $table:literal, $column:ident) => {
        pub mod $module {
            use sea_orm::entity::prelude::*;

            #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
            #[sea_orm(table_name = $table)]
            pub struct Model {
                #[sea_orm(primary_key, auto_increment = false)]
                pub user_id: String,
                #[sea_orm(primary_key, auto_increment = false)]
                pub practice_id: String,
                #[sea_orm(primary_key, auto_increment = false)]
                pub $column: String,
            }

            #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
            pub enum Relation {}

            impl ActiveModelBehavior for ActiveModel {}
        }
    };
}

link_entity!(membership_line, "membership_lines", line_id);
link_entity!(membership_filter, "membership_filters", resource_id);

pub mod membership {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
    #[sea_orm(table_name = "memberships")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub practice_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod email_domain {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "email_domains")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub domain: String,
        pub enterprise_id: String,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod invitation {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "invitations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub token_hash: String,
        pub expires_at: DateTimeUtc,
        pub used_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub enterprise_id: String,
        pub topic: String,
        pub recipient: String,
        pub payload: String,
        pub created_at: DateTimeUtc,
        pub delivered_at: Option<DateTimeUtc>,
        pub claimed_until: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit_event {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_events")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub enterprise_id: String,
        /// Position in the enterprise's chain: the revision the write produced.
        pub seq: i64,
        pub time: DateTimeUtc,
        pub actor: String,
        pub action: String,
        pub target: String,
        pub outcome: String,
        /// JSON.
        pub details: String,
        pub prev_hash: String,
        pub hash: String,
        pub ip: String,
        pub user_agent: String,
        pub trace_id: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit_head {
    use sea_orm::entity::prelude::*;

    /// The end of an enterprise's chain; its row lock serializes appends.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_heads")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub enterprise_id: String,
        pub seq: i64,
        pub hash: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit_checkpoint {
    use sea_orm::entity::prelude::*;

    /// Where an enterprise's chain starts after retention removed older events (AU3).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_checkpoints")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub enterprise_id: String,
        pub seq: i64,
        pub hash: String,
        pub created_at: DateTimeUtc,
        pub signature: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit_retention_grant {
    use sea_orm::entity::prelude::*;

    /// Present only inside a retention run's transaction: the database guard lets it delete
    /// events up to `up_to_seq`.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_retention_grants")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub enterprise_id: String,
        pub up_to_seq: i64,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit_network {
    use sea_orm::entity::prelude::*;

    /// Networks (/24 or /64) a user has logged in from, for the new-network alert (AU4).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_known_networks")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub network: String,
        pub first_seen: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod role {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
    #[sea_orm(table_name = "roles")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub enterprise_id: String,
        pub display_name: String,
        pub description: String,
        pub parent_role_id: Option<String>,
        /// JSON of the grants, denials and field masks.
        pub rules: String,
        pub version: i64,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod role_binding {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Deserialize)]
    #[sea_orm(table_name = "role_bindings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub enterprise_id: String,
        pub user_id: String,
        /// A custom role's id or a built-in template's.
        pub role_id: String,
        pub practice_id: Option<String>,
        pub location_id: Option<String>,
        pub valid_from: Option<DateTimeUtc>,
        pub valid_until: Option<DateTimeUtc>,
        /// JSON of the weekly window, if any.
        pub weekly_window: Option<String>,
        pub created_at: DateTimeUtc,
        /// Who manages the binding when not an admin, e.g. `sso:<connection>` (I6).
        pub source: Option<String>,
        /// A4: the one resource an explicit grant covers.
        pub resource_type: Option<String>,
        pub resource_id: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod person {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "persons")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub enterprise_id: String,
        pub email: String,
        pub given_name: String,
        pub family_name: String,
        pub phone_number: Option<String>,
        pub user_id: Option<String>,
        pub version: i64,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod elevation_request {
    use sea_orm::entity::prelude::*;

    /// A5: a role asked for a while.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "elevation_requests")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub enterprise_id: String,
        pub user_id: String,
        pub role_id: String,
        pub practice_id: Option<String>,
        pub duration_minutes: i32,
        pub justification: String,
        /// `PENDING`, `APPROVED` or `REJECTED`.
        pub status: String,
        pub requested_at: DateTimeUtc,
        pub decided_by: Option<String>,
        pub decided_at: Option<DateTimeUtc>,
        pub decision_note: Option<String>,
        pub binding_id: Option<String>,
        pub expires_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod break_glass_use {
    use sea_orm::entity::prelude::*;

    /// A5: emergency access taken, and its review.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "break_glass_uses")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub enterprise_id: String,
        pub user_id: String,
        pub role_id: String,
        pub justification: String,
        pub started_at: DateTimeUtc,
        pub expires_at: DateTimeUtc,
        pub binding_id: String,
        pub reviewed_by: Option<String>,
        pub reviewed_at: Option<DateTimeUtc>,
        pub review_note: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod scim_token {
    use sea_orm::entity::prelude::*;

    /// Directory sync: a SCIM client's bearer token, stored hashed.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "scim_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub enterprise_id: String,
        pub display_name: String,
        pub prefix: String,
        pub secret_hash: String,
        pub created_by: String,
        pub created_at: DateTimeUtc,
        pub revoked_at: Option<DateTimeUtc>,
        pub last_used_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod scim_resource {
    use sea_orm::entity::prelude::*;

    /// Directory sync: a SCIM User or Group as its client sent it (`body`, without id and meta).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "scim_resources")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub enterprise_id: String,
        pub resource_type: String,
        pub name_key: String,
        pub external_id: Option<String>,
        #[sea_orm(column_type = "Text")]
        pub body: String,
        pub version: i64,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod scim_settings {
    use sea_orm::entity::prelude::*;

    /// Directory sync: an enterprise's SCIM group rules, as JSON.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "scim_settings")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub enterprise_id: String,
        #[sea_orm(column_type = "Text")]
        pub group_rules: String,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod ldap_sync {
    use sea_orm::entity::prelude::*;

    /// Directory sync: an enterprise's LDAP connection; the bind password sealed.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ldap_syncs")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub enterprise_id: String,
        #[sea_orm(column_type = "Text")]
        pub settings: String,
        pub bind_secret: Option<Vec<u8>>,
        pub interval_minutes: i32,
        pub next_run_at: Option<DateTimeUtc>,
        pub lease_until: Option<DateTimeUtc>,
        #[sea_orm(column_type = "Text", nullable)]
        pub last_run: Option<String>,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod ldap_link {
    use sea_orm::entity::prelude::*;

    /// Directory sync: the Praxis user an LDAP entry became.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "ldap_links")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub enterprise_id: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        pub entry_id: String,
        #[sea_orm(column_type = "Text")]
        pub dn: String,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}
