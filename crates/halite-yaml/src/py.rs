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
        Value::Binary(b) => format!("b{}", quote_bytes(b)),
        Value::Array(_) | Value::Map(_) | Value::Ext(..) => return None,
    })
}

/// Python's `str()` of any value: scalars as [`str`], collections as their `repr()`
/// (`['a', 1]`, `{'k': None}`), which is what Salt matches grain globs against when a grain
/// is a list or a dict.
pub fn text(value: &Value) -> String {
    str(value).unwrap_or_else(|| repr(value))
}

/// Python's `repr()`: strings quoted as Python quotes them (single quotes unless the text
/// holds a `'` and no `"`), bytes as `b'..'`, lists and dicts in their literal syntax.
pub fn repr(value: &Value) -> String {
    match value {
        Value::String(s) => quote_text(&String::from_utf8_lossy(s.as_bytes())),
        Value::Binary(b) => format!("b{}", quote_bytes(b)),
        Value::Array(items) => format!("[{}]", items.iter().map(repr).collect::<Vec<_>>().join(", ")),
        Value::Map(pairs) => format!(
            "{{{}}}",
            pairs.iter().map(|(k, v)| format!("{}: {}", repr(k), repr(v))).collect::<Vec<_>>().join(", ")
        ),
        // Salt never sends msgpack extension types; Python's msgpack would hand over an
        // ExtType, whose repr nobody targets on.
        Value::Ext(code, data) => format!("ExtType(code={code}, data={})", quote_bytes(data)),
        scalar => str(scalar).unwrap_or_default(),
    }
}

fn quote_char(text_has_single: bool, text_has_double: bool) -> char {
    if text_has_single && !text_has_double {
        '"'
    } else {
        '\''
    }
}

fn quote_text(text: &str) -> String {
    let quote = quote_char(text.contains('\''), text.contains('"'));
    let mut out = String::with_capacity(text.len() + 2);
    out.push(quote);
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || (0x7f..=0x9f).contains(&(c as u32)) => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

fn quote_bytes(bytes: &[u8]) -> String {
    let quote = quote_char(bytes.contains(&b'\''), bytes.contains(&b'"'));
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push(quote);
    for &b in bytes {
        match b {
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b if b as char == quote => {
                out.push('\\');
                out.push(quote);
            }
            0x20..=0x7e => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push(quote);
    out
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

/// Python's `sorted()` of dict keys: text keys in code point order; keys of mixed types
/// cannot be sorted in Python, so callers fall back as each of Salt's does.
pub fn sorted_keys(pairs: &[(Value, Value)]) -> Option<Vec<&(Value, Value)>> {
    let mut sorted: Vec<&(Value, Value)> = pairs.iter().collect();
    let all_text = sorted.iter().all(|(k, _)| matches!(k, Value::String(_)));
    let all_numbers =
        sorted.iter().all(|(k, _)| matches!(k, Value::Integer(_) | Value::F64(_) | Value::F32(_) | Value::Boolean(_)));
    if all_text {
        sorted.sort_by(|a, b| a.0.as_str().unwrap_or("").cmp(b.0.as_str().unwrap_or("")));
    } else if all_numbers {
        let num = |v: &Value| match v {
            Value::Integer(i) => i.as_f64().unwrap_or(0.0),
            Value::F64(f) => *f,
            Value::F32(f) => f64::from(*f),
            Value::Boolean(b) => f64::from(u8::from(*b)),
            _ => 0.0,
        };
        sorted.sort_by(|a, b| num(&a.0).total_cmp(&num(&b.0)));
    } else {
        return None;
    }
    Some(sorted)
}

/// Python's truthiness: `None`, `False`, zero, and empty text, bytes, lists and dicts are
/// false.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Nil => false,
        Value::Boolean(b) => *b,
        Value::Integer(i) => i.as_i64() != Some(0),
        Value::F64(f) => *f != 0.0,
        Value::F32(f) => *f != 0.0,
        Value::String(s) => !s.as_bytes().is_empty(),
        Value::Binary(b) => !b.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Map(m) => !m.is_empty(),
        Value::Ext(..) => true,
    }
}
