use super::*;

const LIMIT: u64 = 1 << 20;

/// Moves bytes both ways between two connections until neither has anything to say,
/// feeding them `chunk` bytes at a time; returns what each side reported.
fn converse(a: &mut Connection, b: &mut Connection, chunk: usize) -> (Vec<Event>, Vec<Event>) {
    let (mut ea, mut eb) = (Vec::new(), Vec::new());
    for _ in 0..16 {
        let (out_a, out_b) = (a.take_output(), b.take_output());
        if out_a.is_empty() && out_b.is_empty() {
            break;
        }
        for piece in out_a.chunks(chunk) {
            b.receive(piece);
            while let Some(e) = b.next_event().unwrap() {
                eb.push(e);
            }
        }
        for piece in out_b.chunks(chunk) {
            a.receive(piece);
            while let Some(e) = a.next_event().unwrap() {
                ea.push(e);
            }
        }
    }
    (ea, eb)
}

#[test]
fn req_and_router_handshake_and_exchange_in_any_chunking() {
    for chunk in [1, 7, 64, 4096] {
        let mut client = Connection::new(SocketType::Req, b"minion-1", LIMIT);
        let mut server = Connection::new(SocketType::Router, b"", LIMIT);
        let (ec, es) = converse(&mut client, &mut server, chunk);
        assert_eq!(ec, vec![Event::Open { socket_type: SocketType::Router, identity: vec![], minor_version: 1 }]);
        assert_eq!(
            es,
            vec![Event::Open { socket_type: SocketType::Req, identity: b"minion-1".to_vec(), minor_version: 1 }]
        );

        let long = vec![7u8; 300];
        client.send(&[b"", &long]);
        let (_, es) = converse(&mut client, &mut server, chunk);
        assert_eq!(es, vec![Event::Message(vec![vec![], long.clone()])]);
        server.send(&[b"", b"reply"]);
        let (ec, _) = converse(&mut client, &mut server, chunk);
        assert_eq!(ec, vec![Event::Message(vec![vec![], b"reply".to_vec()])]);
    }
}

#[test]
fn subscriptions_arrive_in_both_forms() {
    // A 3.1 peer subscribes with a command; a 3.0 peer (faked by patching its greeting)
    // with a message whose first byte is 1.
    let mut sub = Connection::new(SocketType::Sub, b"", LIMIT);
    let mut publisher = Connection::new(SocketType::Pub, b"", LIMIT);
    converse(&mut sub, &mut publisher, 64);
    sub.subscribe(b"");
    sub.subscribe(b"topic");
    let (_, ep) = converse(&mut sub, &mut publisher, 64);
    assert_eq!(ep, vec![Event::Subscribe(vec![]), Event::Subscribe(b"topic".to_vec())]);

    let mut publisher = Connection::new(SocketType::Pub, b"", LIMIT);
    let mut greeting = greeting().to_vec();
    greeting[11] = 0;
    publisher.receive(&greeting);
    let mut bytes = Vec::new();
    encode_ready(SocketType::Sub, b"", &mut bytes);
    encode_message(&[b"\x01"], &mut bytes);
    encode_message(&[b"\x00"], &mut bytes);
    encode_message(&[b"\x05not a subscription"], &mut bytes);
    publisher.receive(&bytes);
    let mut events = Vec::new();
    while let Some(e) = publisher.next_event().unwrap() {
        events.push(e);
    }
    assert_eq!(
        events,
        vec![
            Event::Open { socket_type: SocketType::Sub, identity: vec![], minor_version: 0 },
            Event::Subscribe(vec![]),
            Event::Cancel(vec![]),
        ]
    );
    assert!(!publisher.peer_has_heartbeats());
}

#[test]
fn ping_is_answered_with_its_context() {
    let mut client = Connection::new(SocketType::Dealer, b"", LIMIT);
    let mut server = Connection::new(SocketType::Router, b"", LIMIT);
    converse(&mut client, &mut server, 64);
    assert!(server.peer_has_heartbeats());
    server.ping(300);
    let (ec, es) = converse(&mut client, &mut server, 64);
    assert!(ec.is_empty(), "the PING is handled inside the connection: {ec:?}");
    assert_eq!(es, vec![Event::Pong]);
}

#[test]
fn mismatched_socket_types_are_refused() {
    let mut client = Connection::new(SocketType::Sub, b"", LIMIT);
    let mut server = Connection::new(SocketType::Router, b"", LIMIT);
    client.receive(&greeting());
    assert_eq!(client.next_event(), Ok(None));
    server.receive(&client.take_output());
    let err = server.next_event().unwrap_err();
    assert_eq!(err, ZmtpError::Incompatible { ours: "ROUTER", theirs: "SUB".into() });
}

#[test]
fn what_is_not_zmtp3_null_is_refused_early() {
    let mut c = Connection::new(SocketType::Router, b"", LIMIT);
    c.receive(b"GET / HTTP/1.1\r\n");
    assert_eq!(c.next_event(), Err(ZmtpError::NotZmtp));

    // ZMTP 2.0 sends signature and revision 1, then waits: refused on those 11 bytes.
    let mut c = Connection::new(SocketType::Router, b"", LIMIT);
    c.receive(&[0xff, 0, 0, 0, 0, 0, 0, 0, 1, 0x7f, 1]);
    assert_eq!(c.next_event(), Err(ZmtpError::OldVersion(1)));

    let mut c = Connection::new(SocketType::Router, b"", LIMIT);
    let mut g = greeting();
    g[12..17].copy_from_slice(b"CURVE");
    c.receive(&g);
    assert_eq!(c.next_event(), Err(ZmtpError::Mechanism("CURVE".into())));
}

#[test]
fn a_message_before_ready_is_a_protocol_error() {
    let mut c = Connection::new(SocketType::Router, b"", LIMIT);
    c.receive(&greeting());
    c.receive(&message(&[b"", b"early"]));
    assert_eq!(c.next_event(), Err(ZmtpError::BeforeReady("a message")));
}

#[test]
fn oversized_messages_are_refused_from_the_header() {
    let mut client = Connection::new(SocketType::Req, b"", 1 << 30);
    let mut server = Connection::new(SocketType::Router, b"", 1000);
    converse(&mut client, &mut server, 4096);
    // Two parts of 600 bytes: each fits, the message does not. Only the headers and the
    // first part are delivered, and the limit trips on the second header.
    let out = message(&[&[1u8; 600], &[2u8; 600]]);
    server.receive(&out[..9 + 600 + 9]);
    assert_eq!(server.next_event(), Err(ZmtpError::TooLarge { size: 1200, limit: 1000 }));
}

#[test]
fn a_peer_error_is_reported_with_its_reason() {
    let mut c = Connection::new(SocketType::Router, b"", LIMIT);
    c.receive(&greeting());
    let mut peer = Connection::new(SocketType::Req, b"", LIMIT);
    peer.take_output();
    peer.error("go away");
    c.receive(&peer.take_output());
    assert_eq!(c.next_event(), Err(ZmtpError::PeerError("go away".into())));
}

#[test]
fn an_idle_connection_keeps_no_buffer() {
    let mut d = FrameDecoder::new(LIMIT);
    d.push(&greeting());
    d.push(&message(&[&[0u8; 5000]]));
    assert!(matches!(d.next_frame().unwrap(), Some(Frame::Greeting(_))));
    assert!(matches!(d.next_frame().unwrap(), Some(Frame::Message(_))));
    assert_eq!(d.next_frame().unwrap(), None);
    assert_eq!(d.buffered_capacity(), 0);
}
