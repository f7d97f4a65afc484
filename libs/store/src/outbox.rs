//! Marks what an outbox relay handed over (`praxis_runtime::outbox::deliver`): delivered events
//! get their time, events the receiver refuses for good keep the reason and are set aside.

use praxis_runtime::outbox::Handed;
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};

/// The columns every outbox table has for this.
pub struct OutboxColumns<C> {
    pub id: C,
    pub delivered_at: C,
    pub refused: C,
}

pub async fn settle<E: EntityTrait>(
    db: &impl ConnectionTrait,
    columns: OutboxColumns<E::Column>,
    handed: &Handed,
    outbox: &str,
) -> Result<(), DbErr> {
    E::update_many()
        .col_expr(columns.delivered_at, Expr::value(chrono::Utc::now()))
        .filter(columns.id.is_in(handed.delivered.clone()))
        .exec(db)
        .await?;
    for (id, reason) in &handed.refused {
        tracing::error!(event = %id, %reason, outbox, "the receiver refuses this event for good; it stays in the outbox, set aside");
        E::update_many()
            .col_expr(columns.refused, Expr::value(reason.clone()))
            .filter(columns.id.eq(id.as_str()))
            .exec(db)
            .await?;
    }
    Ok(())
}
