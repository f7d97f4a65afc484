//! The SAML 2.0 service provider (I6), with `samael` and its `xmlsec` feature: IdP metadata,
//! SP metadata, SP-initiated login by HTTP-Redirect, the HTTP-POST ACS, optional IdP-initiated
//! login, and single logout. samael keeps only what a valid signature by the IdP's metadata
//! certificate covers before it reads anything (so a wrapped, unsigned assertion is never the
//! one used), then checks Destination, Recipient, Audience, InResponseTo and the validity times
//! with the connection's skew. Assertion ids go into a replay cache.

use super::connections::{Connection, SamlConfig};
use super::mapping::ExternalUser;
use super::{Pending, Redirect, Sso, SsoError};
use crate::auth::ClientInfo;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use samael::crypto::{AllowedSignatureAlgorithm, CertificateDer, UrlVerifier};
use samael::metadata::EntityDescriptor;
use samael::service_provider::{ServiceProvider, ServiceProviderBuilder};
use samael::traits::ToXml;
use std::time::Duration;

const REDIRECT_BINDING: &str = "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect";
const DEFAULT_SKEW_SECONDS: u32 = 60;

/// Signature algorithms accepted unless a connection opts into RSA-SHA1.
const STRONG_ALGORITHMS: [AllowedSignatureAlgorithm; 7] = [
    AllowedSignatureAlgorithm::RsaSha256,
    AllowedSignatureAlgorithm::RsaSha384,
    AllowedSignatureAlgorithm::RsaSha512,
    AllowedSignatureAlgorithm::EcdsaSha256,
    AllowedSignatureAlgorithm::EcdsaSha384,
    AllowedSignatureAlgorithm::EcdsaSha512,
    AllowedSignatureAlgorithm::RsaSha224,
];

/// What an admin's IdP metadata says, or why it cannot be used: its entity id, and at least one
/// signing certificate (without one, nothing could be verified).
pub fn read_idp_metadata(xml: &str) -> Result<String, String> {
    let metadata: EntityDescriptor = xml
        .trim()
        .parse()
        .map_err(|e| format!("not SAML metadata: {e}"))?;
    let entity_id = metadata
        .entity_id
        .clone()
        .filter(|id| !id.trim().is_empty())
        .ok_or("the metadata names no entityID")?;
    let sp = ServiceProvider {
        idp_metadata: metadata,
        ..ServiceProvider::default()
    };
    if sp.sso_binding_location(REDIRECT_BINDING).is_none() {
        return Err(
            "the metadata has no SingleSignOnService with the HTTP-Redirect binding".into(),
        );
    }
    match sp.idp_signing_certs() {
        Ok(Some(certs)) if !certs.is_empty() => Ok(entity_id),
        Ok(_) => Err("the metadata has no signing certificate".into()),
        Err(e) => Err(format!("the metadata's certificate: {e}")),
    }
}

/// A new key pair for the service provider: the private key's PEM (to seal) and a self-signed
/// certificate (DER, base64) valid ten years.
pub fn new_sp_keys(common_name: &str) -> Result<(Vec<u8>, String), String> {
    use openssl::asn1::Asn1Time;
    use openssl::bn::{BigNum, MsbOption};
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::Rsa;
    use openssl::x509::{X509Builder, X509NameBuilder};
    let fail = |e: openssl::error::ErrorStack| format!("SP key: {e}");
    let key = PKey::from_rsa(Rsa::generate(2048).map_err(fail)?).map_err(fail)?;
    let mut name = X509NameBuilder::new().map_err(fail)?;
    let cn: String = common_name.chars().take(64).collect();
    name.append_entry_by_text("CN", &cn).map_err(fail)?;
    let name = name.build();
    let mut builder = X509Builder::new().map_err(fail)?;
    builder.set_version(2).map_err(fail)?;
    let mut serial = BigNum::new().map_err(fail)?;
    serial
        .rand(128, MsbOption::MAYBE_ZERO, false)
        .map_err(fail)?;
    let serial = serial.to_asn1_integer().map_err(fail)?;
    builder.set_serial_number(&serial).map_err(fail)?;
    builder.set_subject_name(&name).map_err(fail)?;
    builder.set_issuer_name(&name).map_err(fail)?;
    builder.set_pubkey(&key).map_err(fail)?;
    let not_before = Asn1Time::days_from_now(0).map_err(fail)?;
    let not_after = Asn1Time::days_from_now(3650).map_err(fail)?;
    builder.set_not_before(&not_before).map_err(fail)?;
    builder.set_not_after(&not_after).map_err(fail)?;
    builder.sign(&key, MessageDigest::sha256()).map_err(fail)?;
    let cert = builder.build().to_der().map_err(fail)?;
    let pem = key.private_key_to_pem_pkcs8().map_err(fail)?;
    Ok((pem, STANDARD.encode(cert)))
}

fn config(connection: &Connection) -> Result<&SamlConfig, SsoError> {
    connection
        .settings
        .saml
        .as_ref()
        .ok_or_else(|| SsoError::Refused("this is not a SAML connection".into()))
}

/// The certificate as PEM, for admins and metadata readers.
pub fn certificate_pem(der_base64: &str) -> String {
    let mut pem = String::from("-----BEGIN CERTIFICATE-----\n");
    for line in der_base64.as_bytes().chunks(64) {
        pem.push_str(&String::from_utf8_lossy(line));
        pem.push('\n');
    }
    pem.push_str("-----END CERTIFICATE-----\n");
    pem
}

/// How many assertions (plain or encrypted) a response carries, counted over the raw XML before
/// any signature is looked at. Exactly one is accepted: a second one is how XML signature
/// wrapping smuggles an unsigned assertion beside a signed one.
fn count_assertions(xml: &str) -> Result<usize, String> {
    let mut reader = quick_xml::Reader::from_str(xml);
    let mut count = 0;
    loop {
        match reader.read_event() {
            Ok(quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e))
                if matches!(
                    e.local_name().as_ref(),
                    b"Assertion" | b"EncryptedAssertion"
                ) =>
            {
                count += 1;
            }
            Ok(quick_xml::events::Event::Eof) => return Ok(count),
            Ok(_) => {}
            Err(e) => return Err(format!("not XML: {e}")),
        }
    }
}

fn replay_key(connection_id: &str, assertion_id: &str) -> String {
    format!(
        "praxis:identity:sso:assertion:{connection_id}:{}",
        crate::sessions::digest(assertion_id)
    )
}

impl Sso {
    pub fn metadata_url(&self, connection_id: &str) -> String {
        format!("{}/sso/{connection_id}/metadata", self.public_url())
    }

    pub fn slo_url(&self, connection_id: &str) -> String {
        format!("{}/sso/{connection_id}/slo", self.public_url())
    }

    /// The SP entity id: the configured one, or the metadata URL.
    pub fn sp_entity_id(&self, connection: &Connection) -> String {
        connection
            .settings
            .saml
            .as_ref()
            .map(|c| c.sp_entity_id.trim())
            .filter(|id| !id.is_empty())
            .map_or_else(|| self.metadata_url(&connection.id), str::to_owned)
    }

    fn service_provider(&self, connection: &Connection) -> Result<ServiceProvider, SsoError> {
        let config = config(connection)?;
        let metadata: EntityDescriptor = config
            .idp_metadata_xml
            .trim()
            .parse()
            .map_err(|e| SsoError::Internal(format!("stored IdP metadata: {e}")))?;
        let key_pem = connection
            .client_secret(&self.sealer)?
            .ok_or_else(|| SsoError::Internal("SAML connection without an SP key".into()))?;
        let key = openssl::pkey::PKey::private_key_from_pem(key_pem.as_bytes())
            .map_err(|e| SsoError::Internal(format!("SP key: {e}")))?;
        let certificate = STANDARD
            .decode(&config.sp_certificate)
            .map(CertificateDer::from)
            .map_err(|e| SsoError::Internal(format!("SP certificate: {e}")))?;
        let skew = i64::from(if config.clock_skew_seconds == 0 {
            DEFAULT_SKEW_SECONDS
        } else {
            config.clock_skew_seconds
        });
        ServiceProviderBuilder::default()
            .entity_id(self.sp_entity_id(connection))
            .key(key)
            .certificate(certificate)
            .metadata_url(self.metadata_url(&connection.id))
            .acs_url(self.acs_url(&connection.id))
            .slo_url(self.slo_url(&connection.id))
            .idp_metadata(metadata)
            .allow_idp_initiated(config.allow_idp_initiated)
            .max_clock_skew(chrono::Duration::seconds(skew))
            .max_issue_delay(chrono::Duration::seconds(90 + skew))
            .allowed_signature_algorithms(
                (!config.allow_rsa_sha1).then(|| STRONG_ALGORITHMS.to_vec()),
            )
            .build()
            .map_err(|e| SsoError::Internal(format!("service provider: {e}")))
    }

    /// This connection's SP metadata XML (entity id, ACS, SLO, certificate for signing and
    /// encryption).
    pub fn saml_metadata(&self, connection: &Connection) -> Result<String, SsoError> {
        let sp = self.service_provider(connection)?;
        let mut metadata = sp
            .metadata()
            .map_err(|e| SsoError::Internal(format!("SP metadata: {e}")))?;
        // samael labels both key descriptors "signing"; the second is the encryption key.
        for descriptor in metadata.sp_sso_descriptors.iter_mut().flatten() {
            for key in descriptor.key_descriptors.iter_mut().flatten() {
                if key.encryption_methods.is_some() {
                    key.key_use = Some("encryption".into());
                }
            }
        }
        metadata
            .to_string()
            .map_err(|e| SsoError::Internal(format!("SP metadata: {e:?}")))
    }

    /// The IdP's SSO URL with a deflated AuthnRequest; its id waits in the cache, keyed by the
    /// RelayState, for the response.
    pub async fn saml_start(
        &self,
        connection: &Connection,
        return_to: &str,
    ) -> Result<String, SsoError> {
        self.checked_return_to(return_to)?;
        let state = super::random_token();
        let (url, request_id) = {
            let sp = self.service_provider(connection)?;
            let destination = sp
                .sso_binding_location(REDIRECT_BINDING)
                .ok_or_else(|| SsoError::Refused("the IdP has no HTTP-Redirect endpoint".into()))?;
            let mut request = sp
                .make_authentication_request(&destination)
                .map_err(|e| SsoError::Internal(format!("AuthnRequest: {e}")))?;
            // samael's ids carry 32 random bits; ours are as unguessable as the state.
            request.id = format!("id-{}", super::random_token().replace(['-', '_'], ""));
            let url = request
                .redirect(&state)
                .map_err(|e| SsoError::Internal(format!("AuthnRequest: {e}")))?
                .ok_or_else(|| SsoError::Internal("AuthnRequest without destination".into()))?;
            (url.to_string(), request.id)
        };
        self.put_pending(
            &state,
            &Pending {
                connection_id: connection.id.clone(),
                return_to: return_to.trim().to_owned(),
                nonce: String::new(),
                pkce_verifier: String::new(),
                request_id,
            },
        )
        .await?;
        Ok(url)
    }

    /// The HTTP-POST ACS: a response to one of our requests (named by RelayState), or, where
    /// the connection allows it, an unsolicited one whose RelayState is where to go.
    pub async fn saml_acs(
        &self,
        connection: &Connection,
        saml_response: &str,
        relay_state: &str,
        client: ClientInfo,
    ) -> Result<Redirect, SsoError> {
        let refused = |message: String| Err(SsoError::Refused(message));
        let config = config(connection)?;
        let pending = self.take_pending(relay_state).await?;
        let (return_to, request_ids) = match pending {
            Some(pending) if pending.connection_id != connection.id => {
                return refused("RelayState belongs to another connection".into());
            }
            Some(pending) => (pending.return_to, vec![pending.request_id]),
            // Unsolicited: RelayState, when there is one, is where the user wants to go.
            None if config.allow_idp_initiated => {
                let target = match relay_state.trim() {
                    "" => self
                        .settings
                        .return_origins
                        .first()
                        .map(|origin| format!("{}/", origin.trim_end_matches('/')))
                        .unwrap_or_default(),
                    given => given.to_owned(),
                };
                (target, Vec::new())
            }
            None => {
                return refused(
                    "an unsolicited response or a used RelayState (IdP-initiated login is off)"
                        .into(),
                );
            }
        };
        let (assertion_id, expires, user) = {
            let sp = self.service_provider(connection)?;
            let ids: Vec<&str> = request_ids.iter().map(String::as_str).collect();
            let compact: String = saml_response.split_whitespace().collect();
            let xml = STANDARD
                .decode(&compact)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .ok_or_else(|| SsoError::Refused("SAMLResponse is not base64 XML".into()))?;
            match count_assertions(&xml) {
                Ok(1) => {}
                Ok(n) => {
                    return refused(format!(
                        "the response carries {n} assertions; exactly one is accepted (XML signature wrapping)"
                    ));
                }
                Err(e) => return refused(format!("SAMLResponse is {e}")),
            }
            let assertion = sp
                .parse_xml_response(&xml, (!ids.is_empty()).then_some(ids.as_slice()))
                .map_err(|e| SsoError::Refused(format!("SAML response refused: {e}")))?;
            // samael checks the audience only when one is named; an assertion for anyone at
            // all is not one for us.
            let audienced = assertion
                .conditions
                .as_ref()
                .and_then(|c| c.audience_restrictions.as_ref())
                .is_some_and(|r| !r.is_empty());
            if !audienced {
                return refused("the assertion names no audience".into());
            }
            let name_id = assertion
                .subject
                .as_ref()
                .and_then(|s| s.name_id.as_ref())
                .map(|n| n.value.clone())
                .unwrap_or_default();
            let attributes: Vec<(String, Vec<String>)> = assertion
                .attribute_statements
                .iter()
                .flatten()
                .flat_map(|statement| statement.attributes.iter())
                .map(|attribute| {
                    let name = attribute
                        .name
                        .clone()
                        .or_else(|| attribute.friendly_name.clone())
                        .unwrap_or_default();
                    let values = attribute
                        .values
                        .iter()
                        .filter_map(|v| v.value.clone())
                        .collect();
                    (name, values)
                })
                .collect();
            let expires = assertion
                .conditions
                .as_ref()
                .and_then(|c| c.not_on_or_after)
                .map(|t| (t - chrono::Utc::now()).num_seconds().clamp(60, 86_400))
                .unwrap_or(3_600);
            (
                assertion.id.clone(),
                expires,
                ExternalUser::from_attributes(&name_id, &attributes, &connection.settings.mapping),
            )
        };
        let first_use = self
            .cache
            .set_if_absent(
                &replay_key(&connection.id, &assertion_id),
                b"1",
                Duration::from_secs(u64::try_from(expires).unwrap_or(3_600) + 300),
            )
            .await
            .map_err(|e| SsoError::Unavailable(e.to_string()))?;
        if !first_use {
            return refused("SAML assertion replayed".into());
        }
        self.finish(
            connection,
            user,
            vec!["sso".into(), "saml".into()],
            client,
            &return_to,
        )
        .await
    }
}

/// Redirect-binding signature algorithms a LogoutRequest may use (samael verifies these two).
const LOGOUT_SIG_ALGS: [&str; 2] = [
    "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
    "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256",
];

/// What single logout did: where to send the browser (the IdP's SLO endpoint with our
/// LogoutResponse), or nothing when the IdP has none.
pub struct LoggedOut {
    pub redirect: Option<String>,
    pub ended: usize,
}

fn logout_response(request_id: &str, destination: &str, issuer: &str) -> String {
    let escape = |v: &str| {
        v.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
    };
    format!(
        "<samlp:LogoutResponse xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" \
         xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"id-{}\" Version=\"2.0\" \
         IssueInstant=\"{}\" Destination=\"{}\" InResponseTo=\"{}\"><saml:Issuer>{}</saml:Issuer>\
         <samlp:Status><samlp:StatusCode Value=\"urn:oasis:names:tc:SAML:2.0:status:Success\"/>\
         </samlp:Status></samlp:LogoutResponse>",
        super::random_token().replace(['-', '_'], ""),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        escape(destination),
        escape(request_id),
        escape(issuer),
    )
}

impl Sso {
    /// IdP-initiated single logout over the HTTP-Redirect binding: the LogoutRequest must be
    /// signed (RSA or ECDSA with SHA-256) by the IdP's metadata certificate, come from its
    /// entity id, be addressed to us, be fresh and be new; then the named user's SAML sessions
    /// end, and the browser goes back to the IdP with a signed LogoutResponse.
    pub async fn saml_logout(
        &self,
        connection: &Connection,
        raw_query: &str,
        client: ClientInfo,
    ) -> Result<LoggedOut, SsoError> {
        let refused = |message: &str| Err(SsoError::Refused(message.to_owned()));
        let config = config(connection)?;
        let params: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(raw_query.as_bytes())
                .into_owned()
                .collect();
        let (Some(request), Some(sig_alg), Some(_)) = (
            params.get("SAMLRequest"),
            params.get("SigAlg"),
            params.get("Signature"),
        ) else {
            return refused("a signed LogoutRequest (SAMLRequest, SigAlg, Signature) is required");
        };
        // samael's verifier knows only these; anything else is refused before it is reached.
        if !LOGOUT_SIG_ALGS.contains(&sig_alg.as_str()) {
            return refused("the LogoutRequest's signature algorithm is not accepted");
        }
        let skew = chrono::Duration::seconds(i64::from(if config.clock_skew_seconds == 0 {
            DEFAULT_SKEW_SECONDS
        } else {
            config.clock_skew_seconds
        }));
        let (request_id, name_id, slo_location, sp_key) = {
            let sp = self.service_provider(connection)?;
            let url = url::Url::parse(&format!("http://praxis.invalid/slo?{raw_query}"))
                .map_err(|_| SsoError::Refused("the query is not a URL query".into()))?;
            let certificates = sp.idp_signing_certs().ok().flatten().unwrap_or_default();
            let verified = certificates.iter().any(|certificate| {
                UrlVerifier::from_x509(certificate)
                    .and_then(|verifier| verifier.verify_signed_request_url(&url))
                    .unwrap_or(false)
            });
            if !verified {
                return refused("the LogoutRequest's signature does not verify");
            }
            let deflated = STANDARD
                .decode(request.split_whitespace().collect::<String>())
                .map_err(|_| SsoError::Refused("SAMLRequest is not base64".into()))?;
            let mut xml = String::new();
            // At most 1 MiB inflated: a deflate bomb stops there.
            std::io::Read::read_to_string(
                &mut std::io::Read::take(
                    flate2::read::DeflateDecoder::new(deflated.as_slice()),
                    1 << 20,
                ),
                &mut xml,
            )
            .map_err(|_| SsoError::Refused("SAMLRequest is not a deflated request".into()))?;
            let logout: samael::schema::LogoutRequest = xml
                .parse()
                .map_err(|_| SsoError::Refused("SAMLRequest is not a LogoutRequest".into()))?;
            let issuer = logout.issuer.as_ref().and_then(|i| i.value.clone());
            if issuer.as_deref() != Some(config.idp_entity_id.as_str()) {
                return refused("the LogoutRequest comes from another issuer");
            }
            if logout
                .destination
                .as_deref()
                .is_some_and(|d| d != self.slo_url(&connection.id))
            {
                return refused("the LogoutRequest is addressed elsewhere");
            }
            let now = chrono::Utc::now();
            match logout.issue_instant {
                Some(at) if at <= now + skew && at + skew + chrono::Duration::minutes(5) >= now => {
                }
                _ => return refused("the LogoutRequest is not fresh"),
            }
            let Some(request_id) = logout.id.clone() else {
                return refused("the LogoutRequest has no ID");
            };
            let name_id = logout
                .name_id
                .as_ref()
                .map(|n| n.value.trim().to_ascii_lowercase())
                .unwrap_or_default();
            (
                request_id,
                name_id,
                sp.slo_binding_location(REDIRECT_BINDING),
                sp.key.clone(),
            )
        };
        let first_use = self
            .cache
            .set_if_absent(
                &replay_key(&connection.id, &format!("logout:{request_id}")),
                b"1",
                Duration::from_secs(900),
            )
            .await
            .map_err(|e| SsoError::Unavailable(e.to_string()))?;
        if !first_use {
            return refused("LogoutRequest replayed");
        }
        let account = self
            .auth
            .account_by_email(&name_id)
            .await?
            .filter(|a| a.enterprise_id == connection.enterprise_id);
        let ended = match &account {
            Some(account) => self.auth.end_sso_sessions(account, "saml", &client).await?,
            None => Vec::new(),
        };
        let redirect = match (slo_location, sp_key) {
            (Some(location), Some(key)) => {
                let xml = logout_response(&request_id, &location, &self.sp_entity_id(connection));
                let mut deflated = Vec::new();
                {
                    use std::io::Write;
                    let mut encoder = flate2::write::DeflateEncoder::new(
                        &mut deflated,
                        flate2::Compression::default(),
                    );
                    encoder
                        .write_all(xml.as_bytes())
                        .and_then(|()| encoder.finish().map(|_| ()))
                        .map_err(|e| SsoError::Internal(format!("LogoutResponse: {e}")))?;
                }
                let mut url = url::Url::parse(&location)
                    .map_err(|e| SsoError::Internal(format!("IdP SLO location: {e}")))?;
                url.query_pairs_mut()
                    .append_pair("SAMLResponse", &STANDARD.encode(&deflated));
                if let Some(relay) = params.get("RelayState") {
                    url.query_pairs_mut().append_pair("RelayState", relay);
                }
                let signed = samael::crypto::sign_url(url, &key)
                    .map_err(|e| SsoError::Internal(format!("LogoutResponse signature: {e}")))?;
                Some(signed.to_string())
            }
            _ => None,
        };
        Ok(LoggedOut {
            redirect,
            ended: ended.len(),
        })
    }
}
