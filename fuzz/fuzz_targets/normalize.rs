//! Profile and contact normalisation (`chorus_actors::model::limits` and `account`):
//! `normalize_email`, `normalize_phone`, `normalize_handle`, `normalize_patch`,
//! `normalize_profile`, `contact_claim` and the `check_*` rules.
//!
//! Besides "no panic", for whatever a rule accepts: normalising again changes nothing
//! (idempotent), the result is within the documented limits, and every uniqueness claim built
//! from it fits an engine key (fjall asserts keys of at most `u16::MAX` bytes; a ScyllaDB
//! partition key has the same bound).
//!
//! The input is text, one field a line, so seeds and crashes read as they are (see
//! fuzz/README.md): the first line names the rule, the next lines are its arguments. A line
//! `UNIT\t*N` stands for UNIT repeated N times (at most 256 KiB in all), so a short input can
//! be a long value: lengths are where keys overflow.
#![no_main]

use std::collections::BTreeMap;

use chorus_actors::model::limits::{
    self, MAX_FIELD_VALUE, MAX_IDEMPOTENCY_KEY, MAX_KIND, MAX_NAME, MAX_NOTE, MAX_PROFILE_FIELDS,
    MAX_TEXT,
};
use chorus_actors::model::{
    Claim, Profile, login_claims_of, normalize_email, normalize_handle, normalize_phone,
};
use libfuzzer_sys::fuzz_target;

/// The longest key either engine takes.
const MAX_KEY: usize = u16::MAX as usize;
/// The platforms a server with every connector knows.
const PLATFORMS: [&str; 3] = ["webhook", "mastodon", "email"];
/// Longest value an input may expand to.
const MAX_EXPANDED: usize = 256 * 1024;

/// A line as a value: `UNIT\t*N` is UNIT N times, anything else itself.
fn value(line: &str) -> String {
    if let Some((unit, n)) = line.rsplit_once("\t*")
        && let Ok(n) = n.parse::<usize>()
    {
        let n = n.min(MAX_EXPANDED / unit.len().max(1));
        return unit.repeat(n);
    }
    line.to_owned()
}

fn claim_fits(claim: &Claim) {
    assert!(
        claim.0.len() <= MAX_KEY,
        "a claim of {} bytes was built from accepted input",
        claim.0.len()
    );
}

/// A login email or phone: at most `max` bytes once accepted, normalising to itself, its
/// claim a key.
fn login_field(
    raw: &str,
    max: usize,
    normalize: fn(&str) -> chorus_actors::error::Result<String>,
    claim: fn(&str) -> Claim,
) {
    if let Ok(n) = normalize(raw) {
        assert!(n.len() <= max, "{n:?} is longer than {max} bytes");
        assert_eq!(normalize(&n).ok().as_ref(), Some(&n), "not idempotent");
        claim_fits(&claim(&n));
    }
}

fn handle(platform: &str, raw: &str) {
    let once = normalize_handle(platform, raw);
    assert_eq!(
        normalize_handle(platform, &once),
        once,
        "handle not idempotent"
    );
}

/// A profile value as accepted: within the field limits and, for email and phone, already in
/// normal form.
fn field_fits(name: &str, value: &str) {
    assert!(
        limits::check_field(name, value).is_ok(),
        "{name:?} accepted, then refused"
    );
    assert!(value.chars().count() <= MAX_FIELD_VALUE);
    match name {
        "email" => assert_eq!(normalize_email(value).ok().as_deref(), Some(value)),
        "phone" => assert_eq!(normalize_phone(value).ok().as_deref(), Some(value)),
        _ => {}
    }
}

fn patch(args: &[&str]) {
    let mut changes: BTreeMap<String, Option<String>> = args
        .chunks(2)
        .map(|pair| {
            let name = value(pair[0]);
            // `~` (or a missing value) clears the field.
            let v = pair.get(1).filter(|v| **v != "~").map(|v| value(v));
            (name, v)
        })
        .collect();
    if accepted_twice(&mut changes, limits::normalize_patch) {
        assert!(!matches!(changes.get("display_name"), Some(None)));
        let set: Profile = changes
            .iter()
            .filter_map(|(k, v)| Some((k.clone(), v.clone()?)))
            .collect();
        profile_fits(&set);
    }
}

/// Normalises `value`; if accepted, normalising again must be accepted and change nothing.
fn accepted_twice<T: Clone + PartialEq + std::fmt::Debug>(
    value: &mut T,
    normalize: fn(&mut T) -> chorus_actors::error::Result<()>,
) -> bool {
    if normalize(value).is_err() {
        return false;
    }
    let mut again = value.clone();
    assert!(normalize(&mut again).is_ok(), "accepted, then refused");
    assert_eq!(&again, value, "not idempotent");
    true
}

/// Every field of an accepted profile (or of what a patch sets) within the limits, and its
/// login claims keys.
fn profile_fits(profile: &Profile) {
    for (name, v) in profile {
        field_fits(name, v);
    }
    login_claims_of(profile).iter().for_each(claim_fits);
}

fn profile(args: &[&str]) {
    let mut profile: Profile = args
        .chunks(2)
        .map(|pair| {
            (
                value(pair[0]),
                pair.get(1).map_or_else(String::new, |v| value(v)),
            )
        })
        .collect();
    if accepted_twice(&mut profile, limits::normalize_profile) {
        assert!(profile.len() <= MAX_PROFILE_FIELDS && profile.contains_key("display_name"));
        profile_fits(&profile);
    }
}

/// A contact, and the same value repeated to [`MAX_EXPANDED`] bytes: a request may carry a
/// value that long once `--body-limit` is raised, and the claim must still fit a key (the
/// default 64 KiB limit already let 22,000 × "İ" through, 66 KB once lower-cased).
fn contact(kind: &str, raw: &str, platform: Option<&str>) {
    if let Ok(Some(claim)) = limits::contact_claim(kind, raw, platform, &PLATFORMS) {
        claim_fits(&claim);
        let stretched = raw.repeat(MAX_EXPANDED / raw.len().max(1));
        if let Ok(Some(claim)) = limits::contact_claim(kind, &stretched, platform, &PLATFORMS) {
            claim_fits(&claim);
        }
    }
}

fn checks(rule: &str, a: &str, b: Option<&str>) {
    let chars = |s: &str| s.chars().count();
    match rule {
        "name" => {
            if let Ok(n) = limits::check_name(a) {
                assert!(chars(&n) <= MAX_NAME && !n.is_empty());
                assert_eq!(
                    limits::check_name(&n).ok().as_ref(),
                    Some(&n),
                    "name not idempotent"
                );
            }
        }
        "text" => {
            if limits::check_text(a).is_ok() {
                assert!(chars(a) <= MAX_TEXT);
            }
        }
        "kind" => {
            if limits::check_kind(a).is_ok() {
                assert!(a.len() <= MAX_KIND);
            }
        }
        "note" => {
            if limits::check_note(Some(a)).is_ok() {
                assert!(chars(a) <= MAX_NOTE);
            }
        }
        "post" => {
            if limits::check_post(a, b).is_ok() {
                // The idempotency key is part of a stored key.
                assert!(b.is_none_or(|k| chars(k) <= MAX_IDEMPOTENCY_KEY && k.len() <= 4 * 128));
            }
        }
        _ => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let lines: Vec<&str> = text.split('\n').collect();
    let (rule, args) = lines.split_first().map_or(("", &[][..]), |(r, a)| (*r, a));
    let arg = |i: usize| args.get(i).map(|l| value(l));
    let first = arg(0).unwrap_or_default();
    match rule {
        "email" => login_field(&first, 254, normalize_email, Claim::email),
        "phone" => login_field(&first, 16, normalize_phone, Claim::phone),
        "handle" => handle(&first, &arg(1).unwrap_or_default()),
        "patch" => patch(args),
        "profile" => profile(args),
        "contact" => contact(&first, &arg(1).unwrap_or_default(), arg(2).as_deref()),
        _ => checks(rule, &first, arg(1).as_deref()),
    }
});
