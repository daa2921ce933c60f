//! Auth storm: how many `_auth` requests per second the master answers, for first contact
//! (key written to the pki dir) and for re-authentication (every minion reconnecting after a
//! master restart), single-threaded and on every core; plus the process RSS afterwards.
//!
//! Run: `cargo bench -p halite-master --bench auth_storm [-- MINIONS]` (default 200).
//! Results are recorded in docs/benchmarks.md. No assertion on speed here: this reports.

use std::sync::Arc;
use std::time::Instant;

use halite_master::clear::UserKeys;
use halite_master::master::{Master, Settings};
use halite_pki::{MasterKeys, PkiDir};
use halite_proto::payload::{self, map, Value, ValueExt};
use halite_proto::rsa::PrivateKey;

fn auth_request(id: &str, pub_pem: &str, n: usize) -> Vec<u8> {
    let load = map([
        ("cmd", Value::from("_auth")),
        ("id", Value::from(id)),
        ("nonce", Value::from(format!("{n:032x}"))),
        ("enc_algo", Value::from("OAEP-SHA1")),
        ("sig_algo", Value::from("PKCS1v15-SHA1")),
        ("pub", Value::from(pub_pem)),
    ]);
    payload::encode(&map([("enc", Value::from("clear")), ("load", load), ("version", Value::from(3))]))
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find(|l| l.starts_with("VmRSS:")).map(|l| l.split_whitespace().nth(1).unwrap_or("0").to_owned())
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn storm(master: &Arc<Master>, requests: &[Vec<u8>], threads: usize) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for chunk in requests.chunks(requests.len().div_ceil(threads)) {
            let master = master.clone();
            s.spawn(move || {
                for body in chunk {
                    let reply = payload::decode(&master.handle(body).expect("a reply")).expect("a reply");
                    let inner = reply.get("load").and_then(Value::as_bytes_any).map(payload::decode);
                    assert!(matches!(inner, Some(Ok(ref l)) if l.get("aes").is_some()), "accepted: {reply}");
                }
            });
        }
    });
    requests.len() as f64 / start.elapsed().as_secs_f64()
}

fn main() -> anyhow::Result<()> {
    let minions: usize = std::env::args().skip(1).find_map(|a| a.parse().ok()).unwrap_or(200);
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let dir = tempfile::tempdir()?;
    let pki = PkiDir::open(dir.path().join("pki"))?;
    let keys = MasterKeys::load_or_create(&pki, 2048)?;
    let store = halite_store::Store::open(&dir.path().join("halite.redb"))?;
    // Salt's defaults (embedded), with auto_accept so first contact writes the key.
    let (config, _) = halite_config::MasterConfig::load_at(None, dir.path())?;
    let mut settings = Settings::from_config(&config)?;
    settings.cachedir = dir.path().to_owned();
    settings.policy.auto_accept = true;
    // Nothing is published here; the receiving end only has to outlive the master.
    let (publisher, _published) = halite_zmq::PublishSender::channel();
    let user_keys = UserKeys::load_or_create(dir.path(), &["root".to_owned()])?;
    let master = Arc::new(Master::new(settings, keys, pki, store, user_keys, publisher)?);

    eprintln!("generating {minions} minion keys (2048 bits)...");
    let pems: Vec<String> = (0..minions)
        .map(|_| {
            let key = PrivateKey::generate(2048).expect("keygen");
            String::from_utf8(key.public_key().and_then(|k| k.to_spki_pem()).expect("pem")).expect("utf8")
        })
        .collect();
    let round = |r: usize| -> Vec<Vec<u8>> {
        pems.iter().enumerate().map(|(i, pem)| auth_request(&format!("minion{i:05}"), pem, r * minions + i)).collect()
    };
    let rss_before = rss_kib();
    let first = storm(&master, &round(0), cores);
    let again_1 = storm(&master, &round(1), 1);
    let again_n = storm(&master, &round(2), cores);
    println!("auth_storm: {minions} minions, 2048-bit keys, {cores} cores");
    println!("  first contact (auto_accept, key written): {first:8.0} auths/s on {cores} threads");
    println!("  re-authentication, 1 thread:               {again_1:8.0} auths/s");
    println!("  re-authentication, {cores} threads:              {again_n:8.0} auths/s");
    println!("  RSS: {} KiB before the storm, {} KiB after", rss_before, rss_kib());
    drop(master);
    Ok(())
}
