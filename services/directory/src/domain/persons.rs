//! D15: person records (employees, with or without a login) and provider profiles.

use super::*;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: String,
    pub enterprise_id: EnterpriseId,
    /// Owned by the person: a login made from the person uses it.
    pub email: String,
    pub given_name: String,
    pub family_name: String,
    pub phone_number: Option<String>,
    pub user_id: Option<UserId>,
    pub version: i64,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default)]
pub struct PersonDraft {
    pub email: String,
    pub given_name: String,
    pub family_name: String,
    pub phone_number: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProviderProfile {
    pub credentials: Vec<String>,
    pub specialties: Vec<String>,
    pub license_number: String,
    pub npi: String,
    pub bio: String,
    pub photo_url: String,
    pub location_ids: Vec<ResourceId>,
    pub person_id: Option<String>,
}

/// A US NPI: ten digits whose last is the Luhn check digit over `80840` and the first nine.
pub fn valid_npi(npi: &str) -> bool {
    if npi.len() != 10 || !npi.bytes().all(|b| b.is_ascii_digit()) {
        return false;
    }
    let digits: Vec<u32> = format!("80840{npi}")
        .bytes()
        .map(|b| u32::from(b - b'0'))
        .collect();
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(index, &digit)| {
            if !index.is_multiple_of(2) {
                let doubled = digit * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                digit
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

impl Directory {
    pub async fn create_person(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        draft: PersonDraft,
        now: DateTime<Utc>,
    ) -> Result<(Person, i64), DomainError> {
        let mut problems = Vec::new();
        let mut keep = |result: Result<String, DomainError>| match result {
            Ok(value) => Some(value),
            Err(DomainError::InvalidArgument(list)) => {
                problems.extend(
                    list.into_iter()
                        .map(|(field, message)| (format!("person.{field}"), message)),
                );
                None
            }
            Err(_) => None,
        };
        let email = keep(service::normalize_email(&draft.email));
        let given_name = keep(service::display_name("given_name", &draft.given_name));
        let family_name = keep(service::display_name("family_name", &draft.family_name));
        let phone = match draft
            .phone_number
            .as_deref()
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            Some(phone) => keep(super::structure::phone_number("phone_number", phone)),
            None => None,
        };
        let (Some(email), Some(given_name), Some(family_name), true) =
            (email, given_name, family_name, problems.is_empty())
        else {
            return Err(DomainError::InvalidArgument(problems));
        };
        self.visible_enterprise(actor, enterprise_id).await?;
        if !self.authority(actor, enterprise_id).await?.administers() {
            return Err(DomainError::PermissionDenied(
                "only enterprise admins manage person records (D15)",
            ));
        }
        let draft = PersonDraft {
            email,
            given_name,
            family_name,
            phone_number: phone,
        };
        let audit = actor.audit(
            "person.create",
            format!("enterprise:{enterprise_id}"),
            serde_json::json!({}),
            now,
        );
        self.store
            .insert_person(enterprise_id, &draft, &audit)
            .await
    }

    pub async fn get_person(&self, actor: &Actor, id: &str) -> Result<Person, DomainError> {
        let person = self
            .store
            .person(id)
            .await?
            .ok_or(DomainError::NotFound("person"))?;
        if !actor.reaches(&person.enterprise_id) {
            return Err(DomainError::NotFound("person"));
        }
        Ok(person)
    }

    pub async fn list_persons(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        page: &PageRequest,
    ) -> Result<(Page<Person>, i64), DomainError> {
        let enterprise = self.visible_enterprise(actor, enterprise_id).await?;
        Ok((
            self.store.list_persons(enterprise_id, page).await?,
            enterprise.revision,
        ))
    }

    pub async fn update_person(
        &self,
        actor: &Actor,
        id: &str,
        draft: PersonDraft,
        fields: &[&str],
        etag: Option<i64>,
        now: DateTime<Utc>,
    ) -> Result<(Person, i64), DomainError> {
        let person = self.get_person(actor, id).await?;
        if !self
            .authority(actor, &person.enterprise_id)
            .await?
            .administers()
        {
            return Err(DomainError::PermissionDenied(
                "only enterprise admins manage person records (D15)",
            ));
        }
        if etag.is_some_and(|version| version != person.version) {
            return Err(DomainError::Aborted("the person changed since it was read"));
        }
        let has = |field: &str| fields.contains(&field);
        let updated = Person {
            given_name: if has("given_name") {
                service::display_name("person.given_name", &draft.given_name)?
            } else {
                person.given_name.clone()
            },
            family_name: if has("family_name") {
                service::display_name("person.family_name", &draft.family_name)?
            } else {
                person.family_name.clone()
            },
            phone_number: if has("phone_number") {
                match draft
                    .phone_number
                    .as_deref()
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                {
                    Some(phone) => Some(super::structure::phone_number(
                        "person.phone_number",
                        phone,
                    )?),
                    None => None,
                }
            } else {
                person.phone_number.clone()
            },
            ..person.clone()
        };
        let audit = actor.audit(
            "person.update",
            format!("person:{id}"),
            serde_json::json!({"fields": fields}),
            now,
        );
        self.store
            .update_person(&updated, person.version, &audit)
            .await
    }

    /// D15: a provider's profile, checked against the practice it belongs to.
    pub(super) async fn check_profile(
        &self,
        practice: &Practice,
        profile: &ProviderProfile,
    ) -> Result<(), DomainError> {
        let mut problems = Vec::new();
        if !profile.npi.is_empty() && !valid_npi(&profile.npi) {
            problems.push((
                "resource.provider_profile.npi".to_owned(),
                "ten digits with a valid check digit".to_owned(),
            ));
        }
        if !profile.photo_url.is_empty() && !profile.photo_url.starts_with("https://") {
            problems.push((
                "resource.provider_profile.photo_url".to_owned(),
                "an https:// URL".to_owned(),
            ));
        }
        if profile.bio.chars().count() > 2000 {
            problems.push((
                "resource.provider_profile.bio".to_owned(),
                "at most 2000 characters".to_owned(),
            ));
        }
        for (index, location) in profile.location_ids.iter().enumerate() {
            let here = practice
                .resources
                .iter()
                .any(|r| &r.id == location && r.kind == ResourceKind::Location);
            if !here {
                problems.push((
                    format!("resource.provider_profile.location_ids[{index}]"),
                    "not a location of this practice".to_owned(),
                ));
            }
        }
        if let Some(person_id) = &profile.person_id {
            let person = self.store.person(person_id).await?;
            if person.is_none_or(|p| p.enterprise_id != practice.enterprise_id) {
                problems.push((
                    "resource.provider_profile.person_id".to_owned(),
                    "no such person in this enterprise".to_owned(),
                ));
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(DomainError::InvalidArgument(problems))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d15_npi_check_digits() {
        assert!(valid_npi("1234567893"));
        assert!(!valid_npi("1234567890"));
        assert!(!valid_npi("123456789"));
        assert!(!valid_npi("12345678a3"));
    }
}
