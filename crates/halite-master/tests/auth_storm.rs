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
    let log = master.wait_log_contains("sign-in skipped", Duration::from_secs(30));
    let skipped = log.matches("sign-in skipped").count();
    let computed = log.matches("authentication accepted").count();
    println!("of 300 abandoned sign-ins: {skipped} skipped, {} computed", computed - 1);
    assert!(skipped > 0 && computed < 301, "abandoned sign-ins were computed: {skipped} skipped, {computed} accepted");
}
