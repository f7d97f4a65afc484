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
