//! Random identifiers that carry no secret (response and message IDs, simulated
//! credentials, scratch directories), shared by every layer; customer keys and request
//! IDs are made in `ledger::keys`.

use rand::RngCore;

/// `prefix` + 16 random hex characters.
pub fn random_id(prefix: &str) -> String {
    let mut b = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut b);
    format!("{prefix}{}", hex::encode(b))
}
