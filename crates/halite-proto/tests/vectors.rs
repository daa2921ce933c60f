//! Every vector of `salt-vectors.json` (produced by Salt's own library code), byte for byte.

use halite_proto::auth::aes_digest_hex;
use halite_proto::crypticle::Crypticle;
use halite_proto::payload::{self, map, Value, ValueExt};
use halite_proto::publish;
use halite_proto::rsa::{clean_key, EncAlgo, PrivateKey, PublicKey, SigAlgo};
use serde_json::Value as Json;

fn vectors() -> Json {
    serde_json::from_str(include_str!("data/salt-vectors.json")).expect("vectors parse")
}

fn hex(v: &Json) -> Vec<u8> {
    hex::decode(v.as_str().expect("hex string")).expect("valid hex")
}

/// The publish load in the key order Salt packed it (JSON objects carry no order here).
fn publish_load() -> Value {
    map([
        ("fun", Value::from("test.ping")),
        ("arg", Value::Array(vec![])),
        ("tgt", Value::from("*")),
        ("jid", Value::from("20240101120000000000")),
        ("ret", Value::from("")),
        ("tgt_type", Value::from("glob")),
        ("user", Value::from("root")),
        ("serial", Value::from(1)),
    ])
}

fn iv(v: &Json) -> [u8; 16] {
    hex(&v["crypticle"]["iv_hex"]).try_into().expect("16-byte iv")
}

#[test]
fn crypticle_key_string_splits_into_aes_and_hmac_keys() {
    let v = vectors();
    let c = Crypticle::from_key_string(v["crypticle"]["key_string_b64"].as_str().unwrap()).unwrap();
    assert_eq!(c.key_string(), v["crypticle"]["key_string_b64"].as_str().unwrap());
}

#[test]
fn crypticle_blob_without_nonce() {
    let v = vectors();
    let c = Crypticle::from_key_string(v["crypticle"]["key_string_b64"].as_str().unwrap()).unwrap();
    let obj = map([
        ("fun", Value::from("test.ping")),
        ("arg", Value::Array(vec![])),
        ("jid", Value::from("20240101120000000000")),
    ]);
    let plain = Crypticle::plaintext(&obj, None);
    assert_eq!(plain, hex(&v["crypticle"]["plaintext_hex"]));
    let blob = c.encrypt_with_iv(&plain, &iv(&v)).unwrap();
    assert_eq!(blob, hex(&v["crypticle"]["blob_hex"]));
    assert_eq!(blob.len() as u64, v["crypticle"]["blob_len"].as_u64().unwrap());
    assert_eq!(c.loads(&blob).unwrap(), obj);
}

#[test]
fn crypticle_blob_with_nonce() {
    let v = vectors();
    let w = &v["crypticle"]["with_nonce"];
    let c = Crypticle::from_key_string(v["crypticle"]["key_string_b64"].as_str().unwrap()).unwrap();
    let nonce = w["nonce"].as_str().unwrap();
    let obj = map([("ret", Value::Boolean(true))]);
    let plain = Crypticle::plaintext(&obj, Some(nonce));
    assert_eq!(plain, hex(&w["plaintext_hex"]));
    let blob = c.encrypt_with_iv(&plain, &iv(&v)).unwrap();
    assert_eq!(blob, hex(&w["blob_hex"]));
    assert_eq!(c.loads_with_nonce(&blob, nonce).unwrap(), obj);
    assert!(c.loads_with_nonce(&blob, "ffffffffffffffffffffffffffffffff").is_err());
}

#[test]
fn crypticle_rejects_tampered_blob() {
    let v = vectors();
    let c = Crypticle::from_key_string(v["crypticle"]["key_string_b64"].as_str().unwrap()).unwrap();
    let mut blob = hex(&v["crypticle"]["blob_hex"]);
    blob[20] ^= 1;
    assert!(c.loads(&blob).is_err());
    assert!(c.loads(&blob[..40]).is_err());
    assert!(c.loads(&[]).is_err());
}

#[test]
fn msgpack_vectors() {
    let v = vectors();
    let m = &v["msgpack"];
    assert_eq!(payload::encode(&publish_load()), hex(&m["publish_load_hex"]));
    let kwarg = map([(
        "arg",
        Value::Array(vec![
            Value::from("roles"),
            map([("__kwarg__", Value::Boolean(true)), ("default", Value::from("none"))]),
        ]),
    )]);
    assert_eq!(payload::encode(&kwarg), hex(&m["kwarg_arg_example_hex"]));
    assert_eq!(payload::encode(&Value::from("x".repeat(40))), hex(&m["str40_default_hex"]));
    assert_eq!(payload::encode(&Value::Binary(vec![0, 0xff])), hex(&m["bytes_default_hex"]));
    let dt = Value::Ext(payload::EXT_DATETIME, b"20240102T03:04:05.678901".to_vec());
    assert_eq!(payload::encode(&dt), hex(&m["datetime_ext78_hex"]));
    let big = map([("n", Value::from("18446744073709551616"))]);
    assert_eq!(payload::encode(&big), hex(&m["bigint_2_64_as_str_hex"]));
    // and every vector decodes back to what encodes it
    for key in ["publish_load_hex", "kwarg_arg_example_hex", "str40_default_hex", "datetime_ext78_hex"] {
        let bytes = hex(&m[key]);
        assert_eq!(payload::encode(&payload::decode(&bytes).unwrap()), bytes, "{key}");
    }
}

#[test]
fn publish_envelope_vector() {
    let v = vectors();
    let c = Crypticle::from_key_string(v["publish_envelope"]["aes_key_string"].as_str().unwrap()).unwrap();
    let blob = c.encrypt_with_iv(&Crypticle::plaintext(&publish_load(), None), &iv(&v)).unwrap();
    let frame = publish::frame_from_blob(blob, None).unwrap();
    assert_eq!(frame, hex(&v["publish_envelope"]["envelope_hex"]));
    // The signed form verifies with the master key and names its algorithm.
    let key = PrivateKey::from_pem(v["rsa"]["private_pem_pkcs1"].as_str().unwrap().as_bytes()).unwrap();
    let signed = publish::frame(&c, &publish_load(), Some((&key, SigAlgo::Pkcs1v15Sha1))).unwrap();
    let env = payload::decode(&signed).unwrap();
    let load = env.get("load").unwrap().as_bytes_any().unwrap();
    let sig = env.get("sig").unwrap().as_bytes_any().unwrap();
    assert!(key.public_key().unwrap().verify(load, sig, SigAlgo::Pkcs1v15Sha1).unwrap());
    assert_eq!(env.get_text("sig_algo"), Some("PKCS1v15-SHA1"));
}

#[test]
fn rsa_vectors() {
    let v = vectors();
    let r = &v["rsa"];
    let key = PrivateKey::from_pem(r["private_pem_pkcs1"].as_str().unwrap().as_bytes()).unwrap();
    let public = PublicKey::from_pem(r["public_pem_spki"].as_str().unwrap().as_bytes()).unwrap();
    let msg = r["message"].as_str().unwrap().as_bytes();

    assert_eq!(key.sign(msg, SigAlgo::Pkcs1v15Sha1).unwrap(), hex(&r["sig_pkcs1v15_sha1_hex"]));
    assert_eq!(key.sign(msg, SigAlgo::Pkcs1v15Sha224).unwrap(), hex(&r["sig_pkcs1v15_sha224_hex"]));
    assert!(public.verify(msg, &hex(&r["sig_pkcs1v15_sha1_hex"]), SigAlgo::Pkcs1v15Sha1).unwrap());
    assert!(!public.verify(b"other", &hex(&r["sig_pkcs1v15_sha1_hex"]), SigAlgo::Pkcs1v15Sha1).unwrap());

    let tok = key.encrypt_x931(b"salt").unwrap();
    assert_eq!(tok, hex(&r["x931_private_encrypt_of_salt_hex"]));
    assert_eq!(public.decrypt_x931(&tok).unwrap(), b"salt");

    let digest = aes_digest_hex(r["oaep_plaintext"].as_str().unwrap().as_bytes());
    assert_eq!(digest, r["aes_sig_digest_ascii"].as_str().unwrap());
    assert_eq!(key.encrypt_x931(digest.as_bytes()).unwrap(), hex(&r["aes_sig_x931_hex"]));

    // OAEP is randomised: Salt's ciphertexts must decrypt, and ours must round-trip.
    let plain = r["oaep_plaintext"].as_str().unwrap().as_bytes();
    for (field, algo) in [
        ("oaep_sha1_ciphertext_of_key_string_hex", EncAlgo::OaepSha1),
        ("oaep_sha224_ciphertext_of_key_string_hex", EncAlgo::OaepSha224),
    ] {
        assert_eq!(key.decrypt_oaep(&hex(&r[field]), algo).unwrap(), plain, "{field}");
        let ours = public.encrypt_oaep(plain, algo).unwrap();
        assert_eq!(key.decrypt_oaep(&ours, algo).unwrap(), plain);
    }
    // SHA1 ciphertext must not decrypt as SHA224: the hash really is applied.
    assert!(key.decrypt_oaep(&hex(&r["oaep_sha1_ciphertext_of_key_string_hex"]), EncAlgo::OaepSha224).is_err());

    assert_eq!(clean_key(r["public_pem_spki"].as_str().unwrap()), r["clean_key_public"].as_str().unwrap());
    let reencoded = String::from_utf8(public.to_spki_pem().unwrap()).unwrap();
    assert_eq!(clean_key(&reencoded), r["clean_key_public"].as_str().unwrap());
}

#[test]
fn zmq_topic_vector() {
    let v = vectors();
    let id = v["zmq_topic"]["minion_id"].as_str().unwrap();
    let topic = hex::encode(openssl::sha::sha1(id.as_bytes()));
    assert_eq!(topic, v["zmq_topic"]["sha1_hex_topic"].as_str().unwrap());
}

/// OAEP-SHA1 goes through RSA_PKCS1_OAEP_PADDING (no EVP context); it must be the very
/// padding the EVP path produces with SHA-1 and MGF1-SHA-1 set, in both directions.
#[test]
fn oaep_sha1_matches_openssls_evp_path_both_ways() {
    use openssl::encrypt::{Decrypter, Encrypter};
    use openssl::hash::MessageDigest;
    use openssl::pkey::PKey;
    use openssl::rsa::{Padding, Rsa};
    let rsa = Rsa::generate(2048).unwrap();
    let evp_private = PKey::from_rsa(rsa.clone()).unwrap();
    let evp_public = PKey::public_key_from_pem(&evp_private.public_key_to_pem().unwrap()).unwrap();
    let ours_private = PrivateKey::from_pem(&rsa.private_key_to_pem().unwrap()).unwrap();
    let ours_public = ours_private.public_key().unwrap();
    let plain = b"a 56-byte AES key string would be here, base64 encoded!";

    let ours = ours_public.encrypt_oaep(plain, EncAlgo::OaepSha1).unwrap();
    let mut dec = Decrypter::new(&evp_private).unwrap();
    dec.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
    dec.set_rsa_oaep_md(MessageDigest::sha1()).unwrap();
    dec.set_rsa_mgf1_md(MessageDigest::sha1()).unwrap();
    let mut out = vec![0; dec.decrypt_len(&ours).unwrap()];
    let n = dec.decrypt(&ours, &mut out).unwrap();
    assert_eq!(&out[..n], plain, "EVP opens what the RSA call sealed");

    let mut enc = Encrypter::new(&evp_public).unwrap();
    enc.set_rsa_padding(Padding::PKCS1_OAEP).unwrap();
    enc.set_rsa_oaep_md(MessageDigest::sha1()).unwrap();
    enc.set_rsa_mgf1_md(MessageDigest::sha1()).unwrap();
    let mut theirs = vec![0; enc.encrypt_len(plain).unwrap()];
    let n = enc.encrypt(plain, &mut theirs).unwrap();
    theirs.truncate(n);
    assert_eq!(ours_private.decrypt_oaep(&theirs, EncAlgo::OaepSha1).unwrap(), plain, "the RSA call opens EVP's");

    let mut bad = theirs.clone();
    bad[0] ^= 0x80;
    assert!(ours_private.decrypt_oaep(&bad, EncAlgo::OaepSha1).is_err());
    assert!(ours_private.decrypt_oaep(&[theirs.clone(), vec![0]].concat(), EncAlgo::OaepSha1).is_err(), "too long");
    assert!(
        ours_public.encrypt_oaep(&[7u8; 215], EncAlgo::OaepSha1).is_err(),
        "longer than OAEP-SHA1 fits in 2048 bits"
    );
}
