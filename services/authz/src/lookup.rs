//! Lookups (A6): where a principal may do a permission, and who may do it somewhere. Every
//! answer is a decision of the same engine Check uses, on a resource placed there (the
//! enterprise at large, each practice, each location, each of the principal's lines, each
//! resource granted to them one by one), so a lookup cannot disagree with Check.

use crate::book::PolicyBook;
use crate::engine::{self, CheckInput, EngineError, ResourceInput};
use crate::model::Model;
use crate::principal::{CompiledPrincipal, Scope};
use std::collections::BTreeSet;

/// The resource type asked about when the caller names none.
pub const DEFAULT_TYPE: &str = "resource";

/// What a lookup is about, apart from where.
#[derive(Debug, Clone)]
pub struct Question {
    pub permission: String,
    pub resource_type: String,
    pub time: i64,
    pub ip: Option<String>,
    pub amount: Option<i64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Found {
    pub enterprise_wide: bool,
    pub practices: Vec<String>,
    pub locations: Vec<String>,
    /// (practice, line).
    pub lines: Vec<(String, String)>,
    /// (type, id) granted one by one.
    pub resources: Vec<(String, String)>,
    pub revision: i64,
}

/// A place to ask about.
#[derive(Debug, Clone, Default)]
pub struct Place {
    pub practice: Option<String>,
    pub location: Option<String>,
    pub line: Option<String>,
    /// For a resource granted by itself: its type and id.
    pub resource: Option<(String, String)>,
}

fn input(principal: &CompiledPrincipal, question: &Question, place: &Place) -> CheckInput {
    let (kind, id) = place
        .resource
        .clone()
        .unwrap_or_else(|| (question.resource_type.clone(), String::new()));
    CheckInput {
        permission: question.permission.clone(),
        resource: ResourceInput {
            kind,
            id,
            enterprise_id: principal.enterprise_id.clone(),
            practice_id: place.practice.clone(),
            location_id: place.location.clone(),
            owner_id: None,
            line_id: place.line.clone(),
            attributes: Default::default(),
        },
        time: question.time,
        ip: question.ip.clone(),
        amount: question.amount,
    }
}

/// Whether `principal` may do the question's permission at `place` (Check's answer).
pub fn allowed(
    model: &Model,
    book: &PolicyBook,
    principal: &CompiledPrincipal,
    question: &Question,
    place: &Place,
) -> Result<bool, EngineError> {
    Ok(engine::evaluate(
        model,
        book,
        principal,
        &input(principal, question, place),
        false,
    )?
    .allow)
}

/// Every place the principal may act, each asked of the engine.
pub fn resources(
    model: &Model,
    book: &PolicyBook,
    principal: &CompiledPrincipal,
    question: &Question,
) -> Result<Found, EngineError> {
    let ask = |place: Place| allowed(model, book, principal, question, &place);
    let mut found = Found {
        revision: principal.revision,
        enterprise_wide: ask(Place::default())?,
        ..Found::default()
    };
    let practices: BTreeSet<&String> = principal
        .locations
        .values()
        .map(|(practice, _)| practice)
        .chain(principal.practices.iter())
        .collect();
    for practice in practices {
        if ask(Place {
            practice: Some(practice.clone()),
            ..Place::default()
        })? {
            found.practices.push(practice.clone());
        }
    }
    let mut locations: Vec<(&String, &String)> = principal
        .locations
        .iter()
        .map(|(location, (practice, _))| (location, practice))
        .collect();
    locations.sort();
    for (location, practice) in locations {
        if ask(Place {
            practice: Some(practice.clone()),
            location: Some(location.clone()),
            ..Place::default()
        })? {
            found.locations.push(location.clone());
        }
    }
    for (practice, line) in &principal.line_practices {
        if ask(Place {
            practice: Some(practice.clone()),
            line: Some(line.clone()),
            ..Place::default()
        })? {
            found.lines.push((practice.clone(), line.clone()));
        }
    }
    let granted: BTreeSet<(String, String)> = principal
        .bindings
        .iter()
        .filter(|binding| binding.grants.contains(&question.permission))
        .filter_map(|binding| match &binding.scope {
            Scope::Resource { kind, id } => Some((kind.clone(), id.clone())),
            _ => None,
        })
        .collect();
    for (kind, id) in granted {
        if ask(Place {
            resource: Some((kind.clone(), id.clone())),
            ..Place::default()
        })? {
            found.resources.push((kind, id));
        }
    }
    Ok(found)
}
