//! Crypticle: Salt's symmetric envelope, `iv || AES-192-CBC(PKCS#7(plain)) || HMAC-SHA256`.
//!
//! The key string is base64 of 24 AES bytes followed by 32 HMAC bytes (76 ASCII chars). A
//! sealed object is `b"pickle::" [|| nonce] || msgpack(obj)`; the name is historical.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{KeyInit, Mac};
use openssl::memcmp;
use openssl::rand::rand_bytes;
use openssl::symm::{decrypt, encrypt, Cipher};

use crate::payload::{self, Value};
use crate::ProtoError;

const AES_KEY_LEN: usize = 24;
const HMAC_KEY_LEN: usize = 32;
const IV_LEN: usize = 16;
const MAC_LEN: usize = 32;
const PICKLE_PAD: &[u8] = b"pickle::";
/// Salt's nonces are `uuid4().hex`: 32 ASCII characters.
pub const NONCE_LEN: usize = 32;

#[derive(Clone)]
pub struct Crypticle {
    aes_key: [u8; AES_KEY_LEN],
    hmac_key: [u8; HMAC_KEY_LEN],
    key_string: String,
}

impl std::fmt::Debug for Crypticle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Crypticle(..)")
    }
}

impl PartialEq for Crypticle {
    fn eq(&self, other: &Self) -> bool {
        memcmp::eq(self.key_string.as_bytes(), other.key_string.as_bytes())
            && self.key_string.len() == other.key_string.len()
    }
}

impl Crypticle {
    /// A fresh random key, as `Crypticle.generate_key_string()` makes.
    pub fn generate() -> Result<Self, ProtoError> {
        let mut raw = [0u8; AES_KEY_LEN + HMAC_KEY_LEN];
        rand_bytes(&mut raw).map_err(|e| ProtoError::Crypto(e.to_string()))?;
        Self::from_raw(&raw)
    }

    /// Parses a 76-character key string (surrounding whitespace is ignored, as files may end
    /// with a newline).
    pub fn from_key_string(key_string: &str) -> Result<Self, ProtoError> {
        let raw = B64
            .decode(key_string.trim().as_bytes())
            .map_err(|e| ProtoError::Key(format!("AES key string is not base64: {e}")))?;
        Self::from_raw(&raw)
    }

    fn from_raw(raw: &[u8]) -> Result<Self, ProtoError> {
        if raw.len() != AES_KEY_LEN + HMAC_KEY_LEN {
            return Err(ProtoError::Key(format!(
                "AES key string decodes to {} bytes, Salt's keys have {}",
                raw.len(),
                AES_KEY_LEN + HMAC_KEY_LEN
            )));
        }
        let mut aes_key = [0u8; AES_KEY_LEN];
        let mut hmac_key = [0u8; HMAC_KEY_LEN];
        aes_key.copy_from_slice(&raw[..AES_KEY_LEN]);
        hmac_key.copy_from_slice(&raw[AES_KEY_LEN..]);
        Ok(Self { aes_key, hmac_key, key_string: B64.encode(raw) })
    }

    pub fn key_string(&self) -> &str {
        &self.key_string
    }

    fn mac(&self, data: &[u8]) -> Result<Vec<u8>, ProtoError> {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.hmac_key)
            .map_err(|e| ProtoError::Crypto(format!("HMAC key: {e}")))?;
        mac.update(data);
        Ok(mac.finalize().into_bytes().to_vec())
    }

    /// Encrypts with a random IV.
    pub fn encrypt(&self, plain: &[u8]) -> Result<Vec<u8>, ProtoError> {
        let mut iv = [0u8; IV_LEN];
        rand_bytes(&mut iv).map_err(crypto)?;
        self.encrypt_with_iv(plain, &iv)
    }

    /// Encrypts with a caller-chosen IV; only test vectors should need this.
    pub fn encrypt_with_iv(&self, plain: &[u8], iv: &[u8; IV_LEN]) -> Result<Vec<u8>, ProtoError> {
        // OpenSSL's CBC mode pads with PKCS#7, including the full block for aligned input.
        let ct = encrypt(Cipher::aes_192_cbc(), &self.aes_key, Some(iv), plain).map_err(crypto)?;
        let mut out = Vec::with_capacity(IV_LEN + ct.len() + MAC_LEN);
        out.extend_from_slice(iv);
        out.extend_from_slice(&ct);
        let mac = self.mac(&out)?;
        out.extend_from_slice(&mac);
        Ok(out)
    }

    /// Verifies the HMAC in constant time, then decrypts.
    pub fn decrypt(&self, blob: &[u8]) -> Result<Vec<u8>, ProtoError> {
        if blob.len() < IV_LEN + IV_LEN + MAC_LEN || !(blob.len() - IV_LEN - MAC_LEN).is_multiple_of(IV_LEN) {
            return Err(ProtoError::Authentication);
        }
        let (signed, mac) = blob.split_at(blob.len() - MAC_LEN);
        let expected = self.mac(signed)?;
        if !memcmp::eq(&expected, mac) {
            return Err(ProtoError::Authentication);
        }
        let (iv, ct) = signed.split_at(IV_LEN);
        decrypt(Cipher::aes_192_cbc(), &self.aes_key, Some(iv), ct).map_err(|_| ProtoError::Authentication)
    }

    /// `Crypticle.dumps(obj, nonce)`.
    pub fn dumps(&self, obj: &Value, nonce: Option<&str>) -> Result<Vec<u8>, ProtoError> {
        self.encrypt(&Self::plaintext(obj, nonce))
    }

    /// The bytes `dumps` encrypts: `b"pickle::" [|| nonce] || msgpack(obj)`.
    pub fn plaintext(obj: &Value, nonce: Option<&str>) -> Vec<u8> {
        let mut plain = Vec::with_capacity(128);
        plain.extend_from_slice(PICKLE_PAD);
        if let Some(nonce) = nonce {
            plain.extend_from_slice(nonce.as_bytes());
        }
        payload::encode_into(obj, &mut plain);
        plain
    }

    /// `Crypticle.loads(blob)` without a nonce: what the master does for request loads.
    /// Salt answers a plaintext without the `pickle::` prefix with `{}`; so does this.
    pub fn loads(&self, blob: &[u8]) -> Result<Value, ProtoError> {
        let plain = self.decrypt(blob)?;
        match plain.strip_prefix(PICKLE_PAD) {
            Some(body) => payload::decode(body),
            None => Ok(Value::Map(Vec::new())),
        }
    }

    /// `Crypticle.loads(blob, nonce)`: what a minion does with a reply.
    pub fn loads_with_nonce(&self, blob: &[u8], nonce: &str) -> Result<Value, ProtoError> {
        let plain = self.decrypt(blob)?;
        let body = plain
            .strip_prefix(PICKLE_PAD)
            .ok_or_else(|| ProtoError::Malformed("reply plaintext lacks the pickle:: prefix".into()))?;
        match body.strip_prefix(nonce.as_bytes()) {
            Some(rest) if nonce.len() == NONCE_LEN => payload::decode(rest),
            _ => Err(ProtoError::Malformed("nonce verification error".into())),
        }
    }
}

fn crypto(e: openssl::error::ErrorStack) -> ProtoError {
    ProtoError::Crypto(e.to_string())
}
