//! Tests for `sockhop_core::token` through its public API only.
//!
//! Everything lives in `mod token` so `cargo test -p sockhop-core token` selects it.
//! Asymmetric keys are the TEST-ONLY PEM files in `tests/keys/`.

// Test code: a panic is the failure report (clippy.toml allows unwrap in #[test]s, not helpers).
#![allow(clippy::unwrap_used)]

mod token {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    use base64::Engine;
    use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
    use jsonwebtoken::EncodingKey;
    use proptest::prelude::*;
    use serde_json::{json, Value};
    use sockhop_core::token::{
        sign_hs256, Algorithm, KeyConfigError, SigningKey, TokenError, Verifier, MAX_TOKEN_LEN,
    };
    use std::collections::HashMap;

    const NOW: i64 = 1_700_000_000;
    const SECRET: &[u8] = b"test-only-hmac-secret-0123456789";
    const OTHER_SECRET: &[u8] = b"a-different-test-only-secret-xyz";

    const RSA_A_PRIVATE: &str = include_str!("keys/test_only_rsa_a_private.pem");
    const RSA_A_PUBLIC: &str = include_str!("keys/test_only_rsa_a_public.pem");
    const RSA_A_PUBLIC_PKCS1: &str = include_str!("keys/test_only_rsa_a_public_pkcs1.pem");
    const RSA_B_PRIVATE: &str = include_str!("keys/test_only_rsa_b_private.pem");
    const RSA_B_PUBLIC: &str = include_str!("keys/test_only_rsa_b_public.pem");
    const P256_PRIVATE: &str = include_str!("keys/test_only_p256_private.pem");
    const P256_PUBLIC: &str = include_str!("keys/test_only_p256_public.pem");
    const P384_PRIVATE: &str = include_str!("keys/test_only_p384_private.pem");
    const P384_PUBLIC: &str = include_str!("keys/test_only_p384_public.pem");
    const ED_PRIVATE: &str = include_str!("keys/test_only_ed25519_private.pem");
    const ED_PUBLIC: &str = include_str!("keys/test_only_ed25519_public.pem");

    const ALL_ALGS: [Algorithm; 12] = [
        Algorithm::HS256,
        Algorithm::HS384,
        Algorithm::HS512,
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    // ---- helpers -------------------------------------------------------

    fn name(alg: Algorithm) -> String {
        format!("{alg:?}")
    }

    fn b64url(bytes: impl AsRef<[u8]>) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn private_key(alg: Algorithm) -> EncodingKey {
        match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => {
                EncodingKey::from_secret(SECRET)
            }
            Algorithm::ES256 => EncodingKey::from_ec_pem(P256_PRIVATE.as_bytes()).unwrap(),
            Algorithm::ES384 => EncodingKey::from_ec_pem(P384_PRIVATE.as_bytes()).unwrap(),
            Algorithm::EdDSA => EncodingKey::from_ed_pem(ED_PRIVATE.as_bytes()).unwrap(),
            _ => EncodingKey::from_rsa_pem(RSA_A_PRIVATE.as_bytes()).unwrap(),
        }
    }

    /// The `encoded` config value matching `private_key(alg)`.
    fn encoded_public(alg: Algorithm) -> String {
        match alg {
            Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => STANDARD.encode(SECRET),
            Algorithm::ES256 => STANDARD.encode(P256_PUBLIC),
            Algorithm::ES384 => STANDARD.encode(P384_PUBLIC),
            Algorithm::EdDSA => STANDARD.encode(ED_PUBLIC),
            _ => STANDARD.encode(RSA_A_PUBLIC),
        }
    }

    fn key(alg: Algorithm, kid: Option<&str>) -> SigningKey {
        SigningKey::new(&name(alg), &encoded_public(alg), kid.map(str::to_string)).unwrap()
    }

    fn hs_key(secret: &[u8], kid: Option<&str>) -> SigningKey {
        SigningKey::new("HS256", &STANDARD.encode(secret), kid.map(str::to_string)).unwrap()
    }

    fn verifier(keys: Vec<SigningKey>) -> Verifier {
        Verifier::new(keys, None, None).unwrap()
    }

    fn claims() -> Value {
        json!({"exp": NOW + 60, "scope": "connect", "uid": "jim"})
    }

    /// `jsonwebtoken`'s algorithm of the same name (every one but ES512, which
    /// the unit tests in `core/src/token.rs` sign with `p521`).
    fn provider(alg: Algorithm) -> jsonwebtoken::Algorithm {
        name(alg).parse().unwrap()
    }

    /// Signs `header`.`claims` with any algorithm, bypassing the process-wide
    /// provider so tests do not depend on crate-feature selection.
    fn sign_raw(alg: Algorithm, key: &EncodingKey, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64url(header.to_string()),
            b64url(claims.to_string())
        );
        let signer = (DEFAULT_PROVIDER.signer_factory)(&provider(alg), key).unwrap();
        let signature = signer.try_sign(input.as_bytes()).unwrap();
        format!("{input}.{}", b64url(signature))
    }

    fn sign(alg: Algorithm, kid: Option<&str>, claims: &Value) -> String {
        let mut header = json!({"alg": name(alg), "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        sign_raw(alg, &private_key(alg), &header, claims)
    }

    fn sign_hs(secret: &[u8], kid: Option<&str>, claims: &Value) -> String {
        let mut header = json!({"alg": "HS256", "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        sign_raw(
            Algorithm::HS256,
            &EncodingKey::from_secret(secret),
            &header,
            claims,
        )
    }

    fn hs_verifier() -> Verifier {
        verifier(vec![hs_key(SECRET, None)])
    }

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    // ---- every algorithm signs and verifies ----------------------------

    #[test]
    fn every_algorithm_round_trips() {
        for alg in ALL_ALGS {
            let v = verifier(vec![key(alg, None)]);
            let token = sign(alg, None, &claims());
            let got = v
                .verify(&token, NOW)
                .unwrap_or_else(|e| panic!("{alg:?}: {e}"));
            assert_eq!(got.get("uid"), Some(&json!("jim")), "{alg:?}");
            assert_eq!(Value::Object(got), claims(), "{alg:?}");
        }
    }

    #[test]
    fn every_algorithm_with_kid_round_trips() {
        for alg in ALL_ALGS {
            let v = verifier(vec![key(alg, Some("k1"))]);
            assert!(v.verify(&sign(alg, Some("k1"), &claims()), NOW).is_ok());
            assert_eq!(
                v.verify(&sign(alg, Some("k2"), &claims()), NOW),
                Err(TokenError::UnknownKeyId),
                "{alg:?}"
            );
            assert_eq!(
                v.verify(&sign(alg, None, &claims()), NOW),
                Err(TokenError::UnknownKeyId),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn every_algorithm_rejects_a_tampered_payload() {
        for alg in ALL_ALGS {
            let v = verifier(vec![key(alg, None)]);
            let token = sign(alg, None, &claims());
            let mut parts: Vec<&str> = token.split('.').collect();
            let forged =
                b64url(json!({"exp": NOW + 60, "scope": "connect", "uid": "eve"}).to_string());
            parts[1] = &forged;
            assert_eq!(
                v.verify(&parts.join("."), NOW),
                Err(TokenError::BadSignature),
                "{alg:?}"
            );
        }
    }

    #[test]
    fn every_algorithm_rejects_other_algorithms() {
        for config in ALL_ALGS {
            let v = verifier(vec![key(config, None)]);
            for alg in ALL_ALGS.into_iter().filter(|a| *a != config) {
                assert_eq!(
                    v.verify(&sign(alg, None, &claims()), NOW),
                    Err(TokenError::UnsupportedAlgorithm),
                    "{alg:?} token against {config:?} key"
                );
            }
        }
    }

    #[test]
    fn token_signature_of_one_alg_relabelled_as_a_sibling_is_rejected() {
        // RS256 signature with the header claiming PS256 (same key family).
        let v = verifier(vec![key(Algorithm::PS256, None)]);
        let rs = sign(Algorithm::RS256, None, &claims());
        let sig = rs.rsplit('.').next().unwrap();
        let header = b64url(json!({"alg": "PS256", "typ": "JWT"}).to_string());
        let payload = b64url(claims().to_string());
        assert_eq!(
            v.verify(&format!("{header}.{payload}.{sig}"), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn pkcs1_rsa_public_key_is_accepted() {
        let k = SigningKey::new("RS256", &STANDARD.encode(RSA_A_PUBLIC_PKCS1), None).unwrap();
        let v = verifier(vec![k]);
        assert!(v
            .verify(&sign(Algorithm::RS256, None, &claims()), NOW)
            .is_ok());
    }

    #[test]
    fn sign_hs256_produces_a_verifiable_jwt() {
        let token = sign_hs256(SECRET, &claims());
        let header: Value = serde_json::from_slice(
            &URL_SAFE_NO_PAD
                .decode(token.split('.').next().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
        assert_eq!(
            Value::Object(hs_verifier().verify(&token, NOW).unwrap()),
            claims()
        );
        // Byte-identical to jsonwebtoken's own HS256 signer.
        assert_eq!(token, sign_hs(SECRET, None, &claims()));
        assert_eq!(
            verifier(vec![hs_key(OTHER_SECRET, None)]).verify(&token, NOW),
            Err(TokenError::BadSignature)
        );
    }

    // ---- time claims ---------------------------------------------------

    #[test]
    fn token_expiry_is_checked_against_now_with_zero_leeway() {
        let v = hs_verifier();
        let t = sign_hs256(SECRET, &json!({"exp": NOW}));
        assert_eq!(v.verify(&t, NOW), Err(TokenError::Expired));
        assert_eq!(v.verify(&t, NOW + 1000), Err(TokenError::Expired));
        assert!(v.verify(&t, NOW - 1).is_ok());
        // Fractional NumericDate.
        let t = sign_hs256(SECRET, &json!({"exp": NOW as f64 + 0.5}));
        assert!(v.verify(&t, NOW).is_ok());
        assert_eq!(v.verify(&t, NOW + 1), Err(TokenError::Expired));
    }

    #[test]
    fn token_not_before_is_checked_against_now_with_zero_leeway() {
        let v = hs_verifier();
        let t = sign_hs256(SECRET, &json!({"exp": NOW + 100, "nbf": NOW + 10}));
        assert_eq!(v.verify(&t, NOW), Err(TokenError::NotYetValid));
        assert_eq!(v.verify(&t, NOW + 9), Err(TokenError::NotYetValid));
        assert!(v.verify(&t, NOW + 10).is_ok());
        let t = sign_hs256(SECRET, &json!({"exp": NOW + 100, "nbf": null}));
        assert!(v.verify(&t, NOW).is_ok());
        let t = sign_hs256(SECRET, &json!({"exp": NOW + 100, "nbf": "soon"}));
        assert_eq!(v.verify(&t, NOW), Err(TokenError::Malformed));
    }

    #[test]
    fn token_without_numeric_exp_is_rejected() {
        let v = hs_verifier();
        for c in [
            json!({"scope": "connect"}),
            json!({"exp": null}),
            json!({"exp": "1700000060"}),
            json!({"exp": [NOW + 60]}),
            json!({"exp": true}),
        ] {
            assert_eq!(
                v.verify(&sign_hs256(SECRET, &c), NOW),
                Err(TokenError::MissingExpiry),
                "{c}"
            );
        }
    }

    #[test]
    fn token_iat_and_unknown_claims_are_accepted() {
        let v = hs_verifier();
        let t = sign_hs256(
            SECRET,
            &json!({"exp": NOW + 1, "iat": NOW + 500, "jti": "x", "whatever": {"a": 1}}),
        );
        assert!(v.verify(&t, NOW).is_ok());
    }

    #[test]
    fn token_signature_is_checked_before_claims() {
        // An expired token with a bad signature reports the signature.
        let v = hs_verifier();
        let t = sign_hs256(OTHER_SECRET, &json!({"exp": NOW - 1}));
        assert_eq!(v.verify(&t, NOW), Err(TokenError::BadSignature));
    }

    // ---- audience and issuer --------------------------------------------

    fn aud_iss_verifier() -> Verifier {
        Verifier::new(
            vec![hs_key(SECRET, None)],
            Some("my-app".into()),
            Some("https://issuer.example".into()),
        )
        .unwrap()
    }

    fn with(extra: Value) -> Value {
        let mut c = claims();
        for (k, v) in extra.as_object().unwrap() {
            c[k] = v.clone();
        }
        c
    }

    #[test]
    fn token_audience_string_and_array() {
        let v = aud_iss_verifier();
        let iss = "https://issuer.example";
        let ok = |aud: Value| {
            v.verify(
                &sign_hs256(SECRET, &with(json!({"aud": aud, "iss": iss}))),
                NOW,
            )
        };
        assert!(ok(json!("my-app")).is_ok());
        assert!(ok(json!(["other", "my-app"])).is_ok());
        assert_eq!(ok(json!("other")), Err(TokenError::WrongAudience));
        assert_eq!(ok(json!("MY-APP")), Err(TokenError::WrongAudience));
        assert_eq!(ok(json!(["other", "x"])), Err(TokenError::WrongAudience));
        assert_eq!(ok(json!([])), Err(TokenError::WrongAudience));
        assert_eq!(ok(json!([["my-app"]])), Err(TokenError::WrongAudience));
        assert_eq!(ok(json!(42)), Err(TokenError::WrongAudience));
        assert_eq!(ok(json!(null)), Err(TokenError::WrongAudience));
    }

    #[test]
    fn token_missing_audience_when_required_is_rejected() {
        let v = aud_iss_verifier();
        let t = sign_hs256(SECRET, &with(json!({"iss": "https://issuer.example"})));
        assert_eq!(v.verify(&t, NOW), Err(TokenError::WrongAudience));
    }

    #[test]
    fn token_issuer_is_checked() {
        let v = aud_iss_verifier();
        let t = |iss: Value| sign_hs256(SECRET, &with(json!({"aud": "my-app", "iss": iss})));
        assert!(v.verify(&t(json!("https://issuer.example")), NOW).is_ok());
        assert_eq!(
            v.verify(&t(json!("https://evil.example")), NOW),
            Err(TokenError::WrongIssuer)
        );
        assert_eq!(
            v.verify(&t(json!(["https://issuer.example"])), NOW),
            Err(TokenError::WrongIssuer)
        );
        let missing = sign_hs256(SECRET, &with(json!({"aud": "my-app"})));
        assert_eq!(v.verify(&missing, NOW), Err(TokenError::WrongIssuer));
    }

    #[test]
    fn token_aud_and_iss_are_ignored_when_not_required() {
        let t = sign_hs256(SECRET, &with(json!({"aud": "anything", "iss": 7})));
        assert!(hs_verifier().verify(&t, NOW).is_ok());
    }

    // ---- algorithm attacks -----------------------------------------------

    fn unsigned(alg: &str, claims: &Value, signature: &str) -> String {
        format!(
            "{}.{}.{signature}",
            b64url(json!({"alg": alg, "typ": "JWT"}).to_string()),
            b64url(claims.to_string())
        )
    }

    #[test]
    fn token_alg_none_is_rejected() {
        for v in [hs_verifier(), verifier(vec![key(Algorithm::RS256, None)])] {
            for alg in ["none", "None", "NONE", "nOnE"] {
                for sig in ["", "AAAA", &b64url(b"sig")] {
                    assert_eq!(
                        v.verify(&unsigned(alg, &claims(), sig), NOW),
                        Err(TokenError::UnsupportedAlgorithm),
                        "{alg} {sig:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn token_unknown_or_miscased_alg_is_rejected() {
        let v = hs_verifier();
        for alg in ["HS999", "hs256", "ES512", "RSA-OAEP", ""] {
            assert_eq!(
                v.verify(&unsigned(alg, &claims(), "AAAA"), NOW),
                Err(TokenError::UnsupportedAlgorithm),
                "{alg}"
            );
        }
    }

    #[test]
    fn token_hs_vs_rs_algorithm_confusion_is_rejected() {
        // The attacker knows the public key and uses its bytes as an HMAC
        // secret; the stage only has an RS256 key configured.
        for (alg, public) in [
            (Algorithm::RS256, RSA_A_PUBLIC),
            (Algorithm::PS256, RSA_A_PUBLIC),
            (Algorithm::ES256, P256_PUBLIC),
            (Algorithm::EdDSA, ED_PUBLIC),
        ] {
            let v = verifier(vec![key(alg, None)]);
            let encoded = STANDARD.encode(public);
            for secret in [public.as_bytes(), encoded.as_bytes()] {
                for hs in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
                    let t = sign_raw(
                        hs,
                        &EncodingKey::from_secret(secret),
                        &json!({"alg": name(hs), "typ": "JWT"}),
                        &claims(),
                    );
                    assert_eq!(
                        v.verify(&t, NOW),
                        Err(TokenError::UnsupportedAlgorithm),
                        "{hs:?} against {alg:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn token_confusion_is_rejected_even_next_to_an_hmac_key() {
        // Rotation config: RS256 + HS256 (different secret). The forged token
        // is routed to the HS256 key and fails its signature check.
        let v = verifier(vec![key(Algorithm::RS256, None), hs_key(SECRET, None)]);
        let t = sign_raw(
            Algorithm::HS256,
            &EncodingKey::from_secret(RSA_A_PUBLIC.as_bytes()),
            &json!({"alg": "HS256", "typ": "JWT"}),
            &claims(),
        );
        assert_eq!(v.verify(&t, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn token_wrong_key_is_rejected() {
        assert_eq!(
            hs_verifier().verify(&sign_hs(OTHER_SECRET, None, &claims()), NOW),
            Err(TokenError::BadSignature)
        );
        let rsa_b = SigningKey::new("RS256", &STANDARD.encode(RSA_B_PUBLIC), None).unwrap();
        assert_eq!(
            verifier(vec![rsa_b]).verify(&sign(Algorithm::RS256, None, &claims()), NOW),
            Err(TokenError::BadSignature)
        );
    }

    // ---- kid routing and rotation ----------------------------------------

    #[test]
    fn token_kid_must_match_a_keyed_config() {
        let v = verifier(vec![hs_key(SECRET, Some("k1"))]);
        assert!(v
            .verify(&sign_hs(SECRET, Some("k1"), &claims()), NOW)
            .is_ok());
        // Wrong kid and missing kid.
        assert_eq!(
            v.verify(&sign_hs(SECRET, Some("k2"), &claims()), NOW),
            Err(TokenError::UnknownKeyId)
        );
        assert_eq!(
            v.verify(&sign_hs(SECRET, None, &claims()), NOW),
            Err(TokenError::UnknownKeyId)
        );
        // kid comparison is exact.
        assert_eq!(
            v.verify(&sign_hs(SECRET, Some("K1"), &claims()), NOW),
            Err(TokenError::UnknownKeyId)
        );
        // Right kid, wrong key.
        assert_eq!(
            v.verify(&sign_hs(OTHER_SECRET, Some("k1"), &claims()), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn token_kid_is_ignored_by_a_kidless_key() {
        let v = hs_verifier();
        assert!(v
            .verify(&sign_hs(SECRET, Some("anything"), &claims()), NOW)
            .is_ok());
        assert!(v.verify(&sign_hs(SECRET, None, &claims()), NOW).is_ok());
    }

    #[test]
    fn token_rotation_two_kidless_keys_accept_either() {
        let v = verifier(vec![hs_key(SECRET, None), hs_key(OTHER_SECRET, None)]);
        assert!(v.verify(&sign_hs(SECRET, None, &claims()), NOW).is_ok());
        assert!(v
            .verify(&sign_hs(OTHER_SECRET, None, &claims()), NOW)
            .is_ok());
        assert_eq!(
            v.verify(&sign_hs(b"third-secret", None, &claims()), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn token_rotation_routes_by_kid() {
        let v = verifier(vec![
            hs_key(SECRET, Some("old")),
            hs_key(OTHER_SECRET, Some("new")),
        ]);
        assert!(v
            .verify(&sign_hs(SECRET, Some("old"), &claims()), NOW)
            .is_ok());
        assert!(v
            .verify(&sign_hs(OTHER_SECRET, Some("new"), &claims()), NOW)
            .is_ok());
        // Each kid routes to exactly one key.
        assert_eq!(
            v.verify(&sign_hs(SECRET, Some("new"), &claims()), NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            v.verify(&sign_hs(OTHER_SECRET, Some("old"), &claims()), NOW),
            Err(TokenError::BadSignature)
        );
        assert_eq!(
            v.verify(&sign_hs(SECRET, Some("other"), &claims()), NOW),
            Err(TokenError::UnknownKeyId)
        );
        assert_eq!(
            v.verify(&sign_hs(SECRET, None, &claims()), NOW),
            Err(TokenError::UnknownKeyId)
        );
    }

    #[test]
    fn token_rotation_mixed_kid_and_kidless() {
        let v = verifier(vec![
            hs_key(SECRET, None),
            hs_key(OTHER_SECRET, Some("new")),
        ]);
        assert!(v.verify(&sign_hs(SECRET, None, &claims()), NOW).is_ok());
        assert!(v
            .verify(&sign_hs(SECRET, Some("unrelated"), &claims()), NOW)
            .is_ok());
        assert!(v
            .verify(&sign_hs(OTHER_SECRET, Some("new"), &claims()), NOW)
            .is_ok());
        // "new" is claimed, so the kid-less key does not see it.
        assert_eq!(
            v.verify(&sign_hs(SECRET, Some("new"), &claims()), NOW),
            Err(TokenError::BadSignature)
        );
        // Without a kid only the kid-less key is tried.
        assert_eq!(
            v.verify(&sign_hs(OTHER_SECRET, None, &claims()), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn token_rotation_across_algorithms() {
        let v = verifier(vec![hs_key(SECRET, None), key(Algorithm::ES256, None)]);
        assert!(v.verify(&sign_hs(SECRET, None, &claims()), NOW).is_ok());
        assert!(v
            .verify(&sign(Algorithm::ES256, None, &claims()), NOW)
            .is_ok());
        assert_eq!(
            v.verify(&sign(Algorithm::RS256, None, &claims()), NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
        // Second key (RSA) accepted during a rotation from RSA key A to B.
        let b = SigningKey::new("RS256", &STANDARD.encode(RSA_B_PUBLIC), None).unwrap();
        let v = verifier(vec![key(Algorithm::RS256, None), b]);
        let key_b = EncodingKey::from_rsa_pem(RSA_B_PRIVATE.as_bytes()).unwrap();
        let t = sign_raw(
            Algorithm::RS256,
            &key_b,
            &json!({"alg": "RS256", "typ": "JWT"}),
            &claims(),
        );
        assert!(v.verify(&t, NOW).is_ok());
        assert!(v
            .verify(&sign(Algorithm::RS256, None, &claims()), NOW)
            .is_ok());
    }

    #[test]
    fn token_kid_claimed_by_key_of_other_alg() {
        let v = verifier(vec![
            key(Algorithm::RS256, Some("a")),
            hs_key(SECRET, Some("b")),
        ]);
        // HS256 is configured, but kid "a" names the RS256 key.
        assert_eq!(
            v.verify(&sign_hs(SECRET, Some("a"), &claims()), NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
        // HS256 without a kid: every HS256 key demands one.
        assert_eq!(
            v.verify(&sign_hs(SECRET, None, &claims()), NOW),
            Err(TokenError::UnknownKeyId)
        );
        assert!(v
            .verify(&sign_hs(SECRET, Some("b"), &claims()), NOW)
            .is_ok());
        assert!(v
            .verify(&sign(Algorithm::RS256, Some("a"), &claims()), NOW)
            .is_ok());
    }

    // ---- header checks -----------------------------------------------------

    fn with_header(header: Value) -> String {
        sign_raw(
            Algorithm::HS256,
            &EncodingKey::from_secret(SECRET),
            &header,
            &claims(),
        )
    }

    #[test]
    fn token_typ_must_be_jwt() {
        let v = hs_verifier();
        for typ in [json!("JWT"), json!("jwt"), json!("Jwt")] {
            assert!(
                v.verify(&with_header(json!({"alg": "HS256", "typ": typ})), NOW)
                    .is_ok(),
                "{typ}"
            );
        }
        assert_eq!(
            v.verify(&with_header(json!({"alg": "HS256"})), NOW),
            Err(TokenError::NotJwtType)
        );
        assert_eq!(TokenError::NotJwtType.code(), "TOKEN_MALFORMED");
        for typ in [
            json!(null),
            json!("at+jwt"),
            json!("JWS"),
            json!(""),
            json!(1),
            json!(["JWT"]),
        ] {
            assert_eq!(
                v.verify(&with_header(json!({"alg": "HS256", "typ": typ})), NOW),
                Err(TokenError::NotJwtType),
                "{typ}"
            );
        }
    }

    #[test]
    fn token_header_field_types_are_checked() {
        let v = hs_verifier();
        for header in [
            json!({"typ": "JWT"}),
            json!({"typ": "JWT", "alg": null}),
            json!({"typ": "JWT", "alg": 256}),
            json!({"typ": "JWT", "alg": ["HS256"]}),
            json!({"typ": "JWT", "alg": "HS256", "kid": 5}),
            json!({"typ": "JWT", "alg": "HS256", "kid": {"a": 1}}),
            json!({"typ": "JWT", "alg": "HS256", "crit": ["exp"]}),
        ] {
            assert_eq!(
                v.verify(&with_header(header.clone()), NOW),
                Err(TokenError::Malformed),
                "{header}"
            );
        }
        assert!(v
            .verify(
                &with_header(json!({"typ": "JWT", "alg": "HS256", "kid": null})),
                NOW
            )
            .is_ok());
    }

    // ---- malformed tokens ------------------------------------------------

    #[test]
    fn token_malformed_shapes() {
        let v = hs_verifier();
        let good = sign_hs256(SECRET, &claims());
        let parts: Vec<&str> = good.split('.').collect();
        let bad_json = b64url("{not json");
        let array = b64url("[1,2]");
        let string = b64url("\"x\"");
        let cases = [
            String::new(),
            ".".into(),
            "..".into(),
            "...".into(),
            "abc".into(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{good}.extra"),
            format!("{good}."),
            format!(".{good}"),
            format!("{}.{}.!!!", parts[0], parts[1]),
            format!("!!!.{}.{}", parts[1], parts[2]),
            format!("{}.!!!.{}", parts[0], parts[2]),
            format!("{}==.{}.{}", parts[0], parts[1], parts[2]),
            format!("ab+/.{}.{}", parts[1], parts[2]),
            format!("{}.{}.ab+/", parts[0], parts[1]),
            format!("{bad_json}.{}.{}", parts[1], parts[2]),
            format!("{}.{bad_json}.{}", parts[0], parts[2]),
            format!("{array}.{}.{}", parts[1], parts[2]),
            format!("{}.{array}.{}", parts[0], parts[2]),
            format!("{}.{string}.{}", parts[0], parts[2]),
            format!("{}.{}.{}", parts[0], b64url(""), parts[2]),
            format!(" {good}"),
            format!("{good}\n"),
            format!("Bearer {good}"),
        ];
        for token in cases {
            assert_eq!(
                v.verify(&token, NOW),
                Err(TokenError::Malformed),
                "{token:?}"
            );
        }
        assert!(v.verify(&good, NOW).is_ok());
    }

    #[test]
    fn token_payload_that_is_not_an_object_is_malformed_even_when_signed() {
        let v = hs_verifier();
        let header = b64url(json!({"alg": "HS256", "typ": "JWT"}).to_string());
        for payload in ["[1]", "null", "42", "{\"exp\":", "\u{feff}{}"] {
            let input = format!("{header}.{}", b64url(payload));
            let signer = (DEFAULT_PROVIDER.signer_factory)(
                &jsonwebtoken::Algorithm::HS256,
                &EncodingKey::from_secret(SECRET),
            )
            .unwrap();
            let token = format!(
                "{input}.{}",
                b64url(signer.try_sign(input.as_bytes()).unwrap())
            );
            assert_eq!(
                v.verify(&token, NOW),
                Err(TokenError::Malformed),
                "{payload}"
            );
        }
    }

    #[test]
    fn token_empty_signature_is_rejected() {
        let good = sign_hs256(SECRET, &claims());
        let unsigned = &good[..good.rfind('.').unwrap() + 1];
        assert_eq!(
            hs_verifier().verify(unsigned, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn token_oversized_is_malformed() {
        let big = json!({"exp": NOW + 60, "pad": "x".repeat(MAX_TOKEN_LEN)});
        assert_eq!(
            hs_verifier().verify(&sign_hs256(SECRET, &big), NOW),
            Err(TokenError::Malformed)
        );
        let fits = json!({"exp": NOW + 60, "pad": "x".repeat(MAX_TOKEN_LEN / 2)});
        assert!(hs_verifier()
            .verify(&sign_hs256(SECRET, &fits), NOW)
            .is_ok());
    }

    // ---- errors ----------------------------------------------------------

    #[test]
    fn token_error_codes_are_stable_and_distinct() {
        let all = [
            (TokenError::Malformed, "TOKEN_MALFORMED"),
            (
                TokenError::UnsupportedAlgorithm,
                "TOKEN_ALGORITHM_NOT_ALLOWED",
            ),
            (TokenError::UnknownKeyId, "TOKEN_UNKNOWN_KEY_ID"),
            (TokenError::BadSignature, "TOKEN_BAD_SIGNATURE"),
            (TokenError::Expired, "TOKEN_EXPIRED"),
            (TokenError::NotYetValid, "TOKEN_NOT_YET_VALID"),
            (TokenError::WrongAudience, "TOKEN_WRONG_AUDIENCE"),
            (TokenError::WrongIssuer, "TOKEN_WRONG_ISSUER"),
            (TokenError::MissingExpiry, "TOKEN_MISSING_EXPIRY"),
        ];
        let mut codes = std::collections::HashSet::new();
        for (err, code) in all {
            assert_eq!(err.code(), code);
            assert!(codes.insert(code));
            assert!(!err.to_string().is_empty());
        }
    }

    // ---- key configuration -------------------------------------------------

    #[test]
    fn token_key_method_is_case_insensitive() {
        for method in ["hs256", "Hs256", " HS256 "] {
            assert_eq!(
                SigningKey::new(method, &STANDARD.encode(SECRET), None)
                    .unwrap()
                    .algorithm(),
                Algorithm::HS256
            );
        }
        for method in ["eddsa", "EDDSA", "EdDSA"] {
            assert_eq!(
                SigningKey::new(method, &STANDARD.encode(ED_PUBLIC), None)
                    .unwrap()
                    .algorithm(),
                Algorithm::EdDSA
            );
        }
        let k =
            SigningKey::new("ps512", &STANDARD.encode(RSA_A_PUBLIC), Some("id".into())).unwrap();
        assert_eq!((k.algorithm(), k.kid()), (Algorithm::PS512, Some("id")));
    }

    #[test]
    fn token_key_bad_method_is_rejected() {
        for method in ["", "none", "HS1", "ES521", "ES256K", "RSA", "HS256 HS384"] {
            assert!(
                matches!(
                    SigningKey::new(method, &STANDARD.encode(SECRET), None),
                    Err(KeyConfigError::UnsupportedMethod(_))
                ),
                "{method}"
            );
        }
    }

    #[test]
    fn token_key_base64_is_lenient_about_padding_and_whitespace() {
        let secret = b"sixteen byte key!"; // 17 bytes → padded Base64
        let padded = STANDARD.encode(secret);
        assert!(padded.ends_with('='));
        let unpadded = STANDARD_NO_PAD.encode(secret);
        let wrapped = format!(" {}\n{} \r\n", &padded[..10], &padded[10..]);
        let url_safe = URL_SAFE_NO_PAD.encode(secret);
        for encoded in [padded, unpadded, wrapped, url_safe] {
            let v = verifier(vec![SigningKey::new("HS256", &encoded, None).unwrap()]);
            assert!(
                v.verify(&sign_hs(secret, None, &claims()), NOW).is_ok(),
                "{encoded:?}"
            );
        }
        // A PEM wrapped at 64 columns, as `base64` does by default.
        let wrapped_pem: String = STANDARD
            .encode(RSA_A_PUBLIC)
            .as_bytes()
            .chunks(64)
            .map(|c| format!("{}\n", std::str::from_utf8(c).unwrap()))
            .collect();
        assert!(SigningKey::new("RS256", &wrapped_pem, None).is_ok());
    }

    #[test]
    fn token_key_raw_pem_is_accepted() {
        let k = SigningKey::new("ES384", P384_PUBLIC, None).unwrap();
        assert!(verifier(vec![k])
            .verify(&sign(Algorithm::ES384, None, &claims()), NOW)
            .is_ok());
    }

    #[test]
    fn token_key_bad_base64_is_rejected() {
        for encoded in ["", "   ", "not base64!", "abc$", "====", "a"] {
            for method in ["HS256", "RS256", "ES256", "EdDSA"] {
                assert!(
                    matches!(
                        SigningKey::new(method, encoded, None),
                        Err(KeyConfigError::InvalidBase64(_))
                    ),
                    "{method} {encoded:?}"
                );
            }
        }
    }

    #[test]
    fn token_key_empty_hmac_secret_is_rejected() {
        assert!(matches!(
            SigningKey::new("HS256", "=", None),
            Err(KeyConfigError::InvalidBase64(_) | KeyConfigError::EmptySecret)
        ));
    }

    #[test]
    fn token_key_bad_pem_is_rejected() {
        let cases: [(&str, &str); 12] = [
            ("RS256", "not a pem at all"),
            ("RS256", P256_PUBLIC),
            ("RS256", ED_PUBLIC),
            ("RS256", RSA_A_PRIVATE),
            (
                "PS256",
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
            ),
            ("ES256", P384_PUBLIC),
            ("ES384", P256_PUBLIC),
            ("ES256", RSA_A_PUBLIC),
            ("ES256", P256_PRIVATE),
            ("EdDSA", RSA_A_PUBLIC),
            ("EdDSA", P256_PUBLIC),
            ("EdDSA", ED_PRIVATE),
        ];
        for (method, pem) in cases {
            let result = SigningKey::new(method, &STANDARD.encode(pem), None);
            assert!(
                matches!(result, Err(KeyConfigError::InvalidKey { .. })),
                "{method} with {:?}: {result:?}",
                pem.lines().next()
            );
        }
    }

    #[test]
    fn token_key_debug_never_shows_the_secret() {
        let k = SigningKey::new(
            "HS256",
            &STANDARD.encode(b"super-secret-value"),
            Some("kid-1".into()),
        )
        .unwrap();
        let debug = format!("{k:?} {:?}", verifier(vec![k.clone()]));
        assert!(
            debug.contains("HS256") && debug.contains("kid-1"),
            "{debug}"
        );
        assert!(
            !debug.contains("super-secret")
                && !debug.contains(&STANDARD.encode(b"super-secret-value"))
        );
    }

    #[test]
    fn token_verifier_key_count_and_duplicate_kids() {
        assert!(matches!(
            Verifier::new(vec![], None, None),
            Err(KeyConfigError::KeyCount(0))
        ));
        let three = vec![
            hs_key(SECRET, None),
            hs_key(SECRET, None),
            hs_key(SECRET, None),
        ];
        assert!(matches!(
            Verifier::new(three, None, None),
            Err(KeyConfigError::KeyCount(3))
        ));
        assert!(matches!(
            Verifier::new(vec![hs_key(SECRET, Some("a")), hs_key(OTHER_SECRET, Some("a"))], None, None),
            Err(KeyConfigError::DuplicateKeyId(k)) if k == "a"
        ));
        let v = Verifier::new(
            vec![hs_key(SECRET, Some("")), hs_key(OTHER_SECRET, None)],
            Some(String::new()),
            Some(String::new()),
        )
        .unwrap();
        assert_eq!(v.keys()[0].kid(), None, "empty kid counts as none");
        assert_eq!((v.audience(), v.issuer()), (None, None));
    }

    // ---- from_env ----------------------------------------------------------

    #[test]
    fn token_from_env_single_key() {
        let encoded = STANDARD.encode(SECRET);
        let v = Verifier::from_env(env(&[
            ("SIGNING_KEY_1_METHOD", "HS256"),
            ("SIGNING_KEY_1_ENCODED", &encoded),
        ]))
        .unwrap();
        assert_eq!(v.keys().len(), 1);
        assert_eq!(v.keys()[0].algorithm(), Algorithm::HS256);
        assert_eq!(v.keys()[0].kid(), None);
        assert_eq!((v.audience(), v.issuer()), (None, None));
        assert!(v.verify(&sign_hs256(SECRET, &claims()), NOW).is_ok());
    }

    #[test]
    fn token_from_env_two_keys_with_ids_audience_and_issuer() {
        let hs = STANDARD.encode(SECRET);
        let rs = STANDARD.encode(RSA_A_PUBLIC);
        let v = Verifier::from_env(env(&[
            ("SIGNING_KEY_1_METHOD", "hs256"),
            ("SIGNING_KEY_1_ENCODED", &hs),
            ("SIGNING_KEY_1_ID", "old"),
            ("SIGNING_KEY_2_METHOD", "RS256"),
            ("SIGNING_KEY_2_ENCODED", &rs),
            ("SIGNING_KEY_2_ID", " new\n"),
            ("TOKEN_AUDIENCE", "my-app"),
            ("TOKEN_ISSUER", "me"),
        ]))
        .unwrap();
        assert_eq!(v.keys().len(), 2);
        assert_eq!(v.keys()[0].kid(), Some("old"));
        assert_eq!(v.keys()[1].kid(), Some("new"));
        assert_eq!(v.keys()[1].algorithm(), Algorithm::RS256);
        assert_eq!((v.audience(), v.issuer()), (Some("my-app"), Some("me")));
        let c = with(json!({"aud": "my-app", "iss": "me"}));
        assert!(v
            .verify(&sign(Algorithm::RS256, Some("new"), &c), NOW)
            .is_ok());
        assert!(v.verify(&sign_hs(SECRET, Some("old"), &c), NOW).is_ok());
        assert_eq!(
            v.verify(&sign(Algorithm::RS256, Some("new"), &claims()), NOW),
            Err(TokenError::WrongAudience)
        );
    }

    #[test]
    fn token_from_env_empty_values_count_as_unset() {
        let encoded = STANDARD.encode(SECRET);
        let v = Verifier::from_env(env(&[
            ("SIGNING_KEY_1_METHOD", "HS256"),
            ("SIGNING_KEY_1_ENCODED", &encoded),
            ("SIGNING_KEY_1_ID", ""),
            ("SIGNING_KEY_2_METHOD", ""),
            ("SIGNING_KEY_2_ENCODED", "  "),
            ("SIGNING_KEY_2_ID", ""),
            ("TOKEN_AUDIENCE", ""),
            ("TOKEN_ISSUER", " "),
        ]))
        .unwrap();
        assert_eq!(v.keys().len(), 1);
        assert_eq!(v.keys()[0].kid(), None);
        assert_eq!((v.audience(), v.issuer()), (None, None));
    }

    #[test]
    fn token_from_env_missing_variables() {
        let encoded = STANDARD.encode(SECRET);
        let missing = |pairs: &[(&str, &str)]| match Verifier::from_env(env(pairs)) {
            Err(KeyConfigError::MissingVar(var)) => var,
            other => panic!("expected MissingVar, got {other:?}"),
        };
        assert_eq!(missing(&[]), "SIGNING_KEY_1_METHOD");
        assert_eq!(
            missing(&[("SIGNING_KEY_1_METHOD", "")]),
            "SIGNING_KEY_1_METHOD"
        );
        assert_eq!(
            missing(&[("SIGNING_KEY_1_METHOD", "HS256")]),
            "SIGNING_KEY_1_ENCODED"
        );
        assert_eq!(
            missing(&[("SIGNING_KEY_1_ENCODED", &encoded)]),
            "SIGNING_KEY_1_METHOD"
        );
        // Key 2 alone does not stand in for key 1.
        assert_eq!(
            missing(&[
                ("SIGNING_KEY_2_METHOD", "HS256"),
                ("SIGNING_KEY_2_ENCODED", &encoded)
            ]),
            "SIGNING_KEY_1_METHOD"
        );
        // A partly configured key 2 is an error, not silently ignored.
        let one = [
            ("SIGNING_KEY_1_METHOD", "HS256"),
            ("SIGNING_KEY_1_ENCODED", encoded.as_str()),
        ];
        assert_eq!(
            missing(&[one[0], one[1], ("SIGNING_KEY_2_METHOD", "HS256")]),
            "SIGNING_KEY_2_ENCODED"
        );
        assert_eq!(
            missing(&[one[0], one[1], ("SIGNING_KEY_2_ENCODED", &encoded)]),
            "SIGNING_KEY_2_METHOD"
        );
        assert_eq!(
            missing(&[one[0], one[1], ("SIGNING_KEY_2_ID", "k")]),
            "SIGNING_KEY_2_METHOD"
        );
    }

    #[test]
    fn token_from_env_bad_values_name_the_slot() {
        let encoded = STANDARD.encode(SECRET);
        let err = Verifier::from_env(env(&[
            ("SIGNING_KEY_1_METHOD", "HS256"),
            ("SIGNING_KEY_1_ENCODED", "***"),
        ]))
        .unwrap_err();
        assert!(
            matches!(&err, KeyConfigError::Slot { slot: 1, source } if matches!(**source, KeyConfigError::InvalidBase64(_))),
            "{err:?}"
        );
        assert!(err.to_string().starts_with("SIGNING_KEY_1: "), "{err}");

        let err = Verifier::from_env(env(&[
            ("SIGNING_KEY_1_METHOD", "HS256"),
            ("SIGNING_KEY_1_ENCODED", &encoded),
            ("SIGNING_KEY_2_METHOD", "XS256"),
            ("SIGNING_KEY_2_ENCODED", &encoded),
        ]))
        .unwrap_err();
        assert!(
            matches!(&err, KeyConfigError::Slot { slot: 2, source } if matches!(**source, KeyConfigError::UnsupportedMethod(_))),
            "{err:?}"
        );
        assert!(
            !err.to_string().contains(&encoded),
            "no key material in messages"
        );

        let err = Verifier::from_env(env(&[
            ("SIGNING_KEY_1_METHOD", "ES256"),
            ("SIGNING_KEY_1_ENCODED", &STANDARD.encode(RSA_A_PUBLIC)),
        ]))
        .unwrap_err();
        assert!(
            matches!(&err, KeyConfigError::Slot { slot: 1, source } if matches!(**source, KeyConfigError::InvalidKey { .. })),
            "{err:?}"
        );

        let err = Verifier::from_env(env(&[
            ("SIGNING_KEY_1_METHOD", "HS256"),
            ("SIGNING_KEY_1_ENCODED", &encoded),
            ("SIGNING_KEY_1_ID", "same"),
            ("SIGNING_KEY_2_METHOD", "HS256"),
            ("SIGNING_KEY_2_ENCODED", &encoded),
            ("SIGNING_KEY_2_ID", "same"),
        ]))
        .unwrap_err();
        assert!(matches!(err, KeyConfigError::DuplicateKeyId(_)), "{err:?}");
    }

    // ---- robustness --------------------------------------------------------

    #[test]
    fn token_verifier_is_shareable() {
        fn assert_shareable<T: Send + Sync + Clone + std::fmt::Debug + 'static>() {}
        assert_shareable::<Verifier>();
        assert_shareable::<SigningKey>();
        assert_shareable::<TokenError>();
    }

    /// One verifier per algorithm, plus a two-key kid-routed one; built once.
    fn all_verifiers() -> &'static [Verifier] {
        static ALL: std::sync::OnceLock<Vec<Verifier>> = std::sync::OnceLock::new();
        ALL.get_or_init(build_all_verifiers)
    }

    fn build_all_verifiers() -> Vec<Verifier> {
        let mut all: Vec<Verifier> = ALL_ALGS
            .into_iter()
            .map(|alg| {
                Verifier::new(vec![key(alg, None)], Some("aud".into()), Some("iss".into())).unwrap()
            })
            .collect();
        all.push(verifier(vec![
            key(Algorithm::EdDSA, Some("ed")),
            key(Algorithm::ES256, Some("ec")),
        ]));
        all
    }

    fn header_strategy() -> impl Strategy<Value = Value> {
        let alg = prop_oneof![
            Just(json!("HS256")),
            Just(json!("HS384")),
            Just(json!("HS512")),
            Just(json!("RS256")),
            Just(json!("PS512")),
            Just(json!("ES256")),
            Just(json!("ES384")),
            Just(json!("EdDSA")),
            Just(json!("none")),
            Just(json!(null)),
            Just(json!(1)),
            ".*".prop_map(Value::from),
        ];
        let kid = prop_oneof![
            Just(None),
            Just(Some(json!("ed"))),
            Just(Some(json!("ec"))),
            Just(Some(json!(7))),
            ".{0,8}".prop_map(|s| Some(Value::from(s))),
        ];
        (alg, kid, any::<bool>()).prop_map(|(alg, kid, typ)| {
            let mut h = json!({"alg": alg});
            if let Some(kid) = kid {
                h["kid"] = kid;
            }
            if typ {
                h["typ"] = json!("JWT");
            }
            h
        })
    }

    fn claims_strategy() -> impl Strategy<Value = Value> {
        let number = prop_oneof![
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(Value::from),
            Just(Value::Null),
            ".*".prop_map(Value::from),
        ];
        (
            number.clone(),
            number,
            prop::option::of(".*"),
            prop::collection::vec(".*", 0..3),
        )
            .prop_map(
                |(exp, nbf, iss, aud)| json!({"exp": exp, "nbf": nbf, "iss": iss, "aud": aud}),
            )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn token_verify_never_panics_on_arbitrary_strings(s in ".*", now in any::<i64>()) {
            for v in all_verifiers() {
                let _ = v.verify(&s, now);
            }
        }

        #[test]
        fn token_verify_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512), now in any::<i64>()) {
            let s = String::from_utf8_lossy(&bytes);
            for v in all_verifiers() {
                let _ = v.verify(&s, now);
            }
        }

        #[test]
        fn token_verify_never_panics_on_arbitrary_parts(
            a in prop::collection::vec(any::<u8>(), 0..256),
            b in prop::collection::vec(any::<u8>(), 0..256),
            c in prop::collection::vec(any::<u8>(), 0..600),
        ) {
            let token = format!("{}.{}.{}", b64url(a), b64url(b), b64url(c));
            for v in all_verifiers() {
                prop_assert!(v.verify(&token, NOW).is_err());
            }
        }

        #[test]
        fn token_verify_never_panics_on_structured_tokens(
            header in header_strategy(),
            claims in claims_strategy(),
            sig in prop::collection::vec(any::<u8>(), 0..600),
            now in any::<i64>(),
        ) {
            let token = format!(
                "{}.{}.{}",
                b64url(header.to_string()),
                b64url(claims.to_string()),
                b64url(sig)
            );
            for v in all_verifiers() {
                // Random signatures never verify.
                prop_assert!(v.verify(&token, now).is_err());
            }
        }

        #[test]
        fn token_validly_signed_claims_never_panic(claims in claims_strategy(), now in any::<i64>()) {
            let v = Verifier::new(vec![hs_key(SECRET, None)], Some("aud".into()), Some("iss".into())).unwrap();
            let _ = v.verify(&sign_hs256(SECRET, &claims), now);
        }

        #[test]
        fn token_hmac_round_trips_for_any_secret(secret in prop::collection::vec(any::<u8>(), 1..128), exp_in in 1i64..1_000_000) {
            let k = SigningKey::new("HS256", &STANDARD.encode(&secret), None).unwrap();
            let v = verifier(vec![k]);
            let t = sign_hs256(&secret, &json!({"exp": NOW + exp_in}));
            prop_assert!(v.verify(&t, NOW).is_ok());
            prop_assert_eq!(v.verify(&t, NOW + exp_in), Err(TokenError::Expired));
        }
    }
}
