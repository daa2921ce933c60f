//! The testkit against the real thing: a 3006, a 3007 and a 3008 minion authenticate to the
//! Python salt-master at once, and stopping them leaves no process of theirs running.
//!
//! Needs the venvs of `tests/install-minions.sh`; CI installs them before running this.

use std::time::{Duration, Instant};

use halite_testkit::{Minion, MinionSpec, PythonMaster, SaltVersion};

/// Whether process group `pgid` still has a member that has not exited, read from each
/// process's `/proc/<pid>/status` (`NSpgid`, `State`, `Threads`) rather than through the kit,
/// which is what is under test. Exited workers may linger as zombies until pid 1 reaps them;
/// they hold nothing, unless the zombie is a main thread whose other threads still run.
fn group_running(pgid: u32) -> bool {
    let field = |status: &str, name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).map(|v| v.trim().to_owned()).unwrap_or_default()
    };
    std::fs::read_dir("/proc").expect("/proc").flatten().any(|entry| {
        let Ok(status) = std::fs::read_to_string(entry.path().join("status")) else { return false };
        let exited = field(&status, "State:").starts_with('Z') && field(&status, "Threads:") == "1";
        field(&status, "NSpgid:").split_whitespace().last() == Some(&pgid.to_string()) && !exited
    })
}

#[test]
fn three_minion_versions_authenticate_to_the_python_master_and_stop_cleanly() {
    let started = Instant::now();
    let master = PythonMaster::start(&["auto_accept: True"]);
    eprintln!("salt-master {} serving after {:?}", master.version(), started.elapsed());

    let mut minions: Vec<Minion> = SaltVersion::ALL
        .iter()
        .map(|&version| {
            let spec = MinionSpec::new(&format!("kit-{version}"), version)
                .with_roles(&["db", version.as_str()])
                .with_grain("site", "testkit");
            Minion::start(spec, &master.endpoints())
        })
        .collect();
    for m in &minions {
        let took = m.wait_authenticated(Duration::from_secs(60)).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("{} authenticated after {took:?}", m.id());
        assert!(m.public_key_pem().starts_with("-----BEGIN PUBLIC KEY-----"), "{}: minion.pub is not PEM", m.id());
    }

    let out = master.salt_key(&["-l", "acc", "--out", "json"]);
    assert!(out.status.success(), "salt-key -l acc failed: {}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("salt-key --out json prints JSON");
    for m in &minions {
        let accepted = listed["minions"].as_array().is_some_and(|ids| ids.iter().any(|id| id == m.id()));
        assert!(accepted, "{} authenticated but is not among the accepted keys: {listed}", m.id());
        let key_file = master.pki_dir().join("minions").join(m.id());
        let on_master = std::fs::read_to_string(&key_file).unwrap_or_else(|e| panic!("{}: {e}", key_file.display()));
        assert_eq!(on_master.trim(), m.public_key_pem().trim(), "{}: the master holds another key", m.id());
    }

    let pgids: Vec<u32> = minions.iter().map(|m| m.pgid().expect("a started minion has a process group")).collect();
    for (m, &pgid) in minions.iter().zip(&pgids) {
        assert!(group_running(pgid), "{}: its process group {pgid} is gone before stop()", m.id());
    }
    let stopping = Instant::now();
    Minion::stop_all(&mut minions);
    eprintln!("minions stopped in {:?}", stopping.elapsed());
    for (m, &pgid) in minions.iter_mut().zip(&pgids) {
        assert!(!group_running(pgid), "{}: a process of group {pgid} survived stop()", m.id());
        // The leader is the kit's child: only the kit can reap it, and it must have.
        assert!(!std::path::Path::new(&format!("/proc/{pgid}")).exists(), "{}: leader {pgid} not reaped", m.id());
        assert!(!m.is_running(), "{}: still reported running after stop()", m.id());
    }
    eprintln!("total {:?}", started.elapsed());
}
