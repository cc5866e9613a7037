//! HMAC-SHA256 signing of Jupyter messages, as the connection file's `key` and
//! `signature_scheme: "hmac-sha256"` ask for.
//!
//! The signature is the lowercase hex HMAC over the four JSON frames header,
//! parent_header, metadata and content, in that order. An empty key means
//! messages are not signed: the signature frame is empty and is not checked.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

/// Signs and verifies message frames with one key.
#[derive(Clone)]
pub struct Signer {
    mac: Option<Hmac<Sha256>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Signer")
            .field("signing", &self.mac.is_some())
            .finish()
    }
}

impl Signer {
    /// A signer for `key` (the connection file's `key` as bytes). An empty key
    /// gives a signer that produces and accepts empty signatures.
    pub fn new(key: &[u8]) -> Signer {
        let mac = if key.is_empty() {
            None
        } else {
            // HMAC accepts keys of any length.
            Some(Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length"))
        };
        Signer { mac }
    }

    /// The hex signature of the four frames (header, parent_header, metadata, content).
    pub fn sign(&self, frames: [&[u8]; 4]) -> String {
        match &self.mac {
            None => String::new(),
            Some(mac) => {
                let mut mac = mac.clone();
                for frame in frames {
                    mac.update(frame);
                }
                hex::encode(mac.finalize().into_bytes())
            }
        }
    }

    /// Checks a received hex signature against the four frames, in constant time.
    /// With an empty key every signature is accepted.
    pub fn verify(&self, signature: &[u8], frames: [&[u8]; 4]) -> bool {
        let Some(mac) = &self.mac else {
            return true;
        };
        let Ok(signature) = hex::decode(signature) else {
            return false;
        };
        let mut mac = mac.clone();
        for frame in frames {
            mac.update(frame);
        }
        mac.verify_slice(&signature).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FRAMES: [&[u8]; 4] = [b"{\"msg_id\":\"1\"}", b"{}", b"{}", b"{\"code\":\"1+1\"}"];

    #[test]
    fn matches_a_known_hmac_sha256() {
        // RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?".
        let signer = Signer::new(b"Jefe");
        let signature = signer.sign([b"what do ya want ", b"for nothing?", b"", b""]);
        assert_eq!(
            signature,
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verifies_its_own_signature() {
        let signer = Signer::new(b"secret-key");
        let signature = signer.sign(FRAMES);
        assert_eq!(signature.len(), 64);
        assert!(signer.verify(signature.as_bytes(), FRAMES));
    }

    #[test]
    fn rejects_changed_content_wrong_key_and_garbage() {
        let signer = Signer::new(b"secret-key");
        let signature = signer.sign(FRAMES);
        let mut changed = FRAMES;
        changed[3] = b"{\"code\":\"1+2\"}";
        assert!(!signer.verify(signature.as_bytes(), changed));
        assert!(!Signer::new(b"other-key").verify(signature.as_bytes(), FRAMES));
        assert!(!signer.verify(b"not hex", FRAMES));
        assert!(!signer.verify(b"", FRAMES));
        assert!(!signer.verify(&signature.as_bytes()[..62], FRAMES));
    }

    #[test]
    fn frame_boundaries_do_not_matter_only_order() {
        // The HMAC is over the concatenation, as in jupyter_client.
        let signer = Signer::new(b"k");
        assert_eq!(
            signer.sign([b"ab", b"c", b"", b""]),
            signer.sign([b"a", b"bc", b"", b""])
        );
        assert_ne!(
            signer.sign([b"ab", b"c", b"", b""]),
            signer.sign([b"c", b"ab", b"", b""])
        );
    }

    #[test]
    fn empty_key_means_unsigned() {
        let signer = Signer::new(b"");
        assert_eq!(signer.sign(FRAMES), "");
        assert!(signer.verify(b"", FRAMES));
        assert!(signer.verify(b"anything", FRAMES));
    }

    #[test]
    fn debug_does_not_show_the_key() {
        let text = format!("{:?}", Signer::new(b"topsecret"));
        assert!(!text.contains("topsecret"));
    }
}
