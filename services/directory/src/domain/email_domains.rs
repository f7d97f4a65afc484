//! D2: the email domains an enterprise allowlists. Users are created only on them; generic mail
//! domains never qualify; a domain belongs to one enterprise at most.

use super::*;
use chrono::{DateTime, Utc};

/// Mail providers anyone can sign up with: an address there proves nothing about employment.
/// Deployments may add more (`generic_email_domains`).
pub const GENERIC_EMAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "googlemail.com",
    "yahoo.com",
    "yahoo.co.uk",
    "ymail.com",
    "rocketmail.com",
    "outlook.com",
    "hotmail.com",
    "hotmail.co.uk",
    "live.com",
    "msn.com",
    "aol.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "protonmail.com",
    "proton.me",
    "pm.me",
    "gmx.com",
    "gmx.net",
    "gmx.de",
    "mail.com",
    "zoho.com",
    "yandex.com",
    "yandex.ru",
    "mail.ru",
    "qq.com",
    "163.com",
    "126.com",
    "fastmail.com",
    "hey.com",
    "tutanota.com",
    "tuta.io",
    "comcast.net",
    "verizon.net",
    "att.net",
    "sbcglobal.net",
    "web.de",
    "orange.fr",
    "free.fr",
    "libero.it",
    "rediffmail.com",
];

/// A domain as stored: lowercase, no trailing dot, labels of letters, digits and hyphens.
pub fn normalize_domain(value: &str) -> Result<String, DomainError> {
    let domain = value.trim().trim_end_matches('.').to_lowercase();
    let labels: Vec<&str> = domain.split('.').collect();
    let label_ok = |label: &&str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    };
    if labels.len() < 2 || domain.len() > 253 || !labels.iter().all(label_ok) {
        return Err(DomainError::invalid(
            "domain",
            "a DNS name such as northclinic.example",
        ));
    }
    Ok(domain)
}

impl Directory {
    pub fn is_generic_domain(&self, domain: &str) -> bool {
        GENERIC_EMAIL_DOMAINS.contains(&domain)
            || self
                .settings
                .extra_generic_domains
                .iter()
                .any(|d| d == domain)
    }

    pub async fn add_email_domain(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        domain: &str,
        now: DateTime<Utc>,
    ) -> Result<(EmailDomain, i64), DomainError> {
        let domain = normalize_domain(domain)?;
        self.visible_enterprise(actor, enterprise_id).await?;
        if !self.authority(actor, enterprise_id).await?.administers() {
            return Err(DomainError::PermissionDenied(
                "only enterprise admins allowlist email domains",
            ));
        }
        if self.is_generic_domain(&domain) {
            return Err(DomainError::precondition(
                "GENERIC_EMAIL_DOMAIN",
                format!("{domain} is a public mail provider and can never be allowlisted (D2)"),
            ));
        }
        match self
            .store
            .insert_email_domain(
                enterprise_id,
                &domain,
                now,
                &actor.audit(
                    "email_domain.add",
                    format!("email_domain:{domain}"),
                    serde_json::json!({}),
                    now,
                ),
            )
            .await
        {
            Err(DomainError::AlreadyExists(_)) => Err(DomainError::precondition(
                "EMAIL_DOMAIN_TAKEN",
                format!("{domain} is already allowlisted by an enterprise (D2)"),
            )),
            other => other,
        }
    }

    pub async fn remove_email_domain(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        domain: &str,
        now: DateTime<Utc>,
    ) -> Result<i64, DomainError> {
        let domain = normalize_domain(domain)?;
        self.visible_enterprise(actor, enterprise_id).await?;
        if !self.authority(actor, enterprise_id).await?.administers() {
            return Err(DomainError::PermissionDenied(
                "only enterprise admins change email domains",
            ));
        }
        self.store
            .delete_email_domain(
                enterprise_id,
                &domain,
                &actor.audit(
                    "email_domain.remove",
                    format!("email_domain:{domain}"),
                    serde_json::json!({}),
                    now,
                ),
            )
            .await
    }

    pub async fn list_email_domains(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
    ) -> Result<(Vec<EmailDomain>, i64), DomainError> {
        let enterprise = self.visible_enterprise(actor, enterprise_id).await?;
        Ok((
            self.store.list_email_domains(enterprise_id).await?,
            enterprise.revision,
        ))
    }

    /// D2: `email` may belong to a user of `enterprise_id` only if its domain is allowlisted there.
    pub(super) async fn check_email_domain(
        &self,
        enterprise_id: &EnterpriseId,
        email: &str,
    ) -> Result<(), DomainError> {
        let domain = email
            .rsplit_once('@')
            .map(|(_, domain)| domain)
            .unwrap_or_default();
        match self.store.email_domain(domain).await? {
            Some(owner) if owner.enterprise_id == *enterprise_id => Ok(()),
            _ => Err(DomainError::precondition(
                "EMAIL_DOMAIN_NOT_ALLOWED",
                format!("{domain} is not an allowlisted email domain of this enterprise (D2)"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn d2_domains_are_normalized_or_refused() {
        assert_eq!(
            normalize_domain(" NorthClinic.Example. ").ok().as_deref(),
            Some("northclinic.example")
        );
        for bad in [
            "",
            "localhost",
            "-a.example",
            "a..example",
            "a b.example",
            "ex_ample.com",
            "@example.com",
        ] {
            assert!(normalize_domain(bad).is_err(), "{bad:?} accepted");
        }
    }
}
