//! ES512: ECDSA on P-521 with SHA-512 (RFC 7518 §3.4), the one signing method
//! of Hotsock's list that `jsonwebtoken` 11 does not implement. Only the
//! curve arithmetic lives here, done by RustCrypto's `p521`; reading the PEM,
//! parsing the token, routing by `alg`/`kid` and checking claims are the
//! parent module's, shared with every other method.

use p521::ecdsa::signature::Verifier as _;
use p521::ecdsa::{Signature, VerifyingKey};

/// A JWS ES512 signature is R and S, each a 66-byte big-endian integer,
/// concatenated (RFC 7518 §3.4) — not the ASN.1 DER form.
const SIGNATURE_LEN: usize = 132;

/// A P-521 public key.
#[derive(Clone)]
pub(super) struct PublicKey(VerifyingKey);

impl PublicKey {
    /// `point`: a SEC1-encoded point (uncompressed or compressed), as found
    /// in an SPKI `PUBLIC KEY`. `None` when it is not a valid P-521 point —
    /// for instance a P-256 or P-384 key.
    pub(super) fn from_sec1(point: &[u8]) -> Option<Self> {
        VerifyingKey::from_sec1_bytes(point).ok().map(PublicKey)
    }

    /// True when `signature` is this key's ES512 signature of `message`.
    /// Anything but exactly [`SIGNATURE_LEN`] bytes (a DER-encoded signature,
    /// a truncated or padded one) never verifies, nor do R or S outside
    /// 1..n. High-S signatures verify, as in other JWS libraries.
    pub(super) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        signature.len() == SIGNATURE_LEN
            && Signature::from_slice(signature)
                .is_ok_and(|signature| self.0.verify(message, &signature).is_ok())
    }
}
