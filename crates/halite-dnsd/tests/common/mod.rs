//! Servers started by the tests (halite-dns, Knot), and queries sent to them as a client
//! would send them.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use domain::base::iana::{Class, Rtype};
use domain::base::{Message, MessageBuilder, Name};
use domain::rdata::AllRecordData;

/// A server process on a loopback port, killed when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Stops the server now (and waits for it to be gone).
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn log(&self) -> String {
        match std::fs::read(&self.log) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(e) => format!("(log {} unreadable: {e})", self.log.display()),
        }
    }

    /// Waits until the log holds `needle`.
    pub fn wait_log(&self, needle: &str, within: Duration) {
        let deadline = Instant::now() + within;
        while !self.log().contains(needle) {
            assert!(Instant::now() < deadline, "{needle:?} not logged within {within:?}:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// A port free on loopback for both UDP and TCP. Taken below the kernel's ephemeral
/// range (32768 and up): a port the kernel picked and this released could be handed to
/// another test's `bind(0)` (a silent forwarder, a probe) before the server binds it,
/// which made a server fail with "Address already in use". Each process walks its own
/// stretch of ports, so parallel tests (and test binaries) do not pick the same one.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let _ = NEXT.compare_exchange(u32::MAX, (std::process::id() * 97) % SPAN, Ordering::SeqCst, Ordering::SeqCst);
    loop {
        let port = (LOW + NEXT.fetch_add(1, Ordering::SeqCst) % SPAN) as u16;
        let udp = UdpSocket::bind(("127.0.0.1", port));
        if udp.is_ok() && std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

/// Waits until `addr` answers a query over UDP. The probes go from one socket, so a late
/// answer to an early one counts (a server whose forwarder is silent answers SERVFAIL after
/// its timeout).
fn wait_answering(addr: SocketAddr, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let probe = query("probe.invalid.", Rtype::A, None);
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let mut buf = [0u8; 512];
    loop {
        socket.send_to(&probe, addr).unwrap();
        if socket.recv(&mut buf).is_ok() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what} does not answer on {addr}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
    }
}

/// Starts halite-dns with `config` (YAML) written to `dir/dns.yaml`.
pub fn halite(dir: &Path, config: &str) -> Server {
    let port = free_port();
    let config = config.replace("PORT", &port.to_string());
    std::fs::write(dir.join("dns.yaml"), config).unwrap();
    let log = dir.join("halite-dns.log");
    let child = Command::new(env!("CARGO_BIN_EXE_halite-dns"))
        .arg("-c")
        .arg(dir.join("dns.yaml"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_answering(addr, "halite-dns", &log);
    Server { child, addr, log }
}

/// Starts Knot DNS (Debian's `knotd`) serving `zones` (apex, file) from `dir`, letting
/// 127.0.0.1 transfer them.
pub fn knot(dir: &Path, zones: &[(&str, &Path)]) -> Server {
    let mut body = String::new();
    for (apex, file) in zones {
        body += &format!(
            "  - domain: {apex}\n    file: {}\n    journal-content: none\n    zonefile-sync: -1\n    acl: local_transfer\n",
            file.display()
        );
    }
    knot_with(dir, free_port(), "acl:\n  - id: local_transfer\n    address: 127.0.0.1\n    action: transfer\n", &body)
}

/// Starts Knot on `port` with `extra` configuration sections (remotes, ACLs) and `zones`
/// (the items of its `zone:` list), its files under `dir/knot-PORT`.
pub fn knot_with(dir: &Path, port: u16, extra: &str, zones: &str) -> Server {
    let knotd = ["/usr/sbin/knotd", "/usr/bin/knotd"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("knotd is not installed: the differential tests need Debian's knot package (tests/run installs it)");
    let run = dir.join(format!("knot-{port}"));
    std::fs::create_dir_all(&run).unwrap();
    let conf = format!(
        "server:\n  rundir: {run}\n  listen: 127.0.0.1@{port}\ndatabase:\n  storage: {run}\nlog:\n  - target: stderr\n    any: info\n{extra}zone:\n{zones}",
        run = run.display()
    );
    std::fs::write(run.join("knot.conf"), conf).unwrap();
    let log = run.join("knot.log");
    let child = Command::new(knotd)
        .arg("-c")
        .arg(run.join("knot.conf"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_answering(addr, "knotd", &log);
    Server { child, addr, log }
}

/// Sends `query` over TCP and reads `count` messages back (a transfer), or as many as come
/// before the server stops sending.
pub fn tcp_messages(addr: SocketAddr, query: &[u8]) -> Vec<Vec<u8>> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    stream.write_all(&(query.len() as u16).to_be_bytes()).unwrap();
    stream.write_all(query).unwrap();
    let mut messages = Vec::new();
    while let Some(message) = read_framed(&mut stream) {
        // A transfer ends with the message whose last record is the second SOA.
        let done = seen(&message).rcode != "NOERROR" || ends_transfer(&message, messages.is_empty());
        messages.push(message);
        if done {
            break;
        }
    }
    messages
}

/// Whether `message` holds the closing SOA of a transfer (the first message's opening SOA
/// does not count).
fn ends_transfer(message: &[u8], first: bool) -> bool {
    let msg = Message::from_octets(message).unwrap();
    let soas = msg
        .answer()
        .unwrap()
        .into_records::<AllRecordData<_, _>>()
        .filter(|r| r.as_ref().is_ok_and(|r| r.rtype() == Rtype::SOA))
        .count();
    soas >= if first { 2 } else { 1 }
}

/// A query's bytes: `name` `rtype`, RD clear, with EDNS `(payload, version, DO)` if given.
pub fn query(name: &str, rtype: Rtype, edns: Option<(u16, u8, bool)>) -> Vec<u8> {
    let mut builder = MessageBuilder::new_vec();
    builder.header_mut().set_id(0x5a5a);
    let mut question = builder.question();
    question.push((Name::<Vec<u8>>::from_str(name).unwrap(), rtype, Class::IN)).unwrap();
    let mut additional = question.additional();
    if let Some((payload, version, dnssec_ok)) = edns {
        additional
            .opt(|opt| {
                opt.set_udp_payload_size(payload);
                opt.set_version(version);
                opt.set_dnssec_ok(dnssec_ok);
                Ok(())
            })
            .unwrap();
    }
    additional.finish()
}

/// Sends `query` over UDP and returns the reply, or None after `wait` without one.
pub fn udp_exchange(addr: SocketAddr, query: &[u8], wait: Duration) -> Option<Vec<u8>> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(wait)).unwrap();
    socket.send_to(query, addr).unwrap();
    let mut buf = vec![0u8; 65_535];
    let len = socket.recv(&mut buf).ok()?;
    buf.truncate(len);
    Some(buf)
}

/// Sends `query` over UDP, retrying a lost datagram twice.
pub fn udp(addr: SocketAddr, query: &[u8]) -> Vec<u8> {
    (0..3)
        .find_map(|_| udp_exchange(addr, query, Duration::from_secs(2)))
        .unwrap_or_else(|| panic!("no UDP reply from {addr}"))
}

/// Sends `query` over a new TCP connection and returns the reply.
pub fn tcp(addr: SocketAddr, query: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    stream.write_all(&(query.len() as u16).to_be_bytes()).unwrap();
    stream.write_all(query).unwrap();
    read_framed(&mut stream).expect("a TCP reply")
}

/// Reads one length-prefixed message from a TCP stream.
pub fn read_framed(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut len = [0u8; 2];
    stream.read_exact(&mut len).ok()?;
    let mut reply = vec![0u8; usize::from(u16::from_be_bytes(len))];
    stream.read_exact(&mut reply).ok()?;
    Some(reply)
}

/// A reply as the differential test compares it: rcode, flags, the question as sent back,
/// each section as a sorted set of records (owner lowercased), and the OPT's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub rcode: String,
    pub flags: String,
    pub question: Vec<String>,
    pub answer: Vec<String>,
    pub authority: Vec<String>,
    pub additional: Vec<String>,
    pub opt: Option<(u16, u8, bool)>,
}

pub fn seen(reply: &[u8]) -> Seen {
    let msg = Message::from_octets(reply).expect("a DNS message");
    let header = msg.header();
    let flags = [
        ("qr", header.qr()),
        ("aa", header.aa()),
        ("tc", header.tc()),
        ("rd", header.rd()),
        ("ra", header.ra()),
        ("ad", header.ad()),
        ("cd", header.cd()),
    ]
    .iter()
    .filter(|(_, set)| *set)
    .map(|(name, _)| *name)
    .collect::<Vec<_>>()
    .join(" ");
    let section = |records: domain::base::message::RecordSection<'_, &[u8]>| -> Vec<String> {
        let mut lines: Vec<String> = records
            .into_records::<AllRecordData<_, _>>()
            .map(|r| {
                let r = r.expect("a record that parses");
                // Names are compared without case (a server may compress a name in the data
                // against the question's spelling); character strings keep theirs.
                let data = r.data().to_string();
                let data =
                    if matches!(r.rtype(), Rtype::CNAME | Rtype::NS | Rtype::PTR | Rtype::MX | Rtype::SRV | Rtype::SOA)
                    {
                        data.to_ascii_lowercase()
                    } else {
                        data
                    };
                format!("{}. {} {} {data}", r.owner().to_string().to_ascii_lowercase(), r.ttl().as_secs(), r.rtype())
            })
            .filter(|line| !line.contains(" OPT "))
            .collect();
        lines.sort();
        lines
    };
    let answer = msg.answer().unwrap();
    let authority = answer.next_section().unwrap().unwrap();
    let additional = authority.next_section().unwrap().unwrap();
    Seen {
        rcode: msg.opt_rcode().to_string(),
        flags,
        question: msg
            .question()
            .map(|q| q.unwrap())
            .map(|q| format!("{}. {} {}", q.qname(), q.qclass(), q.qtype()))
            .collect(),
        answer: section(msg.answer().unwrap()),
        authority: section(authority),
        additional: section(additional),
        opt: msg.opt().map(|opt| (opt.udp_payload_size(), opt.version(), opt.dnssec_ok())),
    }
}
