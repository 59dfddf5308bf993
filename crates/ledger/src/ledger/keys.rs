//! API keys: high-entropy random, shown once, stored only as a SHA-256 hash.

use rand::RngCore;
use sha2::{Digest, Sha256};

/// Every customer key starts with this, so leaked keys are recognisable.
pub const KEY_PREFIX: &str = "gi-";

/// A freshly generated key (its plain text exists only until the response is sent).
pub struct NewKey {
    pub id: String,
    pub plain: String,
    pub hash: KeyHash,
}

/// SHA-256 of a key's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct KeyHash(pub [u8; 32]);

impl KeyHash {
    pub fn of(key: &str) -> Self {
        Self(Sha256::digest(key.as_bytes()).into())
    }

    pub fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    pub fn from_hex(s: &str) -> Option<Self> {
        let v = hex::decode(s).ok()?;
        v.try_into().ok().map(Self)
    }
}

/// 32 random bytes (256 bits) from the OS-seeded CSPRNG, hex-encoded.
pub fn generate() -> NewKey {
    let mut secret = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut secret);
    let plain = format!("{KEY_PREFIX}{}", hex::encode(secret));
    NewKey {
        id: random_id("key_"),
        hash: KeyHash::of(&plain),
        plain,
    }
}

/// A request ID: the time in milliseconds (12 hex digits) then 128 random bits. The
/// random part means the ledger's one-charge-per-request index can never confuse two
/// requests; the time prefix makes IDs ascend, so that index grows at its right edge
/// instead of touching a random page of it on every insert.
pub fn random_request_id() -> String {
    let mut b = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut b);
    format!("req_{:012x}{}", crate::clock::unix_millis(), hex::encode(b))
}

pub use crate::ids::random_id;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_random_and_hash_round_trips() {
        let a = generate();
        let b = generate();
        assert_ne!(a.plain, b.plain);
        assert_eq!(a.plain.len(), KEY_PREFIX.len() + 64);
        assert_eq!(KeyHash::of(&a.plain), a.hash);
        assert_eq!(KeyHash::from_hex(&a.hash.to_hex()), Some(a.hash));
    }
}
