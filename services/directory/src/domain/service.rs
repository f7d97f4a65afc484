//! Directory operations: who may do what (tenant isolation, D3 admin rights), input rules, and
//! the calls into the store. Time is a parameter so tests control it.

use super::*;
use crate::store::Store;
use chrono::{DateTime, Utc};

pub const MAX_NAME_LENGTH: usize = 200;
pub const DEFAULT_PAGE_SIZE: u64 = 50;
pub const MAX_PAGE_SIZE: u64 = 500;

/// What an enterprise update changes; `None` leaves a field alone.
#[derive(Debug, Clone, Default)]
pub struct EnterpriseChange {
    pub display_name: Option<String>,
    pub min_access: Option<MinAccess>,
    pub policy: Option<super::policy::EnterprisePolicy>,
}

/// Deployment choices the directory's rules depend on.
#[derive(Debug, Clone)]
pub struct DirectorySettings {
    /// Generic mail domains beyond the shipped list (D2).
    pub extra_generic_domains: Vec<String>,
    /// Where activation links point; the token is appended as `?token=` (D13).
    pub invitation_url: String,
    /// How long an activation link works.
    pub invitation_ttl: chrono::Duration,
}

impl Default for DirectorySettings {
    fn default() -> Self {
        Self {
            extra_generic_domains: Vec::new(),
            invitation_url: "http://127.0.0.1:8080/activate".to_owned(),
            invitation_ttl: chrono::Duration::hours(72),
        }
    }
}

#[derive(Clone)]
pub struct Directory {
    pub(super) store: Store,
    pub(super) settings: std::sync::Arc<DirectorySettings>,
    /// Alerts raised by appended events, after their commit (AU4).
    pub(super) alerts: tokio::sync::broadcast::Sender<super::audit::Alert>,
    /// Signs retention checkpoints (AU3); required to verify a chain that has one.
    pub(super) audit_key: Option<super::retention::CheckpointKey>,
    /// Where retention archives removed events; retention runs only when set.
    pub(super) audit_archive: Option<std::path::PathBuf>,
    /// Seals secrets kept for connectors (the LDAP bind password).
    pub(super) sealer: Option<praxis_runtime::secrets::Sealer>,
}

pub(super) fn display_name(field: &'static str, value: &str) -> Result<String, DomainError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(DomainError::invalid(field, "must not be empty"));
    }
    if trimmed.chars().count() > MAX_NAME_LENGTH {
        return Err(DomainError::invalid(
            field,
            format!("at most {MAX_NAME_LENGTH} characters"),
        ));
    }
    Ok(trimmed.to_owned())
}

/// Validates an AIP-155 request id: optional, but when present a sane token.
pub(super) fn request_id(value: &str) -> Result<Option<&str>, DomainError> {
    if value.is_empty() {
        return Ok(None);
    }
    if value.len() > 128 || !value.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(DomainError::invalid(
            "request_id",
            "at most 128 printable ASCII characters",
        ));
    }
    Ok(Some(value))
}

/// Emails are compared and stored lowercase; this is not a full RFC 5322 parser, only the shape
/// every address we accept must have.
pub fn normalize_email(value: &str) -> Result<String, DomainError> {
    let email = value.trim().to_lowercase();
    let valid = match email.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.contains('@')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(char::is_whitespace)
                && email.len() <= 254
        }
        None => false,
    };
    if valid {
        Ok(email)
    } else {
        Err(DomainError::invalid("email", "not an email address"))
    }
}

impl Directory {
    pub fn new(store: Store) -> Self {
        Self::with_settings(store, DirectorySettings::default())
    }

    pub fn with_settings(store: Store, settings: DirectorySettings) -> Self {
        Self {
            store,
            settings: std::sync::Arc::new(settings),
            alerts: tokio::sync::broadcast::channel(1024).0,
            audit_key: None,
            audit_archive: None,
            sealer: None,
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// With retention (AU3): the checkpoint key and where archives go.
    pub fn with_audit(
        mut self,
        key: super::retention::CheckpointKey,
        archive: Option<std::path::PathBuf>,
    ) -> Self {
        self.audit_key = Some(key);
        self.audit_archive = archive;
        self
    }

    pub fn with_sealer(mut self, sealer: praxis_runtime::secrets::Sealer) -> Self {
        self.sealer = Some(sealer);
        self
    }

    /// Alerts as they are raised, after the events that raised them are committed.
    pub fn alerts(&self) -> tokio::sync::broadcast::Receiver<super::audit::Alert> {
        self.alerts.subscribe()
    }

    /// The page to read, from a client's size (0 = default) and continuation id.
    pub fn page(size: i32, after: Option<String>) -> Result<PageRequest, DomainError> {
        let size = match size {
            0 => DEFAULT_PAGE_SIZE,
            n if n < 0 => return Err(DomainError::invalid("page_size", "must not be negative")),
            n => u64::try_from(n).unwrap_or(MAX_PAGE_SIZE).min(MAX_PAGE_SIZE),
        };
        Ok(PageRequest { size, after })
    }

    /// The enterprise, if the actor may see it; another tenant's answers NOT_FOUND.
    pub(super) async fn visible_enterprise(
        &self,
        actor: &Actor,
        id: &EnterpriseId,
    ) -> Result<Enterprise, DomainError> {
        if !actor.reaches(id) {
            return Err(DomainError::NotFound("enterprise"));
        }
        self.store
            .enterprise(id)
            .await?
            .ok_or(DomainError::NotFound("enterprise"))
    }

    // === enterprises ===

    pub async fn create_enterprise(
        &self,
        actor: &Actor,
        name: &str,
        request: &str,
        now: DateTime<Utc>,
    ) -> Result<Enterprise, DomainError> {
        if !actor.is_platform_admin() {
            return Err(DomainError::PermissionDenied(
                "only platform admins create enterprises",
            ));
        }
        let name = display_name("display_name", name)?;
        let request = request_id(request)?;
        self.store
            .insert_enterprise(
                &name,
                request,
                now,
                &actor.audit(
                    "enterprise.create",
                    "enterprise".to_owned(),
                    serde_json::json!({"display_name": name}),
                    now,
                ),
            )
            .await
    }

    pub async fn get_enterprise(
        &self,
        actor: &Actor,
        id: &EnterpriseId,
    ) -> Result<Enterprise, DomainError> {
        self.visible_enterprise(actor, id).await
    }

    /// Changes the enterprise's name, D10 setting and policy; enterprise admins only.
    pub async fn update_enterprise(
        &self,
        actor: &Actor,
        id: &EnterpriseId,
        etag: Option<i64>,
        change: EnterpriseChange,
        now: DateTime<Utc>,
    ) -> Result<Enterprise, DomainError> {
        let mut problems = Vec::new();
        let display_name = match &change.display_name {
            Some(name) => match self::display_name("enterprise.display_name", name) {
                Ok(name) => Some(name),
                Err(DomainError::InvalidArgument(list)) => {
                    problems.extend(list);
                    None
                }
                Err(other) => return Err(other),
            },
            None => None,
        };
        if let Some(policy) = &change.policy {
            problems.extend(policy.problems());
        }
        if !problems.is_empty() {
            return Err(DomainError::InvalidArgument(problems));
        }
        self.visible_enterprise(actor, id).await?;
        if !self.authority(actor, id).await?.administers() {
            return Err(DomainError::PermissionDenied(
                "only enterprise admins change enterprise settings",
            ));
        }
        if let Some(policy) = &change.policy {
            self.check_policy_roles(id, policy).await?;
        }
        let change = EnterpriseChange {
            display_name,
            ..change
        };
        let details = serde_json::json!({
            "display_name": change.display_name,
            "user_creation_min_access": change.min_access.map(MinAccess::as_str),
            "policy_changed": change.policy.is_some(),
        });
        let audit = actor.audit(
            "enterprise.update",
            format!("enterprise:{id}"),
            details,
            now,
        );
        self.store
            .update_enterprise(id, etag, &change, &audit)
            .await
    }

    /// Roles a policy names must be roles of the enterprise.
    async fn check_policy_roles(
        &self,
        id: &EnterpriseId,
        policy: &super::policy::EnterprisePolicy,
    ) -> Result<(), DomainError> {
        use super::policy::OverrideTarget;
        let from_overrides = policy
            .session
            .overrides
            .iter()
            .filter_map(|o| match &o.target {
                OverrideTarget::Role(role) => Some(role),
                OverrideTarget::Kind(_) => None,
            });
        let from_allowlists = policy
            .ip_allowlists
            .iter()
            .filter_map(|list| list.role_id.as_ref());
        for role in from_overrides.chain(from_allowlists) {
            if self.get_role(&Actor::Operator, id, role).await.is_err() {
                return Err(DomainError::invalid(
                    "enterprise.policy",
                    format!("role {role} is not a role of this enterprise"),
                ));
            }
        }
        Ok(())
    }

    // === practices, lines, resources ===

    pub async fn create_practice(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        name: &str,
        request: &str,
        now: DateTime<Utc>,
    ) -> Result<(Practice, i64), DomainError> {
        let name = display_name("display_name", name)?;
        let request = request_id(request)?;
        self.visible_enterprise(actor, enterprise_id).await?;
        if !self.authority(actor, enterprise_id).await?.administers() {
            return Err(DomainError::PermissionDenied(
                "only enterprise admins create practices",
            ));
        }
        self.store
            .insert_practice(
                enterprise_id,
                &name,
                request,
                now,
                &actor.audit(
                    "practice.create",
                    format!("enterprise:{enterprise_id}"),
                    serde_json::json!({"display_name": name}),
                    now,
                ),
            )
            .await
    }

    pub async fn add_line(
        &self,
        actor: &Actor,
        practice_id: &PracticeId,
        name: &str,
        phone_number: &str,
        now: DateTime<Utc>,
    ) -> Result<(Line, i64), DomainError> {
        let name = display_name("display_name", name)?;
        let phone = super::structure::phone_number("phone_number", phone_number)?;
        let phone = phone.as_str();
        let practice = self.get_practice(actor, practice_id).await?;
        if !self
            .authority(actor, &practice.enterprise_id)
            .await?
            .administers()
        {
            return Err(DomainError::PermissionDenied(
                "only enterprise admins add lines",
            ));
        }
        self.store
            .insert_line(
                &practice.enterprise_id,
                practice_id,
                &name,
                phone,
                &actor.audit(
                    "line.create",
                    format!("practice:{practice_id}"),
                    serde_json::json!({"display_name": name}),
                    now,
                ),
            )
            .await
    }

    pub async fn add_resource(
        &self,
        actor: &Actor,
        practice_id: &PracticeId,
        kind: ResourceKind,
        name: &str,
        time_zone: Option<&str>,
        now: DateTime<Utc>,
    ) -> Result<(Resource, i64), DomainError> {
        let name = display_name("display_name", name)?;
        let time_zone = super::structure::time_zone_for(kind, time_zone)?;
        let time_zone = time_zone.as_deref();
        let practice = self.get_practice(actor, practice_id).await?;
        if !self
            .authority(actor, &practice.enterprise_id)
            .await?
            .administers()
        {
            return Err(DomainError::PermissionDenied(
                "only enterprise admins add resources",
            ));
        }
        self.store
            .insert_resource(
                &practice.enterprise_id,
                practice_id,
                kind,
                &name,
                time_zone,
                &actor.audit(
                    "resource.create",
                    format!("practice:{practice_id}"),
                    serde_json::json!({"kind": kind.as_str(), "display_name": name}),
                    now,
                ),
            )
            .await
    }

    pub async fn get_practice(
        &self,
        actor: &Actor,
        id: &PracticeId,
    ) -> Result<Practice, DomainError> {
        let practice = self
            .store
            .practice(id)
            .await?
            .ok_or(DomainError::NotFound("practice"))?;
        if !actor.reaches(&practice.enterprise_id) {
            return Err(DomainError::NotFound("practice"));
        }
        Ok(practice)
    }

    pub async fn list_practices(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        page: &PageRequest,
    ) -> Result<(Page<Practice>, i64), DomainError> {
        let enterprise = self.visible_enterprise(actor, enterprise_id).await?;
        let page = self.store.list_practices(enterprise_id, page).await?;
        Ok((page, enterprise.revision))
    }

    /// The enterprise's current revision, read on the snapshot connections (authz asks it to
    /// confirm what it holds, and a Check may wait for the answer).
    pub async fn revision(&self, enterprise_id: &EnterpriseId) -> Result<i64, DomainError> {
        self.store.snapshot_reader().revision(enterprise_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(
            display_name("n", "  North Clinic ").ok().as_deref(),
            Some("North Clinic")
        );
        assert!(display_name("n", "   ").is_err());
        assert!(display_name("n", &"x".repeat(201)).is_err());
    }

    #[test]
    fn emails_are_normalized_or_refused() {
        assert_eq!(
            normalize_email(" Ann@Clinic.Example ").ok().as_deref(),
            Some("ann@clinic.example")
        );
        for bad in [
            "",
            "ann",
            "@clinic.example",
            "ann@clinic",
            "ann@.example",
            "a nn@clinic.example",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn page_sizes_default_and_cap() {
        assert_eq!(
            Directory::page(0, None).map(|p| p.size).ok(),
            Some(DEFAULT_PAGE_SIZE)
        );
        assert_eq!(
            Directory::page(10_000, None).map(|p| p.size).ok(),
            Some(MAX_PAGE_SIZE)
        );
        assert!(Directory::page(-1, None).is_err());
    }
}
