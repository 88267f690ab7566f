//! Link secrets at rest: a webhook's signing secret and a Mastodon access token are stored
//! sealed, never in plaintext.
//!
//! - here: [`SecretBox`], the cipher. ChaCha20-Poly1305 (an AEAD: a tampered, truncated or
//!   misplaced record fails to open rather than decrypting to garbage) from `ring`, which
//!   the TLS stack already builds, under a 256-bit server key, with a fresh random 96-bit
//!   nonce per seal. Seals are rare (one per link made), far from the 2^32 per key at which
//!   random nonces would begin to risk a repeat.
//! - [`key`]: where the server key comes from (`--secret-key-file`, else a key file the
//!   server makes in its data directory, else, on the CQL store, a row every node shares).
//!
//! The sealed form is text, `v1.` then base64url (no padding) of `nonce ‖ ciphertext ‖ tag`.
//! The associated data binds it to its link (`link_id`), so a sealed secret copied onto
//! another link does not open. The `v1.` prefix names the format, so a later one can be read
//! beside it; a link written before sealing keeps its plaintext in `config` and is sealed by
//! the account's actor when it next activates (`chorus_actors::model::LinkSealer`).

pub mod key;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};

use crate::error::{Error, Result};

/// Length of the server key in bytes.
pub const KEY_LEN: usize = 32;

/// The prefix of the current sealed form.
const V1: &str = "v1.";

/// Seals and opens link secrets under the server key. The key never leaves it (its `Debug`
/// shows nothing of it).
pub struct SecretBox {
    key: LessSafeKey,
    rng: SystemRandom,
}

impl fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretBox(chacha20-poly1305, key hidden)")
    }
}

/// Why a sealed secret did not open. Its message is fixed: it may reach a release's
/// `last_error`, which must say nothing about the key or the record.
pub const UNREADABLE: &str = "the link's secret cannot be read (sealed under another server key?)";

impl SecretBox {
    pub fn new(key: &[u8; KEY_LEN]) -> Result<Self> {
        let key = UnboundKey::new(&CHACHA20_POLY1305, key)
            .map(LessSafeKey::new)
            .map_err(|_| Error::Config("the secret key is not a ChaCha20-Poly1305 key".into()))?;
        Ok(SecretBox {
            key,
            rng: SystemRandom::new(),
        })
    }

    /// `plaintext` sealed for link `link_id`.
    pub fn seal(&self, link_id: &str, plaintext: &str) -> Result<String> {
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| Error::Internal("the system random source failed".into()))?;
        let mut sealed = plaintext.as_bytes().to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                aad(link_id),
                &mut sealed,
            )
            .map_err(|_| Error::Internal("sealing a secret failed".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(format!("{V1}{}", URL_SAFE_NO_PAD.encode(out)))
    }

    /// The plaintext of `sealed`, if it was sealed for `link_id` under this key and is intact;
    /// [`UNREADABLE`] otherwise.
    pub fn open(&self, link_id: &str, sealed: &str) -> std::result::Result<String, &'static str> {
        let body = sealed.strip_prefix(V1).ok_or(UNREADABLE)?;
        let mut bytes = URL_SAFE_NO_PAD.decode(body).map_err(|_| UNREADABLE)?;
        if bytes.len() < NONCE_LEN {
            return Err(UNREADABLE);
        }
        let mut nonce = [0u8; NONCE_LEN];
        nonce.copy_from_slice(&bytes[..NONCE_LEN]);
        let plain = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                aad(link_id),
                &mut bytes[NONCE_LEN..],
            )
            .map_err(|_| UNREADABLE)?;
        String::from_utf8(plain.to_vec()).map_err(|_| UNREADABLE)
    }
}

/// What a seal is bound to besides the key: its format and its link.
fn aad(link_id: &str) -> Aad<Vec<u8>> {
    let mut aad = b"chorus link secret v1\0".to_vec();
    aad.extend_from_slice(link_id.as_bytes());
    Aad::from(aad)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sb(byte: u8) -> SecretBox {
        SecretBox::new(&[byte; KEY_LEN]).unwrap()
    }

    #[test]
    fn round_trip_and_fresh_nonces() {
        let b = sb(7);
        let one = b.seal("link1", "whsec_topsecret").unwrap();
        let two = b.seal("link1", "whsec_topsecret").unwrap();
        assert!(one.starts_with("v1."), "{one}");
        assert_ne!(one, two, "each seal has its own nonce");
        assert!(!one.contains("topsecret"));
        assert_eq!(b.open("link1", &one).unwrap(), "whsec_topsecret");
        assert_eq!(b.open("link1", &two).unwrap(), "whsec_topsecret");
        // Unicode and the longest secret a link takes.
        let long = "é".repeat(1024);
        assert_eq!(b.open("l", &b.seal("l", &long).unwrap()).unwrap(), long);
        assert_eq!(b.open("l", &b.seal("l", "").unwrap()).unwrap(), "");
    }

    #[test]
    fn tampering_is_detected() {
        let b = sb(7);
        let sealed = b.seal("link1", "whsec_topsecret").unwrap();
        let raw = URL_SAFE_NO_PAD.decode(&sealed[3..]).unwrap();
        // Every single flipped bit, in nonce, ciphertext or tag, fails to open.
        for i in 0..raw.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = raw.clone();
                bad[i] ^= bit;
                let bad = format!("v1.{}", URL_SAFE_NO_PAD.encode(&bad));
                assert_eq!(b.open("link1", &bad), Err(UNREADABLE), "byte {i}");
            }
        }
        // Truncated, extended, another format, not base64, empty.
        let cut = format!("v1.{}", URL_SAFE_NO_PAD.encode(&raw[..raw.len() - 1]));
        let long = format!(
            "v1.{}",
            URL_SAFE_NO_PAD.encode([raw.as_slice(), b"x"].concat())
        );
        for bad in [
            cut.as_str(),
            long.as_str(),
            &sealed.replacen("v1.", "v2.", 1),
            &sealed[3..],
            "v1.!!!",
            "v1.",
            "",
        ] {
            assert_eq!(b.open("link1", bad), Err(UNREADABLE), "{bad:?}");
        }
    }

    #[test]
    fn bound_to_its_key_and_its_link() {
        let sealed = sb(7).seal("link1", "s").unwrap();
        assert_eq!(sb(8).open("link1", &sealed), Err(UNREADABLE));
        assert_eq!(sb(7).open("link2", &sealed), Err(UNREADABLE));
    }

    #[test]
    fn debug_hides_the_key() {
        let text = format!("{:?}", sb(0xab));
        assert!(
            !text.contains("171") && !text.to_lowercase().contains("ab, "),
            "{text}"
        );
    }
}
