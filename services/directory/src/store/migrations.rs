//! The directory's schema, in order. Applied at start and by `praxis migrate`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

pub struct Migrator;

impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(M0001Structure)]
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
                    .col(string_null("create_request_id").unique_key())
                    .col(timestamp_with_time_zone("created_at"))
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
                    .foreign_key(
                        ForeignKey::create()
                            .from("practices", "enterprise_id")
                            .to("enterprises", "id"),
                    )
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
        manager
            .create_table(
                Table::create()
                    .table("lines")
                    .col(string("id").primary_key())
                    .col(string("practice_id"))
                    .col(string("display_name"))
                    .col(string("phone_number"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("lines", "practice_id")
                            .to("practices", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("resources")
                    .col(string("id").primary_key())
                    .col(string("practice_id"))
                    .col(string("kind"))
                    .col(string("display_name"))
                    .col(string_null("time_zone"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("resources", "practice_id")
                            .to("practices", "id"),
                    )
                    .to_owned(),
            )
            .await?;
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
                    .col(timestamp_with_time_zone("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("users", "enterprise_id")
                            .to("enterprises", "id"),
                    )
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
            .create_table(
                Table::create()
                    .table("membership_lines")
                    .col(string("user_id"))
                    .col(string("practice_id"))
                    .col(string("line_id"))
                    .primary_key(
                        Index::create()
                            .col("user_id")
                            .col("practice_id")
                            .col("line_id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("membership_lines", "user_id")
                            .to("users", "id"),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .from("membership_lines", "practice_id")
                            .to("practices", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("membership_lines_practice")
                    .table("membership_lines")
                    .col("practice_id")
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "membership_lines",
            "users",
            "resources",
            "lines",
            "practices",
            "enterprises",
        ] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}
