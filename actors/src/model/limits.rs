//! Every limit on what a client sends, and the rule that checks it.
//!
//! Each input is checked once, where it enters the server (the HTTP handler or WebSocket
//! session that parsed it), with the rule here; the facade ([`crate::Chorus`]) and the actors
//! take it as checked. Actors check only rules that need their state (a member, a friend, the
//! size of a merged profile, an account's number of links).
//!
//! Every value a store key is built from (ids, cursors, handles, contact values, logins) has
//! a bound here, measured after normalisation (lower-casing can grow a string: "İ" is two
//! bytes and lower-cases to three), and independent of the body limit: a server started with
//! a larger `--body-limit` builds no longer keys. The stores refuse an over-long key on their
//! own as well ([`crate::StoreError::KeyTooLong`]), but that is a 500; these rules make it a
//! 400 or a 404 before any lookup.

use std::collections::BTreeMap;

use super::account::{Claim, Profile, normalize_email, normalize_handle, normalize_phone};
use super::ids::{ID_LEN, is_id};
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

/// Groups a WebSocket `hello` lists (the first by id) and a `resume` may name in one frame:
/// each costs a read of the group's head at connect time. An account in more groups is told
/// so (`hello`'s `groups_more`) and reads the others' events over HTTP
/// (`GET /v1/groups/{gid}/events?after=N`).
pub const MAX_CURSOR_GROUPS: usize = 256;
/// Events of a group log read when the client does not say.
pub const DEFAULT_EVENTS_PAGE: usize = 100;
/// Most contacts one upload may carry.
pub const MAX_CONTACTS: usize = 1000;
/// Longest platform handle, in characters, as given (trimmed) and once normalised.
pub const MAX_HANDLE: usize = 128;
/// Longest email or phone contact value, in characters; longer than any login (an email has
/// at most 254 bytes) so a longer one is a client's mistake, not an address book entry.
pub const MAX_CONTACT_VALUE: usize = 256;
/// Longest `login` of `POST /v1/sessions`, in characters (an email, a phone or an id).
pub const MAX_LOGIN: usize = 256;
/// Longest list cursor: the ms (at most 20 digits), a dot and an id.
pub const MAX_CURSOR: usize = 20 + 1 + ID_LEN;

/// An id the client names (in a path or a body): one this server could have made, or it
/// names nothing (404 `not_found`, the contract's answer for an unknown id, with `what`
/// saying what was not found). Checked before any lookup, so an ill-shaped id, however long,
/// never becomes a store key.
pub fn check_id(what: &'static str, id: &str) -> Result<()> {
    if is_id(id) {
        Ok(())
    } else {
        Err(Error::NotFound(what))
    }
}

/// A list's `before` cursor: at most [`MAX_CURSOR`] bytes, `{ms}.{id}` with an id of the
/// server's shape. Anything else was not handed out by a list (400 `invalid_input`).
pub fn check_cursor(cursor: &str) -> Result<()> {
    let ok = cursor.len() <= MAX_CURSOR
        && cursor
            .split_once('.')
            .is_some_and(|(ms, id)| ms.parse::<u64>().is_ok() && is_id(id));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid("before is not a cursor this list returned"))
    }
}

/// A platform handle: trimmed, 1 to [`MAX_HANDLE`] characters both as given and once
/// normalised (lower-casing may add characters). Answers the trimmed handle.
pub fn check_handle(platform: &str, handle: &str) -> Result<String> {
    let handle = handle.trim();
    let ok = !handle.is_empty()
        && handle.chars().count() <= MAX_HANDLE
        && normalize_handle(platform, handle).chars().count() <= MAX_HANDLE;
    if !ok {
        return Err(Error::invalid(format!(
            "handle must have 1 to {MAX_HANDLE} characters"
        )));
    }
    Ok(handle.to_owned())
}

/// A login of `POST /v1/sessions`: at most [`MAX_LOGIN`] characters (a longer one is no
/// email, phone or id, and would only fill the login rate limiter's table).
pub fn check_login(login: &str) -> Result<()> {
    if login.chars().count() > MAX_LOGIN {
        return Err(Error::invalid(format!(
            "login has at most {MAX_LOGIN} characters"
        )));
    }
    Ok(())
}

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
/// simply matches nobody. A value over its limit (an email or phone over
/// [`MAX_CONTACT_VALUE`] characters, a handle over [`MAX_HANDLE`] as given or normalised) is
/// `invalid_input`: it is no one's, and must never become a lookup key.
pub fn contact_claim(
    kind: &str,
    value: &str,
    platform: Option<&str>,
    platforms: &[&str],
) -> Result<Option<Claim>> {
    if matches!(kind, "email" | "phone") && value.chars().count() > MAX_CONTACT_VALUE {
        return Err(Error::invalid(format!(
            "a contact value has at most {MAX_CONTACT_VALUE} characters"
        )));
    }
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
            if value.trim().is_empty() {
                return Ok(None);
            }
            let handle = check_handle(platform, value).map_err(|_| {
                Error::invalid(format!(
                    "a platform contact has at most {MAX_HANDLE} characters"
                ))
            })?;
            Some(Claim::handle(platform, &handle))
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

    /// The reproduction of issue 13: 22,000 × "İ" is 44 KB as sent and 66 KB lower-cased.
    #[test]
    fn key_inputs_are_bounded_after_normalisation() {
        let known = ["webhook"];
        let huge = "İ".repeat(22_000);
        assert!(contact_claim("platform", &huge, Some("webhook"), &known).is_err());
        assert!(contact_claim("email", &huge, None, &known).is_err());
        assert!(contact_claim("phone", &"1".repeat(MAX_CONTACT_VALUE + 1), None, &known).is_err());
        // 100 × "İ" is 100 characters as given but 200 once lower-cased.
        assert!(check_handle("webhook", &"İ".repeat(100)).is_err());
        assert!(check_handle("webhook", &"é".repeat(MAX_HANDLE)).is_ok());
        assert!(check_handle("webhook", "  ").is_err());
        assert!(check_login(&"a".repeat(MAX_LOGIN + 1)).is_err());
        assert!(check_login("ann@example.com").is_ok());
    }

    #[test]
    fn ids_and_cursors_have_the_servers_shape() {
        let id = crate::model::new_id();
        assert!(check_id("account", &id).is_ok());
        assert!(matches!(
            check_id("account", &"a".repeat(70_000)),
            Err(Error::NotFound("account"))
        ));
        assert!(check_id("group", "nope").is_err());
        assert!(check_cursor(&format!("{}.{id}", u64::MAX)).is_ok());
        assert!(check_cursor(&format!("12.{}", "a".repeat(70_000))).is_err());
        assert!(check_cursor("12.x").is_err());
        assert!(check_cursor(&format!("x.{id}")).is_err());
    }
}
