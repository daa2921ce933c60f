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
    // first part are delivered, and the limit trips on the second header (each frame is
    // charged FRAME_COST on top of its body).
    let out = message(&[&[1u8; 600], &[2u8; 600]]);
    server.receive(&out[..9 + 600 + 9]);
    assert_eq!(server.next_event(), Err(ZmtpError::TooLarge { size: 1200 + 2 * FRAME_COST, limit: 1000 }));
}

/// A ROUTER that has completed its handshake with a REQ peer speaking ZMTP 3.1.
fn open_router(limits: Limits) -> Connection {
    let mut server = Connection::with_limits(SocketType::Router, b"", limits);
    let mut peer = greeting().to_vec();
    encode_ready(SocketType::Req, b"minion", &mut peer);
    server.receive(&peer);
    assert!(matches!(server.next_event(), Ok(Some(Event::Open { .. }))));
    server.take_output();
    server
}

/// Feeds `bytes` `chunk` at a time until the connection reports an error.
fn feed_until_error(conn: &mut Connection, bytes: &[u8], chunk: usize) -> Option<ZmtpError> {
    for piece in bytes.chunks(chunk) {
        conn.receive(piece);
        loop {
            match conn.next_event() {
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(e) => return Some(e),
            }
        }
    }
    None
}

#[test]
fn endless_empty_frames_are_refused_at_the_frame_limit() {
    let limits = Limits::new(64 << 20);
    let mut server = open_router(limits);
    // 64 empty frames with MORE set: held, charged FRAME_COST each though their bodies are
    // empty.
    let empty_more = [FLAG_MORE, 0];
    server.receive(&empty_more.repeat(limits.max_frames));
    assert_eq!(server.next_event(), Ok(None));
    assert_eq!(server.decoder.message_frames(), limits.max_frames);
    assert_eq!(server.decoder.message_cost(), limits.max_frames as u64 * FRAME_COST);
    // The 65th is refused on its header.
    server.receive(&empty_more);
    assert_eq!(server.next_event(), Err(ZmtpError::TooManyFrames { limit: 64 }));

    // A megabyte of them (the attack sent 64 MB): refused within the first 130 bytes, with
    // no more held than the chunk read and 64 frames' charge.
    let mut server = open_router(limits);
    let flood = empty_more.repeat(1 << 19);
    let err = feed_until_error(&mut server, &flood, 64 << 10);
    assert_eq!(err, Some(ZmtpError::TooManyFrames { limit: 64 }));
    assert_eq!(server.decoder.message_frames(), 64);
    assert!(server.held_bytes() <= (64 << 10) + 64 * FRAME_COST, "{}", server.held_bytes());
    assert!(err.unwrap().to_string().contains("64 frames"));
}

#[test]
fn the_frame_cost_bounds_a_message_even_without_a_frame_limit() {
    let limits = Limits { max_frames: usize::MAX, ..Limits::new(1 << 20) };
    let mut server = open_router(limits);
    let err = feed_until_error(&mut server, &[FLAG_MORE, 0].repeat(1 << 20), 4096);
    let frames = (limits.max_message / FRAME_COST) as usize;
    assert_eq!(err, Some(ZmtpError::TooLarge { size: (frames as u64 + 1) * FRAME_COST, limit: 1 << 20 }));
    assert_eq!(server.decoder.message_frames(), frames);
    assert!(server.decoder.message_cost() <= limits.max_message);
}

#[test]
fn a_message_before_ready_is_refused_on_its_header() {
    // A long frame claiming 512 KiB, under the message limit: refused from its 9-byte
    // header, nothing reserved for its body.
    let mut c = Connection::new(SocketType::Router, b"", LIMIT);
    c.receive(&greeting());
    let mut header = vec![FLAG_LONG];
    header.extend_from_slice(&(512u64 << 10).to_be_bytes());
    c.receive(&header);
    assert_eq!(c.next_event(), Err(ZmtpError::BeforeReady("a message")));
    assert!(c.held_bytes() < 4096, "{}", c.held_bytes());
}

#[test]
fn commands_are_bounded_on_their_header() {
    let mut server = open_router(Limits::new(64 << 20));
    let mut header = vec![FLAG_COMMAND | FLAG_LONG];
    header.extend_from_slice(&(1u64 << 20).to_be_bytes());
    server.receive(&header);
    assert_eq!(server.next_event(), Err(ZmtpError::CommandTooLarge { size: 1 << 20, limit: 64 << 10 }));
    assert!(server.held_bytes() < 4096, "{}", server.held_bytes());

    // Never over the message limit either, and before READY as after.
    let mut c = Connection::new(SocketType::Router, b"", 1000);
    let mut bytes = greeting().to_vec();
    encode_command("READY", &[0u8; 2000], &mut bytes);
    c.receive(&bytes);
    assert_eq!(c.next_event(), Err(ZmtpError::CommandTooLarge { size: 2006, limit: 1000 }));
}

#[test]
fn ready_with_too_many_properties_is_refused() {
    let props = |n: usize| {
        let mut data = vec![11];
        data.extend_from_slice(b"Socket-Type");
        data.extend_from_slice(&3u32.to_be_bytes());
        data.extend_from_slice(b"REQ");
        for _ in 1..n {
            data.extend_from_slice(&[1, b'X', 0, 0, 0, 0]);
        }
        data
    };
    for (n, ok) in [(MAX_PROPERTIES, true), (MAX_PROPERTIES + 1, false)] {
        let mut c = Connection::new(SocketType::Router, b"", LIMIT);
        let mut bytes = greeting().to_vec();
        encode_command("READY", &props(n), &mut bytes);
        c.receive(&bytes);
        let got = c.next_event();
        if ok {
            assert!(matches!(got, Ok(Some(Event::Open { .. }))), "{got:?}");
        } else {
            assert_eq!(got, Err(ZmtpError::TooManyProperties { limit: MAX_PROPERTIES }));
        }
    }
}

#[test]
fn what_a_subscriber_sends_is_bounded_like_a_command() {
    // Its messages are ZMTP 3.0 subscriptions: a 100 KiB one is refused on its header, in
    // either form, while the message limit would have let 64 MiB through.
    let limits = Limits::new(64 << 20);
    for minor in [0, 1] {
        let mut publisher = Connection::with_limits(SocketType::Pub, b"", limits);
        let mut bytes = greeting().to_vec();
        bytes[11] = minor;
        encode_ready(SocketType::Sub, b"", &mut bytes);
        encode_message(&[b"\x01topic"], &mut bytes);
        publisher.receive(&bytes);
        assert!(matches!(publisher.next_event(), Ok(Some(Event::Open { .. }))));
        assert_eq!(publisher.next_event(), Ok(Some(Event::Subscribe(b"topic".to_vec()))));
        let mut header = vec![if minor == 0 { FLAG_LONG } else { FLAG_LONG | FLAG_COMMAND }];
        header.extend_from_slice(&(100u64 << 10).to_be_bytes());
        publisher.receive(&header);
        let limit = limits.max_command;
        let expected = if minor == 0 {
            ZmtpError::TooLarge { size: (100 << 10) + FRAME_COST, limit: limit + FRAME_COST }
        } else {
            ZmtpError::CommandTooLarge { size: 100 << 10, limit }
        };
        assert_eq!(publisher.next_event(), Err(expected));
        assert!(publisher.held_bytes() < 4096, "{}", publisher.held_bytes());
    }
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
    assert_eq!(d.message_cost(), 0);
}

#[test]
fn a_message_handed_on_leaves_nothing_held_once_its_buffer_is_released() {
    let mut server = open_router(Limits::new(LIMIT));
    let mut client = Connection::new(SocketType::Req, b"", LIMIT);
    client.take_output();
    let body = vec![3u8; 200_000];
    client.send(&[b"", &body]);
    let mut wire = client.take_output();
    // A second message's first bytes arrive behind the first.
    client.send(&[b"", b"next"]);
    let next = client.take_output();
    wire.extend_from_slice(&next[..3]);
    server.receive(&wire);
    assert_eq!(server.next_event().unwrap(), Some(Event::Message(vec![vec![], body])));
    assert!(server.held_bytes() >= 200_000, "the buffer that brought it is still held");
    server.release_consumed();
    assert!(server.held_bytes() < 64, "{} bytes still held", server.held_bytes());
    // What was behind it is kept: the next message completes.
    server.receive(&next[3..]);
    assert_eq!(server.next_event().unwrap(), Some(Event::Message(vec![vec![], b"next".to_vec()])));
}
