//! Identity's own tables: signing keys, credentials, sessions, refresh tokens, second factors,
//! and the audit outbox.

pub mod signing_key {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "signing_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub kid: String,
        /// PKCS#8 DER of the Ed25519 private key.
        pub private_key: Vec<u8>,
        /// base64url public key (the JWK `x`).
        pub public_x: String,
        pub created_at: DateTimeUtc,
        /// Set when a newer key takes over; the key stays published for the overlap after it.
        pub retired_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod credential {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "credentials")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        pub enterprise_id: String,
        pub password_hash: String,
        pub password_set_at: DateTimeUtc,
        /// A temporary password (D13) or one that must change before the next session.
        pub must_change: bool,
        pub failed_attempts: i32,
        pub locked_until: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod password_history {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "password_history")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub password_hash: String,
        pub set_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod session {
    use sea_orm::entity::prelude::*;

    #[derive(
        Clone, Debug, PartialEq, Eq, DeriveEntityModel, serde::Serialize, serde::Deserialize,
    )]
    #[sea_orm(table_name = "sessions")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub enterprise_id: String,
        pub kind: String,
        pub device_id: String,
        pub user_agent: String,
        pub ip: String,
        /// JSON array of authentication methods (`pwd`, `otp`).
        pub amr: String,
        pub auth_time: DateTimeUtc,
        pub created_at: DateTimeUtc,
        pub last_seen_at: DateTimeUtc,
        pub idle_timeout_seconds: i64,
        pub expires_at: DateTimeUtc,
        pub ended_at: Option<DateTimeUtc>,
        pub end_reason: Option<String>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod refresh_token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "refresh_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        /// SHA-256 of the token, hex; the token itself is never stored.
        pub token_hash: String,
        pub session_id: String,
        pub created_at: DateTimeUtc,
        pub used_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod totp {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "totp_factors")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        /// The seed, sealed (I9).
        pub sealed_secret: Vec<u8>,
        pub confirmed_at: Option<DateTimeUtc>,
        pub last_step: Option<i64>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod recovery_code {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "recovery_codes")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        /// SHA-256 of the code with the user id, hex.
        pub code_hash: String,
        pub user_id: String,
        pub used_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod audit_outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "audit_outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub at: DateTimeUtc,
        pub enterprise_id: String,
        pub actor: String,
        pub action: String,
        pub target: String,
        pub outcome: String,
        pub ip: String,
        /// JSON object.
        pub details: String,
        pub delivered_at: Option<DateTimeUtc>,
        pub user_agent: String,
        pub trace_id: String,
        /// Why the audit trail refused this event for good; empty while it is deliverable.
        pub refused: String,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod reset_token {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "reset_tokens")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        /// SHA-256 of the token, hex.
        pub token_hash: String,
        pub user_id: String,
        pub expires_at: DateTimeUtc,
        pub used_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod notification_outbox {
    use sea_orm::entity::prelude::*;

    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "notification_outbox")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub enterprise_id: String,
        /// `email` or `sms` (`praxis_runtime::notify::Channel`).
        pub channel: String,
        pub topic: String,
        pub recipient: String,
        /// JSON; holds links, so it is never logged.
        pub payload: String,
        pub created_at: DateTimeUtc,
        /// A relay holds the message until then.
        pub claimed_until: Option<DateTimeUtc>,
        pub delivered_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod sms_factor {
    use sea_orm::entity::prelude::*;

    /// A phone number that receives sign-in codes (I3); confirmed by a code sent to it.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sms_factors")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: String,
        /// The E.164 number, sealed: it is personal data.
        pub sealed_phone: Vec<u8>,
        pub confirmed_at: Option<DateTimeUtc>,
        pub created_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod passkey {
    use sea_orm::entity::prelude::*;

    /// A WebAuthn credential (I3).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "passkeys")]
    pub struct Model {
        /// The credential id, base64url.
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub user_id: String,
        pub name: String,
        /// `webauthn_rs::prelude::Passkey` as JSON: the public key and its signature counter.
        pub credential: String,
        pub created_at: DateTimeUtc,
        pub last_used_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod sso_connection {
    use sea_orm::entity::prelude::*;

    /// An enterprise's identity provider (I6).
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "sso_connections")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub enterprise_id: String,
        pub display_name: String,
        pub enabled: bool,
        /// `oidc` or `saml`.
        pub protocol: String,
        /// JSON array of lowercase email domains.
        pub domains: String,
        /// The protocol settings, mapping and rules as JSON (`sso::ConnectionSettings`); no secrets.
        pub settings: String,
        /// The OIDC client secret or the SAML SP key, sealed (I9).
        pub sealed_secret: Option<Vec<u8>>,
        pub version: i64,
        pub created_at: DateTimeUtc,
        pub updated_at: DateTimeUtc,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod api_key {
    use sea_orm::entity::prelude::*;

    /// I7: an API key; only the SHA-256 of the whole key is kept.
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "api_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: String,
        pub enterprise_id: String,
        pub principal_id: String,
        pub display_name: String,
        #[sea_orm(unique)]
        pub prefix: String,
        pub key_hash: String,
        /// JSON array of `feature:action`.
        pub scopes: String,
        pub expires_at: DateTimeUtc,
        pub created_at: DateTimeUtc,
        pub created_by: String,
        pub revoked_at: Option<DateTimeUtc>,
        pub last_used_at: Option<DateTimeUtc>,
        pub use_count: i64,
        pub rate_per_minute: i32,
        pub replaced_by: Option<String>,
        pub retire_at: Option<DateTimeUtc>,
    }

    #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
    pub enum Relation {}

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod migrations {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema::*;

    pub struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![
                Box::new(M0001SigningKeys),
                Box::new(M0002Credentials),
                Box::new(M0003ResetsAndNotifications),
                Box::new(M0004PhonesAndPasskeys),
                Box::new(M0005AuditDelivery),
                Box::new(M0006SsoConnections),
                Box::new(M0007ApiKeys),
            ]
        }

        fn migration_table_name() -> DynIden {
            "identity_migrations".into_iden()
        }
    }

    struct M0001SigningKeys;

    // Names are stable ids recorded in the migrations table; never rename one.
    impl MigrationName for M0001SigningKeys {
        fn name(&self) -> &str {
            "m0001_signing_keys"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for M0001SigningKeys {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table("signing_keys")
                        .col(string("kid").primary_key())
                        .col(blob("private_key"))
                        .col(string("public_x"))
                        .col(timestamp_with_time_zone("created_at"))
                        .col(timestamp_with_time_zone_null("retired_at"))
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_table(Table::drop().table("signing_keys").to_owned())
                .await
        }
    }

    struct M0002Credentials;

    impl MigrationName for M0002Credentials {
        fn name(&self) -> &str {
            "m0002_credentials"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for M0002Credentials {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table("credentials")
                        .col(string("user_id").primary_key())
                        .col(string("enterprise_id"))
                        .col(text("password_hash"))
                        .col(timestamp_with_time_zone("password_set_at"))
                        .col(boolean("must_change"))
                        .col(integer("failed_attempts"))
                        .col(timestamp_with_time_zone_null("locked_until"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table("password_history")
                        .col(string("id").primary_key())
                        .col(string("user_id"))
                        .col(text("password_hash"))
                        .col(timestamp_with_time_zone("set_at"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("password_history_by_user")
                        .table("password_history")
                        .col("user_id")
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table("sessions")
                        .col(string("id").primary_key())
                        .col(string("user_id"))
                        .col(string("enterprise_id"))
                        .col(string("kind"))
                        .col(string("device_id"))
                        .col(text("user_agent"))
                        .col(string("ip"))
                        .col(text("amr"))
                        .col(timestamp_with_time_zone("auth_time"))
                        .col(timestamp_with_time_zone("created_at"))
                        .col(timestamp_with_time_zone("last_seen_at"))
                        .col(big_integer("idle_timeout_seconds"))
                        .col(timestamp_with_time_zone("expires_at"))
                        .col(timestamp_with_time_zone_null("ended_at"))
                        .col(string_null("end_reason"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("sessions_by_user")
                        .table("sessions")
                        .col("user_id")
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table("refresh_tokens")
                        .col(string("token_hash").primary_key())
                        .col(string("session_id"))
                        .col(timestamp_with_time_zone("created_at"))
                        .col(timestamp_with_time_zone_null("used_at"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("refresh_tokens_by_session")
                        .table("refresh_tokens")
                        .col("session_id")
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table("totp_factors")
                        .col(string("user_id").primary_key())
                        .col(binary("sealed_secret"))
                        .col(timestamp_with_time_zone_null("confirmed_at"))
                        .col(big_integer_null("last_step"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table("recovery_codes")
                        .col(string("code_hash").primary_key())
                        .col(string("user_id"))
                        .col(timestamp_with_time_zone_null("used_at"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table("audit_outbox")
                        .col(string("id").primary_key())
                        .col(timestamp_with_time_zone("at"))
                        .col(string("enterprise_id"))
                        .col(string("actor"))
                        .col(string("action"))
                        .col(string("target"))
                        .col(string("outcome"))
                        .col(string("ip"))
                        .col(text("details"))
                        .col(timestamp_with_time_zone_null("delivered_at"))
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            for table in [
                "audit_outbox",
                "recovery_codes",
                "totp_factors",
                "refresh_tokens",
                "sessions",
                "password_history",
                "credentials",
            ] {
                manager
                    .drop_table(Table::drop().table(table).to_owned())
                    .await?;
            }
            Ok(())
        }
    }

    struct M0003ResetsAndNotifications;

    impl MigrationName for M0003ResetsAndNotifications {
        fn name(&self) -> &str {
            "m0003_resets_and_notifications"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for M0003ResetsAndNotifications {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table("reset_tokens")
                        .col(string("token_hash").primary_key())
                        .col(string("user_id"))
                        .col(timestamp_with_time_zone("expires_at"))
                        .col(timestamp_with_time_zone_null("used_at"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table("notification_outbox")
                        .col(string("id").primary_key())
                        .col(string("enterprise_id"))
                        .col(string("topic"))
                        .col(string("recipient"))
                        .col(text("payload"))
                        .col(timestamp_with_time_zone("created_at"))
                        .col(timestamp_with_time_zone_null("claimed_until"))
                        .col(timestamp_with_time_zone_null("delivered_at"))
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            for table in ["notification_outbox", "reset_tokens"] {
                manager
                    .drop_table(Table::drop().table(table).to_owned())
                    .await?;
            }
            Ok(())
        }
    }

    struct M0004PhonesAndPasskeys;

    impl MigrationName for M0004PhonesAndPasskeys {
        fn name(&self) -> &str {
            "m0004_phones_and_passkeys"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for M0004PhonesAndPasskeys {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .alter_table(
                    Table::alter()
                        .table("notification_outbox")
                        .add_column(string("channel").default("email"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table("sms_factors")
                        .col(string("user_id").primary_key())
                        .col(binary("sealed_phone"))
                        .col(timestamp_with_time_zone_null("confirmed_at"))
                        .col(timestamp_with_time_zone("created_at"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table("passkeys")
                        .col(string("id").primary_key())
                        .col(string("user_id"))
                        .col(string("name"))
                        .col(text("credential"))
                        .col(timestamp_with_time_zone("created_at"))
                        .col(timestamp_with_time_zone_null("last_used_at"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("passkeys_by_user")
                        .table("passkeys")
                        .col("user_id")
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            for table in ["passkeys", "sms_factors"] {
                manager
                    .drop_table(Table::drop().table(table).to_owned())
                    .await?;
            }
            manager
                .alter_table(
                    Table::alter()
                        .table("notification_outbox")
                        .drop_column("channel")
                        .to_owned(),
                )
                .await
        }
    }

    struct M0005AuditDelivery;

    impl MigrationName for M0005AuditDelivery {
        fn name(&self) -> &str {
            "m0005_audit_delivery"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for M0005AuditDelivery {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            for column in ["user_agent", "trace_id", "refused"] {
                manager
                    .alter_table(
                        Table::alter()
                            .table("audit_outbox")
                            .add_column(string(column).default(""))
                            .to_owned(),
                    )
                    .await?;
            }
            // The relay reads what is not delivered yet, oldest first.
            manager
                .create_index(
                    Index::create()
                        .name("audit_outbox_pending")
                        .table("audit_outbox")
                        .col("delivered_at")
                        .col("id")
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_index(
                    Index::drop()
                        .name("audit_outbox_pending")
                        .table("audit_outbox")
                        .to_owned(),
                )
                .await?;
            for column in ["user_agent", "trace_id", "refused"] {
                manager
                    .alter_table(
                        Table::alter()
                            .table("audit_outbox")
                            .drop_column(column)
                            .to_owned(),
                    )
                    .await?;
            }
            Ok(())
        }
    }

    struct M0006SsoConnections;

    impl MigrationName for M0006SsoConnections {
        fn name(&self) -> &str {
            "m0006_sso_connections"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for M0006SsoConnections {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table("sso_connections")
                        .col(string("id").primary_key())
                        .col(string("enterprise_id"))
                        .col(string("display_name"))
                        .col(boolean("enabled"))
                        .col(string("protocol"))
                        .col(text("domains"))
                        .col(text("settings"))
                        .col(binary_null("sealed_secret"))
                        .col(big_integer("version"))
                        .col(timestamp_with_time_zone("created_at"))
                        .col(timestamp_with_time_zone("updated_at"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("sso_connections_by_enterprise")
                        .table("sso_connections")
                        .col("enterprise_id")
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_table(Table::drop().table("sso_connections").to_owned())
                .await
        }
    }

    struct M0007ApiKeys;

    impl MigrationName for M0007ApiKeys {
        fn name(&self) -> &str {
            "m0007_api_keys"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for M0007ApiKeys {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table("api_keys")
                        .col(string("id").primary_key())
                        .col(string("enterprise_id"))
                        .col(string("principal_id"))
                        .col(string("display_name"))
                        .col(string("prefix").unique_key())
                        .col(string("key_hash"))
                        .col(text("scopes"))
                        .col(timestamp_with_time_zone("expires_at"))
                        .col(timestamp_with_time_zone("created_at"))
                        .col(string("created_by"))
                        .col(timestamp_with_time_zone_null("revoked_at"))
                        .col(timestamp_with_time_zone_null("last_used_at"))
                        .col(big_integer("use_count"))
                        .col(integer("rate_per_minute"))
                        .col(string_null("replaced_by"))
                        .col(timestamp_with_time_zone_null("retire_at"))
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("api_keys_by_enterprise")
                        .table("api_keys")
                        .col("enterprise_id")
                        .col("principal_id")
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_table(Table::drop().table("api_keys").to_owned())
                .await
        }
    }
}
