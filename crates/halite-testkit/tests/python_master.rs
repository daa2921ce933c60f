//! The testkit against the real thing: three minion versions authenticate to the Python
//! salt-master, and stopping them leaves no process behind.

use std::time::Duration;

use halite_testkit::{Minion, MinionSpec, PythonMaster, SaltVersion};

#[test]
fn three_minion_versions_authenticate_to_the_python_master_and_stop_cleanly() {
    let master = PythonMaster::start(&["auto_accept: True"]);
    let mut minions: Vec<Minion> = SaltVersion::ALL
        .iter()
        .map(|&version| {
            let spec = MinionSpec {
                id: format!("kit-{}", version.as_str()),
                version,
                roles: vec!["db".into()],
                ..MinionSpec::default()
            };
            Minion::start(spec, &master.endpoints())
        })
        .collect();
    for m in &minions {
        m.wait_authenticated(Duration::from_secs(90)).unwrap_or_else(|e| panic!("{e}"));
    }
    let out = master.salt_key(&["-L", "--out", "json"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    for m in &minions {
        assert!(listed.contains(m.id()), "{} accepted: {listed}", m.id());
    }
    for m in &mut minions {
        let pgid = m.pgid().expect("running");
        m.stop();
        let alive = std::process::Command::new("kill")
            .args(["-0", "--", &format!("-{pgid}")])
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap()
            .success();
        assert!(!alive, "{}: a process of its group survived stop()", m.id());
    }
}
