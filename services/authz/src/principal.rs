//! A principal compiled for decisions: the directory snapshot with every binding's role chain
//! flattened into grant, own-grant and denial keys. Bindings carry time conditions (validity,
//! weekly window in a location's zone), so the Cedar entity depends on which bindings are active
//! at the request's time; entities are memoised per set of active bindings.

use cedar_policy::{Entities, Entity, EntityUid, RestrictedExpression};
use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;
use praxis_proto::directory::v1 as directory;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    Enterprise,
    Practice(String),
    Location(String),
    /// A4: one resource, by type and id (an explicit grant).
    Resource {
        kind: String,
        id: String,
    },
}

impl Scope {
    pub fn key(&self) -> String {
        match self {
            Scope::Enterprise => "enterprise".to_owned(),
            Scope::Practice(id) => format!("practice:{id}"),
            Scope::Location(id) => format!("location:{id}"),
            Scope::Resource { kind, id } => format!("resource:{kind}:{id}"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Window {
    pub days: Vec<u32>,
    pub start_minute: u32,
    pub end_minute: u32,
}

/// One binding with its role chain flattened.
#[derive(Debug, Clone)]
pub struct BoundRole {
    pub binding_id: String,
    pub role_id: String,
    pub role_name: String,
    pub scope: Scope,
    pub valid_from: Option<i64>,
    pub valid_until: Option<i64>,
    pub window: Option<Window>,
    /// Permissions (`feature:action`) granted with scope ALL, with scope OWN, and denied.
    pub grants: BTreeSet<String>,
    pub own_grants: BTreeSet<String>,
    pub denials: BTreeSet<String>,
    /// Hidden fields by resource type, from every role in the chain.
    pub masks: HashMap<String, BTreeSet<String>>,
}

/// Why a binding does not count at a given time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inactive {
    NotYet(i64),
    Ended(i64),
    OutsideWindow { zone: String },
}

impl std::fmt::Display for Inactive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let when = |secs: &i64| {
            DateTime::<Utc>::from_timestamp(*secs, 0)
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| secs.to_string())
        };
        match self {
            Inactive::NotYet(from) => write!(f, "not valid before {}", when(from)),
            Inactive::Ended(until) => write!(f, "ended at {}", when(until)),
            Inactive::OutsideWindow { zone } => {
                write!(f, "outside its weekly window ({zone} time)")
            }
        }
    }
}

pub struct CompiledPrincipal {
    pub user_id: String,
    pub enterprise_id: String,
    pub kind: String,
    pub active: bool,
    pub practices: Vec<String>,
    pub lines: Vec<String>,
    /// (practice, line) of each membership line, for lookups (A6).
    pub line_practices: Vec<(String, String)>,
    pub bindings: Vec<BoundRole>,
    /// Location id → (practice id, time zone).
    pub locations: HashMap<String, (String, Option<Tz>)>,
    pub revision: i64,
    pub uid: EntityUid,
    views: Mutex<HashMap<Vec<bool>, Arc<ActiveView>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("principal snapshot: {0}")]
pub struct CompileError(pub String);

pub fn user_uid(user_id: &str) -> Result<EntityUid, CompileError> {
    crate::model::uid("User", user_id).map_err(CompileError)
}

fn seconds(time: &Option<prost_types::Timestamp>) -> Option<i64> {
    time.as_ref().map(|t| t.seconds)
}

fn kind_name(kind: i32) -> String {
    directory::UserKind::try_from(kind)
        .map(|kind| {
            kind.as_str_name()
                .trim_start_matches("USER_KIND_")
                .to_owned()
        })
        .unwrap_or_default()
}

fn flatten(binding: directory::RoleBinding, roles: Vec<directory::Role>) -> BoundRole {
    let scope = if !binding.resource_type.is_empty() && !binding.resource_id.is_empty() {
        Scope::Resource {
            kind: binding.resource_type.clone(),
            id: binding.resource_id.clone(),
        }
    } else if !binding.location_id.is_empty() {
        Scope::Location(binding.location_id.clone())
    } else if !binding.practice_id.is_empty() {
        Scope::Practice(binding.practice_id.clone())
    } else {
        Scope::Enterprise
    };
    let permission = |p: &directory::Permission| format!("{}:{}", p.feature, p.action);
    let mut bound = BoundRole {
        binding_id: binding.id,
        role_id: binding.role_id,
        role_name: roles
            .first()
            .map(|role| role.display_name.clone())
            .unwrap_or_default(),
        scope,
        valid_from: seconds(&binding.valid_from),
        valid_until: seconds(&binding.valid_until),
        window: binding.weekly_window.map(|w| Window {
            days: w
                .days
                .into_iter()
                .filter_map(|d| u32::try_from(d).ok())
                .collect(),
            start_minute: u32::try_from(w.start_minute).unwrap_or(0),
            end_minute: u32::try_from(w.end_minute).unwrap_or(0),
        }),
        grants: BTreeSet::new(),
        own_grants: BTreeSet::new(),
        denials: BTreeSet::new(),
        masks: HashMap::new(),
    };
    // The chain is the role then its ancestors: grants are inherited, and a denial anywhere in
    // the chain forbids (so a child's denial beats its parent's grant).
    for role in roles {
        for grant in &role.grants {
            let Some(p) = &grant.permission else { continue };
            if grant.scope == i32::from(directory::GrantScope::Own) {
                bound.own_grants.insert(permission(p));
            } else {
                bound.grants.insert(permission(p));
            }
        }
        bound.denials.extend(role.denials.iter().map(permission));
        for mask in role.field_masks {
            bound
                .masks
                .entry(mask.resource_type)
                .or_default()
                .extend(mask.fields);
        }
    }
    bound
}

impl CompiledPrincipal {
    pub fn compile(snapshot: directory::PrincipalSnapshot) -> Result<Self, CompileError> {
        let uid = user_uid(&snapshot.user_id)?;
        let active = snapshot.status == i32::from(directory::UserStatus::Active);
        let mut practices = Vec::new();
        let mut lines = Vec::new();
        let mut line_practices = Vec::new();
        for membership in snapshot.memberships {
            for line in &membership.line_ids {
                line_practices.push((membership.practice_id.clone(), line.clone()));
            }
            practices.push(membership.practice_id);
            lines.extend(membership.line_ids);
        }
        let locations = snapshot
            .locations
            .into_iter()
            .map(|(id, location)| {
                let zone = Tz::from_str(&location.time_zone).ok();
                (id, (location.practice_id, zone))
            })
            .collect();
        let bindings = snapshot
            .bindings
            .into_iter()
            .filter_map(|b| Some(flatten(b.binding?, b.roles)))
            .collect();
        Ok(Self {
            kind: kind_name(snapshot.kind),
            user_id: snapshot.user_id,
            enterprise_id: snapshot.enterprise_id,
            active,
            practices,
            lines,
            line_practices,
            bindings,
            locations,
            revision: snapshot.revision,
            uid,
            views: Mutex::new(HashMap::new()),
        })
    }

    /// The zone a binding's weekly window is read in: its location's, else the resource's
    /// location's, else UTC.
    fn zone(&self, binding: &BoundRole, resource_location: Option<&str>) -> Tz {
        let location = match &binding.scope {
            Scope::Location(id) => Some(id.as_str()),
            _ => resource_location,
        };
        location
            .and_then(|id| self.locations.get(id))
            .and_then(|(_, zone)| *zone)
            .unwrap_or(Tz::UTC)
    }

    /// Whether `binding` counts at `time` (Unix seconds).
    pub fn activity(
        &self,
        binding: &BoundRole,
        time: i64,
        resource_location: Option<&str>,
    ) -> Result<(), Inactive> {
        if let Some(from) = binding.valid_from.filter(|from| time < *from) {
            return Err(Inactive::NotYet(from));
        }
        if let Some(until) = binding.valid_until.filter(|until| time >= *until) {
            return Err(Inactive::Ended(until));
        }
        if let Some(window) = &binding.window {
            let zone = self.zone(binding, resource_location);
            let inside = DateTime::<Utc>::from_timestamp(time, 0).is_some_and(|utc| {
                let local = utc.with_timezone(&zone);
                let minute = local.hour() * 60 + local.minute();
                window.days.contains(&local.weekday().number_from_monday())
                    && (window.start_minute..window.end_minute).contains(&minute)
            });
            if !inside {
                return Err(Inactive::OutsideWindow {
                    zone: zone.name().to_owned(),
                });
            }
        }
        Ok(())
    }

    pub fn active_set(&self, time: i64, resource_location: Option<&str>) -> Vec<bool> {
        self.bindings
            .iter()
            .map(|b| self.activity(b, time, resource_location).is_ok())
            .collect()
    }

    /// The principal as decisions see it with the bindings in `active`: memoised, since time
    /// windows make a handful of combinations at most.
    pub fn view(&self, active: &[bool]) -> Result<Arc<ActiveView>, CompileError> {
        let mut memo = self
            .views
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(view) = memo.get(active) {
            return Ok(view.clone());
        }
        let mut grants = HashSet::new();
        let mut own_grants = HashSet::new();
        let mut denials = HashSet::new();
        let mut roles = HashSet::new();
        for (binding, _) in self.bindings.iter().zip(active).filter(|(_, on)| **on) {
            let scope = binding.scope.key();
            grants.extend(binding.grants.iter().map(|p| format!("{p}@{scope}")));
            own_grants.extend(binding.own_grants.iter().map(|p| format!("{p}@{scope}")));
            denials.extend(binding.denials.iter().map(|p| format!("{p}@{scope}")));
            roles.insert(binding.role_id.clone());
        }
        let strings = |set: &HashSet<String>| {
            RestrictedExpression::new_set(set.iter().cloned().map(RestrictedExpression::new_string))
        };
        let attrs = HashMap::from([
            (
                "kind".to_owned(),
                RestrictedExpression::new_string(self.kind.clone()),
            ),
            (
                "enterprise".to_owned(),
                RestrictedExpression::new_string(self.enterprise_id.clone()),
            ),
            (
                "active".to_owned(),
                RestrictedExpression::new_bool(self.active),
            ),
            (
                "practices".to_owned(),
                strings(&self.practices.iter().cloned().collect()),
            ),
            (
                "lines".to_owned(),
                strings(&self.lines.iter().cloned().collect()),
            ),
            ("roles".to_owned(), strings(&roles)),
            ("grants".to_owned(), strings(&grants)),
            ("own_grants".to_owned(), strings(&own_grants)),
            ("denials".to_owned(), strings(&denials)),
        ]);
        let entity = Entity::new(self.uid.clone(), attrs, HashSet::new())
            .map_err(|e| CompileError(e.to_string()))?;
        let view = Arc::new(ActiveView {
            entity,
            grants,
            own_grants,
            denials,
            entities: Mutex::new(HashMap::new()),
        });
        // The bound keeps a pathological principal from growing the memo without limit.
        if memo.len() >= 32 {
            memo.clear();
        }
        memo.insert(active.to_vec(), view.clone());
        Ok(view)
    }
}

/// The principal with one set of active bindings: its Cedar entity, its grant, own-grant and
/// denial keys (`feature:action@scope`), and Cedar entity stores (principal and action) per
/// action, to which a decision adds only the resource.
pub struct ActiveView {
    pub entity: Entity,
    pub grants: HashSet<String>,
    pub own_grants: HashSet<String>,
    pub denials: HashSet<String>,
    entities: Mutex<HashMap<String, Entities>>,
}

impl ActiveView {
    /// The principal and `action` as a Cedar entity store.
    pub fn entities(&self, permission: &str, action: &Entity) -> Result<Entities, CompileError> {
        let mut memo = self
            .entities
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(entities) = memo.get(permission) {
            return Ok(entities.clone());
        }
        let entities = Entities::from_entities([self.entity.clone(), action.clone()], None)
            .map_err(|e| CompileError(e.to_string()))?;
        memo.insert(permission.to_owned(), entities.clone());
        Ok(entities)
    }
}
