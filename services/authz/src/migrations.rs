//! Authz's schema. Empty until grants and elevations arrive; the migrations table it leaves
//! records that the database belongs to authz and is up to date.

use sea_orm_migration::prelude::*;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        Vec::new()
    }

    fn migration_table_name() -> DynIden {
        "authz_migrations".into_iden()
    }
}
