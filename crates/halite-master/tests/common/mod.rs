//! Shared pieces of halite-master's end-to-end tests: the daemon under test, and a scripted
//! minion built on halite-proto for the cases a real minion will not produce (forged toks,
//! hostile ids). Everything a real minion can do is tested with real minions.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use halite_proto::crypticle::Crypticle;
use halite_proto::payload::{self, map, Value, ValueExt};
use halite_proto::rsa::{clean_key, EncAlgo, PrivateKey, PublicKey};

/// A binary of another workspace crate (cargo only exposes this package's own binaries to its
/// tests): next to the test executable's `deps/` directory, where `cargo build --workspace`
/// puts it. `tests/run` builds the workspace before testing.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target profile dir");
    let bin = dir.join(name);
    assert!(bin.exists(), "{} is not built; run `cargo build --workspace` first", bin.display());
    bin
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("a free port")
}

/// A halite-dns process, killed when dropped.
pub struct Dns {
    child: Child,
    pub port: u16,
}

impl Dns {
    /// Starts halite-dns on `config` (which listens on 127.0.0.1:`port`), its log in `log`.
    pub fn spawn(config: &Path, port: u16, log: &Path) -> Dns {
        let log = std::fs::File::create(log).expect("the log file");
        let child = Command::new(workspace_bin("halite-dns"))
            .arg("-c")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start halite-dns");
        Dns { child, port }
    }

    /// `dig +short` against the server.
    pub fn dig(&self, name: &str, rtype: &str) -> String {
        let out = Command::new("dig")
            .args(["@127.0.0.1", "-p", &self.port.to_string(), "+short", "+tries=1", "+time=1", name, rtype])
            .output()
            .expect("dig is installed by tests/install-dns-tools.sh");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// How to set up a test master: extra config lines, and optionally an existing pki dir and fixed
/// ports (to take over from another master the minions already know).
#[derive(Default)]
pub struct Setup {
    pub extra: Vec<String>,
    pub pki_dir: Option<PathBuf>,
    pub ports: Option<(u16, u16)>,
    /// Another master's cachedir (to take over its minion data cache too).
    pub cachedir: Option<PathBuf>,
    /// Another master's sock_dir (so that master's own CLI finds halite's sockets).
    pub sock_dir: Option<PathBuf>,
}

impl Setup {
    /// Taking over from Salt's `python` master, as a site migrates: its keys, ports, minion
    /// data cache (grains, `.root_key`) and sock_dir (so Salt's own CLI finds halite), with
    /// `auto_accept`. Stop `python` before starting halite on this.
    pub fn taking_over(python: &halite_testkit::PythonMaster) -> Setup {
        let endpoints = python.endpoints();
        Setup {
            extra: vec!["auto_accept: True".into()],
            pki_dir: Some(python.pki_dir()),
            ports: Some((endpoints.ret_port, endpoints.publish_port)),
            cachedir: Some(python.root().join("var/cache/salt/master")),
            sock_dir: Some(python.root().join("var/run/salt/master")),
        }
    }
}

/// A halite-master process on loopback, in its own temp root, killed on drop.
pub struct Master {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub ret_port: u16,
    pub publish_port: u16,
    pki_dir: PathBuf,
    cachedir: PathBuf,
    sock_dir: PathBuf,
    extra: Vec<String>,
}

impl Master {
    pub fn start(extra_config: &[&str]) -> Self {
        Self::start_with(Setup { extra: extra_config.iter().map(|s| s.to_string()).collect(), ..Setup::default() })
    }

    pub fn start_with(setup: Setup) -> Self {
        let dir = tempfile::Builder::new().prefix("hm").tempdir_in("/tmp").expect("temp dir");
        let (ret_port, publish_port) = setup.ports.unwrap_or_else(|| (free_port(), free_port()));
        let pki_dir = setup.pki_dir.unwrap_or_else(|| dir.path().join("pki/master"));
        let cachedir = setup.cachedir.unwrap_or_else(|| dir.path().join("cache"));
        let sock_dir = setup.sock_dir.unwrap_or_else(|| dir.path().join("run"));
        let mut m =
            Master { dir, child: None, ret_port, publish_port, pki_dir, cachedir, sock_dir, extra: setup.extra };
        m.write_config();
        m.spawn();
        m
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_dir(&self) -> PathBuf {
        self.root().join("etc")
    }

    pub fn pki_dir(&self) -> PathBuf {
        self.pki_dir.clone()
    }

    pub fn config_text(&self) -> String {
        std::fs::read_to_string(self.config_dir().join("master")).unwrap_or_default()
    }

    pub fn log_path(&self) -> PathBuf {
        self.root().join("master.out")
    }

    pub fn ret_endpoint(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.ret_port)
    }

    /// Every path is given explicitly and root_dir is left alone: Salt re-roots even absolute
    /// paths under root_dir, which would move a borrowed pki dir.
    fn write_config(&self) {
        let root = self.root().display();
        let mut conf = format!(
            "interface: 127.0.0.1\npublish_port: {}\nret_port: {}\npki_dir: {}\n\
             cachedir: {}\nsock_dir: {}\nlog_file: {root}/master.log\nlog_level: debug\nuser: {}\n",
            self.publish_port,
            self.ret_port,
            self.pki_dir.display(),
            self.cachedir.display(),
            self.sock_dir.display(),
            std::env::var("USER").unwrap_or_else(|_| "root".into()),
        );
        for line in &self.extra {
            conf.push_str(line);
            conf.push('\n');
        }
        std::fs::create_dir_all(self.config_dir()).expect("config dir");
        std::fs::write(self.config_dir().join("master"), conf).expect("master config");
    }

    fn spawn(&mut self) {
        // The log is appended to across restarts: wait for this start's line, not the last's.
        let started_before = self.log_count("halite master ready");
        let out = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).expect("log file");
        let child = Command::new(env!("CARGO_BIN_EXE_halite-master"))
            .arg("-c")
            .arg(self.config_dir())
            .env("RUST_LOG", "debug,redb=warn")
            .stdout(Stdio::from(out.try_clone().expect("log fd")))
            .stderr(Stdio::from(out))
            .spawn()
            .expect("start halite-master");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.log_count("halite master ready") == started_before {
            assert!(Instant::now() < deadline, "halite-master did not start again:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Stops and starts the daemon on the same root and ports (new AES key, same keys).
    /// Returns whether the old process exited by itself on SIGTERM.
    pub fn restart(&mut self) -> bool {
        let graceful = self.stop();
        self.spawn();
        graceful
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// The daemon's resident memory in MiB (its publisher child not counted).
    pub fn rss_mib(&self) -> u64 {
        let pid = self.pid().expect("the master runs");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
        let kib = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .expect("VmRSS");
        kib / 1024
    }

    /// Lines of the daemon's log containing `needle`.
    pub fn log_count(&self, needle: &str) -> usize {
        self.log().lines().filter(|l| l.contains(needle)).count()
    }

    /// SIGKILL, as the OOM killer would stop it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the daemon again on the same root and ports, after [`Master::kill`].
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "the master is still running");
        self.spawn();
    }

    /// SIGTERM, as an init system sends, then SIGKILL after 10 s. Returns whether the daemon
    /// exited by itself.
    pub fn stop(&mut self) -> bool {
        let Some(mut child) = self.child.take() else { return true };
        let _ = Command::new("kill").arg(child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    pub fn log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// Waits for `needle` in the daemon's output; panics with the log after `timeout`.
    pub fn wait_log_contains(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            if Instant::now() > deadline {
                panic!("master log never contained {needle:?}:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Publishes `fun` to `tgt` (a glob) the way the stock `salt` CLI does: a clear `publish`
    /// on the request port carrying root's key. Returns the jid and the minions expected.
    pub fn publish(&self, tgt: &str, fun: &str) -> (String, Vec<String>) {
        self.publish_with(tgt, fun, &[])
    }

    /// [`Master::publish`] with arguments.
    pub fn publish_with(&self, tgt: &str, fun: &str, args: &[&str]) -> (String, Vec<String>) {
        let key = std::fs::read_to_string(self.cachedir.join(".root_key")).expect("the master wrote .root_key");
        let load = map([
            ("cmd", Value::from("publish")),
            ("tgt", Value::from(tgt)),
            ("fun", Value::from(fun)),
            ("arg", Value::Array(args.iter().map(|a| Value::from(*a)).collect())),
            ("tgt_type", Value::from("glob")),
            ("key", Value::from(key.trim())),
            ("user", Value::from("root")),
            ("ret", Value::from("")),
        ]);
        let env = map([("enc", Value::from("clear")), ("load", load), ("version", Value::from(3))]);
        let reply = request(self, &payload::encode(&env));
        let reply = payload::decode(&reply).expect("a msgpack reply");
        let load = reply.get("load").unwrap_or_else(|| panic!("publish refused: {reply}"));
        let jid = load
            .get_text("jid")
            .unwrap_or_else(|| {
                panic!("publish refused: {reply}\nconfig:\n{}\nlog:\n{}", self.config_text(), self.log())
            })
            .to_owned();
        let minions = match load.get("minions") {
            Some(Value::Array(ids)) => ids.iter().filter_map(|v| v.as_text().map(str::to_owned)).collect(),
            _ => vec![],
        };
        (jid, minions)
    }

    /// Minions whose `_return` for `jid` the master logged.
    pub fn returned(&self, jid: &str) -> Vec<String> {
        let mut ids: Vec<String> = self
            .log()
            .lines()
            .filter(|l| l.contains("job return") && l.contains(&format!("jid={jid}")))
            .filter_map(|l| l.split("minion=").nth(1))
            .filter_map(|rest| rest.split([' ', '}']).next())
            .map(str::to_owned)
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// Waits until every minion of `ids` returned `jid`; panics with the log otherwise.
    pub fn wait_returns(&self, jid: &str, ids: &[&str], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.returned(jid);
            if ids.iter().all(|id| got.iter().any(|g| g == id)) {
                return;
            }
            if Instant::now() > deadline {
                panic!("job {jid}: expected returns from {ids:?}, got {got:?}\n{}", self.log());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Runs halite's `salt-key` against this master's config.
    pub fn salt_key(&self, args: &[&str]) -> std::process::Output {
        Command::new(workspace_bin("salt-key"))
            .arg("-c")
            .arg(self.config_dir())
            .args(args)
            .output()
            .expect("run salt-key")
    }
}

impl Drop for Master {
    fn drop(&mut self) {
        self.stop();
    }
}

#[derive(Debug)]
pub enum AuthOutcome {
    Accepted { aes: Crypticle, session: Crypticle },
    Pending,
    Refused,
    Full,
    Other(String),
}

impl AuthOutcome {
    pub fn is_accepted(&self) -> bool {
        matches!(self, AuthOutcome::Accepted { .. })
    }
    pub fn is_refused(&self) -> bool {
        matches!(self, AuthOutcome::Refused)
    }
}

/// A scripted minion speaking the protocol through halite-proto.
pub struct FakeMinion {
    pub id: String,
    key: Option<PrivateKey>,
    pub_pem: String,
    session: RefCell<Option<Crypticle>>,
}

/// Sends one request body on a REQ socket and returns the reply.
pub fn request(master: &Master, body: &[u8]) -> Vec<u8> {
    // Salt's own request timeout: a deferred answer (minion_publish) may take its `tmo`.
    request_within(master, body, Duration::from_secs(60)).expect("a reply from the master")
}

/// Sends one request body on a new REQ socket; `None` when no reply came within `timeout`
/// (the socket is closed then, as a minion's is before it asks again).
pub fn request_within(master: &Master, body: &[u8], timeout: Duration) -> Option<Vec<u8>> {
    let ctx = zmq::Context::new();
    let sock = ctx.socket(zmq::REQ).expect("req socket");
    sock.set_rcvtimeo(i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX)).expect("rcvtimeo");
    sock.set_linger(0).expect("linger");
    sock.connect(&master.ret_endpoint()).expect("connect");
    sock.send(body, 0).expect("send");
    match sock.recv_bytes(0) {
        Ok(reply) => Some(reply),
        Err(zmq::Error::EAGAIN) => None,
        Err(e) => panic!("receiving a reply from the master: {e}"),
    }
}

fn nonce() -> String {
    let mut b = [0u8; 16];
    openssl::rand::rand_bytes(&mut b).expect("random");
    hex::encode(b)
}

impl FakeMinion {
    pub fn new(id: &str, bits: u32) -> Self {
        let key = PrivateKey::generate(bits).expect("keygen");
        let pub_pem = String::from_utf8(key.public_key().unwrap().to_spki_pem().unwrap()).unwrap();
        Self { id: id.into(), key: Some(key), pub_pem: clean_key(&pub_pem), session: RefCell::new(None) }
    }

    /// A minion that only presents a public key (it cannot read an accept reply).
    pub fn with_public_key(id: &str, pem: &str) -> Self {
        Self { id: id.into(), key: None, pub_pem: clean_key(pem), session: RefCell::new(None) }
    }

    pub fn auth_raw(&self, master: &Master, version: i64) -> Vec<u8> {
        request(master, &self.auth_body(version))
    }

    /// The clear `_auth` request this minion sends.
    pub fn auth_body(&self, version: i64) -> Vec<u8> {
        let load = map([
            ("cmd", Value::from("_auth")),
            ("id", Value::from(self.id.as_str())),
            ("nonce", Value::from(nonce())),
            ("enc_algo", Value::from("OAEP-SHA1")),
            ("sig_algo", Value::from("PKCS1v15-SHA1")),
            ("pub", Value::from(self.pub_pem.as_str())),
        ]);
        let env = map([("enc", Value::from("clear")), ("load", load), ("version", Value::from(version))]);
        payload::encode(&env)
    }

    pub fn authenticate(&self, master: &Master, version: i64) -> AuthOutcome {
        self.read_auth_reply(&self.auth_raw(master, version))
    }

    /// Signs in the way a minion does against a busy master: a request unanswered within
    /// `auth_timeout` is abandoned and asked again on a new connection, `attempts` times.
    pub fn authenticate_retrying(
        &self,
        master: &Master,
        version: i64,
        auth_timeout: Duration,
        attempts: u32,
    ) -> AuthOutcome {
        for _ in 0..attempts {
            if let Some(reply) = request_within(master, &self.auth_body(version), auth_timeout) {
                return self.read_auth_reply(&reply);
            }
        }
        panic!("no answer to {attempts} sign-ins of {} seconds each", auth_timeout.as_secs());
    }

    fn read_auth_reply(&self, reply: &[u8]) -> AuthOutcome {
        let Ok(env) = payload::decode(reply) else { return AuthOutcome::Other("undecodable".into()) };
        let Some(inner) = env.get("load").and_then(Value::as_bytes_any).and_then(|b| payload::decode(b).ok()) else {
            return AuthOutcome::Other(format!("{env}"));
        };
        match inner.get("ret") {
            Some(Value::Boolean(false)) => return AuthOutcome::Refused,
            Some(Value::Boolean(true)) => return AuthOutcome::Pending,
            Some(v) if v.as_text() == Some("full") => return AuthOutcome::Full,
            Some(v) => return AuthOutcome::Other(format!("{v}")),
            None => {}
        }
        let key = self.key.as_ref().expect("a private key to read the accept reply");
        let open = |field: &str| -> Crypticle {
            let ct = inner.get(field).and_then(Value::as_bytes_any).expect(field);
            let plain = key.decrypt_oaep(ct, EncAlgo::OaepSha1).expect("decrypts");
            Crypticle::from_key_string(std::str::from_utf8(&plain).unwrap()).unwrap()
        };
        let (aes, session) = (open("aes"), open("session"));
        *self.session.borrow_mut() = Some(session.clone());
        AuthOutcome::Accepted { aes, session }
    }

    pub fn tok(&self) -> Vec<u8> {
        self.key.as_ref().expect("private key").encrypt_x931(b"salt").expect("tok")
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey::from_pem(self.pub_pem.as_bytes()).unwrap()
    }

    fn v3_raw(&self, master: &Master, mut load: Value, tok: Vec<u8>) -> (Vec<u8>, String) {
        let session = self.session.borrow().clone().expect("authenticate first");
        let n = nonce();
        payload::insert(&mut load, "id", Value::from(self.id.as_str()));
        payload::insert(&mut load, "nonce", Value::from(n.as_str()));
        payload::insert(&mut load, "ts", Value::from(0));
        payload::insert(&mut load, "tok", Value::Binary(tok));
        let env = map([
            ("enc", Value::from("aes")),
            ("load", Value::Binary(session.dumps(&load, None).unwrap())),
            ("version", Value::from(3)),
            ("id", Value::from(self.id.as_str())),
            ("enc_algo", Value::from("OAEP-SHA1")),
            ("sig_algo", Value::from("PKCS1v15-SHA1")),
        ]);
        (request(master, &payload::encode(&env)), n)
    }

    /// A v3 request whose envelope names `envelope_id` (the session key is still this
    /// minion's) around `load` as given: its `id` is not set, its `tok` is this minion's.
    pub fn v3_forged(&self, master: &Master, envelope_id: &str, mut load: Value) -> Vec<u8> {
        let session = self.session.borrow().clone().expect("authenticate first");
        payload::insert(&mut load, "nonce", Value::from(nonce()));
        payload::insert(&mut load, "ts", Value::from(0));
        payload::insert(&mut load, "tok", Value::Binary(self.tok()));
        let env = map([
            ("enc", Value::from("aes")),
            ("load", Value::Binary(session.dumps(&load, None).unwrap())),
            ("version", Value::from(3)),
            ("id", Value::from(envelope_id)),
        ]);
        request(master, &payload::encode(&env))
    }

    /// A v2 request (the shared AES key, as pre-3006.30 minions send them) around `load` as
    /// given, with `tok` when one is given. Returns the decrypted reply, or the clear text
    /// answered instead (`bad load`).
    pub fn v2_call(
        &self,
        master: &Master,
        aes: &Crypticle,
        mut load: Value,
        tok: Option<Vec<u8>>,
    ) -> Result<Value, String> {
        let n = nonce();
        payload::insert(&mut load, "nonce", Value::from(n.as_str()));
        if let Some(tok) = tok {
            payload::insert(&mut load, "tok", Value::Binary(tok));
        }
        let env = map([
            ("enc", Value::from("aes")),
            ("load", Value::Binary(aes.dumps(&load, None).unwrap())),
            ("version", Value::from(2)),
        ]);
        let reply = payload::decode(&request(master, &payload::encode(&env))).map_err(|e| e.to_string())?;
        match reply.as_bytes_any() {
            Some(blob) if reply.as_text().is_none() => aes.loads_with_nonce(blob, &n).map_err(|e| e.to_string()),
            _ => Err(reply.as_text().unwrap_or("a reply that is neither ciphertext nor text").to_owned()),
        }
    }

    pub fn v3_request_with_tok(&self, master: &Master, cmd: &str, tok: Vec<u8>) -> Vec<u8> {
        self.v3_raw(master, map([("cmd", Value::from(cmd)), ("tag", Value::from("x")), ("data", Value::Nil)]), tok).0
    }

    /// Sends a `_minion_event` as a 3007 minion would and decrypts the reply.
    pub fn v3_event(&self, master: &Master, tag: &str) -> Result<Value, String> {
        self.v3_call(
            master,
            map([("cmd", Value::from("_minion_event")), ("tag", Value::from(tag)), ("data", Value::Nil)]),
        )
    }

    /// Sends any request `load` (with `cmd`) as a 3007 minion would and decrypts the reply.
    /// Fails with the clear text answered instead of ciphertext (`bad load`).
    pub fn v3_call(&self, master: &Master, load: Value) -> Result<Value, String> {
        let (reply, n) = self.v3_raw(master, load, self.tok());
        let reply = payload::decode(&reply).map_err(|e| e.to_string())?;
        if let Some(text) = reply.as_text() {
            return Err(text.to_owned());
        }
        let blob = reply.as_bytes_any().ok_or("reply is not a blob")?;
        let session = self.session.borrow().clone().ok_or("no session")?;
        session.loads_with_nonce(blob, &n).map_err(|e| e.to_string())
    }
}

/// Runs halite's CLI `name` (`salt`, `salt-run`, `salt-key`) against `master`.
pub fn cli(master: &Master, name: &str, args: &[&str]) -> Output {
    Command::new(workspace_bin(name))
        .arg("-c")
        .arg(master.config_dir())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run halite's {name}: {e}"))
}

pub fn salt(master: &Master, args: &[&str]) -> Output {
    cli(master, "salt", args)
}

pub fn salt_run(master: &Master, args: &[&str]) -> Output {
    cli(master, "salt-run", args)
}

/// Where the swarm's RSA keys are kept between runs: generating thousands is slow.
pub fn swarm_keys_dir() -> PathBuf {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    home.join(".cache/halite/swarm-keys")
}

/// A swarm of simulated minions named `<prefix><n>` against `master`'s ports.
pub fn swarm_config(
    master: &Master,
    prefix: &str,
    protocol: halite_swarm::Protocol,
    request_timeout: Duration,
) -> halite_swarm::Config {
    halite_swarm::Config {
        host: "127.0.0.1".into(),
        ret_port: master.ret_port,
        publish_port: master.publish_port,
        protocol,
        prefix: prefix.into(),
        request_timeout,
        first_index: 0,
    }
}

/// The minions whose return of `jid` the job cache holds (`salt-run jobs.lookup_jid`).
pub fn cached_returners(master: &Master, jid: &str) -> BTreeSet<String> {
    let out = salt_run(master, &["jobs.lookup_jid", jid, "--out", "json"]);
    assert!(out.status.success(), "jobs.lookup_jid {jid}: {}", String::from_utf8_lossy(&out.stderr));
    json(&out).as_object().map(|returns| returns.keys().cloned().collect()).unwrap_or_default()
}

pub fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", describe(out)))
}

/// The text of a clear reply (`bad load`), or "" when the reply is something else.
pub fn reply_text(reply: &[u8]) -> String {
    payload::decode(reply).ok().and_then(|v| v.as_text().map(str::to_owned)).unwrap_or_default()
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The per-minion JSON documents `--out json` prints one after another, merged.
pub fn json_returns(out: &Output) -> BTreeMap<String, serde_json::Value> {
    let mut all = BTreeMap::new();
    let stdout = text(&out.stdout);
    for doc in serde_json::Deserializer::from_str(&stdout).into_iter::<serde_json::Value>() {
        let doc = doc.unwrap_or_else(|e| panic!("not JSON documents ({e}):\n{stdout}"));
        for (id, ret) in doc.as_object().expect("one object per minion") {
            all.insert(id.clone(), ret.clone());
        }
    }
    all
}

/// How many minions answered `test.ping` (`--out json`) with `true`. The CLI prints a
/// document for a minion that did not return too ("Minion did not return. [No response]"),
/// so counting documents would count a minion whose returns are stuck.
pub fn pinged(out: &Output) -> usize {
    json_returns(out).values().filter(|v| **v == serde_json::Value::Bool(true)).count()
}

pub fn describe(out: &Output) -> String {
    format!("exit {:?}\n--- stdout\n{}--- stderr\n{}", out.status.code(), text(&out.stdout), text(&out.stderr))
}

/// Starts one real minion per `(id, version, roles)` against `master` (each spec passed
/// through `configure`), and returns once every one is authenticated and answers
/// `test.ping` through halite's `salt`.
pub fn start_minions(
    master: &Master,
    minions: &[(&str, halite_testkit::SaltVersion, &[&str])],
    configure: impl Fn(halite_testkit::MinionSpec) -> halite_testkit::MinionSpec,
) -> Vec<halite_testkit::Minion> {
    let timeout = Duration::from_secs(90);
    let endpoints = halite_testkit::Endpoints {
        host: "127.0.0.1".into(),
        ret_port: master.ret_port,
        publish_port: master.publish_port,
    };
    let started: Vec<halite_testkit::Minion> = minions
        .iter()
        .map(|(id, version, roles)| {
            let spec = configure(halite_testkit::MinionSpec::new(id, *version).with_roles(roles));
            halite_testkit::Minion::start(spec, &endpoints)
        })
        .collect();
    for m in &started {
        m.wait_authenticated(timeout).unwrap_or_else(|e| panic!("{}: {e}\n{}", m.id(), m.log()));
    }
    let all_up = halite_testkit::wait_until(timeout, || {
        pinged(&salt(master, &["*", "test.ping", "--out", "json", "-t", "5"])) == minions.len()
    });
    assert!(all_up, "not every minion answers test.ping");
    started
}

/// A `salt-run state.event ...` process whose stdout is collected as it is printed.
pub struct Watcher {
    pub child: Child,
    out: Arc<Mutex<String>>,
}

impl Watcher {
    pub fn start(master: &Master, args: &[&str]) -> Watcher {
        let mut child = Command::new(workspace_bin("salt-run"))
            .arg("-c")
            .arg(master.config_dir())
            .arg("state.event")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("salt-run state.event starts");
        let out = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().expect("piped stdout");
        let sink = out.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
        });
        Watcher { child, out }
    }

    pub fn output(&self) -> String {
        self.out.lock().unwrap().clone()
    }

    pub fn wait_for(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let out = self.output();
            if out.contains(needle) {
                return out;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("state.event never printed {needle:?}; it printed:\n{}", self.output());
    }

    /// Runs `salt '*' test.ping` until the watcher has printed that job's `new` event: the
    /// watcher subscribes a moment after it starts, and a job before that is not shown.
    pub fn wait_subscribed(&self, master: &Master) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let out = salt(master, &["*", "test.ping", "--out", "json", "--show-jid"]);
            let shown = text(&out.stdout);
            if let Some(jid) = shown.lines().find_map(|l| l.strip_prefix("jid: ")) {
                let tag = format!("salt/job/{jid}/new\t");
                std::thread::sleep(Duration::from_millis(300));
                if self.output().contains(&tag) {
                    return;
                }
            }
        }
        panic!("state.event never showed a job; it printed:\n{}", self.output());
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
