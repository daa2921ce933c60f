//! How Salt's Python sees a loaded value: its `str()` and its `==`.
//!
//! They live next to the loader because the loader itself needs them (a key equal to an
//! earlier one in Python's sense is a conflict), and so do consumers that reproduce Salt's
//! handling of loaded data (`str(saltenv)` for `file_roots`, list de-duplication when
//! merging config files).

use rmpv::Value;

/// Python's `str()` of a scalar value (`None`, `True`, `1.0`, `b'..'`); `None` for
/// collections, whose Python text halite never needs.
pub fn str(value: &Value) -> Option<String> {
    Some(match value {
        Value::Nil => "None".to_owned(),
        Value::Boolean(true) => "True".to_owned(),
        Value::Boolean(false) => "False".to_owned(),
        Value::Integer(i) => i.to_string(),
        Value::F64(f) => float_repr(*f),
        Value::F32(f) => float_repr(f64::from(*f)),
        Value::String(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        Value::Binary(b) => format!("b{:?}", String::from_utf8_lossy(b)),
        Value::Array(_) | Value::Map(_) | Value::Ext(..) => return None,
    })
}

/// Python's `repr()` of a float, which is also its `str()`: shortest round-trip digits,
/// positional from 1e-4 up to 1e16, scientific with a two-digit exponent beyond.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    // Rust's `{:e}` already picks the shortest round-trip digits; only the layout differs.
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let sign = if mantissa.starts_with('-') { "-" } else { "" };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat(point.unsigned_abs() as usize))
        } else {
            let point = point as usize;
            if point >= digits.len() {
                format!("{digits}{}.0", "0".repeat(point - digits.len()))
            } else {
                format!("{}.{}", &digits[..point], &digits[point..])
            }
        };
        format!("{sign}{body}")
    } else {
        let (lead, rest) = digits.split_at(1.min(digits.len()));
        let frac = if rest.is_empty() { String::new() } else { format!(".{rest}") };
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{lead}{frac}e{esign}{:02}", exp.unsigned_abs())
    }
}

/// Python's `==` between two loaded values: `True == 1 == 1.0`, NaN equals nothing, `str`
/// never equals `bytes`, dicts compare regardless of order.
pub fn eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(p, q)| eq(p, q)),
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.iter().any(|(k2, v2)| eq(k, k2) && eq(v, v2)))
        }
        _ => match (PyKey::of(a), PyKey::of(b)) {
            (Some(p), Some(q)) => p == q,
            _ => false,
        },
    }
}

/// A scalar as a Python dict key: equal `PyKey`s are equal Python objects.
#[derive(Debug, Hash, PartialEq, Eq)]
pub(crate) enum PyKey {
    None,
    Int(i128),
    Float(u64),
    Str(Vec<u8>),
    Bytes(Vec<u8>),
}

impl PyKey {
    /// `None` for values without a usable identity: collections, and NaN (Python compares
    /// NaN keys by object identity, and every NaN scalar in a document is a new object).
    pub(crate) fn of(value: &Value) -> Option<PyKey> {
        Some(match value {
            Value::Nil => PyKey::None,
            Value::Boolean(b) => PyKey::Int(i128::from(*b)),
            Value::Integer(i) => PyKey::Int(i.as_i64().map(i128::from).or_else(|| i.as_u64().map(i128::from))?),
            Value::F64(f) => return float_key(*f),
            Value::F32(f) => return float_key(f64::from(*f)),
            Value::String(s) => PyKey::Str(s.as_bytes().to_vec()),
            Value::Binary(b) => PyKey::Bytes(b.clone()),
            Value::Array(_) | Value::Map(_) | Value::Ext(..) => return None,
        })
    }
}

fn float_key(f: f64) -> Option<PyKey> {
    if f.is_nan() {
        return None;
    }
    // An integral float equals the integer of the same value (1.0 == 1, -0.0 == 0); beyond
    // 2**127 no integer a Value can hold is equal anyway.
    if f.fract() == 0.0 && f.abs() < 1.7e38 {
        return Some(PyKey::Int(f as i128));
    }
    Some(PyKey::Float(f.to_bits()))
}
