//! The fast paths decide exactly as plain Cedar: a decision (the Rust fast path when only base
//! policies apply, else Cedar over the action's slice plus the principal's personal policies)
//! equals Cedar over every policy of the enterprise, for random principals, bindings, custom
//! policies and resources; and the fast path names the same determining policies.

use super::*;
use crate::book::compile_custom;
use crate::principal::CompiledPrincipal;
use praxis_proto::directory::v1 as directory;
use proptest::prelude::*;

static MODEL: std::sync::LazyLock<Model> =
    std::sync::LazyLock::new(|| Model::load().expect("model"));

const PERMISSIONS: [&str; 8] = [
    "patients:read",
    "patients:edit",
    "appointments:read",
    "messages:send",
    "campaigns:edit",
    "triggers:toggle",
    "charges:approve",
    "inventory:read",
];
const KINDS: [i32; 5] = [1, 2, 3, 4, 5];
const CUSTOM: [&str; 4] = [
    "forbid (principal, action == Praxis::Action::\"charges:approve\", resource) when { context has amount && context.amount >= 500 };",
    "permit (principal == Praxis::User::\"u-1\", action in Praxis::Action::\"inventory\", resource);",
    "forbid (principal, action in Praxis::Action::\"phi\", resource) when { resource.hasTag(\"vip\") } unless { principal.kind == \"ENTERPRISE_ADMIN\" };",
    "permit (principal, action == Praxis::Action::\"appointments:read\", resource) when { principal.roles.contains(\"r-1\") };",
];

fn grant(permission: &str, own: bool) -> directory::Grant {
    let (feature, action) = permission.split_once(':').unwrap_or_default();
    directory::Grant {
        permission: Some(directory::Permission {
            feature: feature.into(),
            action: action.into(),
        }),
        scope: if own {
            directory::GrantScope::Own
        } else {
            directory::GrantScope::All
        }
        .into(),
    }
}

prop_compose! {
    fn binding()(
        role in 0..3usize,
        scope in 0..3usize,
        granted in proptest::collection::vec((0..PERMISSIONS.len(), any::<bool>()), 0..4),
        denied in proptest::collection::vec(0..PERMISSIONS.len(), 0..2),
    ) -> directory::SnapshotBinding {
        let (practice_id, location_id) = match scope {
            0 => (String::new(), String::new()),
            1 => ("p1".to_owned(), String::new()),
            _ => (String::new(), "l1".to_owned()),
        };
        directory::SnapshotBinding {
            binding: Some(directory::RoleBinding {
                id: format!("b-{role}-{scope}"),
                role_id: format!("r-{role}"),
                practice_id,
                location_id,
                ..Default::default()
            }),
            roles: vec![directory::Role {
                id: format!("r-{role}"),
                display_name: format!("Role {role}"),
                grants: granted.iter().map(|(p, own)| grant(PERMISSIONS[*p], *own)).collect(),
                denials: denied
                    .iter()
                    .map(|p| grant(PERMISSIONS[*p], false).permission.unwrap_or_default())
                    .collect(),
                ..Default::default()
            }],
        }
    }
}

prop_compose! {
    fn principal()(
        user in 0..2usize,
        kind in proptest::sample::select(KINDS.to_vec()),
        active in proptest::bool::weighted(0.9),
        member in any::<bool>(),
        bindings in proptest::collection::vec(binding(), 0..4),
    ) -> directory::PrincipalSnapshot {
        directory::PrincipalSnapshot {
            user_id: format!("u-{user}"),
            enterprise_id: "e1".into(),
            kind,
            status: if active { 1 } else { 2 },
            memberships: if member {
                vec![directory::PracticeMembership {
                    practice_id: "p1".into(),
                    line_ids: vec!["line-1".into()],
                    ..Default::default()
                }]
            } else {
                Vec::new()
            },
            bindings,
            revision: 3,
            locations: [(
                "l1".to_owned(),
                directory::SnapshotLocation {
                    practice_id: "p1".into(),
                    time_zone: "Europe/Paris".into(),
                },
            )]
            .into(),
        }
    }
}

prop_compose! {
    fn input()(
        permission in proptest::sample::select(PERMISSIONS.to_vec()),
        enterprise in proptest::bool::weighted(0.9),
        practice in 0..3usize,
        location in any::<bool>(),
        line in any::<bool>(),
        owner in 0..3usize,
        vip in any::<bool>(),
        amount in proptest::option::of(0..1000i64),
    ) -> CheckInput {
        CheckInput {
            permission: permission.to_owned(),
            resource: ResourceInput {
                kind: "patient".into(),
                id: "x".into(),
                enterprise_id: if enterprise { "e1" } else { "e2" }.into(),
                practice_id: match practice {
                    0 => None,
                    1 => Some("p1".into()),
                    _ => Some("p2".into()),
                },
                location_id: (location && practice == 1).then(|| "l1".into()),
                owner_id: (owner < 2).then(|| format!("u-{owner}")),
                line_id: line.then(|| "line-1".into()),
                attributes: if vip {
                    [("vip".to_owned(), "yes".to_owned())].into()
                } else {
                    HashMap::new()
                },
            },
            time: 1_764_000_000,
            ip: None,
            amount,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn a7_sliced_policy_sets_decide_as_plain_cedar(
        snapshot in principal(),
        custom in proptest::collection::vec(proptest::sample::select(CUSTOM.to_vec()), 0..3),
        input in input(),
    ) {
        let model = &*MODEL;
        let mut policies = Vec::new();
        for (n, text) in custom.iter().enumerate() {
            policies.extend(compile_custom(model, &format!("c{n}"), text).expect("valid"));
        }
        let book = PolicyBook::build(model, policies).expect("book");
        let principal = CompiledPrincipal::compile(snapshot).expect("principal");
        let decided = evaluate(model, &book, &principal, &input, false).expect("decision");
        let situation = situation(&principal, &input).expect("situation");
        let call = cedar_call(model, &book, &principal, &input, &situation).expect("call");
        let plain = Authorizer::new().is_authorized(&call.request, &book.all, &call.entities);
        prop_assert_eq!(decided.allow, plain.decision() == Decision::Allow, "{:?}", decided.reasons);
        if book.base_only(&principal.user_id, &input.permission) {
            // The fast path names the same determining policies as Cedar.
            let groups = model.action_group_names(&input.permission).expect("groups");
            let fast = fast::decide(&principal, &situation.view, &input.permission, groups, &situation.resource, &situation.keys);
            let mut theirs: Vec<String> = plain.diagnostics().reason().map(ToString::to_string).collect();
            theirs.sort();
            let mut ours = fast.determining;
            ours.sort();
            prop_assert_eq!(ours, theirs);
        }
    }
}
