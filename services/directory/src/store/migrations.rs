//! The directory's schema, in order. Applied at start and by `migrate`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(M0001Structure),
            Box::new(M0002AuditTrail),
            Box::new(M0003BindingSource),
            Box::new(M0004AccessExtras),
            Box::new(M0005ScimTokens),
            Box::new(M0006ScimResources),
            Box::new(M0007ScimSettings),
            Box::new(M0008LdapSync),
        ]
    }

    fn migration_table_name() -> DynIden {
        "directory_migrations".into_iden()
    }
}

struct M0001Structure;

// Names are stable ids recorded in the migrations table; never rename one.
impl MigrationName for M0001Structure {
    fn name(&self) -> &str {
        "m0001_structure"
    }
}

fn fk(
    from_table: &'static str,
    from_column: &'static str,
    to_table: &'static str,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .from(from_table, from_column)
        .to(to_table, "id")
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for M0001Structure {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("enterprises")
                    .col(string("id").primary_key())
                    .col(string("display_name"))
                    .col(big_integer("revision"))
                    .col(string("user_creation_min_access"))
                    .col(text("policy"))
                    .col(string_null("create_request_id").unique_key())
                    .col(timestamp_with_time_zone("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("email_domains")
                    .col(string("domain").primary_key())
                    .col(string("enterprise_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk("email_domains", "enterprise_id", "enterprises"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("practices")
                    .col(string("id").primary_key())
                    .col(string("enterprise_id"))
                    .col(string("display_name"))
                    .col(string_null("create_request_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(big_integer("version"))
                    .foreign_key(&mut fk("practices", "enterprise_id", "enterprises"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("practices_request_id")
                    .table("practices")
                    .col("enterprise_id")
                    .col("create_request_id")
                    .unique()
                    .to_owned(),
            )
            .await?;
        for (table, extra) in [("lines", "phone_number"), ("resources", "kind")] {
            let mut create = Table::create();
            create
                .table(table)
                .col(string("id").primary_key())
                .col(string("practice_id"))
                .col(string("display_name"))
                .col(string(extra))
                .foreign_key(&mut fk(table, "practice_id", "practices"));
            if table == "resources" {
                create
                    .col(string_null("time_zone"))
                    .col(text_null("profile"));
            }
            manager.create_table(create.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("users")
                    .col(string("id").primary_key())
                    .col(string("enterprise_id"))
                    .col(string_uniq("email"))
                    .col(string("given_name"))
                    .col(string("family_name"))
                    .col(string("kind"))
                    .col(string("status"))
                    .col(big_integer("version"))
                    .col(string_null("create_request_id"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("deleted_at"))
                    .col(timestamp_with_time_zone_null("last_login_at"))
                    .foreign_key(&mut fk("users", "enterprise_id", "enterprises"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("users_enterprise")
                    .table("users")
                    .col("enterprise_id")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("users_enterprise_kind")
                    .table("users")
                    .col("enterprise_id")
                    .col("kind")
                    .col("id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("users_request_id")
                    .table("users")
                    .col("enterprise_id")
                    .col("create_request_id")
                    .unique()
                    .to_owned(),
            )
            .await?;
        // A membership; STAFF list their lines in membership_lines, while MANAGER and
        // ADVANCED_STAFF hold every line of the practice (D7), so none are stored for them.
        manager
            .create_table(
                Table::create()
                    .table("memberships")
                    .col(string("user_id"))
                    .col(string("practice_id"))
                    .primary_key(Index::create().col("user_id").col("practice_id"))
                    .foreign_key(&mut fk("memberships", "user_id", "users"))
                    .foreign_key(&mut fk("memberships", "practice_id", "practices"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("memberships_practice")
                    .table("memberships")
                    .col("practice_id")
                    .col("user_id")
                    .to_owned(),
            )
            .await?;
        for (table, column, target) in [
            ("membership_lines", "line_id", "lines"),
            ("membership_filters", "resource_id", "resources"),
        ] {
            manager
                .create_table(
                    Table::create()
                        .table(table)
                        .col(string("user_id"))
                        .col(string("practice_id"))
                        .col(string(column))
                        .primary_key(
                            Index::create()
                                .col("user_id")
                                .col("practice_id")
                                .col(column),
                        )
                        .foreign_key(
                            ForeignKey::create()
                                .from(table, ("user_id", "practice_id"))
                                .to("memberships", ("user_id", "practice_id"))
                                .on_delete(ForeignKeyAction::Cascade),
                        )
                        .foreign_key(&mut fk(table, column, target))
                        .to_owned(),
                )
                .await?;
        }
        // D13: activation links; only a hash of the token is kept.
        manager
            .create_table(
                Table::create()
                    .table("invitations")
                    .col(string("id").primary_key())
                    .col(string("user_id"))
                    .col(string_uniq("token_hash"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(timestamp_with_time_zone_null("used_at"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk("invitations", "user_id", "users"))
                    .to_owned(),
            )
            .await?;
        // D15: people, with or without a login; the email belongs to the person.
        manager
            .create_table(
                Table::create()
                    .table("persons")
                    .col(string("id").primary_key())
                    .col(string("enterprise_id"))
                    .col(string_uniq("email"))
                    .col(string("given_name"))
                    .col(string("family_name"))
                    .col(string_null("phone_number"))
                    .col(string_null("user_id").unique_key())
                    .col(big_integer("version"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk("persons", "enterprise_id", "enterprises"))
                    .foreign_key(&mut fk("persons", "user_id", "users"))
                    .to_owned(),
            )
            .await?;
        // D16: custom roles; built-in templates live in code.
        manager
            .create_table(
                Table::create()
                    .table("roles")
                    .col(string("id").primary_key())
                    .col(string("enterprise_id"))
                    .col(string("display_name"))
                    .col(text("description"))
                    .col(string_null("parent_role_id"))
                    .col(text("rules"))
                    .col(big_integer("version"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk("roles", "enterprise_id", "enterprises"))
                    .to_owned(),
            )
            .await?;
        // D17: no foreign key to roles, which may be built-in templates; the domain checks.
        manager
            .create_table(
                Table::create()
                    .table("role_bindings")
                    .col(string("id").primary_key())
                    .col(string("enterprise_id"))
                    .col(string("user_id"))
                    .col(string("role_id"))
                    .col(string_null("practice_id"))
                    .col(string_null("location_id"))
                    .col(timestamp_with_time_zone_null("valid_from"))
                    .col(timestamp_with_time_zone_null("valid_until"))
                    .col(text_null("weekly_window"))
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(&mut fk("role_bindings", "enterprise_id", "enterprises"))
                    .foreign_key(&mut fk("role_bindings", "user_id", "users"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("role_bindings_user")
                    .table("role_bindings")
                    .col("user_id")
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("role_bindings_role")
                    .table("role_bindings")
                    .col("role_id")
                    .to_owned(),
            )
            .await?;
        // D18 / AU1: append-only, hash-chained per enterprise.
        manager
            .create_table(
                Table::create()
                    .table("audit_events")
                    .col(string("id").primary_key())
                    .col(string("enterprise_id"))
                    .col(big_integer("seq"))
                    .col(timestamp_with_time_zone("time"))
                    .col(string("actor"))
                    .col(string("action"))
                    .col(string("target"))
                    .col(string("outcome"))
                    .col(text("details"))
                    .col(string("prev_hash"))
                    .col(string("hash"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("audit_events_chain")
                    .table("audit_events")
                    .col("enterprise_id")
                    .col("seq")
                    .unique()
                    .to_owned(),
            )
            .await?;
        // Messages for the notifier, written in the same transaction as the change that
        // causes them and delivered afterwards.
        manager
            .create_table(
                Table::create()
                    .table("outbox")
                    .col(string("id").primary_key())
                    .col(string("enterprise_id"))
                    .col(string("topic"))
                    .col(string("recipient"))
                    .col(text("payload"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("delivered_at"))
                    .col(timestamp_with_time_zone_null("claimed_until"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "role_bindings",
            "roles",
            "persons",
            "audit_events",
            "outbox",
            "invitations",
            "membership_filters",
            "membership_lines",
            "memberships",
            "users",
            "resources",
            "lines",
            "practices",
            "email_domains",
            "enterprises",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

struct M0002AuditTrail;

impl MigrationName for M0002AuditTrail {
    fn name(&self) -> &str {
        "m0002_audit_trail"
    }
}

/// AU1: the database itself refuses to change or remove audit events. Deleting is allowed only
/// for events a retention run has archived and covered with a checkpoint, which it marks in
/// `audit_retention_grants` inside its own transaction.
const POSTGRES_GUARD: &str = r#"
CREATE OR REPLACE FUNCTION praxis_audit_append_only() RETURNS trigger AS $$
BEGIN
  IF TG_OP = 'DELETE' AND EXISTS (
    SELECT 1 FROM audit_retention_grants g
    WHERE g.enterprise_id = OLD.enterprise_id AND OLD.seq <= g.up_to_seq
  ) THEN
    RETURN OLD;
  END IF;
  RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$ LANGUAGE plpgsql;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events
  FOR EACH ROW EXECUTE FUNCTION praxis_audit_append_only();
"#;

const SQLITE_GUARD: [&str; 2] = [
    "CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events \
     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
    "CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events \
     WHEN NOT EXISTS (SELECT 1 FROM audit_retention_grants g \
       WHERE g.enterprise_id = OLD.enterprise_id AND OLD.seq <= g.up_to_seq) \
     BEGIN SELECT RAISE(ABORT, 'audit_events is append-only'); END",
];

#[async_trait::async_trait]
impl MigrationTrait for M0002AuditTrail {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["ip", "user_agent", "trace_id"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("audit_events")
                        .add_column(string(column).default(""))
                        .to_owned(),
                )
                .await?;
        }
        for (name, columns) in [
            ("audit_events_by_time", &["enterprise_id", "time"][..]),
            (
                "audit_events_by_action",
                &["enterprise_id", "action", "time"][..],
            ),
            (
                "audit_events_by_target",
                &["enterprise_id", "target", "time"][..],
            ),
            (
                "audit_events_by_actor",
                &["enterprise_id", "actor", "time"][..],
            ),
            // The bulk-access rule: has this user read this record within the window, and how
            // many records have they read.
            (
                "audit_events_by_actor_target",
                &["enterprise_id", "actor", "target", "time"][..],
            ),
        ] {
            let mut index = Index::create();
            index.name(name).table("audit_events");
            for column in columns {
                index.col(*column);
            }
            manager.create_index(index.to_owned()).await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("audit_heads")
                    .col(string("enterprise_id").primary_key())
                    .col(big_integer("seq"))
                    .col(string("hash"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("audit_checkpoints")
                    .col(string("enterprise_id").primary_key())
                    .col(big_integer("seq"))
                    .col(string("hash"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(string("signature"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("audit_retention_grants")
                    .col(string("enterprise_id").primary_key())
                    .col(big_integer("up_to_seq"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("audit_known_networks")
                    .col(string("user_id"))
                    .col(string("network"))
                    .col(timestamp_with_time_zone("first_seen"))
                    .primary_key(Index::create().col("user_id").col("network"))
                    .to_owned(),
            )
            .await?;
        let db = manager.get_connection();
        match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                db.execute_unprepared(POSTGRES_GUARD).await?;
            }
            _ => {
                for statement in SQLITE_GUARD {
                    db.execute_unprepared(statement).await?;
                }
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        match manager.get_database_backend() {
            sea_orm::DatabaseBackend::Postgres => {
                db.execute_unprepared(
                    "DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events; \
                     DROP FUNCTION IF EXISTS praxis_audit_append_only()",
                )
                .await?;
            }
            _ => {
                db.execute_unprepared("DROP TRIGGER IF EXISTS audit_events_no_update")
                    .await?;
                db.execute_unprepared("DROP TRIGGER IF EXISTS audit_events_no_delete")
                    .await?;
            }
        }
        for table in [
            "audit_known_networks",
            "audit_retention_grants",
            "audit_checkpoints",
            "audit_heads",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        for name in [
            "audit_events_by_time",
            "audit_events_by_action",
            "audit_events_by_target",
            "audit_events_by_actor",
            "audit_events_by_actor_target",
        ] {
            manager
                .drop_index(Index::drop().name(name).table("audit_events").to_owned())
                .await?;
        }
        for column in ["ip", "user_agent", "trace_id"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("audit_events")
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

struct M0003BindingSource;

impl MigrationName for M0003BindingSource {
    fn name(&self) -> &str {
        "m0003_binding_source"
    }
}

/// I6: role bindings an SSO connection made are its to remove when the mapping stops giving them.
#[async_trait::async_trait]
impl MigrationTrait for M0003BindingSource {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("role_bindings")
                    .add_column(string_null("source"))
                    .to_owned(),
            )
            .await
    }
}

struct M0004AccessExtras;

impl MigrationName for M0004AccessExtras {
    fn name(&self) -> &str {
        "m0004_access_extras"
    }
}

/// A4, A5: bindings on one resource, elevation requests, break-glass uses.
#[async_trait::async_trait]
impl MigrationTrait for M0004AccessExtras {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in ["resource_type", "resource_id"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("role_bindings")
                        .add_column(string_null(column))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("elevation_requests")
                    .col(string("id").primary_key())
                    .col(string("enterprise_id"))
                    .col(string("user_id"))
                    .col(string("role_id"))
                    .col(string_null("practice_id"))
                    .col(integer("duration_minutes"))
                    .col(text("justification"))
                    .col(string("status"))
                    .col(timestamp_with_time_zone("requested_at"))
                    .col(string_null("decided_by"))
                    .col(timestamp_with_time_zone_null("decided_at"))
                    .col(text_null("decision_note"))
                    .col(string_null("binding_id"))
                    .col(timestamp_with_time_zone_null("expires_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("elevation_requests_by_enterprise")
                    .table("elevation_requests")
                    .col("enterprise_id")
                    .col("status")
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("break_glass_uses")
                    .col(string("id").primary_key())
                    .col(string("enterprise_id"))
                    .col(string("user_id"))
                    .col(string("role_id"))
                    .col(text("justification"))
                    .col(timestamp_with_time_zone("started_at"))
                    .col(timestamp_with_time_zone("expires_at"))
                    .col(string("binding_id"))
                    .col(string_null("reviewed_by"))
                    .col(timestamp_with_time_zone_null("reviewed_at"))
                    .col(text_null("review_note"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("break_glass_uses_by_enterprise")
                    .table("break_glass_uses")
                    .col("enterprise_id")
                    .col("started_at")
                    .to_owned(),
            )
            .await
    }
}

struct M0005ScimTokens;

impl MigrationName for M0005ScimTokens {
    fn name(&self) -> &str {
        "m0005_scim_tokens"
    }
}

/// Directory sync: the bearer tokens SCIM clients provision an enterprise with.
#[async_trait::async_trait]
impl MigrationTrait for M0005ScimTokens {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("scim_tokens")
                    .col(string("id").primary_key())
                    .col(string("enterprise_id"))
                    .col(string("display_name"))
                    .col(string("prefix").unique_key())
                    // SHA-256 of the whole token, hex: tokens are long random strings, so a
                    // fast hash is enough and lookups stay cheap.
                    .col(string("secret_hash"))
                    .col(string("created_by"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone_null("revoked_at"))
                    .col(timestamp_with_time_zone_null("last_used_at"))
                    .foreign_key(&mut fk("scim_tokens", "enterprise_id", "enterprises"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("scim_tokens_by_enterprise")
                    .table("scim_tokens")
                    .col("enterprise_id")
                    .to_owned(),
            )
            .await
    }
}

struct M0006ScimResources;

impl MigrationName for M0006ScimResources {
    fn name(&self) -> &str {
        "m0006_scim_resources"
    }
}

/// Directory sync: the Users and Groups SCIM clients keep here, as they sent them.
#[async_trait::async_trait]
impl MigrationTrait for M0006ScimResources {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("scim_resources")
                    .col(string("id").primary_key())
                    .col(string("enterprise_id"))
                    // `User` or `Group`.
                    .col(string("resource_type"))
                    // userName (Users) or displayName (Groups), lowercased: unique per type.
                    .col(string("name_key"))
                    .col(string_null("external_id"))
                    .col(text("body"))
                    .col(big_integer("version"))
                    .col(timestamp_with_time_zone("created_at"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut fk("scim_resources", "enterprise_id", "enterprises"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("scim_resources_unique_name")
                    .table("scim_resources")
                    .col("enterprise_id")
                    .col("resource_type")
                    .col("name_key")
                    .unique()
                    .to_owned(),
            )
            .await
    }
}

struct M0007ScimSettings;

impl MigrationName for M0007ScimSettings {
    fn name(&self) -> &str {
        "m0007_scim_settings"
    }
}

/// Directory sync: an enterprise's SCIM group rules.
#[async_trait::async_trait]
impl MigrationTrait for M0007ScimSettings {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("scim_settings")
                    .col(string("enterprise_id").primary_key())
                    .col(text("group_rules"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut fk("scim_settings", "enterprise_id", "enterprises"))
                    .to_owned(),
            )
            .await
    }
}

struct M0008LdapSync;

impl MigrationName for M0008LdapSync {
    fn name(&self) -> &str {
        "m0008_ldap_sync"
    }
}

/// Directory sync: an enterprise's LDAP connection and which Praxis user each imported entry
/// became.
#[async_trait::async_trait]
impl MigrationTrait for M0008LdapSync {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("ldap_syncs")
                    .col(string("enterprise_id").primary_key())
                    // Everything but the password, as JSON.
                    .col(text("settings"))
                    // Sealed (AES-256-GCM under the directory's secrets key).
                    .col(blob_null("bind_secret"))
                    .col(integer("interval_minutes"))
                    .col(timestamp_with_time_zone_null("next_run_at"))
                    // A run holds the connection until then, so replicas do not run it twice.
                    .col(timestamp_with_time_zone_null("lease_until"))
                    .col(text_null("last_run"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .foreign_key(&mut fk("ldap_syncs", "enterprise_id", "enterprises"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("ldap_links")
                    .col(string("enterprise_id"))
                    .col(string("user_id"))
                    .col(string("entry_id"))
                    .col(text("dn"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("enterprise_id").col("user_id"))
                    .foreign_key(&mut fk("ldap_links", "enterprise_id", "enterprises"))
                    .foreign_key(&mut fk("ldap_links", "user_id", "users"))
                    .to_owned(),
            )
            .await
    }
}
