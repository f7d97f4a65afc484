//! Changing and removing practices, lines and resources (D1), without breaking the rules that
//! lean on them: STAFF keep a line (D6), bindings keep their scope (D17).

use super::*;
use chrono::{DateTime, Utc};

/// An E.164 number: `+` and 8 to 15 digits.
pub fn phone_number(field: &str, value: &str) -> Result<String, DomainError> {
    let phone = value.trim();
    let digits = phone.strip_prefix('+').unwrap_or("");
    if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DomainError::invalid(
            field,
            "an E.164 number such as +15551234567",
        ));
    }
    Ok(phone.to_owned())
}

/// D1: locations carry an IANA time zone; providers carry none.
pub fn time_zone_for(
    kind: ResourceKind,
    value: Option<&str>,
) -> Result<Option<String>, DomainError> {
    match (kind, value.map(str::trim).filter(|zone| !zone.is_empty())) {
        (ResourceKind::Location, None) => Err(DomainError::invalid(
            "time_zone",
            "locations need a time zone",
        )),
        (ResourceKind::Location, Some(zone)) if !zone.contains('/') && zone != "UTC" => Err(
            DomainError::invalid("time_zone", "an IANA zone such as America/Chicago"),
        ),
        (ResourceKind::Provider, Some(_)) => Err(DomainError::invalid(
            "time_zone",
            "only locations carry a time zone",
        )),
        (_, zone) => Ok(zone.map(str::to_owned)),
    }
}

/// What UpdateResource changes; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct ResourceChange {
    pub display_name: Option<String>,
    pub time_zone: Option<String>,
    pub provider_profile: Option<super::persons::ProviderProfile>,
}

impl Directory {
    async fn administered_practice(
        &self,
        actor: &Actor,
        id: &PracticeId,
    ) -> Result<Practice, DomainError> {
        let practice = self.get_practice(actor, id).await?;
        if !self
            .authority(actor, &practice.enterprise_id)
            .await?
            .administers()
        {
            return Err(DomainError::PermissionDenied(
                "only enterprise admins change practices",
            ));
        }
        Ok(practice)
    }

    pub async fn rename_practice(
        &self,
        actor: &Actor,
        id: &PracticeId,
        name: &str,
        etag: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(Practice, i64), DomainError> {
        let name = service::display_name("practice.display_name", name)?;
        let practice = self.administered_practice(actor, id).await?;
        let expected = etag.unwrap_or(practice.version);
        let audit = actor.audit(
            "practice.update",
            format!("practice:{id}"),
            serde_json::json!({"display_name": name}),
            now,
        );
        self.store
            .rename_practice(&practice.enterprise_id, id, expected, &name, &audit)
            .await
    }

    pub async fn delete_practice(
        &self,
        actor: &Actor,
        id: &PracticeId,
        etag: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<i64, DomainError> {
        let practice = self.administered_practice(actor, id).await?;
        let expected = etag.unwrap_or(practice.version);
        let audit = actor.audit(
            "practice.delete",
            format!("practice:{id}"),
            serde_json::json!({"display_name": practice.display_name}),
            now,
        );
        self.store
            .delete_practice(&practice.enterprise_id, id, expected, &audit)
            .await
    }

    /// The line and its practice, if the actor administers the enterprise.
    async fn administered_line(
        &self,
        actor: &Actor,
        id: &LineId,
    ) -> Result<(Line, Practice), DomainError> {
        let (line, practice_id) = self
            .store
            .line(id)
            .await?
            .ok_or(DomainError::NotFound("line"))?;
        let practice = self
            .get_practice(actor, &practice_id)
            .await
            .map_err(|_| DomainError::NotFound("line"))?;
        if !self
            .authority(actor, &practice.enterprise_id)
            .await?
            .administers()
        {
            return Err(DomainError::PermissionDenied(
                "only enterprise admins change lines",
            ));
        }
        Ok((line, practice))
    }

    pub async fn update_line(
        &self,
        actor: &Actor,
        id: &LineId,
        name: Option<&str>,
        phone: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(Line, i64), DomainError> {
        let name = name
            .map(|n| service::display_name("line.display_name", n))
            .transpose()?;
        let phone = phone
            .map(|p| phone_number("line.phone_number", p))
            .transpose()?;
        let (line, practice) = self.administered_line(actor, id).await?;
        let audit = actor.audit(
            "line.update",
            format!("line:{id}"),
            serde_json::json!({"display_name": name}),
            now,
        );
        let updated = Line {
            display_name: name.unwrap_or(line.display_name),
            phone_number: phone.unwrap_or(line.phone_number),
            id: line.id,
        };
        let revision = self
            .store
            .update_line(&practice.enterprise_id, &updated, &audit)
            .await?;
        Ok((updated, revision))
    }

    pub async fn delete_line(
        &self,
        actor: &Actor,
        id: &LineId,
        now: DateTime<Utc>,
    ) -> Result<i64, DomainError> {
        let (line, practice) = self.administered_line(actor, id).await?;
        let audit = actor.audit(
            "line.delete",
            format!("line:{id}"),
            serde_json::json!({"display_name": line.display_name}),
            now,
        );
        self.store
            .delete_line(&practice.enterprise_id, id, &audit)
            .await
    }

    async fn administered_resource(
        &self,
        actor: &Actor,
        id: &ResourceId,
    ) -> Result<(Resource, Practice), DomainError> {
        let (resource, practice_id) = self
            .store
            .resource(id)
            .await?
            .ok_or(DomainError::NotFound("resource"))?;
        let practice = self
            .get_practice(actor, &practice_id)
            .await
            .map_err(|_| DomainError::NotFound("resource"))?;
        if !self
            .authority(actor, &practice.enterprise_id)
            .await?
            .administers()
        {
            return Err(DomainError::PermissionDenied(
                "only enterprise admins change resources",
            ));
        }
        Ok((resource, practice))
    }

    pub async fn update_resource(
        &self,
        actor: &Actor,
        id: &ResourceId,
        change: ResourceChange,
        now: DateTime<Utc>,
    ) -> Result<(Resource, i64), DomainError> {
        let name = change
            .display_name
            .as_deref()
            .map(|n| service::display_name("resource.display_name", n))
            .transpose()?;
        let (resource, practice) = self.administered_resource(actor, id).await?;
        let time_zone = match change.time_zone.as_deref() {
            Some(zone) => time_zone_for(resource.kind, Some(zone))?,
            None => resource.time_zone.clone(),
        };
        let provider_profile = match change.provider_profile {
            Some(_) if resource.kind != ResourceKind::Provider => {
                return Err(DomainError::invalid(
                    "resource.provider_profile",
                    "only providers have a profile (D15)",
                ));
            }
            Some(profile) => {
                self.check_profile(&practice, &profile).await?;
                Some(profile)
            }
            None => resource.provider_profile.clone(),
        };
        let updated = Resource {
            display_name: name.unwrap_or(resource.display_name),
            time_zone,
            provider_profile,
            ..resource
        };
        let audit = actor.audit(
            "resource.update",
            format!("resource:{id}"),
            serde_json::json!({"time_zone": updated.time_zone}),
            now,
        );
        let revision = self
            .store
            .update_resource(&practice.enterprise_id, &updated, &audit)
            .await?;
        Ok((updated, revision))
    }

    pub async fn delete_resource(
        &self,
        actor: &Actor,
        id: &ResourceId,
        now: DateTime<Utc>,
    ) -> Result<i64, DomainError> {
        let (resource, practice) = self.administered_resource(actor, id).await?;
        let audit = actor.audit(
            "resource.delete",
            format!("resource:{id}"),
            serde_json::json!({"display_name": resource.display_name}),
            now,
        );
        self.store
            .delete_resource(&practice.enterprise_id, id, &audit)
            .await
    }
}
