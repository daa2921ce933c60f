//! An auth storm that feeds itself: after a rotation every minion signs in at once, and one
//! that waited past its `auth_timeout` closes its connection and asks again on a new one
//! (3007's zeromq client). The master must not spend a private-key operation on the sign-in
//! nobody waits for any more (Salt issue #64035); a minion still waiting is answered.

mod common;

use std::time::Duration;

use common::{FakeMinion, Master};

#[test]
fn sign_ins_whose_askers_hung_up_are_skipped_and_the_waiting_are_answered() {
    let master = Master::start(&["auto_accept: True", "worker_threads: 1"]);
    let minion = FakeMinion::new("storm", 2048);
    let body = minion.auth_body(3);

    // Many sign-ins queued behind one worker, each asker hanging up as soon as its request
    // is out (linger lets it leave before the close).
    let ctx = zmq::Context::new();
    let askers: Vec<zmq::Socket> = (0..300)
        .map(|_| {
            let sock = ctx.socket(zmq::REQ).expect("req socket");
            sock.set_linger(2000).expect("linger");
            sock.connect(&master.ret_endpoint()).expect("connect");
            sock.send(&body[..], 0).expect("send");
            sock
        })
        .collect();
    drop(askers);
    drop(ctx);

    // The minion's own sign-in waits behind the 300 (in the queues, or in its connection
    // once they are full); if that takes longer than its `auth_timeout` it asks again on a
    // new connection, as a real minion does.
    let answer = minion.authenticate_retrying(&master, 3, Duration::from_secs(10), 6);
    assert!(answer.is_accepted(), "a minion still waiting is answered: {answer:?}");
    // An abandoned sign-in is either skipped by the worker that finds its asker gone
    // ("sign-in skipped"), or dropped with its connection before any worker takes it (the
    // close seen while it waits to be let in); which one depends on how fast the master
    // read the requests before the askers left. Neither costs a private-key operation.
    // Wait until the accepted count stops moving, then count.
    let mut computed = usize::MAX;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let log = loop {
        std::thread::sleep(Duration::from_secs(2));
        let log = master.log();
        let now = log.matches("authentication accepted").count();
        if now == computed || std::time::Instant::now() > deadline {
            break log;
        }
        computed = now;
    };
    let skipped = log.matches("sign-in skipped").count();
    println!("of 300 abandoned sign-ins: {skipped} skipped by a worker, {} computed", computed - 1);
    assert!(computed < 301, "abandoned sign-ins were computed: {skipped} skipped, {computed} accepted");
}
