#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a broken rule must panic
//! The wire (names, errors, the table of codes), then an in-process cluster of domains over
//! one store (`fake.rs`, `mem_store.rs`): routing (`routing.rs`) and what a cluster changes
//! for logs, steps and the outbox (`ownership.rs`).

mod fake;
mod mem_store;
mod ownership;
mod routing;

use std::collections::HashSet;
use std::path::Path;

use super::registry::ROUTES;
use super::{EXISTS, notify};
use crate::error::{CODES, Error, StoreError, THINGS};

#[test]
fn route_names_are_unique_per_kind_and_apart_from_node_calls() {
    let mut seen = HashSet::new();
    for (kind, name) in ROUTES {
        assert!(seen.insert((*kind, *name)), "{kind}/{name} twice");
        assert!(
            *name != EXISTS && *name != notify::NAME,
            "{name} is a node-level call"
        );
    }
    assert_eq!(ROUTES.len(), 44, "every routed message is listed once");
}

#[test]
fn every_error_crosses_unchanged() {
    let errors = [
        Error::invalid("bad"),
        Error::conflict("already_friends", "friends already"),
        Error::NotFound("binding request"),
        Error::Forbidden("members only".into()),
        Error::Storage(StoreError::Fenced {
            log: "a:x".into(),
            epoch: 1,
            now: 2,
        }),
        Error::Storage(StoreError::ClaimTaken("email:a@b.c".into())),
        Error::Storage(StoreError::LogMoved {
            log: "a:x".into(),
            expected: 3,
            head: None,
        }),
        Error::Unavailable("later".into()),
        Error::Internal("bug".into()),
    ];
    for e in errors {
        let json = serde_json::to_vec(&e.to_wire()).unwrap();
        let back = Error::from_wire(serde_json::from_slice(&json).unwrap());
        assert_eq!(back.to_wire(), e.to_wire());
        assert_eq!(back.to_string(), e.to_string());
    }
}

#[test]
fn an_unknown_code_is_an_internal_error_not_a_guess() {
    let wire = Error::Invalid {
        code: "from_a_newer_node",
        message: "?".into(),
    }
    .to_wire();
    assert!(matches!(Error::from_wire(wire), Error::Internal(_)));
    let wire = Error::NotFound("gizmo").to_wire();
    assert!(matches!(Error::from_wire(wire), Error::Internal(_)));
}

/// The string literals that follow `marker` in `text`.
fn literals_after<'a>(text: &'a str, marker: &str) -> Vec<&'a str> {
    text.match_indices(marker)
        .filter_map(|(at, _)| {
            let rest = text[at + marker.len()..].trim_start();
            let rest = rest.strip_prefix('"')?;
            rest.split_once('"').map(|(lit, _)| lit)
        })
        .filter(|lit| {
            !lit.is_empty()
                && lit
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b' ')
        })
        .collect()
}

fn sources(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// Every code and thing an error of the domain (or of the server's checks, which build
/// domain errors too) is made with is in the tables an error from another node is read
/// back with.
#[test]
fn every_code_in_the_crate_is_known() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts = Vec::new();
    sources(&root.join("src"), &mut texts);
    sources(&root.join("../src"), &mut texts);
    let mut codes = HashSet::new();
    let mut things = HashSet::new();
    for text in &texts {
        codes.extend(literals_after(text, "code: "));
        codes.extend(literals_after(text, "Error::conflict("));
        things.extend(literals_after(text, "NotFound("));
    }
    codes.extend(["email_taken", "phone_taken", "handle_taken"]);
    // This file's own examples of unknown ones.
    codes.remove("from_a_newer_node");
    things.remove("gizmo");
    for code in codes {
        assert!(
            CODES.contains(&code),
            "code {code:?} missing from error::CODES"
        );
    }
    for thing in things {
        assert!(
            THINGS.contains(&thing),
            "{thing:?} missing from error::THINGS"
        );
    }
}
