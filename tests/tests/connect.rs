//! `$connect`: tokens decide who may open a socket; the greeting comes first.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine;
use p521::ecdsa::signature::Signer;
use p521::ecdsa::{Signature, SigningKey};
use p521::elliptic_curve::rand_core::OsRng;
use p521::pkcs8::{EncodePublicKey, LineEnding};
use serde_json::json;
use sockhop_tests::{now, sign, TestStage};

#[tokio::test]
async fn connected_frame_has_the_protocol_shape() {
    let stage = TestStage::start().await;
    let client = stage
        .connect(json!({"scope": "connect", "uid": "jim", "umd": {"name": "Jim"}}))
        .await;
    let frame = &client.connected;
    assert_eq!(frame["event"], "hotsock.connected");
    let data = &frame["data"];
    assert!(data["connectionId"].as_str().is_some_and(|s| s.len() == 16));
    assert!(data["connectionSecret"]
        .as_str()
        .is_some_and(|s| s.len() >= 20));
    let expires = data["connectionExpiresAt"].as_str().expect("expiry");
    assert!(expires.ends_with('Z') && expires.len() == 20, "{expires}");
    assert_eq!(frame["meta"], json!({"uid": "jim", "umd": {"name": "Jim"}}));
    // The stored item holds a hash, never the secret itself.
    let items = stage.items_with_pk_prefix("CONN#").await;
    assert_eq!(items.len(), 1);
}

#[tokio::test]
async fn anonymous_connection_has_null_meta() {
    let stage = TestStage::start().await;
    let client = stage.connect(json!({"scope": "connect"})).await;
    assert_eq!(client.connected["meta"], json!({"uid": null, "umd": null}));
}

#[tokio::test]
async fn bad_tokens_are_refused_with_401_and_a_code() {
    let stage = TestStage::start().await;
    let wrong_key = sockhop::token::sign_hs256(
        b"some-other-secret-entirely-0123456",
        &json!({"exp": now() + 60, "scope": "connect"}),
    );
    let cases = [
        ("", "TOKEN_MISSING"),
        ("not-a-jwt", "TOKEN_MALFORMED"),
        (
            &sign(json!({"scope": "connect", "exp": now() - 10})) as &str,
            "TOKEN_EXPIRED",
        ),
        (
            &sign(json!({"scope": "connect", "nbf": now() + 600})),
            "TOKEN_NOT_YET_VALID",
        ),
        (&wrong_key, "TOKEN_BAD_SIGNATURE"),
        (
            &sign(json!({"scope": "connect", "heartbeatTimeout": 1})),
            "TOKEN_INVALID_CLAIMS",
        ),
        (
            &sign(json!({"scope": "connect", "channels": {"#regex:(": {}}})),
            "TOKEN_INVALID_CLAIMS",
        ),
    ];
    for (token, code) in cases {
        let (status, body) = stage
            .try_connect(token)
            .await
            .err()
            .unwrap_or_else(|| panic!("{code}: accepted"));
        assert_eq!(status, 401, "{code}: {body}");
        let body: serde_json::Value = serde_json::from_str(&body).expect("json body");
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    assert!(stage.items_with_pk_prefix("CONN#").await.is_empty());
}

#[tokio::test]
async fn valid_token_without_connect_scope_is_403() {
    let stage = TestStage::start().await;
    let (status, _) = stage
        .try_connect(&sign(json!({"scope": "subscribe"})))
        .await
        .err()
        .expect("refused");
    assert_eq!(status, 403);
}

#[tokio::test]
async fn single_use_token_connects_once() {
    let stage = TestStage::start().await;
    let token = sign(json!({"scope": "connect", "singleUse": true, "jti": "once-1"}));
    let first = stage.try_connect(&token).await;
    assert!(first.is_ok());
    let (status, body) = stage
        .try_connect(&token)
        .await
        .err()
        .expect("second use refused");
    assert_eq!(status, 401);
    assert!(body.contains("TOKEN_ALREADY_USED"), "{body}");
}

#[tokio::test]
async fn single_use_token_used_too_early_is_not_consumed() {
    let stage = TestStage::start().await;
    let early =
        sign(json!({"scope": "connect", "singleUse": true, "jti": "early-1", "nbf": now() + 3600}));
    assert_eq!(
        stage.try_connect(&early).await.err().expect("too early").0,
        401
    );
    // Same jti, now valid: it was not spent by the early attempt.
    let valid = sign(json!({"scope": "connect", "singleUse": true, "jti": "early-1"}));
    assert!(stage.try_connect(&valid).await.is_ok());
}

#[tokio::test]
async fn auto_subscribe_follows_the_greeting() {
    let stage = TestStage::start().await;
    let mut client = stage
        .connect(json!({"scope": "connect", "uid": "u1", "channels": {
            "news": {"subscribe": true, "autoSubscribe": true},
            "other": {"subscribe": true}
        }}))
        .await;
    let frame = client.next().await;
    assert_eq!(frame["event"], "hotsock.subscribed");
    assert_eq!(frame["channel"], "news");
    assert_eq!(frame["data"], json!({"autoSubscribed": true}));
    assert_eq!(frame["meta"]["uid"], "u1");
    assert_eq!(
        stage.items_with_pk_prefix("CHAN#news").await.len(),
        2,
        "subscription + count"
    );
}

/// The greeting and the auto-subscriptions behind it come from the delivery
/// queue `$connect` put them on, not from the table's stream: with the stream
/// read once a minute, a connection is still greeted (and subscribed) within
/// the harness's wait of seconds.
#[tokio::test]
async fn the_greeting_waits_for_no_stream_poll() {
    let stage = TestStage::start_with(|options| {
        options.stream_poll = std::time::Duration::from_secs(60);
    })
    .await;
    let started = std::time::Instant::now();
    let mut client = stage
        .connect(json!({"scope": "connect", "uid": "u1", "channels": {
            "news": {"subscribe": true, "autoSubscribe": true}}}))
        .await;
    let frame = client.next().await;
    assert_eq!(frame["event"], "hotsock.subscribed", "{frame}");
    assert_eq!(frame["channel"], "news");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "greeted before the stream's first poll"
    );
}

/// An ES512 JWS (raw R‖S signature) over `claims`.
fn sign_es512(key: &SigningKey, claims: &serde_json::Value) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(json!({"alg": "ES512", "typ": "JWT"}).to_string()),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let signature: Signature = key.sign(input.as_bytes());
    format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature.to_bytes()))
}

#[tokio::test]
async fn es512_signed_token_connects() {
    // TEST-ONLY P-521 keys, generated per run.
    let key = SigningKey::random(&mut OsRng);
    let other_key = SigningKey::random(&mut OsRng);
    let public_pem = p521::PublicKey::from_secret_scalar(key.as_nonzero_scalar())
        .to_public_key_pem(LineEnding::LF)
        .expect("pem");
    let stage = TestStage::start_with(|options| {
        options
            .env
            .retain(|(name, _)| !name.starts_with("SIGNING_KEY_1_"));
        options
            .env
            .push(("SIGNING_KEY_1_METHOD".into(), "ES512".into()));
        options
            .env
            .push(("SIGNING_KEY_1_ENCODED".into(), STANDARD.encode(public_pem)));
    })
    .await;
    let claims = json!({"scope": "connect", "uid": "p521", "exp": now() + 60});
    let mut client = stage
        .try_connect(&sign_es512(&key, &claims))
        .await
        .expect("upgrade accepted");
    let connected = client.expect_event("hotsock.connected").await;
    assert_eq!(connected["meta"]["uid"], "p521");
    for (token, code) in [
        (sign_es512(&other_key, &claims), "TOKEN_BAD_SIGNATURE"),
        (sign(claims.clone()), "TOKEN_ALGORITHM_NOT_ALLOWED"),
    ] {
        let (status, body) = stage
            .try_connect(&token)
            .await
            .err()
            .unwrap_or_else(|| panic!("{code}: accepted"));
        assert_eq!(status, 401, "{code}: {body}");
        assert!(body.contains(code), "{code}: {body}");
    }
}
