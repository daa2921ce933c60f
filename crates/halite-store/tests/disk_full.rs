//! The store on a filesystem that fills up: what was acknowledged stays, reads go on, and
//! writing resumes once there is room, without reopening the store by hand.
//!
//! Each test mounts a small tmpfs of its own (so it runs as root, as CI does).

use halite_proto::payload::{map, Value};
use halite_store::{MinionData, Options, Store, StoreError};
use halite_testkit::Tmpfs;

fn ret(n: usize) -> Value {
    // Incompressible enough that redb stores it whole.
    let text: String = (0..12_000).map(|i| char::from(b'a' + ((i * 7 + n * 13) % 26) as u8)).collect();
    map([("fun", Value::from("state.apply")), ("return", Value::from(text)), ("n", Value::from(n as u64))])
}

const JID: &str = "20261207120000000001";

/// Writes returns until the store refuses one; the ids it acknowledged.
fn fill(store: &Store) -> (Vec<String>, StoreError) {
    let mut acknowledged = Vec::new();
    for n in 0..10_000 {
        let minion = format!("m{n:05}");
        match store.put_return(JID, &minion, &ret(n), 1) {
            Ok(()) => acknowledged.push(minion),
            Err(e) => return (acknowledged, e),
        }
    }
    panic!("the filesystem never filled");
}

fn stored(store: &Store) -> Vec<String> {
    store.returns(JID).unwrap().into_iter().map(|(id, _)| id).collect()
}

#[test]
fn a_full_disk_is_refused_before_redb_meets_it_and_writes_resume() {
    let fs = Tmpfs::mount("24m");
    let ballast = fs.ballast("ballast", 6 << 20);
    let path = fs.path().join("halite.redb");
    let store = Store::open(&path).unwrap();
    let grains = |id: &str| MinionData { grains: map([("id", Value::from(id))]), pillar: map::<_, String>([]) };
    store.put_minion_data("gone", &grains("gone")).unwrap();
    let (acknowledged, error) = fill(&store);
    assert!(acknowledged.len() > 100, "only {} returns fitted", acknowledged.len());
    assert!(matches!(error, StoreError::Full { .. }), "refused by the room check: {error}");
    let text = error.to_string();
    assert!(text.contains(&path.display().to_string()), "the error names the file: {text}");

    // Refused, not broken: reads answer and nothing was reopened.
    assert_eq!(stored(&store), acknowledged);
    assert!(store.minion_data("gone").unwrap().is_some());
    assert_eq!(store.reopened(), 0);
    // Deletions need less room than writes: forgetting a minion works on a full disk.
    store.forget_minion("gone").unwrap();
    assert!(store.minion_data("gone").unwrap().is_none());

    std::fs::remove_file(ballast).unwrap();
    store.put_return(JID, "after", &ret(0), 2).unwrap();
    let mut expected = acknowledged.clone();
    expected.push("after".into());
    expected.sort();
    assert_eq!(stored(&store), expected);
}

#[test]
fn an_io_error_inside_redb_reopens_the_store_and_loses_nothing_acknowledged() {
    let fs = Tmpfs::mount("8m");
    let ballast = fs.ballast("ballast", 2 << 20);
    let path = fs.path().join("halite.redb");
    // No reserve: redb itself meets ENOSPC.
    let store = Store::open_with(&path, Options { reserve_bytes: 0, ..Options::default() }).unwrap();
    let (acknowledged, error) = fill(&store);
    assert!(acknowledged.len() > 50, "only {} returns fitted", acknowledged.len());
    assert!(matches!(error, StoreError::Io { .. }), "redb's own error: {error}");

    // The next operation reopens the file: reads answer with every acknowledged return.
    let now = stored(&store);
    let extra: Vec<&String> = now.iter().filter(|id| !acknowledged.contains(id)).collect();
    let missing: Vec<&String> = acknowledged.iter().filter(|id| !now.contains(id)).collect();
    // The write that reported the error may have reached the file whole before a later step
    // of its commit failed: harmless, the minion sends it again and it lands on the same key.
    let failed = format!("m{:05}", acknowledged.len());
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}");
    assert!(extra.iter().all(|id| **id == failed), "stored but never written: {extra:?}");
    assert!(store.reopened() >= 1, "reopened after the I/O error");

    std::fs::remove_file(ballast).unwrap();
    // Concurrent writers share commits; every one lands once there is room.
    std::thread::scope(|s| {
        for n in 0..8 {
            let store = &store;
            s.spawn(move || store.put_return(JID, &format!("z{n}"), &ret(n), 3).unwrap());
        }
    });
    let mut expected = now.clone();
    expected.extend((0..8).map(|n| format!("z{n}")));
    expected.sort();
    assert_eq!(stored(&store), expected);

    // And the file opens again after the process lets go of it.
    drop(store);
    let reopened = Store::open(&path).unwrap();
    assert_eq!(stored(&reopened), expected);
}
