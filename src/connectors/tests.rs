//! The connectors as a whole: platforms, link checks (handles, the egress policy), sealed
//! secrets, destinations, and attempts refused under the policy.

use super::*;
use serde_json::json;

fn settings(smtp_url: Option<&str>, from: &str) -> ConnectorSettings {
    ConnectorSettings {
        smtp_url: smtp_url.map(str::to_owned),
        smtp_from: from.into(),
        ..test_support::settings(Duration::from_secs(5), Egress::PUBLIC_ONLY)
    }
}

fn code(r: Result<(String, Checked)>) -> &'static str {
    r.err().map(|e| e.code()).unwrap_or("ok")
}

#[test]
fn destinations_group_links_by_host() {
    let c = Connectors::new(&settings(None, "Chorus <chorus@localhost>")).unwrap();
    let link = |platform: &str, config: Value| LinkRecord {
        link_id: "l".into(),
        platform: platform.into(),
        handle: "h".into(),
        config,
        secret: None,
        created_ms: 0,
        proof: Default::default(),
    };
    let hook = |url: &str| c.destination(&link("webhook", json!({"url": url, "secret": "s"})));
    assert_eq!(hook("http://127.0.0.1:9001/a"), Some("127.0.0.1".into()));
    // Every port, path and scheme of one host is one destination.
    for same in [
        "http://127.0.0.1:9002/b",
        "https://127.0.0.1/c",
        "http://127.1:9003/",
        "http://[::ffff:127.0.0.1]:9004/",
    ] {
        assert_eq!(hook(same), Some("127.0.0.1".into()), "{same}");
    }
    for same in [
        "https://hooks.example/x",
        "https://HOOKS.example:443/y",
        "http://hooks.example.:8080/z",
    ] {
        assert_eq!(hook(same), Some("hooks.example".into()), "{same}");
    }
    assert_eq!(hook("http://[2001:DB8::1]:81/"), Some("2001:db8::1".into()));
    assert_ne!(
        hook("http://a.hooks.example/"),
        hook("http://hooks.example/")
    );
    assert_eq!(
        c.destination(&link(
            "mastodon",
            json!({"base_url": "https://mastodon.social", "access_token": "t"})
        )),
        Some("mastodon.social".into())
    );
    assert_eq!(
        c.destination(&link("email", json!({}))),
        Some("smtp relay".into())
    );
    assert_eq!(c.destination(&link("myspace", json!({}))), None);
}

/// The cap per destination counts a host once under all its names: once a name has
/// resolved (as an attempt connects, or when a link is made under the policy), its key is
/// the address it resolved to.
#[tokio::test]
async fn names_of_one_host_share_its_destination_once_resolved() {
    let c = test_support::connectors(Duration::from_secs(5));
    let rx = test_support::receiver();
    let port = rx
        .url("")
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_owned();
    let by_name = format!("http://localhost:{port}/s/204");
    let out = test_support::outgoing_with("webhook", json!({"url": by_name}), Some("s"), 1);
    assert_eq!(
        c.destination(&out.link),
        Some("localhost".into()),
        "not resolved yet"
    );
    assert!(matches!(c.attempt(&out).await, AttemptOutcome::Delivered));
    let by_address = test_support::outgoing("webhook", "h", json!({"url": rx.url("/x")}), 1);
    assert_eq!(c.destination(&out.link), Some("127.0.0.1".into()));
    assert_eq!(c.destination(&out.link), c.destination(&by_address.link));
}

#[tokio::test]
async fn platforms_depend_on_smtp() {
    let plain = Connectors::new(&settings(None, "Chorus <chorus@localhost>")).unwrap();
    assert_eq!(plain.platforms(), ["webhook", "mastodon"]);
    let with_mail = Connectors::new(&settings(
        Some("smtp://127.0.0.1:2525"),
        "Chorus <chorus@localhost>",
    ))
    .unwrap();
    assert_eq!(with_mail.platforms(), ["webhook", "mastodon", "email"]);
    // Email is not a platform without SMTP.
    let err = plain
        .validate("email", "ada@example.com", &json!({}))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "unknown_platform");
    assert!(err.to_string().contains("\"webhook\""), "{err}");
    assert!(
        with_mail
            .validate("email", "ada@example.com", &json!({}))
            .await
            .is_ok()
    );
}

#[test]
fn bad_smtp_settings_are_config_errors() {
    for (url, from) in [
        ("not a url", "Chorus <chorus@localhost>"),
        ("ftp://mail.example", "Chorus <chorus@localhost>"),
        ("smtp://127.0.0.1:2525", "not an address"),
        ("smtp://127.0.0.1:2525", ""),
    ] {
        let err = Connectors::new(&settings(Some(url), from)).unwrap_err();
        assert!(matches!(err, Error::Config(_)), "{url} {from}: {err:?}");
    }
}

#[tokio::test]
async fn unknown_platform_lists_known_ones() {
    let c = Connectors::new(&settings(None, "x@y.z")).unwrap();
    let err = c.validate("myspace", "me", &json!({})).await.unwrap_err();
    assert_eq!(err.code(), "unknown_platform");
    assert_eq!(
        err.to_string(),
        "no connector for platform \"myspace\"; known: [\"webhook\", \"mastodon\"]"
    );
}

#[tokio::test]
async fn handles_are_trimmed_and_bounded() {
    let c = Connectors::new(&settings(None, "x@y.z")).unwrap();
    let cfg = json!({"url": "https://x.example/h", "secret": "s"});
    let (handle, _) = c.validate("webhook", "  me  ", &cfg).await.unwrap();
    assert_eq!(handle, "me");
    assert!(c.validate("webhook", &"é".repeat(128), &cfg).await.is_ok());
    // 100 × "İ" lower-cases to 200 characters: over the limit once normalised.
    for bad in [
        "",
        "   ",
        "é".repeat(129).as_str(),
        "İ".repeat(100).as_str(),
    ] {
        let err = c.validate("webhook", bad, &cfg).await.unwrap_err();
        assert_eq!(err.code(), "invalid_input");
        assert_eq!(err.to_string(), "handle must have 1 to 128 characters");
    }
    assert_eq!(
        code(c.validate("mastodon", "", &json!({})).await),
        "invalid_input"
    );
}

#[actix_web::test]
async fn unknown_platform_fails_the_attempt() {
    let c = test_support::connectors(Duration::from_secs(1));
    let out = test_support::outgoing("myspace", "me", json!({}), 1);
    assert!(matches!(
        c.attempt(&out).await,
        AttemptOutcome::Fail { error } if error.contains("myspace")
    ));
    let out = test_support::outgoing("email", "ada@example.com", json!({}), 1);
    assert!(matches!(c.attempt(&out).await, AttemptOutcome::Fail { .. }));
}

#[tokio::test]
async fn new_links_keep_their_secret_sealed_apart() {
    let c = Connectors::new(&settings(None, "x@y.z")).unwrap();
    let cfg = json!({"url": "https://8.8.8.8/h", "secret": "whsec_plain"});
    let link = c.new_link("webhook", "me", &cfg).await.unwrap();
    assert_eq!(link.config, json!({"url": "https://8.8.8.8/h"}));
    let sealed = link.secret.clone().unwrap();
    assert!(sealed.starts_with("v1.") && !sealed.contains("whsec_plain"));
    assert_eq!(c.secret_of(&link).unwrap(), "whsec_plain");
    assert!(
        !serde_json::to_string(&link)
            .unwrap()
            .contains("whsec_plain")
    );
    // A release keeps the link without it.
    assert_eq!(link.public().secret, None);
    // A Mastodon link is verified with its instance first: a local one, policy off.
    let rx = test_support::receiver();
    let base_url = rx.url("");
    let base_url = base_url.trim_end_matches('/');
    let host = base_url.trim_start_matches("http://");
    let open = test_support::connectors(Duration::from_secs(5));
    let masto = open
        .new_link(
            "mastodon",
            &format!("@me@{host}"),
            &json!({"base_url": base_url, "access_token": "tok_plain"}),
        )
        .await
        .unwrap();
    assert_eq!(masto.config, json!({"base_url": base_url}));
    assert!(masto.proof.is_verified());
    assert_eq!(open.secret_of(&masto).unwrap(), "tok_plain");
    assert!(!serde_json::to_string(&masto).unwrap().contains("tok_plain"));
    // Two links of one secret seal it differently, each for its own id.
    let other = c.new_link("webhook", "me2", &cfg).await.unwrap();
    assert_ne!(other.secret, link.secret);
    let mut swapped = other.clone();
    swapped.secret = link.secret.clone();
    assert!(c.secret_of(&swapped).is_err());
}

#[tokio::test]
async fn links_to_private_destinations_are_refused() {
    let c = Connectors::new(&settings(None, "x@y.z")).unwrap();
    for (platform, cfg, field) in [
        (
            "webhook",
            json!({"url": "http://127.0.0.1:9/x", "secret": "s"}),
            "url",
        ),
        (
            "webhook",
            json!({"url": "http://localhost/x", "secret": "s"}),
            "url",
        ),
        (
            "webhook",
            json!({"url": "http://169.254.169.254/", "secret": "s"}),
            "url",
        ),
        (
            "mastodon",
            json!({"base_url": "https://[::1]:8443", "access_token": "t"}),
            "base_url",
        ),
    ] {
        let err = c.new_link(platform, "me", &cfg).await.unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{cfg}");
        assert!(
            err.to_string()
                .starts_with(&format!("config.{field} must point at a public")),
            "{cfg}: {err}"
        );
    }
    // Plain http is refused for Mastodon (the token would travel in the clear), even
    // to a public address; a webhook may use it (its secret only signs).
    let err = c
        .new_link(
            "mastodon",
            "@me@m.example",
            &json!({"base_url": "http://8.8.4.4", "access_token": "t"}),
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), "invalid_input");
    assert!(err.to_string().contains("https"), "{err}");
    assert!(
        c.new_link(
            "webhook",
            "me",
            &json!({"url": "http://8.8.4.4/h", "secret": "s"})
        )
        .await
        .is_ok()
    );
    // With the policy off, loopback and plain http are taken (the Mastodon instance must
    // still vouch for the handle).
    let open = test_support::connectors(Duration::from_secs(5));
    let rx = test_support::receiver();
    let base_url = rx.url("");
    let base_url = base_url.trim_end_matches('/');
    let host = base_url.trim_start_matches("http://");
    for (platform, handle, cfg) in [
        (
            "webhook",
            "me".to_owned(),
            json!({"url": "http://127.0.0.1:9/x", "secret": "s"}),
        ),
        (
            "mastodon",
            format!("me@{host}"),
            json!({"base_url": base_url, "access_token": "t"}),
        ),
    ] {
        let made = open.new_link(platform, &handle, &cfg).await;
        assert!(made.is_ok(), "{cfg}: {made:?}");
    }
}

#[tokio::test]
async fn releases_to_private_destinations_are_refused_when_connecting() {
    // Linked while the address was public, or under another policy: the attempt
    // itself refuses it, before any byte is sent, for good.
    let rx = test_support::receiver();
    let strict = Connectors::new(&test_support::settings(
        Duration::from_secs(5),
        Egress::PUBLIC_ONLY,
    ))
    .unwrap();
    let port = url::Url::parse(&rx.url("/s/204")).unwrap().port().unwrap();
    for url in [
        rx.url("/s/204"),
        // A name that resolves to loopback: the resolver refuses its answer.
        format!("http://localhost:{port}/s/204"),
        format!("http://[::ffff:127.0.0.1]:{port}/s/204"),
    ] {
        let out = test_support::outgoing_with("webhook", json!({"url": url}), Some("s"), 1);
        assert_eq!(
            strict.attempt(&out).await,
            AttemptOutcome::Fail {
                error: egress::NOT_ALLOWED.into()
            },
            "{url}"
        );
        let masto = test_support::outgoing_with(
            "mastodon",
            json!({"base_url": url.trim_end_matches("/s/204")}),
            Some("t"),
            1,
        );
        assert!(
            matches!(strict.attempt(&masto).await, AttemptOutcome::Fail { error } if error == egress::NOT_ALLOWED)
        );
    }
    assert_eq!(
        rx.requests().len(),
        0,
        "a refused destination got a request"
    );
}
