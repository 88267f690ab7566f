//! The JSON request bodies: the bytes of a body, read by `chorus::http::parse_body` (the one
//! parser behind the `Body` extractor) as every type a handler asks for. It must never panic,
//! must refuse with `bad_json` (never another error) whatever is not one of those objects, and
//! must never take a body that is not a JSON object (an array would fill a struct by
//! position).
#![no_main]

use chorus::error::Error;
use chorus::http::{
    accounts, activities, communities, friends, groups, parse_body, platforms, proofs,
};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// Reads `bytes` as `T` and checks the answer against what `bytes` are.
fn check<T: serde::de::DeserializeOwned>(bytes: &[u8], is_object: bool) {
    match parse_body::<T>(bytes) {
        Ok(_) => assert!(is_object, "a body that is not a JSON object was taken"),
        Err(Error::BadJson(_)) => {}
        Err(other) => panic!("a bad body answered {other:?}, not bad_json"),
    }
}

fuzz_target!(|bytes: &[u8]| {
    let is_object = matches!(serde_json::from_slice::<Value>(bytes), Ok(Value::Object(_)));
    // PATCH /v1/me/profile reads any object.
    check::<Map<String, Value>>(bytes, is_object);
    check::<accounts::NewAccount>(bytes, is_object);
    check::<accounts::Login>(bytes, is_object);
    check::<activities::NewActivity>(bytes, is_object);
    // A group's and a community's creation both read `groups::NewName`, and a community's
    // members `groups::NewMember`, as their handlers do.
    check::<communities::NewDynamic>(bytes, is_object);
    check::<communities::NewBindingRequest>(bytes, is_object);
    check::<friends::NewRequest>(bytes, is_object);
    check::<friends::Contacts>(bytes, is_object);
    check::<groups::NewName>(bytes, is_object);
    check::<groups::NewMember>(bytes, is_object);
    check::<groups::NewMessage>(bytes, is_object);
    check::<platforms::NewLink>(bytes, is_object);
    check::<proofs::Code>(bytes, is_object);
});
