//! ZMTP from a peer: whatever bytes arrive, in whatever order, a ROUTER or PUB connection
//! must turn them into events or an error, never a panic or an unbounded buffer.
#![no_main]

use halite_zmtp::{Connection, SocketType};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for ours in [SocketType::Router, SocketType::Pub] {
        let mut conn = Connection::new(ours, b"", 1 << 16);
        // Split where the first byte says, so partial frames are exercised too.
        let split = data.first().map_or(0, |&b| b as usize).min(data.len());
        for piece in [&data[..split], &data[split..]] {
            conn.receive(piece);
            loop {
                match conn.next_event() {
                    Ok(Some(_)) => {}
                    Ok(None) | Err(_) => break,
                }
            }
        }
        let _ = conn.take_output();
    }
});
