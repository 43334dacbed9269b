//! JWT verification for a stage (docs/protocol.md, "Connecting").
//!
//! The token is parsed by hand and only the signature check is delegated to
//! `jsonwebtoken`'s RustCrypto provider, because the protocol's rules are
//! stricter and more specific than `jsonwebtoken::decode` (key routing by
//! `alg`/`kid` across two rotating keys, `typ`, a caller-supplied clock, `aud`
//! string-or-array) and because every failure must map to a stable error code.
//!
//! Supported algorithms: HS256/384/512, RS256/384/512, PS256/384/512, ES256,
//! ES384 and EdDSA (Ed25519). ES512 is **not** supported: `jsonwebtoken` 11
//! has no P-521 implementation, so configuring it is a [`KeyConfigError`].

use base64::alphabet;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, URL_SAFE_NO_PAD};
use base64::engine::DecodePaddingMode;
use base64::Engine;
use hmac::{Hmac, Mac};
use jsonwebtoken::crypto::rust_crypto::DEFAULT_PROVIDER;
use jsonwebtoken::{AlgorithmFamily, DecodingKey};
use serde_json::{Map, Value};
use sha2::Sha256;
use std::fmt;

pub use jsonwebtoken::Algorithm;

/// Tokens travel in a query string or a JSON frame; anything this large is not
/// a token a backend meant to send, and refusing it early bounds the work an
/// unauthenticated client can cause.
pub const MAX_TOKEN_LEN: usize = 64 * 1024;

/// Why a token was rejected. Unit variants only, so handlers can compare and
/// copy them freely; [`TokenError::code`] is the stable wire code.
#[derive(Debug, thiserror::Error, Clone, Copy, PartialEq, Eq)]
pub enum TokenError {
    #[error("token is not a well-formed JWT")]
    Malformed,
    #[error("token algorithm is not allowed by this stage")]
    UnsupportedAlgorithm,
    #[error("token kid does not match a configured signing key")]
    UnknownKeyId,
    #[error("token signature is invalid")]
    BadSignature,
    #[error("token has expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token audience does not match")]
    WrongAudience,
    #[error("token issuer does not match")]
    WrongIssuer,
    #[error("token must have a numeric exp claim")]
    MissingExpiry,
}

impl TokenError {
    /// Stable machine-readable code, for logs and error payloads.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Malformed => "TOKEN_MALFORMED",
            TokenError::UnsupportedAlgorithm => "TOKEN_ALGORITHM_NOT_ALLOWED",
            TokenError::UnknownKeyId => "TOKEN_UNKNOWN_KEY_ID",
            TokenError::BadSignature => "TOKEN_BAD_SIGNATURE",
            TokenError::Expired => "TOKEN_EXPIRED",
            TokenError::NotYetValid => "TOKEN_NOT_YET_VALID",
            TokenError::WrongAudience => "TOKEN_WRONG_AUDIENCE",
            TokenError::WrongIssuer => "TOKEN_WRONG_ISSUER",
            TokenError::MissingExpiry => "TOKEN_MISSING_EXPIRY",
        }
    }
}

/// A stage's signing-key configuration is unusable. Messages never contain
/// key material.
#[derive(Debug, thiserror::Error)]
pub enum KeyConfigError {
    #[error("unsupported signing method {0:?} (expected HS256/384/512, RS256/384/512, PS256/384/512, ES256, ES384 or EdDSA)")]
    UnsupportedMethod(String),
    #[error("encoded key is not valid Base64: {0}")]
    InvalidBase64(String),
    #[error("HMAC secret is empty")]
    EmptySecret,
    #[error("not a usable {method} public key: {reason}")]
    InvalidKey {
        method: &'static str,
        reason: String,
    },
    #[error("expected 1 or 2 signing keys, got {0}")]
    KeyCount(usize),
    #[error("two signing keys share the kid {0:?}")]
    DuplicateKeyId(String),
    #[error("{0} is required")]
    MissingVar(&'static str),
    #[error("SIGNING_KEY_{slot}: {source}")]
    Slot {
        slot: u8,
        #[source]
        source: Box<KeyConfigError>,
    },
}

/// The JWS name of an algorithm, as it appears in a token header.
fn algorithm_name(alg: Algorithm) -> &'static str {
    match alg {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        Algorithm::ES256 => "ES256",
        Algorithm::ES384 => "ES384",
        Algorithm::RS256 => "RS256",
        Algorithm::RS384 => "RS384",
        Algorithm::RS512 => "RS512",
        Algorithm::PS256 => "PS256",
        Algorithm::PS384 => "PS384",
        Algorithm::PS512 => "PS512",
        Algorithm::EdDSA => "EdDSA",
        // `Algorithm` is non-exhaustive; a newer variant is never configured
        // because `algorithm_from_method` cannot produce it.
        _ => "unknown",
    }
}

/// Parses a header `alg` exactly (JWS algorithm names are case-sensitive).
fn algorithm_from_header(name: &str) -> Option<Algorithm> {
    name.parse().ok()
}

/// Parses a configured method; operators get case-insensitivity.
fn algorithm_from_method(method: &str) -> Option<Algorithm> {
    match method.trim().to_ascii_uppercase().as_str() {
        "HS256" => Some(Algorithm::HS256),
        "HS384" => Some(Algorithm::HS384),
        "HS512" => Some(Algorithm::HS512),
        "RS256" => Some(Algorithm::RS256),
        "RS384" => Some(Algorithm::RS384),
        "RS512" => Some(Algorithm::RS512),
        "PS256" => Some(Algorithm::PS256),
        "PS384" => Some(Algorithm::PS384),
        "PS512" => Some(Algorithm::PS512),
        "ES256" => Some(Algorithm::ES256),
        "ES384" => Some(Algorithm::ES384),
        "EDDSA" => Some(Algorithm::EdDSA),
        _ => None,
    }
}

fn lenient_engine(alphabet: &alphabet::Alphabet) -> GeneralPurpose {
    GeneralPurpose::new(
        alphabet,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    )
}

/// Decodes operator-supplied Base64: standard alphabet (URL-safe also
/// accepted), padding optional, whitespace anywhere ignored — values pasted
/// into consoles and env files often pick up line breaks.
fn decode_config_base64(encoded: &str) -> Result<Vec<u8>, KeyConfigError> {
    let compact: String = encoded
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    if compact.is_empty() {
        return Err(KeyConfigError::InvalidBase64("value is empty".into()));
    }
    lenient_engine(&alphabet::STANDARD)
        .decode(&compact)
        .or_else(|standard_err| {
            lenient_engine(&alphabet::URL_SAFE)
                .decode(&compact)
                .map_err(|_| standard_err)
        })
        .map_err(|e| KeyConfigError::InvalidBase64(e.to_string()))
}

/// One configured signing key.
#[derive(Clone)]
pub struct SigningKey {
    alg: Algorithm,
    key: DecodingKey,
    kid: Option<String>,
}

impl fmt::Debug for SigningKey {
    // Hand-written so a secret can never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("alg", &self.alg)
            .field("kid", &self.kid)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// `method`: the algorithm name (`HS256` … `EdDSA`, case-insensitive).
    /// `encoded`: Base64 of the HMAC secret bytes, or Base64 of the PEM public
    /// key (SPKI `PUBLIC KEY`, or PKCS#1 `RSA PUBLIC KEY` for RSA). A raw PEM
    /// starting with `-----BEGIN` is accepted as well, as a convenience.
    /// `kid`: optional key id; an empty one counts as none.
    ///
    /// Public keys are checked here (type, curve, parseability) so a bad
    /// configuration fails at start-up instead of rejecting every token.
    pub fn new(method: &str, encoded: &str, kid: Option<String>) -> Result<Self, KeyConfigError> {
        let alg = algorithm_from_method(method)
            .ok_or_else(|| KeyConfigError::UnsupportedMethod(method.trim().to_string()))?;
        let kid = kid.filter(|k| !k.is_empty());
        let key = match alg.family() {
            AlgorithmFamily::Hmac => {
                let secret = decode_config_base64(encoded)?;
                if secret.is_empty() {
                    return Err(KeyConfigError::EmptySecret);
                }
                DecodingKey::from_secret(&secret)
            }
            family => public_key(alg, family, encoded)?,
        };
        Ok(SigningKey { alg, key, kid })
    }

    pub fn algorithm(&self) -> Algorithm {
        self.alg
    }

    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// True when `signature` is this key's signature of `message`. Any
    /// provider error counts as "does not verify".
    fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        match (DEFAULT_PROVIDER.verifier_factory)(&self.alg, &self.key) {
            Ok(verifier) => verifier.verify(message, &signature.to_vec()).is_ok(),
            Err(_) => false,
        }
    }
}

/// Loads and validates an asymmetric public key for `alg`.
fn public_key(
    alg: Algorithm,
    family: AlgorithmFamily,
    encoded: &str,
) -> Result<DecodingKey, KeyConfigError> {
    let method = algorithm_name(alg);
    let invalid = |reason: &str| KeyConfigError::InvalidKey {
        method,
        reason: reason.to_string(),
    };
    let pem = if encoded.trim_start().starts_with("-----BEGIN") {
        encoded.trim().as_bytes().to_vec()
    } else {
        decode_config_base64(encoded)?
    };
    let wrong_type = match family {
        AlgorithmFamily::Rsa => "expected an RSA public key PEM",
        AlgorithmFamily::Ec => "expected an EC public key PEM",
        _ => "expected an Ed25519 public key PEM",
    };
    let key = match family {
        AlgorithmFamily::Rsa => DecodingKey::from_rsa_pem(&pem),
        AlgorithmFamily::Ec => DecodingKey::from_ec_pem(&pem),
        _ => DecodingKey::from_ed_pem(&pem),
    }
    .map_err(|_| invalid(wrong_type))?;
    let der = key
        .try_get_as_bytes()
        .map_err(|_| invalid("unexpected key encoding"))?;
    match family {
        AlgorithmFamily::Rsa => {
            // The PEM loader also accepts private keys; only a parseable
            // PKCS#1 public key is usable for verification.
            (DEFAULT_PROVIDER
                .key_utils
                .rsa_pub_components_from_public_key)(der)
            .map_err(|_| invalid("not a valid RSA public key"))?;
        }
        AlgorithmFamily::Ed if der.len() != 32 => {
            // Checked before building a verifier: the provider slices the
            // first 32 bytes without a length check.
            return Err(invalid("Ed25519 public keys are 32 bytes"));
        }
        _ => {}
    }
    // Building a verifier parses EC points (and catches curve mismatches such
    // as a P-384 key configured for ES256) and Ed25519 points.
    (DEFAULT_PROVIDER.verifier_factory)(&alg, &key).map_err(|_| match family {
        AlgorithmFamily::Ec => invalid("key is not on the curve this method uses"),
        _ => invalid("not a valid public key"),
    })?;
    Ok(key)
}

/// Verifies tokens against the stage's one or two signing keys.
///
/// Key routing (a token must pass all three steps):
/// 1. The header `alg` must be the algorithm of at least one configured key,
///    else [`TokenError::UnsupportedAlgorithm`] (this also rejects `none` and
///    HS-vs-RS/EC algorithm confusion before any crypto runs).
/// 2. If the token's `kid` is claimed by a configured key, only keys with that
///    kid are candidates; if those use a different algorithm →
///    `UnsupportedAlgorithm`.
/// 3. Otherwise (token has no kid, or a kid no configured key claims) only keys
///    *without* a kid are candidates — a kid-less key ignores the token's kid,
///    because many JWT libraries add one by default. No such key →
///    [`TokenError::UnknownKeyId`].
///
/// Every candidate is tried; [`TokenError::BadSignature`] only if none
/// verifies.
#[derive(Debug, Clone)]
pub struct Verifier {
    keys: Vec<SigningKey>,
    audience: Option<String>,
    issuer: Option<String>,
}

impl Verifier {
    /// `keys`: one, or two during a rotation; kids must be distinct. An empty
    /// audience or issuer counts as not required.
    pub fn new(
        keys: Vec<SigningKey>,
        audience: Option<String>,
        issuer: Option<String>,
    ) -> Result<Self, KeyConfigError> {
        if !(1..=2).contains(&keys.len()) {
            return Err(KeyConfigError::KeyCount(keys.len()));
        }
        if let [a, b] = keys.as_slice() {
            if let (Some(ka), Some(kb)) = (a.kid(), b.kid()) {
                if ka == kb {
                    return Err(KeyConfigError::DuplicateKeyId(ka.to_string()));
                }
            }
        }
        Ok(Verifier {
            keys,
            audience: audience.filter(|a| !a.is_empty()),
            issuer: issuer.filter(|i| !i.is_empty()),
        })
    }

    /// Reads `SIGNING_KEY_1_METHOD`, `SIGNING_KEY_1_ENCODED`,
    /// `SIGNING_KEY_1_ID` (optional), the same for `SIGNING_KEY_2_*` (optional;
    /// any of its variables being set means key 2 is configured and needs both
    /// METHOD and ENCODED), `TOKEN_AUDIENCE` and `TOKEN_ISSUER`, through `get`
    /// so tests need no process environment. Empty or blank values count as
    /// unset.
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, KeyConfigError> {
        let get = |name: &str| get(name).filter(|v| !v.trim().is_empty());
        const SLOTS: [(u8, [&str; 3]); 2] = [
            (
                1,
                [
                    "SIGNING_KEY_1_METHOD",
                    "SIGNING_KEY_1_ENCODED",
                    "SIGNING_KEY_1_ID",
                ],
            ),
            (
                2,
                [
                    "SIGNING_KEY_2_METHOD",
                    "SIGNING_KEY_2_ENCODED",
                    "SIGNING_KEY_2_ID",
                ],
            ),
        ];
        let mut keys = Vec::with_capacity(2);
        for (slot, [method_var, encoded_var, id_var]) in SLOTS {
            let (method, encoded, id) = (get(method_var), get(encoded_var), get(id_var));
            if slot == 2 && method.is_none() && encoded.is_none() && id.is_none() {
                continue;
            }
            let method = method.ok_or(KeyConfigError::MissingVar(method_var))?;
            let encoded = encoded.ok_or(KeyConfigError::MissingVar(encoded_var))?;
            let id = id.map(|i| i.trim().to_string());
            let key = SigningKey::new(&method, &encoded, id).map_err(|e| KeyConfigError::Slot {
                slot,
                source: Box::new(e),
            })?;
            keys.push(key);
        }
        Verifier::new(
            keys,
            get("TOKEN_AUDIENCE").map(|a| a.trim().to_string()),
            get("TOKEN_ISSUER").map(|i| i.trim().to_string()),
        )
    }

    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    pub fn audience(&self) -> Option<&str> {
        self.audience.as_deref()
    }

    pub fn issuer(&self) -> Option<&str> {
        self.issuer.as_deref()
    }

    /// Verifies, in this order: structure (three Base64url parts, JSON object
    /// header and payload, `typ` absent or `JWT` case-insensitively, no `crit`)
    /// → `alg`/`kid` routing (see [`Verifier`]) → signature → `exp` present and
    /// numeric → `exp`/`nbf` against `now` (Unix seconds, zero leeway; expired
    /// when `now >= exp`, early when `now < nbf`) → `aud` → `iss`.
    ///
    /// `now` is the only clock consulted, so callers and tests are
    /// deterministic. Returns the payload for the claims parser.
    pub fn verify(&self, token: &str, now: i64) -> Result<Map<String, Value>, TokenError> {
        let parts = TokenParts::parse(token)?;
        let alg = header_algorithm(&parts.header)?;
        check_typ(&parts.header)?;
        if parts.header.contains_key("crit") {
            // RFC 7515 §4.1.11: extensions we do not understand must be refused.
            return Err(TokenError::Malformed);
        }
        let kid = match parts.header.get("kid") {
            None | Some(Value::Null) => None,
            Some(Value::String(kid)) => Some(kid.as_str()),
            Some(_) => return Err(TokenError::Malformed),
        };
        let candidates = self.candidates(alg, kid)?;
        if !candidates
            .iter()
            .any(|key| key.verifies(parts.signing_input.as_bytes(), &parts.signature))
        {
            return Err(TokenError::BadSignature);
        }
        self.check_claims(&parts.claims, now)?;
        Ok(parts.claims)
    }

    fn candidates(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
    ) -> Result<Vec<&SigningKey>, TokenError> {
        if !self.keys.iter().any(|k| k.alg == alg) {
            return Err(TokenError::UnsupportedAlgorithm);
        }
        let claimed = kid.filter(|kid| self.keys.iter().any(|k| k.kid() == Some(*kid)));
        let candidates: Vec<&SigningKey> = self
            .keys
            .iter()
            .filter(|k| k.alg == alg && k.kid() == claimed)
            .collect();
        match (candidates.is_empty(), claimed) {
            (false, _) => Ok(candidates),
            (true, Some(_)) => Err(TokenError::UnsupportedAlgorithm),
            (true, None) => Err(TokenError::UnknownKeyId),
        }
    }

    fn check_claims(&self, claims: &Map<String, Value>, now: i64) -> Result<(), TokenError> {
        // f64 keeps fractional and very large NumericDates comparable; Unix
        // times are far below 2^53 so the conversion of `now` is exact.
        let now = now as f64;
        let exp = claims
            .get("exp")
            .and_then(Value::as_f64)
            .ok_or(TokenError::MissingExpiry)?;
        if now >= exp {
            return Err(TokenError::Expired);
        }
        match claims.get("nbf") {
            None | Some(Value::Null) => {}
            Some(nbf) => {
                let nbf = nbf.as_f64().ok_or(TokenError::Malformed)?;
                if now < nbf {
                    return Err(TokenError::NotYetValid);
                }
            }
        }
        if let Some(required) = &self.audience {
            let ok = match claims.get("aud") {
                Some(Value::String(aud)) => aud == required,
                Some(Value::Array(auds)) => auds.iter().any(|a| a.as_str() == Some(required)),
                _ => false,
            };
            if !ok {
                return Err(TokenError::WrongAudience);
            }
        }
        if let Some(required) = &self.issuer {
            if claims.get("iss").and_then(Value::as_str) != Some(required.as_str()) {
                return Err(TokenError::WrongIssuer);
            }
        }
        Ok(())
    }
}

/// A structurally valid compact JWS: decoded header, payload and signature,
/// plus the exact bytes that were signed.
struct TokenParts<'a> {
    header: Map<String, Value>,
    claims: Map<String, Value>,
    signature: Vec<u8>,
    signing_input: &'a str,
}

impl<'a> TokenParts<'a> {
    fn parse(token: &'a str) -> Result<Self, TokenError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(TokenError::Malformed);
        }
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        // header.len() + 1 + payload.len() is within `token`: both are
        // prefixes separated by exactly one '.'.
        let signing_input = token
            .get(..header.len() + 1 + payload.len())
            .ok_or(TokenError::Malformed)?;
        Ok(TokenParts {
            header: decode_json_object(header)?,
            claims: decode_json_object(payload)?,
            signature: URL_SAFE_NO_PAD
                .decode(signature)
                .map_err(|_| TokenError::Malformed)?,
            signing_input,
        })
    }
}

fn decode_json_object(part: &str) -> Result<Map<String, Value>, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenError::Malformed),
    }
}

/// `alg` must be a string; `none` and names we do not implement are
/// "not allowed" rather than malformed, since they are well-formed JWS.
fn header_algorithm(header: &Map<String, Value>) -> Result<Algorithm, TokenError> {
    match header.get("alg") {
        Some(Value::String(name)) => {
            algorithm_from_header(name).ok_or(TokenError::UnsupportedAlgorithm)
        }
        _ => Err(TokenError::Malformed),
    }
}

fn check_typ(header: &Map<String, Value>) -> Result<(), TokenError> {
    match header.get("typ") {
        None | Some(Value::Null) => Ok(()),
        Some(Value::String(typ)) if typ.eq_ignore_ascii_case("JWT") => Ok(()),
        Some(_) => Err(TokenError::Malformed),
    }
}

/// Test/dev helper: an HS256 token (`typ: JWT`) over `claims`, for the local
/// stage's dev-token command and for tests. Not used to verify anything.
pub fn sign_hs256(secret: &[u8], claims: &serde_json::Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signing_input = format!("{header}.{payload}");
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(signing_input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{signing_input}.{signature}")
}
