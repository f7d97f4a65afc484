//! The permission catalogue (D16): every feature and the actions it knows. It is part of the
//! contract: directory validates role grants against it and authz declares one Cedar action per
//! entry.

pub struct Feature {
    pub name: &'static str,
    pub actions: &'static [&'static str],
    /// Holds patient data (content managers never reach it, D3).
    pub phi: bool,
}

pub const CRUD_EXPORT: &[&str] = &["read", "create", "edit", "delete", "export"];

/// Every feature and the actions it knows; the defaults for practice platforms.
pub const FEATURES: &[Feature] = &[
    Feature {
        name: "patients",
        actions: CRUD_EXPORT,
        phi: true,
    },
    Feature {
        name: "clinical_notes",
        actions: CRUD_EXPORT,
        phi: true,
    },
    Feature {
        name: "appointments",
        actions: CRUD_EXPORT,
        phi: true,
    },
    Feature {
        name: "conversations",
        actions: &["read", "create", "edit", "delete", "export", "send"],
        phi: true,
    },
    Feature {
        name: "messages",
        actions: &["read", "send", "delete", "export"],
        phi: true,
    },
    Feature {
        name: "billing",
        actions: &["read", "create", "edit", "delete", "export", "approve"],
        phi: true,
    },
    Feature {
        name: "charges",
        actions: &["read", "create", "edit", "delete", "approve"],
        phi: true,
    },
    Feature {
        name: "inventory",
        actions: CRUD_EXPORT,
        phi: false,
    },
    Feature {
        name: "campaigns",
        actions: &["read", "create", "edit", "delete", "send", "toggle"],
        phi: false,
    },
    Feature {
        name: "triggers",
        actions: &["read", "create", "edit", "delete", "toggle"],
        phi: false,
    },
    Feature {
        name: "flows",
        actions: &["read", "create", "edit", "delete", "toggle"],
        phi: false,
    },
    Feature {
        name: "reports",
        actions: &["read", "export"],
        phi: false,
    },
    Feature {
        name: "users",
        actions: &["read", "create", "edit", "delete"],
        phi: false,
    },
    Feature {
        name: "settings",
        actions: &["read", "edit"],
        phi: false,
    },
    Feature {
        name: "audit",
        actions: &["read", "export"],
        phi: false,
    },
    // A service account holding it asks authz about anyone in its enterprise (A1).
    Feature {
        name: "authz",
        actions: &["check"],
        phi: false,
    },
];

pub fn knows(feature: &str, action: &str) -> bool {
    FEATURES
        .iter()
        .any(|f| f.name == feature && f.actions.contains(&action))
}
