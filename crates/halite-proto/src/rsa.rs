//! RSA as Salt uses it: OAEP for key transport, PKCS#1 v1.5 signatures, and X9.31
//! "private encrypt" for the `tok` and the auth reply's `sig`.
//!
//! Salt lets the minion pick the OAEP and signature hashes (`enc_algo`, `sig_algo`), so every
//! operation takes the algorithm by name and refuses the ones Salt does not know.

use openssl::encrypt::{Decrypter, Encrypter};
use openssl::hash::MessageDigest;
use openssl::pkey::{PKey, Private, Public};
use openssl::rsa::{Padding, Rsa};
use openssl::sign::{Signer, Verifier};

use crate::ProtoError;

/// OpenSSL's `RSA_X931_PADDING`, which the `openssl` crate has no named constant for.
fn x931_padding() -> Padding {
    Padding::from_raw(5)
}

/// `enc_algo`: the OAEP hash, used for OAEP and MGF1 alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncAlgo {
    OaepSha1,
    OaepSha224,
}

impl EncAlgo {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "OAEP-SHA1" => Some(Self::OaepSha1),
            "OAEP-SHA224" => Some(Self::OaepSha224),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::OaepSha1 => "OAEP-SHA1",
            Self::OaepSha224 => "OAEP-SHA224",
        }
    }

    fn digest(self) -> MessageDigest {
        match self {
            Self::OaepSha1 => MessageDigest::sha1(),
            Self::OaepSha224 => MessageDigest::sha224(),
        }
    }
}

/// `sig_algo`: the digest under an RSASSA-PKCS1-v1_5 signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigAlgo {
    Pkcs1v15Sha1,
    Pkcs1v15Sha224,
}

impl SigAlgo {
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "PKCS1v15-SHA1" => Some(Self::Pkcs1v15Sha1),
            "PKCS1v15-SHA224" => Some(Self::Pkcs1v15Sha224),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Pkcs1v15Sha1 => "PKCS1v15-SHA1",
            Self::Pkcs1v15Sha224 => "PKCS1v15-SHA224",
        }
    }

    fn digest(self) -> MessageDigest {
        match self {
            Self::Pkcs1v15Sha1 => MessageDigest::sha1(),
            Self::Pkcs1v15Sha224 => MessageDigest::sha224(),
        }
    }
}

/// Salt's `clean_key`: strip, then join the lines with `\n` and no trailing newline. Key
/// comparisons and the `pub_key` of an auth reply always use this form.
pub fn clean_key(pem: &str) -> String {
    pem.trim().lines().collect::<Vec<_>>().join("\n")
}

/// An RSA private key (a master's `master.pem`, or a test minion's).
#[derive(Clone)]
pub struct PrivateKey {
    pkey: PKey<Private>,
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey({} bits)", self.pkey.bits())
    }
}

impl PrivateKey {
    /// Reads PKCS#1 (`BEGIN RSA PRIVATE KEY`, what Salt writes) or PKCS#8 (`BEGIN PRIVATE KEY`).
    pub fn from_pem(pem: &[u8]) -> Result<Self, ProtoError> {
        let pkey = PKey::private_key_from_pem(pem)
            .map_err(|e| ProtoError::Key(format!("not an RSA private key in PEM form: {e}")))?;
        if pkey.rsa().is_err() {
            return Err(ProtoError::Key("private key is not RSA".into()));
        }
        Ok(Self { pkey })
    }

    pub fn generate(bits: u32) -> Result<Self, ProtoError> {
        let rsa = Rsa::generate(bits).map_err(|e| ProtoError::Key(format!("generating a {bits}-bit key: {e}")))?;
        let pkey = PKey::from_rsa(rsa).map_err(|e| ProtoError::Key(e.to_string()))?;
        Ok(Self { pkey })
    }

    /// PKCS#1 PEM, the "TraditionalOpenSSL" form Salt writes for `master.pem`.
    pub fn to_pkcs1_pem(&self) -> Result<Vec<u8>, ProtoError> {
        self.rsa()?.private_key_to_pem().map_err(|e| ProtoError::Key(e.to_string()))
    }

    pub fn public_key(&self) -> Result<PublicKey, ProtoError> {
        let spki = self.pkey.public_key_to_pem().map_err(|e| ProtoError::Key(e.to_string()))?;
        PublicKey::from_pem(&spki)
    }

    pub fn bits(&self) -> u32 {
        self.pkey.bits()
    }

    fn rsa(&self) -> Result<Rsa<Private>, ProtoError> {
        self.pkey.rsa().map_err(|e| ProtoError::Key(e.to_string()))
    }

    /// RSASSA-PKCS1-v1_5 over `data` with the digest `algo` names.
    pub fn sign(&self, data: &[u8], algo: SigAlgo) -> Result<Vec<u8>, ProtoError> {
        let mut signer = Signer::new(algo.digest(), &self.pkey).map_err(crypto)?;
        signer.update(data).map_err(crypto)?;
        signer.sign_to_vec().map_err(crypto)
    }

    /// OAEP decryption, as the master does for the minion's auth `token`.
    pub fn decrypt_oaep(&self, ciphertext: &[u8], algo: EncAlgo) -> Result<Vec<u8>, ProtoError> {
        if algo == EncAlgo::OaepSha1 {
            // As in `PublicKey::encrypt_oaep`: SHA-1 OAEP without the EVP lookups.
            let rsa = self.rsa()?;
            let mut out = vec![0; rsa.size() as usize];
            let n = rsa.private_decrypt(ciphertext, &mut out, Padding::PKCS1_OAEP).map_err(crypto)?;
            out.truncate(n);
            return Ok(out);
        }
        let mut dec = Decrypter::new(&self.pkey).map_err(crypto)?;
        dec.set_rsa_padding(Padding::PKCS1_OAEP).map_err(crypto)?;
        dec.set_rsa_oaep_md(algo.digest()).map_err(crypto)?;
        dec.set_rsa_mgf1_md(algo.digest()).map_err(crypto)?;
        let mut out = vec![0; dec.decrypt_len(ciphertext).map_err(crypto)?];
        let n = dec.decrypt(ciphertext, &mut out).map_err(crypto)?;
        out.truncate(n);
        Ok(out)
    }

    /// Raw RSA with X9.31 padding (`RSA_private_encrypt`), deterministic: Salt's `tok` and the
    /// auth reply's `sig`. OpenSSL already emits `min(s, n - s)` as X9.31 asks.
    pub fn encrypt_x931(&self, data: &[u8]) -> Result<Vec<u8>, ProtoError> {
        let rsa = self.rsa()?;
        let mut out = vec![0; rsa.size() as usize];
        let n = rsa.private_encrypt(data, &mut out, x931_padding()).map_err(crypto)?;
        out.truncate(n);
        Ok(out)
    }
}

/// An RSA public key: a minion's key from `minions/<id>`, or `master.pub`.
#[derive(Clone)]
pub struct PublicKey {
    pkey: PKey<Public>,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PublicKey({} bits)", self.pkey.bits())
    }
}

impl PublicKey {
    /// Reads SubjectPublicKeyInfo (`BEGIN PUBLIC KEY`, what minions send) or PKCS#1
    /// (`BEGIN RSA PUBLIC KEY`).
    pub fn from_pem(pem: &[u8]) -> Result<Self, ProtoError> {
        // OpenSSL 3's generic decoder takes ~400 µs a key and serialises threads on its
        // locks; the RSA-specific readers take ~8 µs. The generic one stays as the fallback
        // so that its error message (and any PEM variant only it reads) is kept.
        let legacy = Rsa::public_key_from_pem(pem).or_else(|_| Rsa::public_key_from_pem_pkcs1(pem));
        let pkey = match legacy.and_then(PKey::from_rsa) {
            Ok(k) => k,
            Err(_) => PKey::public_key_from_pem(pem)
                .map_err(|e| ProtoError::Key(format!("not an RSA public key in PEM form: {e}")))?,
        };
        if pkey.rsa().is_err() {
            return Err(ProtoError::Key("public key is not RSA".into()));
        }
        Ok(Self { pkey })
    }

    /// SubjectPublicKeyInfo PEM, the form Salt writes for `master.pub`.
    pub fn to_spki_pem(&self) -> Result<Vec<u8>, ProtoError> {
        self.pkey.public_key_to_pem().map_err(|e| ProtoError::Key(e.to_string()))
    }

    pub fn bits(&self) -> u32 {
        self.pkey.bits()
    }

    pub fn encrypt_oaep(&self, plaintext: &[u8], algo: EncAlgo) -> Result<Vec<u8>, ProtoError> {
        if algo == EncAlgo::OaepSha1 {
            // RSA_PKCS1_OAEP_PADDING is OAEP with SHA-1 and MGF1-SHA-1, as Salt's default;
            // the RSA call skips the EVP context and algorithm lookups (half the cost of a
            // public-key encryption here: docs/decisions.md, "Sign-in cost").
            let rsa = self.pkey.rsa().map_err(crypto)?;
            let mut out = vec![0; rsa.size() as usize];
            let n = rsa.public_encrypt(plaintext, &mut out, Padding::PKCS1_OAEP).map_err(crypto)?;
            out.truncate(n);
            return Ok(out);
        }
        let mut enc = Encrypter::new(&self.pkey).map_err(crypto)?;
        enc.set_rsa_padding(Padding::PKCS1_OAEP).map_err(crypto)?;
        enc.set_rsa_oaep_md(algo.digest()).map_err(crypto)?;
        enc.set_rsa_mgf1_md(algo.digest()).map_err(crypto)?;
        let mut out = vec![0; enc.encrypt_len(plaintext).map_err(crypto)?];
        let n = enc.encrypt(plaintext, &mut out).map_err(crypto)?;
        out.truncate(n);
        Ok(out)
    }

    pub fn verify(&self, data: &[u8], signature: &[u8], algo: SigAlgo) -> Result<bool, ProtoError> {
        let mut verifier = Verifier::new(algo.digest(), &self.pkey).map_err(crypto)?;
        verifier.update(data).map_err(crypto)?;
        // A malformed signature is an answer ("does not verify"), not an error.
        Ok(verifier.verify(signature).unwrap_or(false))
    }

    /// X9.31 public decrypt: what `encrypt_x931` signed, or an error if it does not verify.
    pub fn decrypt_x931(&self, signature: &[u8]) -> Result<Vec<u8>, ProtoError> {
        let rsa = self.pkey.rsa().map_err(crypto)?;
        if signature.len() != rsa.size() as usize {
            return Err(ProtoError::Crypto(format!(
                "X9.31 signature is {} bytes, the key needs {}",
                signature.len(),
                rsa.size()
            )));
        }
        let mut out = vec![0; rsa.size() as usize];
        let n = rsa.public_decrypt(signature, &mut out, x931_padding()).map_err(crypto)?;
        out.truncate(n);
        Ok(out)
    }
}

fn crypto(e: openssl::error::ErrorStack) -> ProtoError {
    ProtoError::Crypto(e.to_string())
}
