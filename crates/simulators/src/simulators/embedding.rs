//! Deterministic pseudo-embeddings shared by the simulated OpenAI and Bedrock: the same
//! text and size always give the same vector, different texts different ones.
//!
//! Component `i` of the vector of `text` is read from SHA-256(`i / 8` as 8 little-endian
//! bytes ‖ `text`): its 4 bytes at `(i % 8) * 4` as a little-endian `u32`, mapped to
//! [-1, 1). With `normalize` the vector is scaled to unit length (OpenAI's vectors and
//! Titan's with `normalize: true` are).

use sha2::{Digest, Sha256};

pub(super) fn pseudo_embedding(text: &str, dimensions: usize, normalize: bool) -> Vec<f32> {
    let mut out = Vec::with_capacity(dimensions);
    let mut block = 0u64;
    while out.len() < dimensions {
        let mut h = Sha256::new();
        h.update(block.to_le_bytes());
        h.update(text.as_bytes());
        let digest = h.finalize();
        for word in digest.chunks_exact(4) {
            if out.len() == dimensions {
                break;
            }
            let n = u32::from_le_bytes([word[0], word[1], word[2], word[3]]);
            out.push((f64::from(n) / f64::from(u32::MAX) * 2.0 - 1.0) as f32);
        }
        block += 1;
    }
    if normalize {
        let norm = out
            .iter()
            .map(|x| f64::from(*x).powi(2))
            .sum::<f64>()
            .sqrt();
        if norm > 0.0 {
            for x in &mut out {
                *x = (f64::from(*x) / norm) as f32;
            }
        }
    }
    out
}

/// A vector as OpenAI's `encoding_format: "base64"`: little-endian `f32` bytes, base64.
pub(super) fn base64_f32(v: &[f32]) -> String {
    let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    aws_smithy_types::base64::encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_sized_and_normalized() {
        let a = pseudo_embedding("hello world", 256, true);
        assert_eq!(a.len(), 256);
        assert_eq!(a, pseudo_embedding("hello world", 256, true));
        assert_ne!(a, pseudo_embedding("hello there", 256, true));
        let norm: f64 = a.iter().map(|x| f64::from(*x).powi(2)).sum();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        // A shorter vector is not a prefix after normalising, but is before.
        assert_eq!(
            pseudo_embedding("x", 3, false),
            pseudo_embedding("x", 9, false)[..3].to_vec()
        );
        assert_eq!(base64_f32(&[1.0]), "AACAPw==");
    }
}
