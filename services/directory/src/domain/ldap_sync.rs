//! Directory sync from LDAP and Active Directory: an enterprise's connection, and how one read
//! of the corporate directory becomes Praxis users. Entries are provisioned like SCIM users
//! (through the same group rules and the same provisioning path, the connector
//! `ldap:<enterprise>` the actor); entries that are gone or match the disabled filter disable
//! their users (D14), whom the import enables again only if it was the last to disable them. The read itself is behind [`LdapReader`], so these rules stay plain.

use super::provisioning::{Outcome, Provision};
use super::scim_rules::GroupRule;
use super::*;
use crate::store::entities::{ldap_link, ldap_sync};
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

pub const DEFAULT_USER_FILTER: &str = "(objectClass=inetOrgPerson)";
pub const DEFAULT_GROUP_FILTER: &str =
    "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))";
const MIN_INTERVAL_MINUTES: u32 = 5;
const MAX_INTERVAL_MINUTES: u32 = 7 * 24 * 60;
/// A run holds its connection this long at most; one that dies lets go by itself.
const LEASE_MINUTES: i64 = 30;
/// Errors kept per report: enough to act on, bounded however broken the directory is.
const MAX_REPORTED_ERRORS: usize = 100;

/// Which attributes hold what.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LdapAttributes {
    pub id: String,
    pub email: String,
    pub given_name: String,
    pub family_name: String,
}

impl Default for LdapAttributes {
    fn default() -> Self {
        Self {
            id: "entryUUID".into(),
            email: "mail".into(),
            given_name: "givenName".into(),
            family_name: "sn".into(),
        }
    }
}

/// An enterprise's connection, without its password.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LdapSettings {
    pub url: String,
    pub start_tls: bool,
    pub ca_pem: String,
    pub bind_dn: String,
    pub base_dn: String,
    pub user_filter: String,
    pub group_filter: String,
    pub disabled_filter: String,
    pub attributes: LdapAttributes,
    pub group_rules: Vec<GroupRule>,
    pub interval_minutes: u32,
}

/// A connection as admins see it.
#[derive(Debug, Clone)]
pub struct LdapSyncView {
    pub enterprise_id: EnterpriseId,
    pub settings: LdapSettings,
    pub password_set: bool,
    pub last_run: Option<SyncRun>,
    pub updated_at: DateTime<Utc>,
}

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncRun {
    pub enterprise_id: String,
    pub trigger: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: DateTime<Utc>,
    pub completed: bool,
    pub entries: u32,
    pub created: u32,
    pub updated: u32,
    pub disabled: u32,
    pub enabled: u32,
    pub unchanged: u32,
    pub skipped: u32,
    /// (DN, reason); an empty DN is about the run as a whole.
    pub errors: Vec<(String, String)>,
}

impl SyncRun {
    fn error(&mut self, dn: &str, reason: impl Into<String>) {
        if self.errors.len() < MAX_REPORTED_ERRORS {
            self.errors.push((dn.to_owned(), reason.into()));
        }
    }
}

/// One user entry as read, through the attribute mapping.
#[derive(Debug, Clone, Default)]
pub struct LdapUser {
    pub dn: String,
    pub id: String,
    pub email: Option<String>,
    pub given_name: String,
    pub family_name: String,
    /// For groups that list members by uid (posixGroup's memberUid).
    pub uid: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct LdapGroup {
    pub dn: String,
    pub cn: String,
    /// member / uniqueMember DNs and memberUid values, as read.
    pub members: Vec<String>,
}

/// A whole read of the directory: every user under the filter, the DNs of those that also
/// match the disabled filter, and the groups.
#[derive(Debug, Clone, Default)]
pub struct LdapSnapshot {
    pub users: Vec<LdapUser>,
    pub disabled: BTreeSet<String>,
    pub groups: Vec<LdapGroup>,
}

/// Reads a directory with a connection's settings; an error means nothing could be relied on.
#[async_trait::async_trait]
pub trait LdapReader: Send + Sync {
    async fn read(
        &self,
        settings: &LdapSettings,
        password: Option<&str>,
    ) -> Result<LdapSnapshot, String>;
}

/// DNs compare without case and without the spaces around separators.
pub fn normalize_dn(dn: &str) -> String {
    dn.split(',')
        .map(|part| {
            let (name, value) = part.split_once('=').unwrap_or((part, ""));
            format!("{}={}", name.trim(), value.trim())
        })
        .collect::<Vec<_>>()
        .join(",")
        .to_lowercase()
}

fn source(enterprise_id: &EnterpriseId) -> String {
    format!("ldap:{}", enterprise_id.0)
}

fn secret_context(enterprise_id: &EnterpriseId) -> String {
    format!("ldap_bind:{}", enterprise_id.0)
}

/// A search filter as far as we can tell without the server: one parenthesised expression.
fn check_filter(field: &str, filter: &str, problems: &mut Vec<(String, String)>) {
    let mut depth = 0i32;
    let mut closed_at_top = 0;
    for c in filter.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth == 0 {
                    closed_at_top += 1;
                }
            }
            _ => {}
        }
        if depth < 0 {
            break;
        }
    }
    if !filter.starts_with('(') || depth != 0 || closed_at_top != 1 || !filter.ends_with(')') {
        problems.push((
            field.to_owned(),
            "one parenthesised LDAP filter, e.g. (objectClass=person)".to_owned(),
        ));
    }
}

fn or_default(value: &str, default: &str) -> String {
    match value.trim() {
        "" => default.to_owned(),
        value => value.to_owned(),
    }
}

/// Checks and completes settings as an admin gave them.
fn checked_settings(settings: LdapSettings) -> Result<LdapSettings, DomainError> {
    let mut problems = Vec::new();
    let url = settings.url.trim().to_owned();
    match url::Url::parse(&url) {
        Ok(parsed)
            if matches!(parsed.scheme(), "ldap" | "ldaps")
                && parsed.host_str().is_some_and(|h| !h.is_empty()) =>
        {
            if parsed.scheme() == "ldaps" && settings.start_tls {
                problems.push((
                    "ldap_sync.start_tls".to_owned(),
                    "StartTLS upgrades ldap://; ldaps:// is TLS already".to_owned(),
                ));
            }
        }
        _ => problems.push((
            "ldap_sync.url".to_owned(),
            "ldap://host[:port] or ldaps://host[:port]".to_owned(),
        )),
    }
    let base_dn = settings.base_dn.trim().to_owned();
    if base_dn.is_empty() || !base_dn.contains('=') {
        problems.push((
            "ldap_sync.base_dn".to_owned(),
            "the DN users and groups are found under, e.g. dc=example,dc=com".to_owned(),
        ));
    }
    let user_filter = or_default(&settings.user_filter, DEFAULT_USER_FILTER);
    check_filter("ldap_sync.user_filter", &user_filter, &mut problems);
    let group_filter = or_default(&settings.group_filter, DEFAULT_GROUP_FILTER);
    check_filter("ldap_sync.group_filter", &group_filter, &mut problems);
    let disabled_filter = settings.disabled_filter.trim().to_owned();
    if !disabled_filter.is_empty() {
        check_filter("ldap_sync.disabled_filter", &disabled_filter, &mut problems);
    }
    let defaults = LdapAttributes::default();
    let attributes = LdapAttributes {
        id: or_default(&settings.attributes.id, &defaults.id),
        email: or_default(&settings.attributes.email, &defaults.email),
        given_name: or_default(&settings.attributes.given_name, &defaults.given_name),
        family_name: or_default(&settings.attributes.family_name, &defaults.family_name),
    };
    for (field, name) in [
        ("id", &attributes.id),
        ("email", &attributes.email),
        ("given_name", &attributes.given_name),
        ("family_name", &attributes.family_name),
    ] {
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == ';')
        {
            problems.push((
                format!("ldap_sync.attributes.{field}"),
                "an attribute name".to_owned(),
            ));
        }
    }
    let ca_pem = settings.ca_pem.trim().to_owned();
    if !ca_pem.is_empty() && !ca_pem.contains("-----BEGIN CERTIFICATE-----") {
        problems.push(("ldap_sync.ca_pem".to_owned(), "PEM certificates".to_owned()));
    }
    let interval = settings.interval_minutes;
    if interval != 0 && !(MIN_INTERVAL_MINUTES..=MAX_INTERVAL_MINUTES).contains(&interval) {
        problems.push((
            "ldap_sync.interval_minutes".to_owned(),
            format!("0 (on demand only) or {MIN_INTERVAL_MINUTES} to {MAX_INTERVAL_MINUTES}"),
        ));
    }
    if !problems.is_empty() {
        return Err(DomainError::InvalidArgument(problems));
    }
    Ok(LdapSettings {
        url,
        ca_pem,
        bind_dn: settings.bind_dn.trim().to_owned(),
        base_dn,
        user_filter,
        group_filter,
        disabled_filter,
        attributes,
        ..settings
    })
}

impl Directory {
    fn view(row: ldap_sync::Model) -> Result<LdapSyncView, DomainError> {
        let settings = serde_json::from_str(&row.settings)
            .map_err(|error| DomainError::Storage(format!("LDAP sync settings: {error}")))?;
        let last_run = row
            .last_run
            .as_deref()
            .and_then(|text| serde_json::from_str(text).ok());
        Ok(LdapSyncView {
            enterprise_id: EnterpriseId(row.enterprise_id),
            settings,
            password_set: row.bind_secret.is_some(),
            last_run,
            updated_at: row.updated_at,
        })
    }

    /// Creates or replaces the enterprise's connection. `password: None` keeps the stored one.
    pub async fn set_ldap_sync(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        settings: LdapSettings,
        password: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<LdapSyncView, DomainError> {
        self.administered(actor, enterprise_id).await?;
        let mut settings = checked_settings(settings)?;
        settings.group_rules = self
            .checked_group_rules(
                enterprise_id,
                std::mem::take(&mut settings.group_rules),
                "ldap_sync.group_rules",
            )
            .await?;
        let sealed = match password.filter(|p| !p.is_empty()) {
            Some(password) => {
                let Some(sealer) = &self.sealer else {
                    return Err(DomainError::precondition(
                        "NO_SECRETS_KEY",
                        "this directory has no secrets key to seal the bind password with",
                    ));
                };
                Some(sealer.seal(password.as_bytes(), &secret_context(enterprise_id)))
            }
            None => None,
        };
        let text = serde_json::to_string(&settings)
            .map_err(|error| DomainError::Storage(error.to_string()))?;
        let audit = actor.audit(
            "ldap_sync.set",
            format!("enterprise:{}", enterprise_id.0),
            serde_json::json!({
                "url": settings.url,
                "base_dn": settings.base_dn,
                "bind_dn": settings.bind_dn,
                "rules": settings.group_rules.len(),
                "interval_minutes": settings.interval_minutes,
                "password_changed": sealed.is_some(),
            }),
            now,
        );
        let row = ldap_sync::Model {
            enterprise_id: enterprise_id.0.clone(),
            settings: text,
            bind_secret: sealed,
            interval_minutes: i32::try_from(settings.interval_minutes).unwrap_or(i32::MAX),
            // A scheduled connection runs at the scheduler's next look.
            next_run_at: (settings.interval_minutes > 0).then_some(now),
            lease_until: None,
            last_run: None,
            updated_at: now,
        };
        self.store.put_ldap_sync(row, &audit).await?;
        self.stored_ldap_sync(enterprise_id).await
    }

    async fn stored_ldap_sync(
        &self,
        enterprise_id: &EnterpriseId,
    ) -> Result<LdapSyncView, DomainError> {
        let row = self
            .store
            .ldap_sync(enterprise_id)
            .await?
            .ok_or(DomainError::NotFound("LDAP sync"))?;
        Self::view(row)
    }

    pub async fn get_ldap_sync(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
    ) -> Result<LdapSyncView, DomainError> {
        self.administered(actor, enterprise_id).await?;
        self.stored_ldap_sync(enterprise_id).await
    }

    pub async fn delete_ldap_sync(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        now: DateTime<Utc>,
    ) -> Result<(), DomainError> {
        self.administered(actor, enterprise_id).await?;
        let audit = actor.audit(
            "ldap_sync.delete",
            format!("enterprise:{}", enterprise_id.0),
            serde_json::json!({}),
            now,
        );
        self.store
            .delete_ldap_sync(enterprise_id, &audit)
            .await
            .map(|_| ())
    }

    /// Enterprises whose scheduled run is due.
    pub async fn due_ldap_syncs(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<EnterpriseId>, DomainError> {
        Ok(self
            .store
            .due_ldap_syncs(now)
            .await?
            .into_iter()
            .map(EnterpriseId)
            .collect())
    }

    /// A run asked for by an admin (`RunDirectorySync`).
    pub async fn run_ldap_sync_now(
        &self,
        actor: &Actor,
        enterprise_id: &EnterpriseId,
        reader: &dyn LdapReader,
    ) -> Result<SyncRun, DomainError> {
        self.administered(actor, enterprise_id).await?;
        self.run_ldap_sync(enterprise_id, "request", reader).await
    }

    /// Takes the connection's lease, reads the directory, applies what it read and records
    /// the report. FAILED_PRECONDITION LDAP_SYNC_RUNNING while another run holds the lease.
    pub async fn run_ldap_sync(
        &self,
        enterprise_id: &EnterpriseId,
        trigger: &str,
        reader: &dyn LdapReader,
    ) -> Result<SyncRun, DomainError> {
        let started_at = Utc::now();
        let row = self
            .store
            .ldap_sync(enterprise_id)
            .await?
            .ok_or(DomainError::NotFound("LDAP sync"))?;
        if !self
            .store
            .lease_ldap_sync(
                enterprise_id,
                started_at,
                started_at + Duration::minutes(LEASE_MINUTES),
            )
            .await?
        {
            return Err(DomainError::precondition(
                "LDAP_SYNC_RUNNING",
                "a run of this enterprise's LDAP sync is under way",
            ));
        }
        let mut run = SyncRun {
            enterprise_id: enterprise_id.0.clone(),
            trigger: trigger.to_owned(),
            started_at,
            ..SyncRun::default()
        };
        let interval = u32::try_from(row.interval_minutes).unwrap_or(0);
        match self.read_and_apply(row, reader, &mut run).await {
            Ok(()) => run.completed = true,
            Err(reason) => run.error("", reason),
        }
        run.ended_at = Utc::now();
        tracing::info!(
            enterprise = %enterprise_id.0,
            trigger,
            completed = run.completed,
            entries = run.entries,
            created = run.created,
            updated = run.updated,
            disabled = run.disabled,
            enabled = run.enabled,
            errors = run.errors.len(),
            "LDAP sync ran"
        );
        let report =
            serde_json::to_string(&run).map_err(|error| DomainError::Storage(error.to_string()))?;
        let next = (interval > 0).then(|| run.ended_at + Duration::minutes(i64::from(interval)));
        self.store
            .finish_ldap_sync(enterprise_id, report, next)
            .await?;
        Ok(run)
    }

    async fn read_and_apply(
        &self,
        row: ldap_sync::Model,
        reader: &dyn LdapReader,
        run: &mut SyncRun,
    ) -> Result<(), String> {
        let enterprise_id = EnterpriseId(row.enterprise_id.clone());
        let password = match &row.bind_secret {
            Some(sealed) => {
                let sealer = self
                    .sealer
                    .as_ref()
                    .ok_or("this directory has no secrets key to open the bind password with")?;
                let plain = sealer
                    .open(sealed, &secret_context(&enterprise_id))
                    .map_err(|error| format!("the bind password: {error}"))?;
                Some(String::from_utf8(plain).map_err(|_| "the bind password is not UTF-8")?)
            }
            None => None,
        };
        let view = Self::view(row).map_err(|error| error.to_string())?;
        let snapshot = reader.read(&view.settings, password.as_deref()).await?;
        self.apply_ldap_snapshot(&enterprise_id, &view.settings, snapshot, run)
            .await
            .map_err(|error| error.to_string())
    }

    /// Brings the enterprise's users in line with one complete read of its directory.
    pub async fn apply_ldap_snapshot(
        &self,
        enterprise_id: &EnterpriseId,
        settings: &LdapSettings,
        snapshot: LdapSnapshot,
        run: &mut SyncRun,
    ) -> Result<(), DomainError> {
        let links = self.store.ldap_links(enterprise_id).await?;
        let by_entry: BTreeMap<&str, &ldap_link::Model> = links
            .iter()
            .map(|link| (link.entry_id.as_str(), link))
            .collect();
        let by_user: BTreeMap<&str, &ldap_link::Model> = links
            .iter()
            .map(|link| (link.user_id.as_str(), link))
            .collect();
        let groups_of = memberships_by_member(&snapshot.groups);
        let mut seen: BTreeSet<String> = BTreeSet::new();
        for entry in &snapshot.users {
            run.entries += 1;
            let linked = by_entry.get(entry.id.as_str()).copied();
            if let Some(link) = linked {
                // Whatever happens to this entry below, its user is not gone from the directory.
                seen.insert(link.user_id.clone());
            }
            let disabled = snapshot.disabled.contains(&normalize_dn(&entry.dn));
            let names = groups_of.names(entry);
            let step = self
                .sync_entry(
                    enterprise_id,
                    settings,
                    entry,
                    linked,
                    &by_user,
                    disabled,
                    &names,
                )
                .await;
            match step {
                Ok((user_id, counted)) => {
                    if let Some(user_id) = user_id {
                        seen.insert(user_id);
                    }
                    match counted {
                        Counted::Created => run.created += 1,
                        Counted::Updated => run.updated += 1,
                        Counted::Unchanged => run.unchanged += 1,
                        Counted::Disabled => run.disabled += 1,
                        Counted::Enabled => run.enabled += 1,
                        Counted::Skipped => run.skipped += 1,
                    }
                }
                Err(error) => run.error(&entry.dn, error.to_string()),
            }
        }
        // Gone from the directory (or from the filter): their users are disabled.
        for link in links.iter().filter(|link| !seen.contains(&link.user_id)) {
            match self
                .disable_synced(enterprise_id, link, "no longer in the corporate directory")
                .await
            {
                Ok(true) => run.disabled += 1,
                Ok(false) => {}
                Err(error) => run.error(&link.dn, error.to_string()),
            }
        }
        Ok(())
    }

    /// One entry: disabled, or provisioned through the rules (and enabled again if the import
    /// had disabled them). Returns the user it concerns, if any, and what happened.
    #[allow(clippy::too_many_arguments)]
    async fn sync_entry(
        &self,
        enterprise_id: &EnterpriseId,
        settings: &LdapSettings,
        entry: &LdapUser,
        linked: Option<&ldap_link::Model>,
        by_user: &BTreeMap<&str, &ldap_link::Model>,
        disabled: bool,
        names: &BTreeSet<String>,
    ) -> Result<(Option<String>, Counted), DomainError> {
        let Some(email) = entry.email.as_deref().map(|e| e.trim().to_lowercase()) else {
            return Err(DomainError::invalid(
                settings.attributes.email.clone(),
                "the entry has no email",
            ));
        };
        let existing = match linked {
            Some(link) => self.store.user(&UserId(link.user_id.clone())).await?,
            None => self.store.user_by_email(&email).await?,
        };
        if let (Some(user), Some(_)) = (&existing, linked)
            && user.email != email
        {
            return Err(DomainError::precondition(
                "EMAIL_CHANGED",
                format!(
                    "the entry's email changed from {} to {email}; Praxis keeps a user's email, so an admin must move them",
                    user.email
                ),
            ));
        }
        let existing = existing.filter(|user| user.enterprise_id == *enterprise_id);
        if existing
            .as_ref()
            .is_some_and(|user| user.kind == UserKind::ServiceAccount)
        {
            return Err(DomainError::precondition(
                "SERVICE_ACCOUNT",
                "this email is a service account's; the import leaves it alone",
            ));
        }
        let link_of = |user: &User| by_user.get(user.id.0.as_str()).copied();
        if disabled {
            let Some(user) = existing else {
                return Ok((None, Counted::Skipped));
            };
            let link = self
                .keep_link(enterprise_id, &user, entry, link_of(&user))
                .await?;
            return match self
                .disable_synced(enterprise_id, &link, "disabled in the corporate directory")
                .await?
            {
                true => Ok((Some(user.id.0), Counted::Disabled)),
                false => Ok((Some(user.id.0), Counted::Unchanged)),
            };
        }
        let access = self
            .access_from_rules(&settings.group_rules, |rule| {
                names.contains(&rule_key(rule))
            })
            .await?;
        if access.kind.is_none() && existing.is_none() {
            return Ok((None, Counted::Skipped));
        }
        let mut enabled = false;
        if let Some(user) = &existing
            && user.status == UserStatus::Disabled
            && self.last_disabled_by(user, &source(enterprise_id)).await?
        {
            let details = serde_json::json!({"via": "ldap", "dn": entry.dn, "reason": "active again in the corporate directory"});
            self.set_status_for_connector(
                &source(enterprise_id),
                user,
                UserStatus::Active,
                details,
                Utc::now(),
            )
            .await?;
            enabled = true;
        }
        let request = Provision {
            enterprise_id: enterprise_id.clone(),
            email,
            given_name: entry.given_name.clone(),
            family_name: entry.family_name.clone(),
            kind: access.kind,
            memberships: access.memberships,
            roles: access.roles,
            source: source(enterprise_id),
        };
        let (user, _, outcome) = self
            .provision(&source(enterprise_id), request, Utc::now())
            .await?;
        self.keep_link(enterprise_id, &user, entry, link_of(&user))
            .await?;
        let counted = match outcome {
            _ if enabled => Counted::Enabled,
            Outcome::Created => Counted::Created,
            Outcome::Updated => Counted::Updated,
            Outcome::Unchanged => Counted::Unchanged,
        };
        Ok((Some(user.id.0), counted))
    }

    /// Records which entry a user came from, writing only what changed.
    async fn keep_link(
        &self,
        enterprise_id: &EnterpriseId,
        user: &User,
        entry: &LdapUser,
        held: Option<&ldap_link::Model>,
    ) -> Result<ldap_link::Model, DomainError> {
        if let Some(link) = held
            && link.entry_id == entry.id
            && link.dn == entry.dn
        {
            return Ok(link.clone());
        }
        let link = ldap_link::Model {
            enterprise_id: enterprise_id.0.clone(),
            user_id: user.id.0.clone(),
            entry_id: entry.id.clone(),
            dn: entry.dn.clone(),
            updated_at: Utc::now(),
        };
        self.store.put_ldap_link(link.clone()).await?;
        Ok(link)
    }

    /// Disables the linked user if they are active; true when it did.
    async fn disable_synced(
        &self,
        enterprise_id: &EnterpriseId,
        link: &ldap_link::Model,
        reason: &str,
    ) -> Result<bool, DomainError> {
        let Some(user) = self.store.user(&UserId(link.user_id.clone())).await? else {
            return Ok(false);
        };
        if !matches!(user.status, UserStatus::Active | UserStatus::Invited)
            || user.kind == UserKind::ServiceAccount
        {
            return Ok(false);
        }
        let details = serde_json::json!({"via": "ldap", "dn": link.dn, "reason": reason});
        self.set_status_for_connector(
            &source(enterprise_id),
            &user,
            UserStatus::Disabled,
            details,
            Utc::now(),
        )
        .await?;
        Ok(true)
    }
}

enum Counted {
    Created,
    Updated,
    Unchanged,
    Disabled,
    Enabled,
    Skipped,
}

/// A rule's group as the names it is compared with: a cn, or a normalised DN.
fn rule_key(rule: &GroupRule) -> String {
    if rule.group.contains('=') {
        normalize_dn(&rule.group)
    } else {
        rule.group.clone()
    }
}

/// For each member (normalised DN or uid), the names of their groups: cn and normalised DN.
struct GroupIndex(BTreeMap<String, BTreeSet<String>>);

fn memberships_by_member(groups: &[LdapGroup]) -> GroupIndex {
    let mut index: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for group in groups {
        for member in &group.members {
            let key = if member.contains('=') {
                normalize_dn(member)
            } else {
                member.trim().to_lowercase()
            };
            let names = index.entry(key).or_default();
            names.insert(group.cn.trim().to_lowercase());
            names.insert(normalize_dn(&group.dn));
        }
    }
    GroupIndex(index)
}

impl GroupIndex {
    fn names(&self, user: &LdapUser) -> BTreeSet<String> {
        let mut names = self
            .0
            .get(&normalize_dn(&user.dn))
            .cloned()
            .unwrap_or_default();
        if let Some(uid) = &user.uid
            && let Some(more) = self.0.get(&uid.trim().to_lowercase())
        {
            names.extend(more.iter().cloned());
        }
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_compare_without_case_or_spaces() {
        assert_eq!(
            normalize_dn("CN=Ada Lovelace, OU=People ,DC=Clinic,DC=Example"),
            "cn=ada lovelace,ou=people,dc=clinic,dc=example"
        );
    }

    #[test]
    fn filters_must_be_one_parenthesised_expression() {
        for good in [
            "(objectClass=person)",
            "(&(objectClass=user)(objectCategory=person))",
            "(userAccountControl:1.2.840.113556.1.4.803:=2)",
        ] {
            let mut problems = Vec::new();
            check_filter("f", good, &mut problems);
            assert!(problems.is_empty(), "{good}");
        }
        for bad in ["objectClass=person", "(a=b)(c=d)", "((a=b)", "(a=b))", ""] {
            let mut problems = Vec::new();
            check_filter("f", bad, &mut problems);
            assert_eq!(problems.len(), 1, "{bad}");
        }
    }

    #[test]
    fn groups_are_found_by_member_dn_and_by_uid() {
        let groups = vec![
            LdapGroup {
                dn: "cn=Nurses,ou=groups,dc=x".into(),
                cn: "Nurses".into(),
                members: vec!["uid=ada, ou=people, dc=x".into()],
            },
            LdapGroup {
                dn: "cn=posix,ou=groups,dc=x".into(),
                cn: "posix".into(),
                members: vec!["ada".into()],
            },
        ];
        let index = memberships_by_member(&groups);
        let user = LdapUser {
            dn: "uid=ada,ou=people,dc=x".into(),
            uid: Some("ada".into()),
            ..LdapUser::default()
        };
        let names = index.names(&user);
        assert!(names.contains("nurses"));
        assert!(names.contains("cn=nurses,ou=groups,dc=x"));
        assert!(names.contains("posix"));
        let other = LdapUser {
            dn: "uid=bob,ou=people,dc=x".into(),
            ..LdapUser::default()
        };
        assert!(index.names(&other).is_empty());
    }

    #[test]
    fn settings_are_checked_and_completed() {
        let settings = LdapSettings {
            url: "ldap://127.0.0.1:3890".into(),
            start_tls: false,
            ca_pem: String::new(),
            bind_dn: "cn=admin,dc=x".into(),
            base_dn: "dc=x".into(),
            user_filter: String::new(),
            group_filter: String::new(),
            disabled_filter: String::new(),
            attributes: LdapAttributes {
                id: String::new(),
                ..LdapAttributes::default()
            },
            group_rules: Vec::new(),
            interval_minutes: 0,
        };
        let checked = checked_settings(settings.clone()).expect("valid");
        assert_eq!(checked.user_filter, DEFAULT_USER_FILTER);
        assert_eq!(checked.attributes.id, "entryUUID");
        let bad = LdapSettings {
            url: "http://x".into(),
            base_dn: String::new(),
            interval_minutes: 1,
            ..settings
        };
        let Err(DomainError::InvalidArgument(problems)) = checked_settings(bad) else {
            panic!("invalid settings accepted");
        };
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "ldap_sync.url",
                "ldap_sync.base_dn",
                "ldap_sync.interval_minutes"
            ]
        );
    }
}
