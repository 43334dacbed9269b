//! JWT verification for a stage (docs/protocol.md, "Connecting").
//!
//! The token is parsed by hand and only the signature check is delegated to
//! `jsonwebtoken`'s RustCrypto provider, because the protocol's rules are
//! stricter and more specific than `jsonwebtoken::decode` (key routing by
//! `alg`/`kid` across two rotating keys, `typ`, a caller-supplied clock, `aud`
//! string-or-array) and because every failure must map to a stable error code.
//!
//! Supported algorithms: Hotsock's list, HS256/384/512, RS256/384/512,
//! PS256/384/512, ES256/384/512 and EdDSA (Ed25519). `jsonwebtoken` 11 has no
//! P-521, so ES512 signatures alone are checked by `token::es512` (RustCrypto
//! `p521`); its keys go through the same PEM loader, and its tokens through the
//! same parsing, key routing and claim checks, as every other method.

mod es512;

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
    #[error("token header must have \"typ\": \"JWT\"")]
    NotJwtType,
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
            TokenError::Malformed | TokenError::NotJwtType => "TOKEN_MALFORMED",
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
    #[error("unsupported signing method {0:?} (expected HS256/384/512, RS256/384/512, PS256/384/512, ES256/384/512 or EdDSA)")]
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

/// A JWS signing method a stage can be configured with (RFC 7518 §3.1,
/// RFC 8037 §3.1): Hotsock's list. Variant names are the JWS names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    ES512,
    EdDSA,
}

impl Algorithm {
    pub const ALL: [Algorithm; 13] = [
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
        Algorithm::ES512,
        Algorithm::EdDSA,
    ];

    /// The JWS name, as it appears in a token header's `alg`.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// Parses a header `alg` exactly (JWS algorithm names are case-sensitive).
    fn from_header(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    /// Parses a configured method; operators get case-insensitivity.
    fn from_method(method: &str) -> Option<Self> {
        let method = method.trim();
        Self::ALL
            .into_iter()
            .find(|alg| alg.name().eq_ignore_ascii_case(method))
    }

    /// The `jsonwebtoken` algorithm that verifies this one, or `None` for
    /// ES512, which `jsonwebtoken` does not implement (see [`es512`]).
    fn provider(self) -> Option<jsonwebtoken::Algorithm> {
        use jsonwebtoken::Algorithm as Jwt;
        Some(match self {
            Algorithm::HS256 => Jwt::HS256,
            Algorithm::HS384 => Jwt::HS384,
            Algorithm::HS512 => Jwt::HS512,
            Algorithm::RS256 => Jwt::RS256,
            Algorithm::RS384 => Jwt::RS384,
            Algorithm::RS512 => Jwt::RS512,
            Algorithm::PS256 => Jwt::PS256,
            Algorithm::PS384 => Jwt::PS384,
            Algorithm::PS512 => Jwt::PS512,
            Algorithm::ES256 => Jwt::ES256,
            Algorithm::ES384 => Jwt::ES384,
            Algorithm::ES512 => return None,
            Algorithm::EdDSA => Jwt::EdDSA,
        })
    }

    /// Which kind of key material the method takes.
    fn family(self) -> AlgorithmFamily {
        match self.provider() {
            Some(provider) => provider.family(),
            None => AlgorithmFamily::Ec,
        }
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
    key: KeyMaterial,
    kid: Option<String>,
}

/// A validated key, in the form its verifier takes.
#[derive(Clone)]
enum KeyMaterial {
    /// Every method but ES512: `jsonwebtoken`'s RustCrypto provider.
    Provider {
        alg: jsonwebtoken::Algorithm,
        key: DecodingKey,
    },
    /// ES512 (see [`es512`]).
    P521(es512::PublicKey),
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
        let alg = Algorithm::from_method(method)
            .ok_or_else(|| KeyConfigError::UnsupportedMethod(method.trim().to_string()))?;
        let kid = kid.filter(|k| !k.is_empty());
        let key = match (alg.provider(), alg.family()) {
            (Some(provider), AlgorithmFamily::Hmac) => {
                let secret = decode_config_base64(encoded)?;
                if secret.is_empty() {
                    return Err(KeyConfigError::EmptySecret);
                }
                KeyMaterial::Provider {
                    alg: provider,
                    key: DecodingKey::from_secret(&secret),
                }
            }
            (_, family) => public_key(alg, family, encoded)?,
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
        match &self.key {
            KeyMaterial::Provider { alg, key } => {
                match (DEFAULT_PROVIDER.verifier_factory)(alg, key) {
                    Ok(verifier) => verifier.verify(message, &signature.to_vec()).is_ok(),
                    Err(_) => false,
                }
            }
            KeyMaterial::P521(key) => key.verifies(message, signature),
        }
    }
}

/// Loads and validates an asymmetric public key for `alg`. The PEM is always
/// read by `jsonwebtoken`'s loader (so every method accepts the same PEM
/// shapes); ES512 then takes the extracted point from there.
fn public_key(
    alg: Algorithm,
    family: AlgorithmFamily,
    encoded: &str,
) -> Result<KeyMaterial, KeyConfigError> {
    let method = alg.name();
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
    // Parsing the point catches curve mismatches (such as a P-384 key
    // configured for ES256, or a P-256 key for ES512) and bad Ed25519 points.
    let bad_point = || match family {
        AlgorithmFamily::Ec => invalid("key is not on the curve this method uses"),
        _ => invalid("not a valid public key"),
    };
    match alg.provider() {
        Some(provider) => {
            // Building a verifier is how the provider parses the point.
            (DEFAULT_PROVIDER.verifier_factory)(&provider, &key).map_err(|_| bad_point())?;
            Ok(KeyMaterial::Provider { alg: provider, key })
        }
        None => es512::PublicKey::from_sec1(der)
            .map(KeyMaterial::P521)
            .ok_or_else(bad_point),
    }
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
            Algorithm::from_header(name).ok_or(TokenError::UnsupportedAlgorithm)
        }
        _ => Err(TokenError::Malformed),
    }
}

/// Hotsock's authentication page: the header's `typ` must be `JWT` (compared
/// case-insensitively, as RFC 7515 asks of media types).
fn check_typ(header: &Map<String, Value>) -> Result<(), TokenError> {
    match header.get("typ") {
        Some(Value::String(typ)) if typ.eq_ignore_ascii_case("JWT") => Ok(()),
        _ => Err(TokenError::NotJwtType),
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

#[cfg(test)]
mod tests {
    //! ES512 through the whole verifier. The other methods are tested through
    //! the public API in `core/tests/token.rs`; `jsonwebtoken` cannot sign
    //! ES512, so these sign with `p521` directly. Every P-521 key here is
    //! TEST-ONLY, generated per run and never stored.

    use super::*;
    use base64::engine::general_purpose::STANDARD;
    use p521::ecdsa::signature::Signer as _;
    use p521::ecdsa::{Signature, SigningKey as P521SigningKey};
    use p521::elliptic_curve::rand_core::OsRng;
    use p521::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};
    use serde_json::json;
    use std::collections::HashMap;

    const NOW: i64 = 1_700_000_000;
    /// TEST-ONLY P-256 public key (shared with `core/tests/token.rs`).
    const P256_PUBLIC: &str = include_str!("../tests/keys/test_only_p256_public.pem");
    const RSA_PUBLIC: &str = include_str!("../tests/keys/test_only_rsa_a_public.pem");

    /// A fresh TEST-ONLY P-521 private key.
    fn test_only_p521_key() -> P521SigningKey {
        P521SigningKey::random(&mut OsRng)
    }

    /// The SPKI `PUBLIC KEY` PEM of `key`, as an operator would export it.
    fn public_pem(key: &P521SigningKey) -> String {
        p521::PublicKey::from_secret_scalar(key.as_nonzero_scalar())
            .to_public_key_pem(LineEnding::LF)
            .unwrap()
    }

    /// The stage's key: Base64 of the public PEM, as `SIGNING_KEY_n_ENCODED`.
    fn es512_key(key: &P521SigningKey, kid: Option<&str>) -> super::SigningKey {
        super::SigningKey::new(
            "ES512",
            &STANDARD.encode(public_pem(key)),
            kid.map(str::to_string),
        )
        .unwrap()
    }

    fn verifier(keys: Vec<super::SigningKey>) -> Verifier {
        Verifier::new(keys, None, None).unwrap()
    }

    fn claims() -> Value {
        json!({"exp": NOW + 60, "scope": "connect", "uid": "jim"})
    }

    fn signing_input(header: &Value, claims: &Value) -> String {
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(claims.to_string())
        )
    }

    /// `header`.`claims` with `signature` bytes as the third part.
    fn with_signature(input: &str, signature: &[u8]) -> String {
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(signature))
    }

    fn raw_signature(key: &P521SigningKey, input: &str) -> Signature {
        key.sign(input.as_bytes())
    }

    /// An ES512 JWS: raw R‖S signature, as RFC 7518 §3.4 requires.
    fn sign_es512(key: &P521SigningKey, kid: Option<&str>, claims: &Value) -> String {
        let mut header = json!({"alg": "ES512", "typ": "JWT"});
        if let Some(kid) = kid {
            header["kid"] = json!(kid);
        }
        let input = signing_input(&header, claims);
        let signature = raw_signature(key, &input);
        with_signature(&input, &signature.to_bytes())
    }

    #[test]
    fn algorithm_names_round_trip_and_map_to_the_provider() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_header(alg.name()), Some(alg));
            assert_eq!(
                Algorithm::from_method(&alg.name().to_lowercase()),
                Some(alg)
            );
            assert_eq!(format!("{alg:?}"), alg.name());
            match alg.provider() {
                Some(provider) => assert_eq!(format!("{provider:?}"), alg.name()),
                None => assert_eq!(alg, Algorithm::ES512),
            }
        }
        assert_eq!(Algorithm::ES512.family(), AlgorithmFamily::Ec);
        assert_eq!(Algorithm::from_header("es512"), None);
    }

    #[test]
    fn es512_valid_token_is_accepted() {
        let key = test_only_p521_key();
        let token = sign_es512(&key, None, &claims());
        let signature = URL_SAFE_NO_PAD
            .decode(token.rsplit('.').next().unwrap())
            .unwrap();
        assert_eq!(signature.len(), 132);
        let payload = verifier(vec![es512_key(&key, None)])
            .verify(&token, NOW)
            .unwrap();
        assert_eq!(Value::Object(payload), claims());
    }

    #[test]
    fn es512_tampered_signature_or_payload_is_rejected() {
        let key = test_only_p521_key();
        let v = verifier(vec![es512_key(&key, None)]);
        let input = signing_input(&json!({"alg": "ES512", "typ": "JWT"}), &claims());
        let signature = raw_signature(&key, &input).to_bytes();
        for at in [0, 65, 66, 131] {
            let mut tampered = signature.to_vec();
            tampered[at] ^= 0x01;
            assert_eq!(
                v.verify(&with_signature(&input, &tampered), NOW),
                Err(TokenError::BadSignature),
                "byte {at}"
            );
        }
        let other_claims = signing_input(
            &json!({"alg": "ES512", "typ": "JWT"}),
            &json!({"exp": NOW + 60, "scope": "connect", "uid": "admin"}),
        );
        assert_eq!(
            v.verify(&with_signature(&other_claims, &signature), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn es512_wrong_key_is_rejected() {
        let (signer, configured) = (test_only_p521_key(), test_only_p521_key());
        assert_eq!(
            verifier(vec![es512_key(&configured, None)])
                .verify(&sign_es512(&signer, None, &claims()), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn es512_der_signature_is_rejected() {
        let key = test_only_p521_key();
        let v = verifier(vec![es512_key(&key, None)]);
        let input = signing_input(&json!({"alg": "ES512", "typ": "JWT"}), &claims());
        let signature = raw_signature(&key, &input);
        let der = signature.to_der();
        assert_ne!(der.as_bytes().len(), 132);
        assert_eq!(
            v.verify(&with_signature(&input, der.as_bytes()), NOW),
            Err(TokenError::BadSignature)
        );
        // The same signature in JWS form verifies.
        assert!(v
            .verify(&with_signature(&input, &signature.to_bytes()), NOW)
            .is_ok());
    }

    #[test]
    fn es512_wrong_length_signature_is_rejected() {
        let key = test_only_p521_key();
        let v = verifier(vec![es512_key(&key, None)]);
        let input = signing_input(&json!({"alg": "ES512", "typ": "JWT"}), &claims());
        let raw = raw_signature(&key, &input).to_bytes().to_vec();
        let mut padded = raw.clone();
        padded.push(0);
        let mut left_padded = vec![0];
        left_padded.extend_from_slice(&raw);
        let candidates: [&[u8]; 6] = [
            &raw[..131],
            &padded,
            &left_padded,
            &raw[..96],
            &raw[..64],
            &[],
        ];
        for signature in candidates {
            assert_eq!(
                v.verify(&with_signature(&input, signature), NOW),
                Err(TokenError::BadSignature),
                "{} bytes",
                signature.len()
            );
        }
        // All-zero R and S are out of range, not a crash.
        assert_eq!(
            v.verify(&with_signature(&input, &[0; 132]), NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn es512_high_s_signature_is_accepted() {
        // Other JWS libraries (golang-jwt, jose) accept both S and n - S.
        let key = test_only_p521_key();
        let v = verifier(vec![es512_key(&key, None)]);
        let input = signing_input(&json!({"alg": "ES512", "typ": "JWT"}), &claims());
        let (r, s) = raw_signature(&key, &input).split_scalars();
        let flipped = Signature::from_scalars(r.to_bytes(), (-*s).to_bytes()).unwrap();
        assert!(v
            .verify(&with_signature(&input, &flipped.to_bytes()), NOW)
            .is_ok());
    }

    #[test]
    fn es512_claims_are_checked_like_any_other_method() {
        let key = test_only_p521_key();
        let v = Verifier::new(
            vec![es512_key(&key, None)],
            Some("hotsock".into()),
            Some("backend".into()),
        )
        .unwrap();
        let good =
            json!({"exp": NOW + 60, "scope": "connect", "aud": ["x", "hotsock"], "iss": "backend"});
        assert!(v.verify(&sign_es512(&key, None, &good), NOW).is_ok());
        let cases = [
            (
                json!({"exp": NOW, "aud": "hotsock", "iss": "backend"}),
                TokenError::Expired,
            ),
            (
                json!({"exp": NOW - 1, "aud": "hotsock", "iss": "backend"}),
                TokenError::Expired,
            ),
            (
                json!({"aud": "hotsock", "iss": "backend"}),
                TokenError::MissingExpiry,
            ),
            (
                json!({"exp": NOW + 60, "nbf": NOW + 1, "aud": "hotsock", "iss": "backend"}),
                TokenError::NotYetValid,
            ),
            (
                json!({"exp": NOW + 60, "aud": "other", "iss": "backend"}),
                TokenError::WrongAudience,
            ),
            (
                json!({"exp": NOW + 60, "aud": "hotsock", "iss": "other"}),
                TokenError::WrongIssuer,
            ),
        ];
        for (claims, expected) in cases {
            assert_eq!(
                v.verify(&sign_es512(&key, None, &claims), NOW),
                Err(expected),
                "{claims}"
            );
        }
    }

    #[test]
    fn es512_is_routed_by_alg_and_kid_next_to_another_method() {
        let key = test_only_p521_key();
        let secret = b"test-only-hmac-secret-0123456789";
        let v = verifier(vec![
            super::SigningKey::new("HS256", &STANDARD.encode(secret), Some("old".into())).unwrap(),
            es512_key(&key, Some("new")),
        ]);
        assert!(v
            .verify(&sign_es512(&key, Some("new"), &claims()), NOW)
            .is_ok());
        // Wrong kid for this method; an unclaimed kid with no kid-less key.
        assert_eq!(
            v.verify(&sign_es512(&key, Some("old"), &claims()), NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
        assert_eq!(
            v.verify(&sign_es512(&key, Some("nope"), &claims()), NOW),
            Err(TokenError::UnknownKeyId)
        );
        // A kid-less ES512 key ignores the token's kid.
        let kidless = verifier(vec![es512_key(&key, None)]);
        assert!(kidless
            .verify(&sign_es512(&key, Some("anything"), &claims()), NOW)
            .is_ok());
    }

    #[test]
    fn es512_and_other_methods_do_not_cross() {
        let key = test_only_p521_key();
        let pem = public_pem(&key);
        // HMAC forged with the public key's bytes, against an ES512 stage.
        let forged = sign_hs256(pem.as_bytes(), &claims());
        assert_eq!(
            verifier(vec![es512_key(&key, None)]).verify(&forged, NOW),
            Err(TokenError::UnsupportedAlgorithm)
        );
        // An ES512 token against stages without an ES512 key.
        let hs = super::SigningKey::new("HS512", &STANDARD.encode(b"secret"), None).unwrap();
        let es256 = super::SigningKey::new("ES256", &STANDARD.encode(P256_PUBLIC), None).unwrap();
        for v in [verifier(vec![hs]), verifier(vec![es256])] {
            assert_eq!(
                v.verify(&sign_es512(&key, None, &claims()), NOW),
                Err(TokenError::UnsupportedAlgorithm)
            );
        }
    }

    #[test]
    fn es512_key_configuration() {
        let key = test_only_p521_key();
        let pem = public_pem(&key);
        let token = sign_es512(&key, None, &claims());
        // Method case-insensitive; Base64 (wrapped or not) or raw PEM.
        for (method, encoded) in [
            ("ES512", STANDARD.encode(&pem)),
            ("es512", STANDARD.encode(&pem)),
            (" Es512 ", pem.clone()),
        ] {
            let k = super::SigningKey::new(method, &encoded, None).unwrap();
            assert_eq!(k.algorithm(), Algorithm::ES512);
            assert!(verifier(vec![k]).verify(&token, NOW).is_ok(), "{method}");
        }
        // Through the environment, like every other method.
        let env: HashMap<&str, String> = HashMap::from([
            ("SIGNING_KEY_1_METHOD", "ES512".into()),
            ("SIGNING_KEY_1_ENCODED", STANDARD.encode(&pem)),
            ("SIGNING_KEY_1_ID", "p521".into()),
        ]);
        let v = Verifier::from_env(|name| env.get(name).cloned()).unwrap();
        assert_eq!(
            (v.keys()[0].algorithm(), v.keys()[0].kid()),
            (Algorithm::ES512, Some("p521"))
        );
        assert!(v
            .verify(&sign_es512(&key, Some("p521"), &claims()), NOW)
            .is_ok());
    }

    #[test]
    fn es512_bad_keys_are_rejected_at_configuration() {
        let key = test_only_p521_key();
        let private_pem = p521::SecretKey::from_bytes(&key.to_bytes())
            .unwrap()
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap();
        let not_on_curve = "key is not on the curve this method uses";
        let not_ec = "expected an EC public key PEM";
        let cases = [
            ("ES512", STANDARD.encode(P256_PUBLIC), not_on_curve),
            ("ES256", STANDARD.encode(public_pem(&key)), not_on_curve),
            ("ES384", STANDARD.encode(public_pem(&key)), not_on_curve),
            ("ES512", STANDARD.encode(RSA_PUBLIC), not_ec),
            ("ES512", STANDARD.encode(private_pem.as_bytes()), not_ec),
            ("ES512", STANDARD.encode("not a pem"), not_ec),
        ];
        for (method, encoded, expected) in cases {
            match super::SigningKey::new(method, &encoded, None) {
                Err(KeyConfigError::InvalidKey { method: m, reason }) => {
                    assert_eq!((m, reason.as_str()), (method, expected), "{method}");
                }
                other => panic!("{method}: {other:?}"),
            }
        }
        assert!(matches!(
            super::SigningKey::new("ES512", "%%%", None),
            Err(KeyConfigError::InvalidBase64(_))
        ));
    }
}
