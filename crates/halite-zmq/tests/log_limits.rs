//! What a peer can make the sockets log: a flood of bad input costs a few lines, not one per
//! message, and peer bytes reach a line only short and escaped. A test binary of its own: it
//! installs the process's tracing subscriber, and the rate limiter is process-wide.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use halite_zmq::{bind_publisher, bind_router, listen_addr, SocketOptions};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

const WAIT: Duration = Duration::from_secs(10);

/// Warnings logged, each as its fields written out.
static WARNINGS: Mutex<Vec<Vec<(String, String)>>> = Mutex::new(Vec::new());

struct Capture;

struct Fields(Vec<(String, String)>);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        self.0.push((field.name().to_owned(), format!("{value:?}")));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.push((field.name().to_owned(), value.to_owned()));
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        if *event.metadata().level() == Level::WARN {
            let mut fields = Fields(Vec::new());
            event.record(&mut fields);
            WARNINGS.lock().unwrap().push(fields.0);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// The limiter is the process's: one test at a time, or one's expiring of budgets takes
/// another's counts.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn capture_warnings() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| tracing::subscriber::set_global_default(Capture).unwrap());
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn warnings_of(kind: &str) -> Vec<Vec<(String, String)>> {
    let all = WARNINGS.lock().unwrap();
    all.iter().filter(|fields| fields.iter().any(|(name, value)| name == "kind" && value == kind)).cloned().collect()
}

/// A hand-driven REQ peer through the handshake.
fn raw_req(addr: SocketAddr) -> (std::net::TcpStream, halite_zmtp::Connection) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(WAIT)).unwrap();
    let mut conn = halite_zmtp::Connection::new(halite_zmtp::SocketType::Req, b"", 1 << 20);
    let mut buf = [0u8; 4096];
    loop {
        s.write_all(&conn.take_output()).unwrap();
        let n = s.read(&mut buf).unwrap();
        assert!(n > 0, "closed during the handshake");
        conn.receive(&buf[..n]);
        if let Some(halite_zmtp::Event::Open { .. }) = conn.next_event().unwrap() {
            s.write_all(&conn.take_output()).unwrap();
            return (s, conn);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_bad_requests_costs_a_few_lines() {
    let _alone = ONE_AT_A_TIME.lock().await;
    capture_warnings();
    let opts = SocketOptions { max_connections: 3, ..SocketOptions::default() };
    let mut router = bind_router(listen_addr("127.0.0.1", 0).unwrap(), &opts).unwrap();
    let addr = router.local_addr;

    // 1,000 requests that are not ['', body], their first frame a log-injection attempt,
    // then a good one: once it arrives, every bad one has been read and refused.
    let (mut s, mut conn) = raw_req(addr);
    for _ in 0..1000 {
        conn.send(&[b"\nFAKE: master compromised\x1b[2J".as_slice(), b"body"]);
    }
    conn.send(&[b"", b"good"]);
    s.write_all(&conn.take_output()).unwrap();
    let got = tokio::time::timeout(WAIT, router.requests.recv()).await.unwrap().unwrap();
    assert_eq!(got.body, b"good");

    let lines = warnings_of("not REQ");
    assert!(!lines.is_empty(), "a bad request is worth a warning");
    assert!(
        lines.len() <= 2 * halite_ratelog::LINES_PER_WINDOW as usize,
        "{} lines for 1,000 bad requests",
        lines.len()
    );
    for fields in &lines {
        for (name, value) in fields {
            assert!(!value.contains('\n') && !value.contains('\x1b'), "{name} = {value:?} carries raw peer bytes");
        }
    }
    // The rest were counted, for the summary line the master's tick writes.
    let summaries = halite_ratelog::PEERS.expired(Instant::now() + halite_ratelog::WINDOW);
    let suppressed: u64 = summaries.iter().filter(|s| s.kind == "not REQ").map(|s| s.count).sum();
    assert_eq!(suppressed as usize + lines.len(), 1000);

    // A connection flood past the cap: one connection is refused many times over, and
    // says so a few times.
    let held: Vec<_> = (0..2).map(|_| raw_req(addr).0).collect();
    for _ in 0..200 {
        let mut refused = match std::net::TcpStream::connect(addr) {
            Ok(s) => s,
            // The reset can reach the client before its connect returns (seen under load in
            // CI): closed without a byte just the same.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => continue,
            Err(e) => panic!("connect: {e}"),
        };
        refused.set_read_timeout(Some(WAIT)).unwrap();
        let mut rest = Vec::new();
        let _ = refused.read_to_end(&mut rest);
        assert!(rest.is_empty(), "a connection past the cap is closed without a byte");
    }
    let lines = warnings_of("connection cap");
    assert!(!lines.is_empty() && lines.len() <= 2 * halite_ratelog::LINES_PER_WINDOW as usize, "{} lines", lines.len());
    drop(held);
    drop(s);
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_past_the_inflight_budget_is_named_in_a_warning() {
    let _alone = ONE_AT_A_TIME.lock().await;
    capture_warnings();
    let opts = SocketOptions { max_inflight_bytes: 64 << 10, ..SocketOptions::default() };
    let router = bind_router(listen_addr("127.0.0.1", 0).unwrap(), &opts).unwrap();
    let addr = router.local_addr;
    let closed = tokio::task::spawn_blocking(move || {
        // A request announcing 1 MiB, within the message limit, past the budget.
        let (mut s, _) = raw_req(addr);
        let mut start = vec![0x01, 0x00, 0x02];
        start.extend_from_slice(&(1u64 << 20).to_be_bytes());
        s.write_all(&start).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).is_ok_and(|_| rest.is_empty())
    })
    .await
    .unwrap();
    assert!(closed, "the connection must be closed");
    let deadline = Instant::now() + WAIT;
    while warnings_of("inflight budget").is_empty() {
        assert!(Instant::now() < deadline, "no warning of kind 'inflight budget'");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let lines = warnings_of("inflight budget");
    assert_eq!(field(&lines[0], "peer"), Some("127.0.0.1"));
    assert!(field(&lines[0], "reason").is_some_and(|r| r.contains("65536-byte in-flight budget")), "{lines:?}");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_publisher_writes_its_own_summaries_of_suppressed_warnings() {
    let _alone = ONE_AT_A_TIME.lock().await;
    capture_warnings();
    // Nothing else in this process flushes the limiter (there is no master's tick): a
    // summary can only come from the publisher's own timer.
    let publisher = bind_publisher(listen_addr("127.0.0.1", 0).unwrap(), &SocketOptions::default()).unwrap();
    let addr = publisher.local_addr;
    const PEERS: usize = 8;
    let refused = tokio::task::spawn_blocking(move || {
        (0..PEERS)
            .filter(|_| {
                // Not ZMTP: a warning of kind "protocol" each, past the first few suppressed.
                let mut s = std::net::TcpStream::connect(addr).unwrap();
                s.set_read_timeout(Some(WAIT)).unwrap();
                s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
                let mut rest = Vec::new();
                s.read_to_end(&mut rest).is_ok()
            })
            .count()
    })
    .await
    .unwrap();
    assert_eq!(refused, PEERS);
    let logged = warnings_of("protocol").len();
    let suppressed = PEERS - logged;
    assert!(suppressed > 0, "{logged} lines for {PEERS} bad peers: nothing was suppressed");

    // The summary comes once the window has ended, within a second.
    let deadline = Instant::now() + halite_ratelog::WINDOW + Duration::from_secs(5);
    let summary = loop {
        let found = warnings_of("protocol")
            .into_iter()
            .find(|fields| field(fields, "message") == Some("similar warnings suppressed"));
        if let Some(found) = found {
            break found;
        }
        assert!(Instant::now() < deadline, "no summary of the suppressed warnings");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(field(&summary, "peer"), Some("127.0.0.1"));
    assert_eq!(field(&summary, "suppressed"), Some(suppressed.to_string().as_str()));
    publisher.shutdown().await;
}
