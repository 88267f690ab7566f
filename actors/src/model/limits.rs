//! Every limit on what a client sends, and the rule that checks it.
//!
//! Each input is checked once, where it enters the server (the HTTP handler or WebSocket
//! session that parsed it), with the rule here; the facade ([`crate::Chorus`]) and the actors
//! take it as checked. Actors check only rules that need their state (a member, a friend, the
//! size of a merged profile, an account's number of links).

use std::collections::BTreeMap;

use super::account::{Claim, Profile, normalize_email, normalize_phone};
use crate::error::{Error, Result};

/// Most fields of a profile, so one account cannot make every friend's fan-out heavy.
pub const MAX_PROFILE_FIELDS: usize = 32;
/// Longest profile field name.
pub const MAX_FIELD_NAME: usize = 64;
/// Longest profile field value, in characters.
pub const MAX_FIELD_VALUE: usize = 1024;
/// Most platform links one account may hold.
pub const MAX_LINKS: usize = 32;
/// Longest group or community name.
pub const MAX_NAME: usize = 128;
/// Longest chat message or dynamic text.
pub const MAX_TEXT: usize = 4096;
/// Longest binding-request note.
pub const MAX_NOTE: usize = 512;
/// Longest dynamic kind.
pub const MAX_KIND: usize = 32;
/// Longest activity text, in characters.
pub const MAX_ACTIVITY_TEXT: usize = 5000;
/// Longest client idempotency key, in characters.
pub const MAX_IDEMPOTENCY_KEY: usize = 128;
/// Most items one page of a list holds.
pub const MAX_PAGE: usize = 200;
/// Items of a page when the client does not say.
pub const DEFAULT_PAGE: usize = 50;
/// Most events one read of an event log answers (`resume` pages, `GET .../events`).
pub const MAX_EVENTS_PAGE: usize = 1000;
/// Events of a group log read when the client does not say.
pub const DEFAULT_EVENTS_PAGE: usize = 100;
/// Most contacts one upload may carry.
pub const MAX_CONTACTS: usize = 1000;

/// A profile field name and value against the limits.
pub fn check_field(name: &str, value: &str) -> Result<()> {
    let name_ok = !name.is_empty()
        && name.len() <= MAX_FIELD_NAME
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if !name_ok {
        return Err(Error::invalid(format!(
            "profile field name {name:?} must match [a-z0-9_]{{1,{MAX_FIELD_NAME}}}"
        )));
    }
    if value.chars().count() > MAX_FIELD_VALUE {
        return Err(Error::invalid(format!(
            "profile field {name:?} is longer than {MAX_FIELD_VALUE} characters"
        )));
    }
    if name == "display_name" && value.trim().is_empty() {
        return Err(Error::invalid("display_name must not be empty"));
    }
    Ok(())
}

/// Checks one field and normalises it if it has a meaning (`email`, `phone`).
fn normalize_field(name: &str, value: &mut String) -> Result<()> {
    check_field(name, value)?;
    match name {
        "email" => *value = normalize_email(value)?,
        "phone" => *value = normalize_phone(value)?,
        _ => {}
    }
    Ok(())
}

/// At most [`MAX_PROFILE_FIELDS`] fields (a new profile, or one after a patch).
pub fn check_profile_size(profile: &Profile) -> Result<()> {
    if profile.len() > MAX_PROFILE_FIELDS {
        return Err(Error::invalid(format!(
            "a profile has at most {MAX_PROFILE_FIELDS} fields"
        )));
    }
    Ok(())
}

/// A new account's profile: checks every limit and normalises `email` and `phone` in place.
pub fn normalize_profile(profile: &mut Profile) -> Result<()> {
    check_profile_size(profile)?;
    for (name, value) in profile.iter_mut() {
        normalize_field(name, value)?;
    }
    if !profile.contains_key("display_name") {
        return Err(Error::invalid("profile.display_name is required"));
    }
    Ok(())
}

/// A profile patch (`None` clears a field): sets at least one field, does not clear
/// `display_name`, and every value it sets is checked and normalised. The size of the merged
/// profile is the account actor's to check.
pub fn normalize_patch(changes: &mut BTreeMap<String, Option<String>>) -> Result<()> {
    if changes.is_empty() {
        return Err(Error::invalid("the patch sets no field"));
    }
    if matches!(changes.get("display_name"), Some(None)) {
        return Err(Error::invalid("display_name cannot be cleared"));
    }
    for (name, value) in changes.iter_mut() {
        if let Some(value) = value {
            normalize_field(name, value)?;
        }
    }
    Ok(())
}

/// A group or community name: trimmed, 1 to [`MAX_NAME`] characters.
pub fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(Error::invalid(format!(
            "name must have 1 to {MAX_NAME} characters"
        )));
    }
    Ok(name.to_owned())
}

/// A chat message or dynamic text: 1 to [`MAX_TEXT`] characters, not only white space.
pub fn check_text(text: &str) -> Result<()> {
    if text.trim().is_empty() || text.chars().count() > MAX_TEXT {
        return Err(Error::invalid(format!(
            "text must have 1 to {MAX_TEXT} characters"
        )));
    }
    Ok(())
}

/// A binding request's note: at most [`MAX_NOTE`] characters.
pub fn check_note(note: Option<&str>) -> Result<()> {
    if note.is_some_and(|n| n.chars().count() > MAX_NOTE) {
        return Err(Error::invalid(format!(
            "note has at most {MAX_NOTE} characters"
        )));
    }
    Ok(())
}

/// A dynamic's kind: `[a-z0-9_.-]{1,32}`.
pub fn check_kind(kind: &str) -> Result<()> {
    let ok = !kind.is_empty()
        && kind.len() <= MAX_KIND
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '.' | '-'));
    if !ok {
        return Err(Error::invalid("kind must match [a-z0-9_.-]{1,32}"));
    }
    Ok(())
}

/// An activity: text of 1 to [`MAX_ACTIVITY_TEXT`] characters, not blank, no NUL; an
/// idempotency key of 1 to [`MAX_IDEMPOTENCY_KEY`] characters, none a control character.
pub fn check_post(text: &str, idempotency_key: Option<&str>) -> Result<()> {
    let chars = text.chars().count();
    if text.trim().is_empty() || chars > MAX_ACTIVITY_TEXT {
        return Err(Error::invalid(format!(
            "text must have 1 to {MAX_ACTIVITY_TEXT} characters and not be blank"
        )));
    }
    if text.contains('\0') {
        return Err(Error::invalid("text must not contain NUL characters"));
    }
    if let Some(key) = idempotency_key {
        let n = key.chars().count();
        if n == 0 || n > MAX_IDEMPOTENCY_KEY || key.chars().any(char::is_control) {
            return Err(Error::invalid(format!(
                "idempotency_key must have 1 to {MAX_IDEMPOTENCY_KEY} characters, none a control character"
            )));
        }
    }
    Ok(())
}

/// How many events a client may read at once from a group's log (default
/// [`DEFAULT_EVENTS_PAGE`], 1 to [`MAX_EVENTS_PAGE`]).
pub fn events_limit(limit: Option<usize>) -> Result<usize> {
    let limit = limit.unwrap_or(DEFAULT_EVENTS_PAGE);
    if !(1..=MAX_EVENTS_PAGE).contains(&limit) {
        return Err(Error::invalid(format!(
            "limit must be a number from 1 to {MAX_EVENTS_PAGE}"
        )));
    }
    Ok(limit)
}

/// An upload of `count` contacts: at most [`MAX_CONTACTS`].
pub fn check_contacts(count: usize) -> Result<()> {
    if count > MAX_CONTACTS {
        return Err(Error::invalid(format!(
            "at most {MAX_CONTACTS} contacts per upload"
        )));
    }
    Ok(())
}

/// The claim an uploaded contact would match, if its value normalises: `kind` is `email`,
/// `phone` or `platform` (then `platform` must be one of `platforms`, the ones this server
/// knows). A value that does not normalise (a malformed number in someone's address book)
/// simply matches nobody.
pub fn contact_claim(
    kind: &str,
    value: &str,
    platform: Option<&str>,
    platforms: &[&str],
) -> Result<Option<Claim>> {
    Ok(match kind {
        "email" => normalize_email(value).ok().map(|e| Claim::email(&e)),
        "phone" => normalize_phone(value).ok().map(|p| Claim::phone(&p)),
        "platform" => {
            let platform = platform
                .ok_or_else(|| Error::invalid("a platform contact needs a \"platform\" field"))?;
            if !platforms.contains(&platform) {
                return Err(Error::Invalid {
                    code: "unknown_platform",
                    message: format!("no connector for platform {platform:?}"),
                });
            }
            (!value.trim().is_empty()).then(|| Claim::handle(platform, value))
        }
        other => {
            return Err(Error::invalid(format!(
                "contact kind {other:?} is not one of email, phone, platform"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_names_are_checked() {
        assert!(check_field("Bad-Name", "x").is_err());
        assert!(check_field("display_name", "  ").is_err());
        assert!(check_field("bio", &"x".repeat(MAX_FIELD_VALUE + 1)).is_err());
        assert!(check_field("bio", "fine").is_ok());
    }

    #[test]
    fn patches_normalise_what_they_set() {
        let mut empty = BTreeMap::new();
        assert!(normalize_patch(&mut empty).is_err());
        let mut clear_name = BTreeMap::from([("display_name".to_owned(), None)]);
        assert!(normalize_patch(&mut clear_name).is_err());
        let mut patch = BTreeMap::from([
            ("email".to_owned(), Some(" Ann@Example.COM ".to_owned())),
            ("bio".to_owned(), None),
        ]);
        assert!(normalize_patch(&mut patch).is_ok());
        assert_eq!(patch["email"].as_deref(), Some("ann@example.com"));
    }

    #[test]
    fn texts_names_and_kinds() {
        assert_eq!(check_name("  g  ").ok().as_deref(), Some("g"));
        assert!(check_name(" ").is_err());
        assert!(check_text(&"x".repeat(MAX_TEXT + 1)).is_err());
        assert!(check_kind("post.v1").is_ok());
        assert!(check_kind("Post").is_err());
        assert!(check_post("hi\0", None).is_err());
        assert!(check_post("hi", Some("")).is_err());
        assert!(events_limit(Some(0)).is_err());
        assert!(check_contacts(MAX_CONTACTS + 1).is_err());
        let known = ["webhook"];
        assert!(contact_claim("fax", "1", None, &known).is_err());
        assert!(contact_claim("platform", "h", Some("myspace"), &known).is_err());
        assert!(matches!(
            contact_claim("phone", "nope", None, &known),
            Ok(None)
        ));
        assert!(matches!(
            contact_claim("platform", "@H", Some("webhook"), &known),
            Ok(Some(_))
        ));
        assert_eq!(events_limit(None).ok(), Some(DEFAULT_EVENTS_PAGE));
    }
}
