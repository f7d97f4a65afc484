//! Authz's schema: the enterprises' custom Cedar policies (A7).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001CustomPolicies), Box::new(M0002AuditOutbox)]
    }

    fn migration_table_name() -> DynIden {
        "authz_migrations".into_iden()
    }
}

struct M0001CustomPolicies;

// Names are stable ids recorded in the migrations table; never rename one.
impl MigrationName for M0001CustomPolicies {
    fn name(&self) -> &str {
        "m0001_custom_policies"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0001CustomPolicies {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("custom_policies")
                    .col(string("enterprise_id"))
                    .col(string("id"))
                    .col(text("description"))
                    .col(text("text"))
                    .col(big_integer("version"))
                    .col(timestamp_with_time_zone("updated_at"))
                    .primary_key(Index::create().col("enterprise_id").col("id"))
                    .to_owned(),
            )
            .await?;
        // Bumped with every change of an enterprise's policies, in the same transaction, so
        // replicas confirm their compiled sets with one read.
        manager
            .create_table(
                Table::create()
                    .table("policy_revisions")
                    .col(string("enterprise_id").primary_key())
                    .col(big_integer("revision"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("policy_revisions").to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table("custom_policies").to_owned())
            .await
    }
}

struct M0002AuditOutbox;

impl MigrationName for M0002AuditOutbox {
    fn name(&self) -> &str {
        "m0002_audit_outbox"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for M0002AuditOutbox {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
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
                    .col(string("trace_id"))
                    .col(text("details"))
                    .col(timestamp_with_time_zone_null("delivered_at"))
                    .col(string("refused").default(""))
                    .to_owned(),
            )
            .await?;
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
            .drop_table(Table::drop().table("audit_outbox").to_owned())
            .await
    }
}
