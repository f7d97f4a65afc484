//! Identity's own tables. Only signing keys so far; credentials and sessions join them later.

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

pub mod migrations {
    use sea_orm_migration::prelude::*;
    use sea_orm_migration::schema::*;

    pub struct Migrator;

    impl MigratorTrait for Migrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            vec![Box::new(M0001SigningKeys)]
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
}
