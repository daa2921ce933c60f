//! The sockets against libzmq, the library every salt-minion runs: what a REQ or SUB socket
//! of libzmq does here is what a minion does.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use halite_zmq::{bind_publisher, bind_router, listen_addr, SocketOptions};
use tokio::task::spawn_blocking;

fn any_port() -> SocketAddr {
    listen_addr("127.0.0.1", 0).unwrap()
}

fn endpoint(addr: SocketAddr) -> String {
    format!("tcp://{addr}")
}

const WAIT: Duration = Duration::from_secs(10);

/// Heartbeats fast enough for a test: a PING after 200 ms of silence, the connection
/// closed 800 ms after an unanswered one.
fn quick_heartbeats(handshake_timeout: Duration) -> SocketOptions {
    SocketOptions {
        heartbeat_interval: Duration::from_millis(200),
        heartbeat_timeout: Duration::from_millis(800),
        handshake_timeout,
        ..SocketOptions::default()
    }
}

/// A hand-driven ZMTP peer of type `ours`, its greeting already sent.
fn raw_peer(
    addr: SocketAddr,
    ours: halite_zmtp::SocketType,
    read_timeout: Duration,
) -> (std::net::TcpStream, halite_zmtp::Connection) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(read_timeout)).unwrap();
    let mut conn = halite_zmtp::Connection::new(ours, b"", 1 << 20);
    s.write_all(&conn.take_output()).unwrap();
    (s, conn)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn libzmq_req_round_trip_and_a_dealer_speaking_otherwise_is_dropped() {
    let mut router = bind_router(any_port(), &SocketOptions::default()).unwrap();
    let ep = endpoint(router.local_addr);
    let ctx = zmq::Context::new();

    let client = {
        let (ctx, ep) = (ctx.clone(), ep.clone());
        spawn_blocking(move || {
            // A DEALER sending a bare frame is not a REQ peer: dropped, not forwarded.
            let dealer = ctx.socket(zmq::DEALER).unwrap();
            dealer.connect(&ep).unwrap();
            dealer.send("garbage", 0).unwrap();
            let req = ctx.socket(zmq::REQ).unwrap();
            req.connect(&ep).unwrap();
            req.set_rcvtimeo(10_000).unwrap();
            req.send(vec![9u8; 100_000], 0).unwrap();
            req.recv_bytes(0).unwrap()
        })
    };
    let got = tokio::time::timeout(WAIT, router.requests.recv()).await.unwrap().unwrap();
    assert_eq!(got.body, vec![9u8; 100_000]);
    router.replier.reply(got.peer, b"world").unwrap();
    assert_eq!(client.await.unwrap(), b"world");
    assert!(router.requests.try_recv().is_err(), "the dealer's frame must not be forwarded");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_closes_only_its_sender() {
    let opts = SocketOptions { max_message_size: 1024, ..SocketOptions::default() };
    let mut router = bind_router(any_port(), &opts).unwrap();
    let ep = endpoint(router.local_addr);
    let ctx = zmq::Context::new();
    spawn_blocking(move || {
        let big = ctx.socket(zmq::REQ).unwrap();
        // libzmq keeps resending the refused message; without linger 0 the context would
        // wait for it forever when the test ends.
        big.set_linger(0).unwrap();
        big.connect(&ep).unwrap();
        big.send(vec![0u8; 4096], 0).unwrap();
        let small = ctx.socket(zmq::REQ).unwrap();
        small.set_linger(0).unwrap();
        small.connect(&ep).unwrap();
        small.send("ok", 0).unwrap();
        // Keep both sockets open until the test is done with them.
        std::thread::sleep(Duration::from_secs(1));
    });
    let got = tokio::time::timeout(WAIT, router.requests.recv()).await.unwrap().unwrap();
    assert_eq!(got.body, b"ok");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_reach_libzmq_subscribers_by_prefix() {
    let publisher = bind_publisher(any_port(), &SocketOptions::default()).unwrap();
    let ep = endpoint(publisher.local_addr);
    let sender = publisher.sender();
    let ctx = zmq::Context::new();
    let received = spawn_blocking(move || {
        let all = ctx.socket(zmq::SUB).unwrap();
        all.set_subscribe(b"").unwrap();
        all.connect(&ep).unwrap();
        let some = ctx.socket(zmq::SUB).unwrap();
        some.set_subscribe(b"abc").unwrap();
        some.connect(&ep).unwrap();
        for s in [&all, &some] {
            s.set_rcvtimeo(100).unwrap();
        }
        // Slow joiner: publish until both subscriptions have arrived, bounded.
        let mut got_all = None;
        for _ in 0..100 {
            sender.publish(b"abcd".to_vec()).unwrap();
            if let Ok(m) = all.recv_bytes(0) {
                got_all = Some(m);
                break;
            }
        }
        let mut got_some = None;
        for _ in 0..100 {
            sender.publish(b"xyz".to_vec()).unwrap();
            sender.publish(b"abcd".to_vec()).unwrap();
            if let Ok(m) = some.recv_bytes(0) {
                got_some = Some(m);
                break;
            }
        }
        (got_all, got_some)
    })
    .await
    .unwrap();
    assert_eq!(received.0.as_deref(), Some(&b"abcd"[..]));
    assert_eq!(received.1.as_deref(), Some(&b"abcd"[..]), "a subscriber to abc gets abcd, never xyz");
    publisher.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_that_is_not_zmtp_is_disconnected() {
    let router = bind_router(any_port(), &SocketOptions::default()).unwrap();
    let addr = router.local_addr;
    let closed = spawn_blocking(move || {
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(WAIT)).unwrap();
        s.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut greeting = [0u8; 64];
        s.read_exact(&mut greeting).unwrap();
        let mut rest = Vec::new();
        s.read_to_end(&mut rest).is_ok()
    })
    .await
    .unwrap();
    assert!(closed, "the server must close the connection, not leave it hanging");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_peers_are_dropped_and_libzmq_peers_answer_heartbeats() {
    let mut router = bind_router(any_port(), &quick_heartbeats(Duration::from_millis(500))).unwrap();
    let addr = router.local_addr;
    let ep = endpoint(addr);
    let ctx = zmq::Context::new();
    let silent_closed = spawn_blocking(move || {
        // Completes the handshake as a 3.1 REQ, then never reads or answers a PING.
        let (mut s, mut conn) = raw_peer(addr, halite_zmtp::SocketType::Req, WAIT);
        let mut greeting = [0u8; 64];
        s.read_exact(&mut greeting).unwrap();
        conn.receive(&greeting);
        while conn.next_event().unwrap().is_some() {}
        s.write_all(&conn.take_output()).unwrap();
        let started = std::time::Instant::now();
        let mut sink = Vec::new();
        let _ = s.read_to_end(&mut sink);
        started.elapsed()
    });
    let idle_req = spawn_blocking(move || {
        let req = ctx.socket(zmq::REQ).unwrap();
        req.connect(&ep).unwrap();
        req.set_rcvtimeo(10_000).unwrap();
        // Idle well past the timeout: libzmq answers the PINGs, so it stays connected and
        // its request still reaches the same listener.
        std::thread::sleep(Duration::from_millis(2000));
        req.send("still here", 0).unwrap();
        req.recv_bytes(0).unwrap()
    });
    let got = tokio::time::timeout(WAIT, router.requests.recv()).await.unwrap().unwrap();
    assert_eq!(got.body, b"still here");
    router.replier.reply(got.peer, b"yes").unwrap();
    assert_eq!(idle_req.await.unwrap(), b"yes");
    assert!(silent_closed.await.unwrap() < WAIT, "a peer that never answers heartbeats must be closed");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiet_peer_that_answers_heartbeats_stays_connected() {
    // A subscriber never speaks unless pinged; however long the handshake allowance, only
    // an unanswered PING may close it.
    let publisher = bind_publisher(any_port(), &quick_heartbeats(Duration::from_millis(1000))).unwrap();
    let addr = publisher.local_addr;
    let sender = publisher.sender();
    let got = spawn_blocking(move || {
        let (mut s, mut conn) = raw_peer(addr, halite_zmtp::SocketType::Sub, Duration::from_millis(50));
        let started = std::time::Instant::now();
        let mut subscribed = false;
        let mut buf = [0u8; 4096];
        while started.elapsed() < Duration::from_secs(10) {
            match s.read(&mut buf) {
                Ok(0) => return Err(format!("closed after {:?}", started.elapsed())),
                Ok(n) => conn.receive(&buf[..n]),
                Err(_) => {}
            }
            while let Some(event) = conn.next_event().unwrap() {
                if let halite_zmtp::Event::Message(parts) = event {
                    return Ok(parts);
                }
                if !subscribed {
                    conn.subscribe(b"");
                    subscribed = true;
                }
            }
            s.write_all(&conn.take_output()).unwrap();
            // Publish only after several heartbeat periods of silence from this side.
            if started.elapsed() > Duration::from_millis(2500) {
                sender.publish(b"late".to_vec()).unwrap();
            }
        }
        Err("no publish".into())
    })
    .await
    .unwrap();
    assert_eq!(got.unwrap(), vec![b"late".to_vec()]);
    publisher.shutdown().await;
}

/// Reads until the handshake with the server is complete, answering it; `Err` if the
/// server closed the connection first.
fn complete_handshake(s: &mut std::net::TcpStream, conn: &mut halite_zmtp::Connection) -> std::io::Result<()> {
    let mut buf = [0u8; 4096];
    loop {
        while let Some(event) = conn.next_event().unwrap() {
            if let halite_zmtp::Event::Open { .. } = event {
                s.write_all(&conn.take_output())?;
                return Ok(());
            }
        }
        s.write_all(&conn.take_output())?;
        match s.read(&mut buf)? {
            0 => return Err(std::io::ErrorKind::UnexpectedEof.into()),
            n => conn.receive(&buf[..n]),
        }
    }
}

/// Whether the server has closed `s`: reads (and discards) until the end of the stream or
/// a reset. `false` if the read timed out with the connection still open.
fn closed_by_server(s: &mut std::net::TcpStream) -> bool {
    let mut buf = [0u8; 64 << 10];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return true,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_refused_until_others_close() {
    let opts = SocketOptions { max_connections: 2, ..SocketOptions::default() };
    let mut router = bind_router(any_port(), &opts).unwrap();
    let addr = router.local_addr;
    let ep = endpoint(addr);
    let (held, refused_at_once) = spawn_blocking(move || {
        // Two connections fill the socket: each is greeted.
        let held: Vec<_> = (0..2)
            .map(|_| {
                let (mut s, _) = raw_peer(addr, halite_zmtp::SocketType::Req, WAIT);
                let mut greeting = [0u8; 64];
                s.read_exact(&mut greeting).unwrap();
                s
            })
            .collect();
        // A third is closed without a byte.
        let (mut third, _) = raw_peer(addr, halite_zmtp::SocketType::Req, WAIT);
        let mut rest = Vec::new();
        let refused = match third.read_to_end(&mut rest) {
            Ok(_) => rest.is_empty(),
            Err(e) => !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut),
        };
        (held, refused)
    })
    .await
    .unwrap();
    assert!(refused_at_once, "a connection past the cap must be closed at once");

    // A minion's REQ socket is refused as well while the two are held, and keeps
    // reconnecting; once one of them closes, its request goes through.
    let ctx = zmq::Context::new();
    let req = spawn_blocking(move || {
        let req = ctx.socket(zmq::REQ).unwrap();
        req.set_linger(0).unwrap();
        req.set_rcvtimeo(10_000).unwrap();
        req.connect(&ep).unwrap();
        req.send("after the cap", 0).unwrap();
        req.recv_bytes(0).unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(router.requests.try_recv().is_err(), "nothing may get through while the socket is full");
    drop(held);
    let got = tokio::time::timeout(WAIT, router.requests.recv()).await.unwrap().unwrap();
    assert_eq!(got.body, b"after the cap");
    router.replier.reply(got.peer, b"admitted").unwrap();
    assert_eq!(req.await.unwrap(), b"admitted");
    router.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_past_the_subscription_limits_is_closed() {
    let publisher = bind_publisher(any_port(), &SocketOptions::default()).unwrap();
    let addr = publisher.local_addr;
    let sender = publisher.sender();
    let outcome = spawn_blocking(move || {
        // 10,000 subscriptions from one peer.
        let (mut many, mut conn) = raw_peer(addr, halite_zmtp::SocketType::Sub, WAIT);
        complete_handshake(&mut many, &mut conn).unwrap();
        for i in 0..10_000 {
            conn.subscribe(format!("topic-{i}").as_bytes());
        }
        // The server may close while this is still being written.
        let _ = many.write_all(&conn.take_output());
        let many_closed = closed_by_server(&mut many);

        // One subscription of 100 KiB.
        let (mut big, mut conn) = raw_peer(addr, halite_zmtp::SocketType::Sub, WAIT);
        complete_handshake(&mut big, &mut conn).unwrap();
        conn.subscribe(&vec![b'x'; 100 << 10]);
        let _ = big.write_all(&conn.take_output());
        let big_closed = closed_by_server(&mut big);

        // A subscriber as a minion is (a few topics) is served.
        let (mut minion, mut conn) = raw_peer(addr, halite_zmtp::SocketType::Sub, Duration::from_millis(100));
        complete_handshake(&mut minion, &mut conn).unwrap();
        for topic in [&b"broadcast"[..], b"minion-topic", b""] {
            conn.subscribe(topic);
        }
        minion.write_all(&conn.take_output()).unwrap();
        let mut buf = [0u8; 4096];
        let mut got = None;
        for _ in 0..100 {
            sender.publish(b"job".to_vec()).unwrap();
            match minion.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => conn.receive(&buf[..n]),
                Err(_) => continue,
            }
            if let Some(halite_zmtp::Event::Message(parts)) = conn.next_event().unwrap() {
                got = Some(parts);
                break;
            }
        }
        (many_closed, big_closed, got)
    })
    .await
    .unwrap();
    assert!(outcome.0, "10,000 subscriptions must close the subscriber");
    assert!(outcome.1, "a 100 KiB subscription must close the subscriber");
    assert_eq!(outcome.2, Some(vec![b"job".to_vec()]));
    publisher.shutdown().await;
}

/// A libzmq REQ client sending `body` and waiting up to 20 s for its reply.
fn request(ep: String, body: Vec<u8>) -> tokio::task::JoinHandle<Vec<u8>> {
    spawn_blocking(move || {
        let ctx = zmq::Context::new();
        let req = ctx.socket(zmq::REQ).unwrap();
        req.set_linger(0).unwrap();
        req.set_rcvtimeo(20_000).unwrap();
        req.connect(&ep).unwrap();
        req.send(body, 0).unwrap();
        req.recv_bytes(0).expect("a reply, however late")
    })
}

/// Past the request queue's count or bytes, requests wait in their connections instead of
/// being dropped: each is taken in turn, and every client gets its own reply.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_past_the_queue_wait_in_their_connections_and_none_is_dropped() {
    // Room for 3 requests, or for two of the 4 KiB ones.
    let opts = SocketOptions { request_queue: 3, request_queue_bytes: 10 << 10, ..SocketOptions::default() };
    let mut router = bind_router(any_port(), &opts).unwrap();
    let ep = endpoint(router.local_addr);
    let small: Vec<_> = (0..12u8).map(|i| request(ep.clone(), vec![i])).collect();
    let large: Vec<_> = (0..6u8).map(|i| request(ep.clone(), vec![100 + i; 4 << 10])).collect();
    // Nothing is taken for a while: what does not fit waits, connected.
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Whatever has been taken and not yet answered still counts against the bytes.
    let mut answered = 0;
    while answered < 18 {
        let mut held = vec![tokio::time::timeout(WAIT, router.requests.recv()).await.expect("a request").unwrap()];
        tokio::time::sleep(Duration::from_millis(20)).await;
        while let Ok(request) = router.requests.try_recv() {
            held.push(request);
        }
        let bytes: usize = held.iter().map(|r| r.body.len()).sum();
        assert!(bytes <= 10 << 10, "{bytes} bytes of requests held at once, over the 10 KiB");
        for r in held {
            router.replier.reply(r.peer, &r.body).unwrap();
            answered += 1;
        }
    }
    for (i, client) in small.into_iter().enumerate() {
        assert_eq!(client.await.unwrap(), vec![i as u8]);
    }
    for (i, client) in large.into_iter().enumerate() {
        assert_eq!(client.await.unwrap(), vec![100 + i as u8; 4 << 10]);
    }
    router.shutdown().await;
}

/// A peer that closes its connection while its request waits for room (its REQ socket
/// timed out) has the request dropped before anyone takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_whose_peer_leaves_while_it_waits_is_never_taken() {
    let opts = SocketOptions { request_queue: 1, ..SocketOptions::default() };
    let mut router = bind_router(any_port(), &opts).unwrap();
    let ep = endpoint(router.local_addr);
    let first = request(ep.clone(), b"first".to_vec());
    let deadline = std::time::Instant::now() + WAIT;
    while router.requests.is_empty() {
        assert!(std::time::Instant::now() < deadline, "the first request never arrived");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (mut s, mut conn) = raw_peer(router.local_addr, halite_zmtp::SocketType::Req, WAIT);
    complete_handshake(&mut s, &mut conn).unwrap();
    conn.send(&[b"", b"gone"]);
    s.write_all(&conn.take_output()).unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    drop(s);
    let last = request(ep.clone(), b"last".to_vec());
    tokio::time::sleep(Duration::from_millis(300)).await;

    let taken = router.requests.recv().await.unwrap();
    assert_eq!(taken.body, b"first");
    router.replier.reply(taken.peer, b"1").unwrap();
    let taken = tokio::time::timeout(WAIT, router.requests.recv()).await.expect("the last request").unwrap();
    assert_eq!(taken.body, b"last", "the request of the peer that left was taken");
    router.replier.reply(taken.peer, b"2").unwrap();
    assert_eq!(first.await.unwrap(), b"1");
    assert_eq!(last.await.unwrap(), b"2");
    router.shutdown().await;
}
