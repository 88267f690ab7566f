//! Accounts and personal info: creation, login, /v1/me, PATCH /v1/me/profile,
//! GET /v1/accounts/{id}, and the validation rules for all of them.

use crate::support::*;
use reqwest::Method;
use serde_json::{Value, json};

fn create_body(profile: Value) -> Value {
    json!({ "password": PASSWORD, "profile": profile })
}

async fn create(server: &Server, body: &Value) -> Resp {
    post(server, "/v1/accounts", None, body).await
}

#[tokio::test]
async fn create_account_and_read_me() {
    let s = Server::start();
    let profile = json!({
        "display_name": "Alice",
        "email": "alice@example.com",
        "phone": "+15550100001",
        "city": "Lisbon",
        "favourite_color": "teal"
    });
    let r = create(&s, &create_body(profile.clone())).await;
    let body = r.expect(201).clone();
    let obj = body.as_object().unwrap();
    let id = obj["account_id"]
        .as_str()
        .expect("account_id string")
        .to_string();
    let token = obj["token"].as_str().expect("token string").to_string();
    assert!(!id.is_empty());
    assert!(!token.is_empty());

    let me = get(&s, "/v1/me", Some(&token)).await;
    let me = me.expect(200);
    assert_eq!(me["account_id"], json!(id));
    assert_eq!(me["profile"], profile);
    assert!(me["profile_version"].is_u64(), "profile_version: {me}");
    assert_eq!(me["platforms"], json!([]));

    // the account is visible to itself through /v1/accounts/{id}, email/phone included
    let r = get(&s, &format!("/v1/accounts/{id}"), Some(&token)).await;
    let v = r.expect(200);
    assert_eq!(v["account_id"], json!(id));
    assert_eq!(v["profile"], profile);
    assert_eq!(v["profile_version"], me["profile_version"]);
}

#[tokio::test]
async fn two_accounts_get_distinct_ids_and_tokens() {
    let s = Server::start();
    let (a, ta) = register(&s, "A", None, None).await;
    let (b, tb) = register(&s, "B", None, None).await;
    assert_ne!(a, b);
    assert_ne!(ta, tb);
    assert_eq!(
        get(&s, "/v1/me", Some(&ta)).await.expect(200)["account_id"],
        json!(a)
    );
    assert_eq!(
        get(&s, "/v1/me", Some(&tb)).await.expect(200)["account_id"],
        json!(b)
    );
}

#[tokio::test]
async fn login_by_account_id_email_and_phone() {
    let s = Server::start();
    let (id, token) = register(&s, "Bob", Some("bob@example.com"), Some("+15550100002")).await;

    for login_name in [id.as_str(), "bob@example.com", "+15550100002"] {
        let r = login(&s, login_name, PASSWORD).await;
        let body = r.expect(200);
        assert_eq!(body["account_id"], json!(id), "login with {login_name}");
        let t = body["token"].as_str().expect("token").to_string();
        assert!(!t.is_empty());
        let me = get(&s, "/v1/me", Some(&t)).await;
        assert_eq!(me.expect(200)["account_id"], json!(id));
    }
    // the original token keeps working after new sessions
    let me = get(&s, "/v1/me", Some(&token)).await;
    assert_eq!(me.expect(200)["account_id"], json!(id));
}

#[tokio::test]
async fn login_failures_are_invalid_credentials() {
    let s = Server::start();
    let (id, _t) = register(&s, "Carol", Some("carol@example.com"), None).await;
    login(&s, &id, "wrong password!")
        .await
        .expect_error(401, "invalid_credentials");
    login(&s, "carol@example.com", "wrong password!")
        .await
        .expect_error(401, "invalid_credentials");
    login(&s, "nobody@example.com", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    login(&s, "no-such-account-id", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    // malformed login bodies
    post(&s, "/v1/sessions", None, &json!({"login": id}))
        .await
        .expect_error(400, "bad_json");
    post(
        &s,
        "/v1/sessions",
        None,
        &json!({"login": 5, "password": PASSWORD}),
    )
    .await
    .expect_error(400, "bad_json");
    send_raw(
        &s,
        Method::POST,
        "/v1/sessions",
        None,
        "{\"login\":",
        Some("application/json"),
    )
    .await
    .expect_error(400, "bad_json");
    assert_healthy(&s).await;
    // still works with the right password
    login(&s, &id, PASSWORD).await.expect(200);
}

#[tokio::test]
async fn bad_json_when_creating_accounts() {
    let s = Server::start();
    let cases: Vec<(&str, String)> = vec![
        ("truncated", "{\"password\": \"longenough\", \"profile\": {".into()),
        ("not json", "hello there".into()),
        ("array", "[1,2,3]".into()),
        (
            // an array that fits the struct by position must not be read as one
            "positional array",
            json!([PASSWORD, {"display_name": "X", "email": "bj1@example.com"}]).to_string(),
        ),
        ("empty body", "".into()),
        (
            "missing password",
            json!({"profile": {"display_name": "X", "email": "bj1@example.com"}}).to_string(),
        ),
        ("missing profile", json!({"password": PASSWORD}).to_string()),
        (
            "password is a number",
            json!({"password": 12345678, "profile": {"display_name": "X", "email": "bj2@example.com"}})
                .to_string(),
        ),
        (
            "profile is a string",
            json!({"password": PASSWORD, "profile": "X"}).to_string(),
        ),
    ];
    for (what, body) in cases {
        let r = send_raw(
            &s,
            Method::POST,
            "/v1/accounts",
            None,
            body,
            Some("application/json"),
        )
        .await;
        assert_eq!(r.status.as_u16(), 400, "{what}: {}", r.text);
        assert_error_shape(&r.body, "bad_json", &format!("{what}: {}", r.text));
    }
    assert_healthy(&s).await;
    // nothing was stored: those emails are still free and cannot log in
    for e in ["bj1@example.com", "bj2@example.com"] {
        login(&s, e, PASSWORD)
            .await
            .expect_error(401, "invalid_credentials");
    }
    register(&s, "Fine", Some("bj1@example.com"), None).await;
    register(&s, "Fine", Some("bj2@example.com"), None).await;
}

/// display_name is the one required profile field: leaving it out is a missing
/// required field (bad_json per the server conventions).
#[tokio::test]
async fn missing_display_name_is_rejected() {
    let s = Server::start();
    let r = create(&s, &create_body(json!({"email": "nodn@example.com"}))).await;
    r.expect_error(400, "bad_json");
    login(&s, "nodn@example.com", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    register(&s, "Now named", Some("nodn@example.com"), None).await;
}

#[tokio::test]
async fn invalid_input_when_creating_accounts() {
    let s = Server::start();
    let mut too_many = serde_json::Map::new();
    too_many.insert("display_name".into(), json!("Many"));
    too_many.insert("email".into(), json!("inv-many@example.com"));
    for i in 0..31 {
        too_many.insert(format!("f{i}"), json!("v"));
    }
    assert_eq!(too_many.len(), 33);

    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "empty display_name",
            create_body(json!({"display_name": "", "email": "inv1@example.com"})),
            "inv1@example.com",
        ),
        (
            "email without @",
            json!({"password": PASSWORD, "profile": {"display_name": "X", "email": "inv2.example.com", "phone": "+15550109001"}}),
            "+15550109001",
        ),
        (
            "phone without +",
            create_body(
                json!({"display_name": "X", "phone": "15550109002", "email": "inv3@example.com"}),
            ),
            "inv3@example.com",
        ),
        (
            "phone too short",
            create_body(
                json!({"display_name": "X", "phone": "+1234567", "email": "inv4@example.com"}),
            ),
            "inv4@example.com",
        ),
        (
            "phone too long",
            create_body(
                json!({"display_name": "X", "phone": "+1234567890123456", "email": "inv5@example.com"}),
            ),
            "inv5@example.com",
        ),
        (
            "phone with letters",
            create_body(
                json!({"display_name": "X", "phone": "+1555abc0000", "email": "inv6@example.com"}),
            ),
            "inv6@example.com",
        ),
        (
            "password too short",
            json!({"password": "1234567", "profile": {"display_name": "X", "email": "inv7@example.com"}}),
            "inv7@example.com",
        ),
        (
            "profile value is a number",
            create_body(json!({"display_name": "X", "email": "inv8@example.com", "age": 42})),
            "inv8@example.com",
        ),
        (
            "profile value is an object",
            create_body(
                json!({"display_name": "X", "email": "inv9@example.com", "nested": {"a": "b"}}),
            ),
            "inv9@example.com",
        ),
        (
            "33 profile fields",
            create_body(Value::Object(too_many)),
            "inv-many@example.com",
        ),
        (
            "uppercase key",
            create_body(json!({"display_name": "X", "email": "inv11@example.com", "Bad": "v"})),
            "inv11@example.com",
        ),
        (
            "dash in key",
            create_body(json!({"display_name": "X", "email": "inv12@example.com", "bad-key": "v"})),
            "inv12@example.com",
        ),
        (
            "key of 65 chars",
            create_body(
                json!({"display_name": "X", "email": "inv13@example.com", "k".repeat(65): "v"}),
            ),
            "inv13@example.com",
        ),
        (
            "empty key",
            create_body(json!({"display_name": "X", "email": "inv14@example.com", "": "v"})),
            "inv14@example.com",
        ),
        (
            "value of 1025 chars",
            create_body(
                json!({"display_name": "X", "email": "inv15@example.com", "bio": "b".repeat(1025)}),
            ),
            "inv15@example.com",
        ),
    ];
    for (what, body, login_name) in cases {
        let r = create(&s, &body).await;
        assert_eq!(r.status.as_u16(), 400, "{what}: {}", r.text);
        assert_error_shape(&r.body, "invalid_input", &format!("{what}: {}", r.text));
        // nothing stored: cannot log in with those details
        let l = login(
            &s,
            login_name,
            body["password"].as_str().unwrap_or(PASSWORD),
        )
        .await;
        assert_eq!(
            l.status.as_u16(),
            401,
            "{what}: login after rejected create: {}",
            l.text
        );
        assert_error_shape(&l.body, "invalid_credentials", &l.text);
        assert_healthy(&s).await;
    }
    // the emails / phones of the rejected attempts are still free
    register(&s, "Ok", Some("inv1@example.com"), Some("+15550109001")).await;
    register(&s, "Ok", Some("inv-many@example.com"), None).await;
    register(&s, "Ok", Some("inv15@example.com"), None).await;
}

#[tokio::test]
async fn boundary_values_are_accepted() {
    let s = Server::start();
    // exactly 32 fields, 64-char key, 1024-char value, 8-char password, 8 and 15 digit phones
    let mut profile = serde_json::Map::new();
    profile.insert("display_name".into(), json!("Edge"));
    profile.insert("email".into(), json!("edge@example.com"));
    profile.insert("phone".into(), json!("+12345678"));
    profile.insert("k".repeat(64), json!("v".repeat(1024)));
    profile.insert("a_b_0".into(), json!(""));
    let mut i = 0;
    while profile.len() < 32 {
        profile.insert(format!("extra_{i}"), json!(format!("value {i}")));
        i += 1;
    }
    let profile = Value::Object(profile);
    let r = create(&s, &json!({"password": "12345678", "profile": profile})).await;
    let id = r.expect(201)["account_id"].as_str().unwrap().to_string();
    let t = login(&s, "edge@example.com", "12345678").await;
    let token = t.expect(200)["token"].as_str().unwrap().to_string();
    let me = get(&s, "/v1/me", Some(&token)).await;
    assert_eq!(me.expect(200)["profile"], profile);
    assert_eq!(me.body["account_id"], json!(id));

    // 15-digit phone, given with spaces, dashes and parentheses
    let (id2, _) = register(&s, "Long phone", None, Some("+123 (456) 789-012345")).await;
    let r = login(&s, "+123456789012345", PASSWORD).await;
    assert_eq!(r.expect(200)["account_id"], json!(id2));
}

#[tokio::test]
async fn email_and_phone_must_be_unique() {
    let s = Server::start();
    let (first, _) = register(&s, "First", Some("dup@example.com"), Some("+15550100003")).await;

    let r = create(
        &s,
        &create_body(json!({"display_name": "Second", "email": "dup@example.com"})),
    )
    .await;
    r.expect_error(409, "email_taken");
    let r = create(
        &s,
        &create_body(
            json!({"display_name": "Third", "email": "third@example.com", "phone": "+15550100003"}),
        ),
    )
    .await;
    r.expect_error(409, "phone_taken");
    assert_healthy(&s).await;
    // the rejected third account was not stored
    login(&s, "third@example.com", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    // and the email still logs into the first account
    let r = login(&s, "dup@example.com", PASSWORD).await;
    assert_eq!(r.expect(200)["account_id"], json!(first));
    // third@example.com is free
    register(&s, "Third", Some("third@example.com"), None).await;
}

#[tokio::test]
async fn phone_uniqueness_uses_the_normalised_number() {
    let s = Server::start();
    let (first, _) = register(&s, "P1", None, Some("+1 (555) 010-0000")).await;
    // same number written differently
    let r = create(
        &s,
        &create_body(json!({"display_name": "P2", "phone": "+15550100000"})),
    )
    .await;
    r.expect_error(409, "phone_taken");
    // login with either spelling reaches the same account
    let r = login(&s, "+15550100000", PASSWORD).await;
    assert_eq!(r.expect(200)["account_id"], json!(first));
}

#[tokio::test]
async fn email_uniqueness_ignores_case() {
    let s = Server::start();
    register(&s, "E1", Some("case@example.com"), None).await;
    let r = create(
        &s,
        &create_body(json!({"display_name": "E2", "email": "CASE@Example.com"})),
    )
    .await;
    r.expect_error(409, "email_taken");
}

#[tokio::test]
async fn patch_profile_sets_and_clears_fields() {
    let s = Server::start();
    let (_, token) = register(&s, "Dora", Some("dora@example.com"), Some("+15550100004")).await;
    let me0 = get(&s, "/v1/me", Some(&token)).await.expect(200).clone();
    let v0 = me0["profile_version"].as_u64().unwrap();

    let r = patch(
        &s,
        "/v1/me/profile",
        Some(&token),
        &json!({"city": "Porto", "status": "hi"}),
    )
    .await;
    let v1 = r.expect(200)["profile_version"]
        .as_u64()
        .expect("profile_version");
    assert!(v1 > v0, "version must rise: {v0} -> {v1}");
    let me1 = get(&s, "/v1/me", Some(&token)).await.expect(200).clone();
    assert_eq!(me1["profile_version"], json!(v1));
    assert_eq!(
        me1["profile"],
        json!({"display_name": "Dora", "email": "dora@example.com", "phone": "+15550100004",
               "city": "Porto", "status": "hi"})
    );

    // null clears a field; other fields are untouched
    let r = patch(
        &s,
        "/v1/me/profile",
        Some(&token),
        &json!({"status": null, "display_name": "Dora D.", "phone": null}),
    )
    .await;
    let v2 = r.expect(200)["profile_version"].as_u64().unwrap();
    assert!(v2 > v1);
    let me2 = get(&s, "/v1/me", Some(&token)).await.expect(200).clone();
    assert_eq!(me2["profile_version"], json!(v2));
    assert_eq!(
        me2["profile"],
        json!({"display_name": "Dora D.", "email": "dora@example.com", "city": "Porto"})
    );
    // a cleared phone no longer logs in and is free for someone else
    login(&s, "+15550100004", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
    register(&s, "Other", None, Some("+15550100004")).await;
}

#[tokio::test]
async fn patch_email_and_phone_conflicts() {
    let s = Server::start();
    let (_, ta) = register(&s, "A", Some("a@example.com"), Some("+15550100005")).await;
    let (b, tb) = register(&s, "B", Some("b@example.com"), None).await;
    let before = get(&s, "/v1/me", Some(&tb)).await.expect(200).clone();

    patch(
        &s,
        "/v1/me/profile",
        Some(&tb),
        &json!({"email": "a@example.com"}),
    )
    .await
    .expect_error(409, "email_taken");
    patch(
        &s,
        "/v1/me/profile",
        Some(&tb),
        &json!({"phone": "+15550100005"}),
    )
    .await
    .expect_error(409, "phone_taken");
    // a conflicting field in a PATCH stores nothing of that PATCH
    patch(
        &s,
        "/v1/me/profile",
        Some(&tb),
        &json!({"city": "Faro", "phone": "+15550100005"}),
    )
    .await
    .expect_error(409, "phone_taken");
    let after = get(&s, "/v1/me", Some(&tb)).await.expect(200).clone();
    assert_eq!(after, before, "rejected PATCH changed the account");

    // A changes email: the old one becomes free, B can take it
    patch(
        &s,
        "/v1/me/profile",
        Some(&ta),
        &json!({"email": "a2@example.com"}),
    )
    .await
    .expect(200);
    patch(
        &s,
        "/v1/me/profile",
        Some(&tb),
        &json!({"email": "a@example.com"}),
    )
    .await
    .expect(200);
    let r = login(&s, "a@example.com", PASSWORD).await;
    assert_eq!(r.expect(200)["account_id"], json!(b));
    login(&s, "b@example.com", PASSWORD)
        .await
        .expect_error(401, "invalid_credentials");
}

#[tokio::test]
async fn rejected_patches_store_nothing() {
    let s = Server::start();
    let (_, token) = register(&s, "Eve", Some("eve@example.com"), None).await;
    patch(&s, "/v1/me/profile", Some(&token), &json!({"mood": "calm"}))
        .await
        .expect(200);
    let before = get(&s, "/v1/me", Some(&token)).await.expect(200).clone();
    // fill up to 32 fields: display_name, email, mood + 29
    let mut fill = serde_json::Map::new();
    for i in 0..29 {
        fill.insert(format!("f{i}"), json!("x"));
    }

    let invalid: Vec<(&str, Value)> = vec![
        ("empty object", json!({})),
        ("display_name null", json!({"display_name": null})),
        (
            "display_name empty",
            json!({"display_name": "", "mood": "angry"}),
        ),
        ("bad email", json!({"email": "nope", "mood": "angry"})),
        ("bad phone", json!({"phone": "555-0100", "mood": "angry"})),
        ("number value", json!({"mood": 3})),
        ("bool value", json!({"mood": true})),
        ("array value", json!({"mood": ["a"]})),
        ("bad key", json!({"Mood": "angry"})),
        ("long key", json!({"m".repeat(65): "angry"})),
        ("long value", json!({"mood": "a".repeat(1025)})),
        (
            "33 fields in total",
            json!({"f29": "x"})
                .as_object()
                .map(|o| {
                    let mut m = fill.clone();
                    m.extend(o.clone());
                    Value::Object(m)
                })
                .unwrap(),
        ),
    ];
    for (what, body) in invalid {
        let r = patch(&s, "/v1/me/profile", Some(&token), &body).await;
        assert_eq!(r.status.as_u16(), 400, "{what}: {}", r.text);
        assert_error_shape(&r.body, "invalid_input", &format!("{what}: {}", r.text));
        let now = get(&s, "/v1/me", Some(&token)).await.expect(200).clone();
        assert_eq!(now, before, "{what}: rejected PATCH changed the account");
    }
    let bad_json: Vec<(&str, &str)> = vec![
        ("truncated", "{\"mood\": "),
        ("array", "[\"mood\"]"),
        ("string", "\"mood\""),
        ("not json", "mood=angry"),
    ];
    for (what, body) in bad_json {
        let r = send_raw(
            &s,
            Method::PATCH,
            "/v1/me/profile",
            Some(&token),
            body,
            Some("application/json"),
        )
        .await;
        assert_eq!(r.status.as_u16(), 400, "{what}: {}", r.text);
        assert_error_shape(&r.body, "bad_json", &format!("{what}: {}", r.text));
        let now = get(&s, "/v1/me", Some(&token)).await.expect(200).clone();
        assert_eq!(now, before, "{what}: rejected PATCH changed the account");
    }
    assert_healthy(&s).await;

    // exactly 32 fields is fine
    let r = patch(&s, "/v1/me/profile", Some(&token), &Value::Object(fill)).await;
    r.expect(200);
    let now = get(&s, "/v1/me", Some(&token)).await.expect(200).clone();
    assert_eq!(now["profile"].as_object().unwrap().len(), 32);
}

#[tokio::test]
async fn get_account_hides_email_and_phone_from_strangers() {
    let s = Server::start();
    let a = new_acct_with(&s, "Ann", Some("ann@example.com"), Some("+15550100006")).await;
    let b = new_acct(&s, "Ben").await;
    patch(&s, "/v1/me/profile", a.tok(), &json!({"city": "Oslo"}))
        .await
        .expect(200);
    let version = me(&s, &a).await["profile_version"].clone();

    let r = get(&s, &format!("/v1/accounts/{}", a.id), b.tok()).await;
    let v = r.expect(200);
    assert_eq!(v["account_id"], json!(a.id));
    assert_eq!(v["profile"], json!({"display_name": "Ann", "city": "Oslo"}));
    assert_eq!(v["profile_version"], version);
    assert!(
        !r.text.contains("ann@example.com"),
        "email leaked: {}",
        r.text
    );
    assert!(!r.text.contains("5550100006"), "phone leaked: {}", r.text);

    make_friends(&s, &b, &a).await;
    let r = get(&s, &format!("/v1/accounts/{}", a.id), b.tok()).await;
    assert_eq!(
        r.expect(200)["profile"],
        json!({"display_name": "Ann", "city": "Oslo", "email": "ann@example.com", "phone": "+15550100006"})
    );

    // after unfriending, hidden again
    delete(&s, &format!("/v1/friends/{}", a.id), b.tok())
        .await
        .expect(204);
    let r = get(&s, &format!("/v1/accounts/{}", a.id), b.tok()).await;
    assert_eq!(
        r.expect(200)["profile"],
        json!({"display_name": "Ann", "city": "Oslo"})
    );
}

#[tokio::test]
async fn get_unknown_account_is_404() {
    let s = Server::start();
    let a = new_acct(&s, "Solo").await;
    get(&s, "/v1/accounts/does-not-exist", a.tok())
        .await
        .expect_error(404, "not_found");
    get(&s, "/v1/accounts/0", a.tok())
        .await
        .expect_error(404, "not_found");
    assert_healthy(&s).await;
}
