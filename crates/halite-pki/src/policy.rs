//! The acceptance policy of `_auth`: Salt's decision tree over the key-state directories.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use halite_proto::payload::{Value, ValueExt};
use halite_proto::rsa::{clean_key, PublicKey};
use tracing::{error, info, warn};

use crate::dir::read_optional;
use crate::{KeyState, PkiDir, PkiError};

/// The master options that decide whether a presented key is accepted.
#[derive(Debug, Clone, Default)]
pub struct AuthPolicy {
    pub open_mode: bool,
    pub auto_accept: bool,
    pub autosign_file: Option<PathBuf>,
    pub autoreject_file: Option<PathBuf>,
    pub autosign_grains_dir: Option<PathBuf>,
    /// Minutes after which a `minions_autosign/<id>` stub expires (Salt's `autosign_timeout`).
    pub autosign_timeout_minutes: u64,
    pub permissive_pki_access: bool,
}

/// What `_auth` answers for one presented key.
#[derive(Debug)]
pub enum AuthDecision {
    /// The key is (now) in `minions/`: reply with the AES key.
    Accept { key: PublicKey },
    /// The key waits in `minions_pre/` for `salt-key -a` (`ret: True`, act `pend`).
    Pending,
    /// A new key that would have gone to `minions_pre/` was not written: the caller's budget
    /// of new pending keys is spent. The minion is answered as pending and asks again after
    /// its `acceptance_wait_time`, when the key is written if the budget allows.
    Deferred,
    /// `ret: False`. `act` is the `salt/auth` event's act where Salt sets one.
    Refused { act: Option<&'static str>, reason: String },
}

fn refused(act: Option<&'static str>, reason: impl Into<String>) -> AuthDecision {
    AuthDecision::Refused { act, reason: reason.into() }
}

/// Salt's `_auth` decision for minion `id` presenting `pub_pem`, with the same file effects:
/// a new key lands in pending (or rejected, via autoreject_file); a key that differs from the
/// accepted or pending one is written to `minions_denied`; an autosigned key moves to
/// `minions`; open_mode accepts anything and overwrites the stored key.
///
/// Autoreject and autosign are evaluated up front, as Salt does, so a `minions_autosign` stub is
/// consumed by any authentication of that id.
///
/// `admit_pending` is asked before a new key is written to `minions_pre/` (Salt writes every
/// one): a stranger signing in under a new id each time would otherwise fill the pki dir.
pub fn decide_auth(
    pki: &PkiDir,
    policy: &AuthPolicy,
    id: &str,
    pub_pem: &str,
    autosign_grains: Option<&Value>,
    admit_pending: impl FnOnce() -> bool,
) -> Result<AuthDecision, PkiError> {
    let accepted = pki.key_path(KeyState::Accepted, id)?;
    let pending = pki.key_path(KeyState::Pending, id)?;
    let rejected = pki.key_path(KeyState::Rejected, id)?;
    let auto_reject = check_signing_file(policy, policy.autoreject_file.as_deref(), id);
    let auto_sign = check_autosign(pki, policy, id, autosign_grains);

    if policy.open_mode {
        // Nothing to check: any key is accepted and replaces the stored one below.
    } else if rejected.is_file() {
        info!("public key rejected: present in minions_rejected");
        return Ok(refused(None, "key is in minions_rejected"));
    } else if accepted.is_file() {
        let stored = read_optional(&accepted)?.unwrap_or_default();
        if !same_key(&stored, pub_pem) {
            error!(
                "authentication failed: the public key does not match the accepted one; \
                    this may be an attempt to compromise the Salt cluster"
            );
            pki.write(KeyState::Denied, id, pub_pem)?;
            return Ok(refused(Some("denied"), "key differs from the accepted key"));
        }
    } else if !pending.is_file() {
        if pending.is_dir() {
            info!(path = %pending.display(), "new public key path is a directory");
            return Ok(refused(None, "pending key path is a directory"));
        }
        if auto_reject {
            info!("new public key rejected via autoreject_file");
            pki.write(KeyState::Rejected, id, pub_pem)?;
            return Ok(refused(Some("reject"), "autoreject_file"));
        }
        if !auto_sign {
            if !admit_pending() {
                return Ok(AuthDecision::Deferred);
            }
            info!("new public key placed in pending");
            pki.write(KeyState::Pending, id, pub_pem)?;
            return Ok(AuthDecision::Pending);
        }
    } else {
        if auto_reject {
            info!("pending public key rejected via autoreject_file");
            pki.move_key(id, KeyState::Pending, KeyState::Rejected)?;
            return Ok(refused(Some("reject"), "autoreject_file"));
        }
        let stored = read_optional(&pending)?.unwrap_or_default();
        if !same_key(&stored, pub_pem) {
            error!(
                "authentication failed: the public key in pending does not match; \
                    this may be an attempt to compromise the Salt cluster"
            );
            pki.write(KeyState::Denied, id, pub_pem)?;
            return Ok(refused(Some("denied"), "key differs from the pending key"));
        }
        if !auto_sign {
            return Ok(AuthDecision::Pending);
        }
        pki.remove(KeyState::Pending, id)?;
    }

    if policy.open_mode {
        let stored = read_optional(&accepted)?.unwrap_or_default();
        if !pub_pem.is_empty() && pub_pem != stored {
            info!("host key change detected in open mode");
            pki.write(KeyState::Accepted, id, pub_pem)?;
        }
    } else if !accepted.is_file() {
        pki.write(KeyState::Accepted, id, pub_pem)?;
    }
    // Salt parses the stored file, not the presented text: a corrupt file refuses the minion.
    match pki.accepted_key(id) {
        Ok(Some(key)) => Ok(AuthDecision::Accept { key }),
        Ok(None) => Ok(refused(None, "accepted key file vanished")),
        Err(e) => {
            error!(error = %e, "corrupt public key");
            Ok(refused(None, format!("corrupt public key: {e}")))
        }
    }
}

fn same_key(a: &str, b: &str) -> bool {
    clean_key(a) == clean_key(b)
}

fn check_autosign(pki: &PkiDir, policy: &AuthPolicy, id: &str, grains: Option<&Value>) -> bool {
    policy.auto_accept
        || check_signing_file(policy, policy.autosign_file.as_deref(), id)
        || check_autosign_dir(pki, policy, id)
        || grains.is_some_and(|g| check_autosign_grains(policy, g))
}

/// Salt's `check_permissions`: a world-writable file is never trusted, a group-writable one only
/// with `permissive_pki_access`.
fn trusted_permissions(policy: &AuthPolicy, path: &Path) -> bool {
    let Ok(meta) = fs::metadata(path) else { return false };
    let mode = meta.mode();
    if mode & 0o002 != 0 {
        return false;
    }
    mode & 0o020 == 0 || policy.permissive_pki_access
}

/// Whether `id` matches a line of an autosign/autoreject file (comments skipped, each line an
/// `expr_match` pattern).
fn check_signing_file(policy: &AuthPolicy, file: Option<&Path>, id: &str) -> bool {
    let Some(file) = file else { return false };
    if !file.exists() {
        return false;
    }
    if !trusted_permissions(policy, file) {
        warn!(path = %file.display(), "wrong permissions, ignoring content");
        return false;
    }
    let text = match fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) => {
            warn!(path = %file.display(), error = %e, "cannot read signing file");
            return false;
        }
    };
    text.lines().map(str::trim).filter(|line| !line.starts_with('#')).any(|line| halite_target::expr_match(id, line))
}

/// `minions_autosign/<id>` stubs: single-use, expiring after `autosign_timeout` minutes.
fn check_autosign_dir(pki: &PkiDir, policy: &AuthPolicy, id: &str) -> bool {
    let dir = pki.root().join("minions_autosign");
    if policy.autosign_timeout_minutes > 0 {
        let ttl = Duration::from_secs(60 * policy.autosign_timeout_minutes);
        if let Ok(entries) = fs::read_dir(&dir) {
            for entry in entries.flatten() {
                let expired = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .map(|mtime| SystemTime::now().duration_since(mtime).unwrap_or_default() > ttl)
                    .unwrap_or(false);
                if expired {
                    warn!(path = %entry.path().display(), "autosign stub expired");
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
    }
    let Ok(stub) = pki.key_path(KeyState::Accepted, id).map(|_| dir.join(id)) else { return false };
    stub.exists() && fs::remove_file(&stub).is_ok()
}

/// autosign_grains_dir: a file per grain name, each line a value that autosigns a minion whose
/// grain, printed as Python's `str()` prints it, equals the line.
fn check_autosign_grains(policy: &AuthPolicy, grains: &Value) -> bool {
    let Some(dir) = policy.autosign_grains_dir.as_deref() else { return false };
    let Ok(entries) = fs::read_dir(dir) else { return false };
    for entry in entries.flatten() {
        let Some(name) = entry.file_name().to_str().map(str::to_owned) else { continue };
        let Some(value) = grains.get(&name) else { continue };
        let path = entry.path();
        if !path.is_file() {
            continue;
        }
        if !trusted_permissions(policy, &path) {
            warn!(path = %path.display(), "wrong permissions, ignoring content");
            continue;
        }
        let Ok(text) = fs::read_to_string(&path) else { continue };
        let printed = halite_yaml::py::text(value);
        if text.lines().map(str::trim).any(|line| !line.starts_with('#') && line == printed) {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct Fixture {
        _dir: tempfile::TempDir,
        pki: PkiDir,
        root: PathBuf,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        let pki = PkiDir::open(root.join("pki")).unwrap();
        Fixture { _dir: dir, pki, root }
    }

    fn key() -> String {
        let rsa = openssl::rsa::Rsa::generate(1024).unwrap();
        String::from_utf8(rsa.public_key_to_pem().unwrap()).unwrap()
    }

    fn decide(f: &Fixture, policy: &AuthPolicy, id: &str, pem: &str) -> AuthDecision {
        decide_auth(&f.pki, policy, id, pem, None, || true).unwrap()
    }

    #[test]
    fn new_key_pends_then_is_accepted_once_moved() {
        let f = fixture();
        let k = key();
        let policy = AuthPolicy::default();
        assert!(matches!(decide(&f, &policy, "web1", &k), AuthDecision::Pending));
        assert!(matches!(decide(&f, &policy, "web1", &k), AuthDecision::Pending));
        assert!(f.pki.move_key("web1", KeyState::Pending, KeyState::Accepted).unwrap());
        assert!(matches!(decide(&f, &policy, "web1", &k), AuthDecision::Accept { .. }));
    }

    #[test]
    fn a_spent_budget_writes_no_new_pending_key() {
        let f = fixture();
        let k = key();
        let d = decide_auth(&f.pki, &AuthPolicy::default(), "stranger", &k, None, || false).unwrap();
        assert!(matches!(d, AuthDecision::Deferred), "{d:?}");
        assert!(!f.pki.contains(KeyState::Pending, "stranger").unwrap());
        // A key already pending is not new: the budget is not asked.
        assert!(matches!(decide(&f, &AuthPolicy::default(), "web1", &k), AuthDecision::Pending));
        let again = decide_auth(&f.pki, &AuthPolicy::default(), "web1", &k, None, || panic!("asked")).unwrap();
        assert!(matches!(again, AuthDecision::Pending));
    }

    #[test]
    fn a_changed_key_lands_in_denied() {
        let f = fixture();
        let (k1, k2) = (key(), key());
        f.pki.write(KeyState::Accepted, "db1", &k1).unwrap();
        let d = decide(&f, &AuthPolicy::default(), "db1", &k2);
        assert!(matches!(d, AuthDecision::Refused { act: Some("denied"), .. }), "{d:?}");
        assert_eq!(f.pki.read(KeyState::Denied, "db1").unwrap().as_deref(), Some(k2.as_str()));
        assert_eq!(f.pki.read(KeyState::Accepted, "db1").unwrap().as_deref(), Some(k1.as_str()));
        // Whitespace and header differences are not a different key (Salt's clean_key).
        let reflowed = k1.replace('\n', "\r\n");
        assert!(matches!(decide(&f, &AuthPolicy::default(), "db1", &reflowed), AuthDecision::Accept { .. }));
    }

    #[test]
    fn rejected_stays_rejected_even_with_auto_accept() {
        let f = fixture();
        let k = key();
        f.pki.write(KeyState::Rejected, "bad", &k).unwrap();
        let policy = AuthPolicy { auto_accept: true, ..Default::default() };
        assert!(matches!(decide(&f, &policy, "bad", &k), AuthDecision::Refused { act: None, .. }));
        assert!(!f.pki.contains(KeyState::Accepted, "bad").unwrap());
    }

    #[test]
    fn auto_accept_and_autosign_file_accept_new_and_pending_keys() {
        let f = fixture();
        let k = key();
        let policy = AuthPolicy { auto_accept: true, ..Default::default() };
        assert!(matches!(decide(&f, &policy, "app1", &k), AuthDecision::Accept { .. }));
        assert!(f.pki.contains(KeyState::Accepted, "app1").unwrap());

        let file = f.root.join("autosign.conf");
        fs::write(&file, "# site VMs\ndb*\nmail\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let policy = AuthPolicy { autosign_file: Some(file.clone()), ..Default::default() };
        f.pki.write(KeyState::Pending, "db2", &k).unwrap();
        assert!(matches!(decide(&f, &policy, "db2", &k), AuthDecision::Accept { .. }));
        assert!(!f.pki.contains(KeyState::Pending, "db2").unwrap());
        assert!(matches!(decide(&f, &policy, "notes", &k), AuthDecision::Pending));

        // A group-writable signing file is ignored unless permissive_pki_access.
        fs::set_permissions(&file, fs::Permissions::from_mode(0o664)).unwrap();
        assert!(matches!(decide(&f, &policy, "mail", &k), AuthDecision::Pending));
        let permissive = AuthPolicy { permissive_pki_access: true, ..policy };
        f.pki.remove(KeyState::Pending, "mail").unwrap();
        assert!(matches!(decide(&f, &permissive, "mail", &k), AuthDecision::Accept { .. }));
    }

    #[test]
    fn autoreject_file_wins_over_pending() {
        let f = fixture();
        let k = key();
        let file = f.root.join("autoreject.conf");
        fs::write(&file, "evil.*\n").unwrap();
        fs::set_permissions(&file, fs::Permissions::from_mode(0o600)).unwrap();
        let policy = AuthPolicy { autoreject_file: Some(file), auto_accept: true, ..Default::default() };
        assert!(matches!(decide(&f, &policy, "evil1", &k), AuthDecision::Refused { act: Some("reject"), .. }));
        assert!(f.pki.contains(KeyState::Rejected, "evil1").unwrap());
        f.pki.write(KeyState::Pending, "evil2", &k).unwrap();
        assert!(matches!(decide(&f, &policy, "evil2", &k), AuthDecision::Refused { act: Some("reject"), .. }));
        assert!(f.pki.contains(KeyState::Rejected, "evil2").unwrap());
    }

    #[test]
    fn autosign_stub_is_single_use_and_grains_match_python_str() {
        let f = fixture();
        let k = key();
        let policy = AuthPolicy { autosign_timeout_minutes: 120, ..Default::default() };
        fs::write(f.pki.root().join("minions_autosign/blog"), "").unwrap();
        assert!(matches!(decide(&f, &policy, "blog", &k), AuthDecision::Accept { .. }));
        assert!(!f.pki.root().join("minions_autosign/blog").exists());

        let grains_dir = f.root.join("autosign_grains");
        fs::create_dir(&grains_dir).unwrap();
        fs::write(grains_dir.join("uuid"), "# allowed\n8f7d\n").unwrap();
        fs::write(grains_dir.join("roles"), "['db', 'masterdb']\n").unwrap();
        let policy = AuthPolicy { autosign_grains_dir: Some(grains_dir), ..Default::default() };
        let grains = halite_proto::payload::map([("uuid", Value::from("8f7d"))]);
        assert!(matches!(
            decide_auth(&f.pki, &policy, "n1", &k, Some(&grains), || true).unwrap(),
            AuthDecision::Accept { .. }
        ));
        let roles =
            halite_proto::payload::map([("roles", Value::Array(vec![Value::from("db"), Value::from("masterdb")]))]);
        assert!(matches!(
            decide_auth(&f.pki, &policy, "n2", &k, Some(&roles), || true).unwrap(),
            AuthDecision::Accept { .. }
        ));
        let other = halite_proto::payload::map([("uuid", Value::from("0000"))]);
        assert!(matches!(
            decide_auth(&f.pki, &policy, "n3", &k, Some(&other), || true).unwrap(),
            AuthDecision::Pending
        ));
    }

    #[test]
    fn open_mode_accepts_and_replaces_any_key() {
        let f = fixture();
        let (k1, k2) = (key(), key());
        f.pki.write(KeyState::Accepted, "m", &k1).unwrap();
        f.pki.write(KeyState::Rejected, "m", &k1).unwrap();
        let policy = AuthPolicy { open_mode: true, ..Default::default() };
        assert!(matches!(decide(&f, &policy, "m", &k2), AuthDecision::Accept { .. }));
        assert_eq!(f.pki.read(KeyState::Accepted, "m").unwrap().as_deref(), Some(k2.as_str()));
    }

    #[test]
    fn a_corrupt_accepted_key_refuses() {
        let f = fixture();
        f.pki.write(KeyState::Accepted, "c", "garbage").unwrap();
        let d = decide(&f, &AuthPolicy { open_mode: false, ..Default::default() }, "c", "garbage");
        assert!(matches!(d, AuthDecision::Refused { .. }), "{d:?}");
    }

    #[test]
    fn python_str_of_grains() {
        let v =
            Value::Array(vec![Value::from("a'b"), Value::from(1), Value::Boolean(true), Value::Nil, Value::F64(2.0)]);
        assert_eq!(halite_yaml::py::text(&v), r#"["a'b", 1, True, None, 2.0]"#);
        assert_eq!(halite_yaml::py::text(&Value::from("x")), "x");
    }
}
