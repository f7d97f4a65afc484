//! Directory sync (issue "Directory sync"), first part: the SCIM bearer tokens an enterprise's
//! corporate directory will provision it with. Shown once, stored hashed, for one enterprise,
//! managed by its admins, revoked at once.

use praxis_directory::domain::{Actor, UserKind};
use praxis_proto::directory::v1 as pb;
use praxis_proto::directory::v1::directory_sync_service_client::DirectorySyncServiceClient;
use praxis_tests::{authed, fixture, installs};
use tonic::Code;

#[tokio::test]
async fn scim_tokens_are_shown_once_scoped_to_their_enterprise_and_revoked_at_once() {
    for install in installs().await {
        let b = install.backend.clone();
        let clinic = fixture(&install, "Synced").await;
        let other = fixture(&install, "Elsewhere").await;
        let enterprise = clinic.enterprise.id.0.clone();
        let admin = install
            .token_for(&clinic.user(UserKind::EnterpriseAdmin).email)
            .await;
        let manager = install
            .token_for(&clinic.user(UserKind::Manager).email)
            .await;
        let stranger = install
            .token_for(&other.user(UserKind::EnterpriseAdmin).email)
            .await;
        let mut sync =
            DirectorySyncServiceClient::new(install.channel(install.addresses.directory).await);

        let created = sync
            .create_scim_token(authed(
                pb::CreateScimTokenRequest {
                    enterprise_id: enterprise.clone(),
                    display_name: "Okta".into(),
                },
                &admin,
            ))
            .await
            .expect("an admin creates a token")
            .into_inner();
        let token = created.scim_token.expect("token");
        let secret = created.secret;
        assert!(secret.starts_with(&token.prefix), "{b}: {}", token.prefix);
        assert!(token.prefix.starts_with("scim_"), "{b}");
        assert!(token.revoke_time.is_none());

        // Nobody but the enterprise's admins manages its tokens; bad input changes nothing.
        for (caller, code) in [
            (&manager, Code::PermissionDenied),
            (&stranger, Code::NotFound),
        ] {
            let refused = sync
                .create_scim_token(authed(
                    pb::CreateScimTokenRequest {
                        enterprise_id: enterprise.clone(),
                        display_name: "Rogue".into(),
                    },
                    caller,
                ))
                .await
                .expect_err("not an admin of this enterprise");
            assert_eq!(refused.code(), code, "{b}: {refused:?}");
        }
        let nameless = sync
            .create_scim_token(authed(
                pb::CreateScimTokenRequest {
                    enterprise_id: enterprise.clone(),
                    display_name: "  ".into(),
                },
                &admin,
            ))
            .await
            .expect_err("a name is required");
        assert_eq!(
            praxis_tests::violated_fields(&nameless),
            vec!["display_name"],
            "{b}"
        );
        let listed = sync
            .list_scim_tokens(authed(
                pb::ListScimTokensRequest {
                    enterprise_id: enterprise.clone(),
                },
                &admin,
            ))
            .await
            .expect("list")
            .into_inner()
            .scim_tokens;
        assert_eq!(listed.len(), 1, "{b}: only the one token");
        assert_eq!(listed[0].id, token.id);
        assert!(!format!("{listed:?}").contains(&secret[token.prefix.len()..]));

        // The secret is the enterprise's SCIM client; anything else is nobody.
        let now = chrono::Utc::now();
        let client = install
            .directory
            .authenticate_scim(&secret, now)
            .await
            .expect("the token authenticates");
        assert_eq!(client.enterprise_id, clinic.enterprise.id, "{b}");
        let mut altered = secret.clone();
        let last = altered
            .pop()
            .map_or('A', |c| if c == 'A' { 'B' } else { 'A' });
        altered.push(last);
        for forged in [
            altered.as_str(),
            "",
            "scim_",
            "Bearer x",
            &secret[..secret.len() - 1],
        ] {
            assert!(
                install
                    .directory
                    .authenticate_scim(forged, now)
                    .await
                    .is_err(),
                "{b}: {forged:?} accepted"
            );
        }

        // Another enterprise's admin cannot see or revoke it; its own admin revokes it for good.
        let hidden = sync
            .revoke_scim_token(authed(
                pb::RevokeScimTokenRequest {
                    token_id: token.id.clone(),
                },
                &stranger,
            ))
            .await
            .expect_err("another enterprise's token");
        assert_eq!(hidden.code(), Code::NotFound, "{b}");
        let revoked = sync
            .revoke_scim_token(authed(
                pb::RevokeScimTokenRequest {
                    token_id: token.id.clone(),
                },
                &admin,
            ))
            .await
            .expect("revoke")
            .into_inner()
            .scim_token
            .expect("token");
        assert!(revoked.revoke_time.is_some(), "{b}");
        assert!(
            install
                .directory
                .authenticate_scim(&secret, chrono::Utc::now())
                .await
                .is_err(),
            "{b}: a revoked token still works"
        );
        // Revoking again is harmless and keeps the first time.
        let again = sync
            .revoke_scim_token(authed(
                pb::RevokeScimTokenRequest {
                    token_id: token.id.clone(),
                },
                &admin,
            ))
            .await
            .expect("revoke again")
            .into_inner()
            .scim_token
            .expect("token");
        assert_eq!(again.revoke_time, revoked.revoke_time, "{b}");

        // Both changes are in the audit trail, by the admin; the secret is not.
        let (events, _) = install
            .directory
            .list_events(
                &Actor::Operator,
                &praxis_directory::store::audit::EventQuery {
                    enterprise_id: enterprise.clone(),
                    action_prefix: Some("scim_token".into()),
                    ..Default::default()
                },
                100,
                "",
            )
            .await
            .expect("events");
        let actions: Vec<&str> = events.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(
            actions,
            vec!["scim_token.revoke", "scim_token.create"],
            "{b}"
        );
        let admin_id = &clinic.user(UserKind::EnterpriseAdmin).id.0;
        assert!(
            events.iter().all(|e| e.actor == format!("user:{admin_id}")),
            "{b}"
        );
        assert!(!format!("{events:?}").contains(&secret), "{b}");
    }
}

/// A SCIM client of `enterprise` over plain HTTP against the install.
struct ScimClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl ScimClient {
    async fn new(
        install: &praxis_tests::Install,
        enterprise: &praxis_directory::domain::EnterpriseId,
    ) -> Self {
        let (_, token) = install
            .directory
            .create_scim_token(&Actor::Operator, enterprise, "Okta", chrono::Utc::now())
            .await
            .expect("token");
        Self {
            http: reqwest::Client::new(),
            base: format!("http://{}/scim/v2", install.addresses.scim),
            token,
        }
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
        if_match: Option<&str>,
    ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/scim+json");
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        if let Some(etag) = if_match {
            request = request.header("if-match", etag);
        }
        let response = request.send().await.expect("SCIM request");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap_or_default();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
        )
    }

    async fn get(&self, path: &str) -> (u16, serde_json::Value) {
        let (status, _, body) = self.send(reqwest::Method::GET, path, None, None).await;
        (status, body)
    }
}

const ERROR: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn okta_user(user_name: &str, external_id: &str) -> serde_json::Value {
    serde_json::json!({
        "schemas": [
            "urn:ietf:params:scim:schemas:core:2.0:User",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
        ],
        "userName": user_name,
        "externalId": external_id,
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "active": true,
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "employeeNumber": "701",
            "department": "Cardiology"
        }
    })
}

#[tokio::test]
async fn scim_users_and_groups_over_http_with_filters_patches_and_etags() {
    use reqwest::Method;
    for install in installs().await {
        let b = install.backend.clone();
        let clinic = fixture(&install, "Provisioned").await;
        let other = fixture(&install, "Unrelated").await;
        // Users named by emails must be on the enterprise's domains (D2).
        install
            .directory
            .add_email_domain(
                &Actor::Operator,
                &clinic.enterprise.id,
                "provisioned.example",
                chrono::Utc::now(),
            )
            .await
            .expect("domain");
        let scim = ScimClient::new(&install, &clinic.enterprise.id).await;
        let stranger = ScimClient::new(&install, &other.enterprise.id).await;

        // Without a valid token: 401 with a SCIM error body.
        let anonymous = reqwest::Client::new()
            .get(format!("{}/Users", scim.base))
            .bearer_auth("scim_000000000000_nope")
            .send()
            .await
            .expect("request");
        assert_eq!(anonymous.status().as_u16(), 401, "{b}");
        assert!(anonymous.headers().contains_key("www-authenticate"));
        let body: serde_json::Value = anonymous.json().await.unwrap_or_default();
        assert_eq!(body["schemas"][0], ERROR, "{b}");

        // Discovery.
        let (status, headers, config) = scim
            .send(Method::GET, "/ServiceProviderConfig", None, None)
            .await;
        assert_eq!(status, 200, "{b}");
        assert_eq!(headers["content-type"], "application/scim+json");
        assert_eq!(config["patch"]["supported"], true);
        assert_eq!(config["etag"]["supported"], true);
        let (_, types) = scim.get("/ResourceTypes").await;
        assert_eq!(types["totalResults"], 2, "{b}: {types}");
        let (status, _) = scim
            .get("/Schemas/urn:ietf:params:scim:schemas:core:2.0:User")
            .await;
        assert_eq!(status, 200, "{b}");
        let (status, missing) = scim.get("/Schemas/urn:nothing").await;
        assert_eq!(
            (status, missing["schemas"][0].as_str()),
            (404, Some(ERROR)),
            "{b}"
        );
        let (status, _, _) = scim
            .send(
                Method::POST,
                "/ServiceProviderConfig",
                Some(serde_json::json!({})),
                None,
            )
            .await;
        assert_eq!(status, 405, "{b}");
        let (status, _) = scim.get("/Nowhere").await;
        assert_eq!(status, 404, "{b}");

        // Create: 201, Location and ETag agree with meta; values round-trip.
        let sent = okta_user("ada@provisioned.example", "00u1");
        let (status, headers, ada) = scim
            .send(Method::POST, "/Users", Some(sent.clone()), None)
            .await;
        assert_eq!(status, 201, "{b}: {ada}");
        let id = ada["id"].as_str().expect("id").to_owned();
        assert_eq!(
            headers["location"],
            ada["meta"]["location"].as_str().unwrap_or_default()
        );
        assert!(
            ada["meta"]["location"]
                .as_str()
                .unwrap_or_default()
                .ends_with(&format!("/Users/{id}"))
        );
        assert_eq!(
            headers["etag"],
            ada["meta"]["version"].as_str().unwrap_or_default()
        );
        assert_eq!(ada["meta"]["resourceType"], "User");
        for key in [
            "userName",
            "externalId",
            "name",
            "emails",
            "active",
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        ] {
            assert_eq!(ada[key], sent[key], "{b}: {key}");
        }
        let (status, conflict) = scim
            .send(
                Method::POST,
                "/Users",
                Some(okta_user("ADA@provisioned.example", "00u9")),
                None,
            )
            .await
            .into_status_body();
        assert_eq!(
            (status, conflict["scimType"].as_str()),
            (409, Some("uniqueness")),
            "{b}"
        );
        let mut nameless = okta_user("x@provisioned.example", "00u2");
        nameless.as_object_mut().map(|o| o.remove("userName"));
        let (status, problem) = scim
            .send(Method::POST, "/Users", Some(nameless), None)
            .await
            .into_status_body();
        assert_eq!(
            (status, problem["scimType"].as_str()),
            (400, Some("invalidValue")),
            "{b}"
        );
        let (status, problem) = scim
            .send(
                Method::POST,
                "/Users",
                Some(serde_json::json!({"userName": "no schemas"})),
                None,
            )
            .await
            .into_status_body();
        assert_eq!(
            (status, problem["scimType"].as_str()),
            (400, Some("invalidSyntax")),
            "{b}"
        );

        // Filters and pages.
        for n in 2..=3 {
            let (status, _, _) = scim
                .send(
                    Method::POST,
                    "/Users",
                    Some(okta_user(
                        &format!("user{n}@provisioned.example"),
                        &format!("00u{n}"),
                    )),
                    None,
                )
                .await;
            assert_eq!(status, 201, "{b}");
        }
        let list = |filter: &str| {
            format!(
                "/Users?filter={}",
                url::form_urlencoded::byte_serialize(filter.as_bytes()).collect::<String>()
            )
        };
        let (_, found) = scim
            .get(&list(r#"userName eq "Ada@Provisioned.example""#))
            .await;
        assert_eq!(found["totalResults"], 1, "{b}: {found}");
        assert_eq!(found["Resources"][0]["id"], id.as_str());
        let (_, found) = scim
            .get(&list(r#"externalId eq "00u2" or externalId eq "00u3""#))
            .await;
        assert_eq!(found["totalResults"], 2, "{b}");
        let (_, found) = scim
            .get(&list(r#"userName sw "user" and active eq true"#))
            .await;
        assert_eq!(found["totalResults"], 2, "{b}");
        let (status, bad) = scim.get(&list("userName zz 1")).await;
        assert_eq!(
            (status, bad["scimType"].as_str()),
            (400, Some("invalidFilter")),
            "{b}"
        );
        let (_, page) = scim.get("/Users?startIndex=2&count=1").await;
        assert_eq!(
            (
                page["totalResults"].as_i64(),
                page["itemsPerPage"].as_i64(),
                page["startIndex"].as_i64()
            ),
            (Some(3), Some(1), Some(2)),
            "{b}"
        );

        // Okta deactivates; Entra ID changes the email and sends booleans as strings.
        let version = ada["meta"]["version"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (status, _, patched) = scim
            .send(
                Method::PATCH,
                &format!("/Users/{id}"),
                Some(serde_json::json!({
                    "schemas": [PATCH_OP],
                    "Operations": [{"op": "replace", "value": {"active": false}}]
                })),
                Some(&version),
            )
            .await;
        assert_eq!(status, 200, "{b}: {patched}");
        assert_eq!(patched["active"], false);
        assert_ne!(patched["meta"]["version"].as_str(), Some(version.as_str()));
        let (status, _, patched) = scim
            .send(Method::PATCH, &format!("/Users/{id}"), Some(serde_json::json!({
                "schemas": [PATCH_OP],
                "Operations": [
                    {"op": "Replace", "path": "active", "value": "True"},
                    {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "ada.l@provisioned.example"},
                    {"op": "Add", "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", "value": "mgr-1"}
                ]
            })), None)
            .await;
        assert_eq!(status, 200, "{b}: {patched}");
        assert_eq!(patched["active"], true);
        assert_eq!(patched["emails"][0]["value"], "ada.l@provisioned.example");
        assert_eq!(
            patched["urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"]["manager"]["value"],
            "mgr-1"
        );

        // A replace over a stale ETag is refused and changes nothing; over the current one it lands.
        let (status, _, _) = scim
            .send(
                Method::PUT,
                &format!("/Users/{id}"),
                Some(okta_user("ada@provisioned.example", "changed")),
                Some(&version),
            )
            .await;
        assert_eq!(status, 412, "{b}");
        let current = patched["meta"]["version"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let (status, _, replaced) = scim
            .send(
                Method::PUT,
                &format!("/Users/{id}"),
                Some(okta_user("ada@provisioned.example", "changed")),
                Some(&current),
            )
            .await;
        assert_eq!(
            (status, replaced["externalId"].as_str()),
            (200, Some("changed")),
            "{b}"
        );

        // Groups and their members.
        let (status, _, group) = scim
            .send(
                Method::POST,
                "/Groups",
                Some(serde_json::json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Nurses",
                    "members": [{"value": id}]
                })),
                None,
            )
            .await;
        assert_eq!(status, 201, "{b}: {group}");
        let group_id = group["id"].as_str().unwrap_or_default().to_owned();
        let (_, _, group) = scim
            .send(
                Method::PATCH,
                &format!("/Groups/{group_id}"),
                Some(serde_json::json!({
                    "schemas": [PATCH_OP],
                    "Operations": [
                        {"op": "add", "path": "members", "value": [{"value": "someone-else"}]},
                        {"op": "remove", "path": format!("members[value eq \"{id}\"]")}
                    ]
                })),
                None,
            )
            .await;
        assert_eq!(
            group["members"],
            serde_json::json!([{"value": "someone-else"}]),
            "{b}"
        );

        // Another enterprise sees none of it.
        let (status, _) = stranger.get(&format!("/Users/{id}")).await;
        assert_eq!(status, 404, "{b}");
        let (_, theirs) = stranger.get("/Users").await;
        assert_eq!(theirs["totalResults"], 0, "{b}");

        // Delete, then gone.
        let (status, _, _) = scim
            .send(Method::DELETE, &format!("/Users/{id}"), None, None)
            .await;
        assert_eq!(status, 204, "{b}");
        let (status, _) = scim.get(&format!("/Users/{id}")).await;
        assert_eq!(status, 404, "{b}");

        // The changes are audited with the token as actor.
        let (events, _) = install
            .directory
            .list_events(
                &Actor::Operator,
                &praxis_directory::store::audit::EventQuery {
                    enterprise_id: clinic.enterprise.id.0.clone(),
                    action_prefix: Some("scim.user".into()),
                    ..Default::default()
                },
                100,
                "",
            )
            .await
            .expect("events");
        assert!(events.iter().any(|e| e.action == "scim.user.delete"), "{b}");
        assert!(events.iter().all(|e| e.actor.starts_with("scim:")), "{b}");
    }
}

trait StatusBody {
    fn into_status_body(self) -> (u16, serde_json::Value);
}

impl StatusBody for (u16, reqwest::header::HeaderMap, serde_json::Value) {
    fn into_status_body(self) -> (u16, serde_json::Value) {
        (self.0, self.2)
    }
}

#[tokio::test]
async fn d14_deactivated_or_deleted_in_the_corporate_directory_means_disabled_here() {
    use praxis_directory::domain::UserStatus;
    use reqwest::Method;
    for install in installs().await {
        let b = install.backend.clone();
        let clinic = fixture(&install, "Offboarding").await;
        let scim = ScimClient::new(&install, &clinic.enterprise.id).await;
        let staff = clinic.user(UserKind::Staff).clone();
        let manager = clinic.user(UserKind::Manager).clone();
        let status = |id: praxis_directory::domain::UserId| {
            let install = &install;
            async move {
                install
                    .directory
                    .get_user(&Actor::Operator, &id)
                    .await
                    .expect("user")
                    .0
                    .status
            }
        };

        // The staff member is logged in.
        let identity = install.channel(install.addresses.identity).await;
        let session = praxis_tests::datagen::first_login(
            identity.clone(),
            &install.platform_admin_token().await,
            &praxis_tests::datagen::GeneratedUser {
                id: staff.id.0.clone(),
                email: staff.email.clone(),
                kind: praxis_proto::directory::v1::UserKind::Staff,
                practice_id: String::new(),
                role_ids: Vec::new(),
            },
            "a long enough password 42",
        )
        .await
        .expect("login");
        let introspect = |token: String| {
            let identity = identity.clone();
            async move {
                praxis_proto::identity::v1::auth_service_client::AuthServiceClient::new(identity)
                    .introspect(authed(
                        praxis_proto::identity::v1::IntrospectRequest {
                            access_token: token.clone(),
                        },
                        &token,
                    ))
                    .await
                    .map(|answer| answer.into_inner().active)
                    .unwrap_or(false)
            }
        };
        assert!(
            introspect(session.clone()).await,
            "{b}: the session is open"
        );

        // Known to SCIM and active: nothing changes here.
        let (code, _, created) = scim
            .send(
                Method::POST,
                "/Users",
                Some(okta_user(&staff.email, "00u-staff")),
                None,
            )
            .await;
        assert_eq!(code, 201, "{b}: {created}");
        assert_eq!(status(staff.id.clone()).await, UserStatus::Active, "{b}");
        // Okta deactivates: the Praxis user is disabled, by the connector, and stays so.
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        for _ in 0..2 {
            let (code, _, patched) = scim
                .send(
                    Method::PATCH,
                    &format!("/Users/{id}"),
                    Some(serde_json::json!({
                        "schemas": [PATCH_OP],
                        "Operations": [{"op": "replace", "value": {"active": false}}]
                    })),
                    None,
                )
                .await;
            assert_eq!(code, 200, "{b}: {patched}");
            assert_eq!(status(staff.id.clone()).await, UserStatus::Disabled, "{b}");
        }
        // Which ends their session (identity hears of the change, as of an admin's).
        let started = std::time::Instant::now();
        while introspect(session.clone()).await {
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{b}: the session of a user deactivated over SCIM stayed open"
            );
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        // Okta reactivates: enabled again, since the connector disabled them.
        let reactivate = |id: String| {
            let scim = &scim;
            async move {
                scim.send(
                    Method::PATCH,
                    &format!("/Users/{id}"),
                    Some(serde_json::json!({
                        "schemas": [PATCH_OP],
                        "Operations": [{"op": "replace", "path": "active", "value": true}]
                    })),
                    None,
                )
                .await
                .0
            }
        };
        assert_eq!(reactivate(id.clone()).await, 200, "{b}");
        assert_eq!(status(staff.id.clone()).await, UserStatus::Active, "{b}");
        // One an admin disabled stays disabled, whatever SCIM says (D14).
        install
            .directory
            .disable_user(&Actor::Operator, &staff.id, None, chrono::Utc::now())
            .await
            .expect("an admin disables them");
        assert_eq!(reactivate(id.clone()).await, 200, "{b}");
        assert_eq!(status(staff.id.clone()).await, UserStatus::Disabled, "{b}");
        // Deleted in the corporate directory: disabled too.
        let (code, _, created) = scim
            .send(
                Method::POST,
                "/Users",
                Some(okta_user(&manager.email, "00u-manager")),
                None,
            )
            .await;
        assert_eq!(code, 201, "{b}: {created}");
        let id = created["id"].as_str().unwrap_or_default().to_owned();
        let (code, _, _) = scim
            .send(Method::DELETE, &format!("/Users/{id}"), None, None)
            .await;
        assert_eq!(code, 204, "{b}");
        assert_eq!(
            status(manager.id.clone()).await,
            UserStatus::Disabled,
            "{b}"
        );
        // A user named by an email off the enterprise's domains is refused (D2).
        let (code, _, _) = scim
            .send(
                Method::POST,
                "/Users",
                Some(okta_user("stranger@elsewhere.example", "00u-x")),
                None,
            )
            .await;
        assert_eq!(code, 400, "{b}");

        let (events, _) = install
            .directory
            .list_events(
                &Actor::Operator,
                &praxis_directory::store::audit::EventQuery {
                    enterprise_id: clinic.enterprise.id.0.clone(),
                    action: Some("user.disable".into()),
                    ..Default::default()
                },
                100,
                "",
            )
            .await
            .expect("events");
        let connector = format!("scim:{}", clinic.enterprise.id.0);
        let by_connector = events.iter().filter(|e| e.actor == connector).count();
        assert_eq!(
            by_connector, 2,
            "{b}: once each, and the admin's own: {events:?}"
        );
        assert_eq!(events.len(), 3, "{b}");
    }
}

#[tokio::test]
async fn scim_group_rules_make_members_praxis_users_with_their_roles() {
    use praxis_directory::domain::UserStatus;
    use praxis_directory::domain::roles::{BindingFilter, BindingScope};
    use reqwest::Method;
    for install in installs().await {
        let b = install.backend.clone();
        let clinic = fixture(&install, "Rules").await;
        let other = fixture(&install, "Elsewhere").await;
        let north = &clinic.practices[0];
        let line = north.lines[0].id.0.clone();
        let admin = install
            .token_for(&clinic.user(UserKind::EnterpriseAdmin).email)
            .await;
        let sync =
            DirectorySyncServiceClient::new(install.channel(install.addresses.directory).await);
        let nurses = pb::ScimGroupRule {
            group: "Nurses".into(),
            kind: pb::UserKind::Staff.into(),
            practice_ids: vec![north.id.0.clone()],
            line_ids: vec![line.clone()],
            role_ids: vec!["builtin-billing".into()],
        };
        let set = |rules: Vec<pb::ScimGroupRule>| {
            let mut sync = sync.clone();
            let enterprise_id = clinic.enterprise.id.0.clone();
            let admin = admin.clone();
            async move {
                sync.set_scim_group_rules(authed(
                    pb::SetScimGroupRulesRequest {
                        enterprise_id,
                        rules,
                    },
                    &admin,
                ))
                .await
            }
        };
        let stored = set(vec![nurses.clone()])
            .await
            .expect("rules")
            .into_inner()
            .rules;
        assert_eq!(stored[0].group, "nurses", "{b}");
        // Rules naming no kind or another enterprise's practice are refused, and change nothing.
        let refused = set(vec![
            pb::ScimGroupRule {
                kind: 0,
                ..nurses.clone()
            },
            pb::ScimGroupRule {
                practice_ids: vec![other.practices[0].id.0.clone()],
                ..nurses.clone()
            },
        ])
        .await
        .expect_err("bad rules");
        let fields = praxis_tests::violated_fields(&refused);
        assert!(
            fields.contains(&"rules[0].kind".to_owned()),
            "{b}: {fields:?}"
        );
        assert!(
            fields
                .iter()
                .any(|f| f.starts_with("rules[1].practice_ids")),
            "{b}: {fields:?}"
        );
        let kept = sync
            .clone()
            .get_scim_group_rules(authed(
                pb::GetScimGroupRulesRequest {
                    enterprise_id: clinic.enterprise.id.0.clone(),
                },
                &admin,
            ))
            .await
            .expect("get")
            .into_inner()
            .rules;
        assert_eq!(kept.len(), 1, "{b}");

        let scim = ScimClient::new(&install, &clinic.enterprise.id).await;
        let email = format!("nurse@{}", clinic.domain);
        let revision = |install: &praxis_tests::Install| {
            let id = clinic.enterprise.id.clone();
            let directory = install.directory.clone();
            async move {
                directory
                    .get_enterprise(&Actor::Operator, &id)
                    .await
                    .expect("enterprise")
                    .revision
            }
        };
        // A user in no group with a rule is kept, not made.
        let (code, _, nurse) = scim
            .send(
                Method::POST,
                "/Users",
                Some(okta_user(&email, "00u-nurse")),
                None,
            )
            .await;
        assert_eq!(code, 201, "{b}: {nurse}");
        assert!(
            install
                .directory
                .find_user_by_email(&Actor::Operator, &email)
                .await
                .is_err(),
            "{b}"
        );
        let nurse_id = nurse["id"].as_str().unwrap_or_default().to_owned();
        let before = revision(&install).await;
        let (code, _, group) = scim
            .send(
                Method::POST,
                "/Groups",
                Some(serde_json::json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "NURSES",
                    "members": [{"value": nurse_id}]
                })),
                None,
            )
            .await;
        assert_eq!(code, 201, "{b}: {group}");
        let group_id = group["id"].as_str().unwrap_or_default().to_owned();
        let user = install
            .directory
            .find_user_by_email(&Actor::Operator, &email)
            .await
            .expect("made by the rule");
        assert_eq!(
            (user.kind, user.status),
            (UserKind::Staff, UserStatus::Active),
            "{b}"
        );
        assert_eq!(user.memberships.len(), 1);
        assert_eq!(user.memberships[0].practice_id, north.id);
        assert_eq!(
            user.memberships[0]
                .line_ids
                .iter()
                .map(|l| l.0.clone())
                .collect::<Vec<_>>(),
            vec![line.clone()]
        );
        assert!(
            revision(&install).await > before,
            "{b}: authz sees the change by the revision"
        );
        let roles = |install: &praxis_tests::Install| {
            let directory = install.directory.clone();
            let filter = BindingFilter {
                user_id: Some(user.id.clone()),
                ..BindingFilter::default()
            };
            let enterprise_id = clinic.enterprise.id.clone();
            async move {
                directory
                    .list_bindings(&Actor::Operator, &enterprise_id, &filter)
                    .await
                    .expect("bindings")
                    .0
            }
        };
        let held = roles(&install).await;
        assert_eq!(held.len(), 1, "{b}: {held:?}");
        assert_eq!(held[0].role_id.0, "builtin-billing");
        assert_eq!(held[0].scope, BindingScope::Practice(north.id.clone()));
        assert_eq!(
            held[0].source.as_deref(),
            Some(format!("scim:{}", clinic.enterprise.id.0).as_str())
        );

        // Entra ID takes them out of the group: the role goes, the user stays; back in, it returns.
        let membership_patch = |op: &str| {
            serde_json::json!({
                "schemas": [PATCH_OP],
                "Operations": [if op == "remove" {
                    serde_json::json!({"op": "Remove", "path": format!("members[value eq \"{nurse_id}\"]")})
                } else {
                    serde_json::json!({"op": "Add", "path": "members", "value": [{"value": nurse_id}]})
                }]
            })
        };
        let (code, _, _) = scim
            .send(
                Method::PATCH,
                &format!("/Groups/{group_id}"),
                Some(membership_patch("remove")),
                None,
            )
            .await;
        assert_eq!(code, 200, "{b}");
        assert!(roles(&install).await.is_empty(), "{b}");
        assert_eq!(
            install
                .directory
                .find_user_by_email(&Actor::Operator, &email)
                .await
                .map(|u| u.status)
                .ok(),
            Some(UserStatus::Active)
        );
        let (code, _, _) = scim
            .send(
                Method::PATCH,
                &format!("/Groups/{group_id}"),
                Some(membership_patch("add")),
                None,
            )
            .await;
        assert_eq!(code, 200, "{b}");
        assert_eq!(roles(&install).await.len(), 1, "{b}");

        // Rules set later apply to the people SCIM already keeps.
        let late = format!("late@{}", clinic.domain);
        let (code, _, late_user) = scim
            .send(
                Method::POST,
                "/Users",
                Some(okta_user(&late, "00u-late")),
                None,
            )
            .await;
        assert_eq!(code, 201, "{b}: {late_user}");
        let (code, _, _) = scim
            .send(
                Method::POST,
                "/Groups",
                Some(serde_json::json!({
                    "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                    "displayName": "Front desk",
                    "members": [{"value": late_user["id"]}]
                })),
                None,
            )
            .await;
        assert_eq!(code, 201, "{b}");
        assert!(
            install
                .directory
                .find_user_by_email(&Actor::Operator, &late)
                .await
                .is_err(),
            "{b}: no rule for the group yet"
        );
        set(vec![
            nurses.clone(),
            pb::ScimGroupRule {
                group: "front desk".into(),
                role_ids: Vec::new(),
                ..nurses.clone()
            },
        ])
        .await
        .expect("rules");
        let made = install
            .directory
            .find_user_by_email(&Actor::Operator, &late)
            .await
            .expect("made when the rule came");
        assert_eq!(made.kind, UserKind::Staff, "{b}");

        // An email off the enterprise's domains is refused with a SCIM error and not kept.
        let (code, _, refused) = scim
            .send(
                Method::POST,
                "/Users",
                Some(okta_user("outsider@gmail.com", "00u-out")),
                None,
            )
            .await;
        assert_eq!(code, 400, "{b}: {refused}");
        assert_eq!(refused["schemas"][0], ERROR);
        let (_, found) = scim
            .get(&format!(
                "/Users?filter={}",
                url::form_urlencoded::byte_serialize(br#"userName eq "outsider@gmail.com""#)
                    .collect::<String>()
            ))
            .await;
        assert_eq!(found["totalResults"], 0, "{b}");

        let (events, _) = install
            .directory
            .list_events(
                &Actor::Operator,
                &praxis_directory::store::audit::EventQuery {
                    enterprise_id: clinic.enterprise.id.0.clone(),
                    action: Some("user.create".into()),
                    actor: Some(format!("scim:{}", clinic.enterprise.id.0)),
                    ..Default::default()
                },
                100,
                "",
            )
            .await
            .expect("events");
        assert_eq!(events.len(), 2, "{b}: the connector made both users");
    }
}

#[tokio::test]
async fn scim_locations_use_the_public_url_behind_a_proxy() {
    let install = praxis_tests::start_configured(false, |config| {
        config.scim_public_url = Some("https://login.clinic.example/".into());
    })
    .await;
    let clinic = fixture(&install, "Proxied").await;
    let scim = ScimClient::new(&install, &clinic.enterprise.id).await;
    let (code, headers, user) = scim
        .send(
            reqwest::Method::POST,
            "/Users",
            Some(okta_user(&format!("ada@{}", clinic.domain), "00u1")),
            None,
        )
        .await;
    assert_eq!(code, 201, "{user}");
    let location = format!(
        "https://login.clinic.example/scim/v2/Users/{}",
        user["id"].as_str().unwrap_or_default()
    );
    assert_eq!(user["meta"]["location"], location.as_str());
    assert_eq!(headers["location"], location.as_str());
}
