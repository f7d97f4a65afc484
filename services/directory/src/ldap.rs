//! Reading an enterprise's LDAP or Active Directory with `ldap3`: bind, then three paged
//! searches under the base DN (users, users that are disabled, groups). Anything short of a
//! complete read is an error, so a half-read directory never disables anyone.

use crate::domain::ldap_sync::{LdapGroup, LdapReader, LdapSettings, LdapSnapshot, LdapUser};
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Per operation; a whole read of a large directory is many pages of this.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(60);
/// Active Directory answers at most 1000 entries per page.
const PAGE_SIZE: i32 = 500;
/// A bound on one read, whatever the directory holds.
const MAX_ENTRIES: usize = 200_000;

/// The reader directory uses in production: `ldap3` over TCP, TLS by rustls.
#[derive(Debug, Default, Clone, Copy)]
pub struct Ldap3Reader;

#[async_trait::async_trait]
impl LdapReader for Ldap3Reader {
    async fn read(
        &self,
        settings: &LdapSettings,
        password: Option<&str>,
    ) -> Result<LdapSnapshot, String> {
        let mut ldap = connect(settings).await?;
        let result = read_all(&mut ldap, settings, password).await;
        // The read is what matters; a failed goodbye changes nothing.
        let _ = ldap.unbind().await;
        result
    }
}

async fn connect(settings: &LdapSettings) -> Result<Ldap, String> {
    let mut options = LdapConnSettings::new()
        .set_conn_timeout(CONNECT_TIMEOUT)
        .set_starttls(settings.start_tls);
    if !settings.ca_pem.is_empty() {
        options = options.set_config(tls_trusting(&settings.ca_pem)?);
    }
    let (connection, ldap) = LdapConnAsync::with_settings(options, &settings.url)
        .await
        .map_err(|error| format!("cannot connect to {}: {error}", settings.url))?;
    // The connection's own task carries the protocol; it ends when `ldap` is dropped.
    tokio::spawn(async move {
        if let Err(error) = connection.drive().await {
            tracing::debug!(%error, "LDAP connection ended");
        }
    });
    Ok(ldap)
}

/// rustls trusting only the connection's own CA certificates.
fn tls_trusting(pem: &str) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(pem.as_bytes()) {
        let certificate = certificate.map_err(|error| format!("ca_pem: {error}"))?;
        roots
            .add(certificate)
            .map_err(|error| format!("ca_pem: {error}"))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|error| error.to_string())?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(Arc::new(config))
}

async fn read_all(
    ldap: &mut Ldap,
    settings: &LdapSettings,
    password: Option<&str>,
) -> Result<LdapSnapshot, String> {
    if !settings.bind_dn.is_empty() {
        ldap.with_timeout(OPERATION_TIMEOUT)
            .simple_bind(&settings.bind_dn, password.unwrap_or_default())
            .await
            .and_then(|result| result.success())
            .map_err(|error| format!("bind as {} refused: {error}", settings.bind_dn))?;
    }
    let names = &settings.attributes;
    let user_attributes = vec![
        names.id.clone(),
        names.email.clone(),
        names.given_name.clone(),
        names.family_name.clone(),
        "uid".to_owned(),
    ];
    let users = search(ldap, settings, &settings.user_filter, user_attributes)
        .await?
        .into_iter()
        .map(|entry| LdapUser {
            id: first(&entry, &names.id).unwrap_or_default(),
            email: first(&entry, &names.email),
            given_name: first(&entry, &names.given_name).unwrap_or_default(),
            family_name: first(&entry, &names.family_name).unwrap_or_default(),
            uid: first(&entry, "uid"),
            dn: entry.dn,
        })
        .collect::<Vec<_>>();
    if let Some(user) = users.iter().find(|user| user.id.is_empty()) {
        return Err(format!(
            "{} has no {}: users are told apart by it",
            user.dn, names.id
        ));
    }
    let disabled = if settings.disabled_filter.is_empty() {
        BTreeSet::new()
    } else {
        let filter = format!("(&{}{})", settings.user_filter, settings.disabled_filter);
        search(ldap, settings, &filter, vec!["1.1".to_owned()])
            .await?
            .into_iter()
            .map(|entry| crate::domain::ldap_sync::normalize_dn(&entry.dn))
            .collect()
    };
    let group_attributes = ["cn", "member", "uniqueMember", "memberUid"]
        .map(str::to_owned)
        .to_vec();
    let groups = search(ldap, settings, &settings.group_filter, group_attributes)
        .await?
        .into_iter()
        .map(|entry| LdapGroup {
            cn: first(&entry, "cn").unwrap_or_default(),
            members: ["member", "uniqueMember", "memberUid"]
                .iter()
                .flat_map(|name| values(&entry, name))
                .collect(),
            dn: entry.dn,
        })
        .collect();
    Ok(LdapSnapshot {
        users,
        disabled,
        groups,
    })
}

/// A subtree search under the base DN, page by page, to the end or an error.
async fn search(
    ldap: &mut Ldap,
    settings: &LdapSettings,
    filter: &str,
    attributes: Vec<String>,
) -> Result<Vec<SearchEntry>, String> {
    let adapters: Vec<Box<dyn Adapter<_, _>>> = vec![
        Box::new(EntriesOnly::new()),
        Box::new(PagedResults::new(PAGE_SIZE)),
    ];
    let failed = |error: &dyn std::fmt::Display| format!("search {filter}: {error}");
    let mut stream = ldap
        .with_timeout(OPERATION_TIMEOUT)
        .streaming_search_with(
            adapters,
            &settings.base_dn,
            Scope::Subtree,
            filter,
            attributes,
        )
        .await
        .map_err(|error| failed(&error))?;
    let mut entries = Vec::new();
    while let Some(entry) = stream.next().await.map_err(|error| failed(&error))? {
        if entries.len() >= MAX_ENTRIES {
            let _ = stream.finish().await;
            return Err(failed(&format!("more than {MAX_ENTRIES} entries")));
        }
        entries.push(parse(entry).map_err(|error| failed(&error))?);
    }
    stream
        .finish()
        .await
        .success()
        .map_err(|error| failed(&error))?;
    Ok(entries)
}

/// `SearchEntry::construct` panics on an entry it cannot parse; a directory that sends one
/// fails its read instead of taking a worker down.
fn parse(entry: ldap3::ResultEntry) -> Result<SearchEntry, String> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        SearchEntry::construct(entry)
    }))
    .map_err(|_| "an entry the directory sent cannot be parsed".to_owned())
}

/// Attribute names compare without case; AD and OpenLDAP spell them their own way.
fn values(entry: &SearchEntry, name: &str) -> Vec<String> {
    entry
        .attrs
        .iter()
        .filter(|(key, _)| key.eq_ignore_ascii_case(name))
        .flat_map(|(_, values)| values.iter().cloned())
        .chain(
            entry
                .bin_attrs
                .iter()
                .filter(|(key, _)| key.eq_ignore_ascii_case(name))
                .flat_map(|(_, values)| values.iter().map(|bytes| hex(bytes))),
        )
        .collect()
}

/// Binary ids (Active Directory's objectGUID) as hex, stable across runs.
fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

fn first(entry: &SearchEntry, name: &str) -> Option<String> {
    values(entry, name)
        .into_iter()
        .map(|value| value.trim().to_owned())
        .find(|value| !value.is_empty())
}
