//! The request decoder under its budgets: whatever a peer sends to 4506, `request::parse`
//! (and `_auth`'s reading of a clear load) refuses or succeeds without panicking, and what
//! `payload::decode` accepts never nests deeper than `MAX_DEPTH` nor holds more nodes than
//! the budget gives a message of its size. `envelope` and `auth` cover the same entry points
//! without checking the budgets; this target also wraps each input in 128 to 383 arrays, so
//! the depth limit is crossed both ways on every run.
#![no_main]

use halite_proto::auth::AuthRequest;
use halite_proto::payload::{self, Budget, Value, MAX_DEPTH};
use halite_proto::request::{self, Request};
use libfuzzer_sys::fuzz_target;

/// Nodes and nesting of a decoded value, walked without recursion so that a broken depth
/// limit is reported by the assertion rather than by a stack overflow here.
fn shape(v: &Value) -> (u64, usize) {
    let (mut nodes, mut deepest) = (0u64, 0usize);
    let mut todo = vec![(v, 0usize)];
    while let Some((v, depth)) = todo.pop() {
        nodes += 1;
        match v {
            Value::Array(items) => {
                deepest = deepest.max(depth + 1);
                todo.extend(items.iter().map(|i| (i, depth + 1)));
            }
            Value::Map(entries) => {
                deepest = deepest.max(depth + 1);
                todo.extend(entries.iter().flat_map(|(k, v)| [(k, depth + 1), (v, depth + 1)]));
            }
            _ => {}
        }
    }
    (nodes, deepest)
}

/// The same value, NaN included (a float NaN is not equal to itself, but decoding the same
/// bytes twice must give the same NaN).
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    format!("{a:?}") == format!("{b:?}")
}

/// Decodes under `budget` and checks that what came back respects it.
fn decode_within(bytes: &[u8], budget: &Budget) -> Option<Value> {
    let value = payload::decode_with(bytes, budget).ok()?;
    let (nodes, depth) = shape(&value);
    assert!(nodes <= budget.nodes_for(bytes.len()), "{nodes} nodes from {} bytes", bytes.len());
    assert!(depth <= MAX_DEPTH, "nested {depth} deep");
    Some(value)
}

fuzz_target!(|data: &[u8]| {
    match request::parse(data) {
        Ok(Request::Clear { load, .. }) => {
            if let Ok(req) = AuthRequest::from_load(&load) {
                let _ = (req.enc_algo(), req.sig_algo(), halite_proto::valid_id(&req.id));
            }
        }
        Ok(Request::Aes(sealed)) => {
            let _ = (sealed.key_needed(), sealed.signs_replies());
        }
        Err(refusal) => {
            let _ = refusal.reply();
        }
    }

    let network = decode_within(data, &Budget::NETWORK);
    // A budget small enough for fuzz-sized inputs to cross: what fits it fits the network's
    // too, and decodes to the same value.
    let tiny = Budget { base_nodes: 16, bytes_per_node: 4, max_nodes: 256 };
    if let Some(small) = decode_within(data, &tiny) {
        assert!(same(network.as_ref(), Some(&small)), "{network:?} != {small:?}");
    }

    // The same bytes nested 128 to 383 arrays deep: accepted exactly when the total depth
    // (the wrapping plus the input's own) is within MAX_DEPTH, as long as the wrapping's
    // nodes do not take the input over its node budget.
    if let Some(inner) = &network {
        let wrap = 128 + usize::from(data.first().copied().unwrap_or(0));
        let mut nested = vec![0x91; wrap];
        nested.extend_from_slice(data);
        let outcome = decode_within(&nested, &Budget::NETWORK);
        let (nodes, depth) = shape(inner);
        if nodes + wrap as u64 > Budget::NETWORK.nodes_for(nested.len()) {
            return;
        }
        if wrap + depth <= MAX_DEPTH {
            let mut v = outcome.expect("within the depth limit");
            for _ in 0..wrap {
                v = match v {
                    Value::Array(mut items) if items.len() == 1 => items.pop().unwrap(),
                    other => panic!("not the wrapping: {other:?}"),
                };
            }
            assert!(same(Some(&v), Some(inner)), "{v:?} != {inner:?}");
        } else {
            assert!(outcome.is_none(), "nested {} deep, accepted", wrap + depth);
        }
    }
});
