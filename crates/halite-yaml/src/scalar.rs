//! Scalar rules: PyYAML's YAML 1.1 implicit resolvers (the regular expressions of
//! `yaml/resolver.py`, matched by hand) and the conversions of `SafeConstructor`, with
//! Python's `int()`/`float()` semantics where PyYAML leans on them.

use rmpv::Value;

const YAML_PREFIX: &str = "tag:yaml.org,2002:";

/// A node's tag after resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tag {
    Null,
    Bool,
    Int,
    Float,
    Str,
    Timestamp,
    Binary,
    Merge,
    /// `=` (the YAML 1.1 "value" key); a string when it is a mapping key.
    Value,
    Seq,
    Map,
    Set,
    Omap,
    Pairs,
    PyUnicode,
    /// A tag `SafeLoader` has no constructor for.
    Other(String),
}

impl Tag {
    pub(crate) fn from_full(tag: &str) -> Tag {
        let Some(name) = tag.strip_prefix(YAML_PREFIX) else {
            return Tag::Other(tag.to_owned());
        };
        match name {
            "null" => Tag::Null,
            "bool" => Tag::Bool,
            "int" => Tag::Int,
            "float" => Tag::Float,
            "str" => Tag::Str,
            "timestamp" => Tag::Timestamp,
            "binary" => Tag::Binary,
            "merge" => Tag::Merge,
            "value" => Tag::Value,
            "seq" => Tag::Seq,
            "map" => Tag::Map,
            "set" => Tag::Set,
            "omap" => Tag::Omap,
            "pairs" => Tag::Pairs,
            "python/unicode" => Tag::PyUnicode,
            _ => Tag::Other(tag.to_owned()),
        }
    }

    pub(crate) fn full_name(&self) -> String {
        let name = match self {
            Tag::Null => "null",
            Tag::Bool => "bool",
            Tag::Int => "int",
            Tag::Float => "float",
            Tag::Str => "str",
            Tag::Timestamp => "timestamp",
            Tag::Binary => "binary",
            Tag::Merge => "merge",
            Tag::Value => "value",
            Tag::Seq => "seq",
            Tag::Map => "map",
            Tag::Set => "set",
            Tag::Omap => "omap",
            Tag::Pairs => "pairs",
            Tag::PyUnicode => "python/unicode",
            Tag::Other(full) => return full.clone(),
        };
        format!("{YAML_PREFIX}{name}")
    }
}

/// The tag PyYAML's resolver gives a plain scalar.
///
/// PyYAML picks candidate resolvers by the first character and tries them in registration
/// order (bool, float, int, merge, null, timestamp, value). Timestamps are not detected:
/// Salt constructs them as their text, exactly like strings.
pub(crate) fn resolve_plain(value: &str) -> Tag {
    // Python's `$` also matches before one final newline; only a `!`-tagged quoted scalar
    // can end in one.
    let v = value.strip_suffix('\n').unwrap_or(value);
    if is_bool(v) {
        Tag::Bool
    } else if is_float(v) {
        Tag::Float
    } else if is_int(v) {
        Tag::Int
    } else if v == "<<" {
        Tag::Merge
    } else if matches!(v, "" | "~" | "null" | "Null" | "NULL") {
        Tag::Null
    } else if v == "=" {
        Tag::Value
    } else {
        Tag::Str
    }
}

fn is_bool(v: &str) -> bool {
    matches!(
        v,
        "yes"
            | "Yes"
            | "YES"
            | "no"
            | "No"
            | "NO"
            | "true"
            | "True"
            | "TRUE"
            | "false"
            | "False"
            | "FALSE"
            | "on"
            | "On"
            | "ON"
            | "off"
            | "Off"
            | "OFF"
    )
}

fn strip_sign(v: &str) -> &str {
    v.strip_prefix(['-', '+']).unwrap_or(v)
}

fn all(s: &str, pred: impl Fn(u8) -> bool) -> bool {
    s.bytes().all(pred)
}

fn is_digit_or_underscore(b: u8) -> bool {
    b.is_ascii_digit() || b == b'_'
}

/// `[0-9][0-9_]*`
fn is_digits_lead(s: &str) -> bool {
    s.as_bytes().first().is_some_and(u8::is_ascii_digit) && all(s, is_digit_or_underscore)
}

/// `[1-9][0-9_]*`
fn is_decimal_nonzero_lead(s: &str) -> bool {
    matches!(s.as_bytes().first(), Some(b'1'..=b'9')) && all(s, is_digit_or_underscore)
}

/// `(?::[0-5]?[0-9])+` given the text after the leading part: every `:`-separated group is
/// one digit, or two digits the first of which is 0-5.
fn is_base60_groups(groups: &str) -> bool {
    let Some(rest) = groups.strip_prefix(':') else {
        return false;
    };
    rest.split(':').all(|g| match g.as_bytes() {
        [d] => d.is_ascii_digit(),
        [a, b] => (b'0'..=b'5').contains(a) && b.is_ascii_digit(),
        _ => false,
    })
}

/// `[eE][-+][0-9]+` or nothing.
fn is_exponent_or_empty(s: &str) -> bool {
    if s.is_empty() {
        return true;
    }
    let Some(rest) = s.strip_prefix(['e', 'E']) else {
        return false;
    };
    let Some(digits) = rest.strip_prefix(['-', '+']) else {
        return false;
    };
    !digits.is_empty() && all(digits, |b| b.is_ascii_digit())
}

fn is_float(v: &str) -> bool {
    let body = strip_sign(v);
    let signed = body.len() != v.len();
    // `[-+]?\.(?:inf|Inf|INF)` and the unsigned `\.(?:nan|NaN|NAN)`
    if matches!(body, ".inf" | ".Inf" | ".INF") {
        return true;
    }
    if !signed && matches!(body, ".nan" | ".NaN" | ".NAN") {
        return true;
    }
    // `\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?`, unsigned
    if let Some(frac) = body.strip_prefix('.') {
        if signed {
            return false;
        }
        let end = frac.find(['e', 'E']).unwrap_or(frac.len());
        return is_digits_lead(&frac[..end]) && is_exponent_or_empty(&frac[end..]);
    }
    let Some((whole, frac)) = body.split_once('.') else {
        return false;
    };
    // `[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*`
    if let Some(colon) = whole.find(':') {
        return is_digits_lead(&whole[..colon])
            && is_base60_groups(&whole[colon..])
            && all(frac, is_digit_or_underscore);
    }
    // `[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)?`
    let end = frac.find(['e', 'E']).unwrap_or(frac.len());
    is_digits_lead(whole) && all(&frac[..end], is_digit_or_underscore) && is_exponent_or_empty(&frac[end..])
}

fn is_int(v: &str) -> bool {
    let body = strip_sign(v);
    if let Some(bits) = body.strip_prefix("0b") {
        return !bits.is_empty() && all(bits, |b| matches!(b, b'0' | b'1' | b'_'));
    }
    if let Some(hex) = body.strip_prefix("0x") {
        return !hex.is_empty() && all(hex, |b| b.is_ascii_hexdigit() || b == b'_');
    }
    if let Some(octal) = body.strip_prefix('0') {
        return octal.is_empty() || all(octal, |b| matches!(b, b'0'..=b'7' | b'_'));
    }
    match body.find(':') {
        Some(colon) => is_decimal_nonzero_lead(&body[..colon]) && is_base60_groups(&body[colon..]),
        None => is_decimal_nonzero_lead(body),
    }
}

/// `construct_yaml_bool`: a lookup of the lower-cased text.
pub(crate) fn construct_bool(value: &str) -> Result<bool, String> {
    match value.to_lowercase().as_str() {
        "yes" | "true" | "on" => Ok(true),
        "no" | "false" | "off" => Ok(false),
        _ => Err(format!("invalid boolean {value:?}")),
    }
}

/// Salt's `construct_scalar` override followed by PyYAML's `construct_yaml_int`.
pub(crate) fn construct_int(value: &str) -> Result<Value, String> {
    // Salt's loader strips the leading zeros of an int-tagged scalar so that file modes
    // written `0644` read as 644. Signed values and 0b/0x escape the strip.
    let value = if value != "0" && value.starts_with('0') && !value.starts_with("0b") && !value.starts_with("0x") {
        match value.trim_start_matches('0') {
            "" => "0",
            rest => rest,
        }
    } else {
        value
    };
    let digits = value.replace('_', "");
    let first = digits.chars().next().ok_or_else(|| "empty integer".to_owned())?;
    let negative = first == '-';
    let body = if matches!(first, '-' | '+') { &digits[1..] } else { &digits[..] };
    let magnitude = if body == "0" {
        0
    } else if let Some(bits) = body.strip_prefix("0b") {
        py_int(bits, 2)?
    } else if let Some(hex) = body.strip_prefix("0x") {
        py_int(hex, 16)?
    } else if body.starts_with('0') {
        py_int(body, 8)?
    } else if body.contains(':') {
        let mut total: i128 = 0;
        for part in body.split(':') {
            let part = py_int(part, 10)?;
            total = total.checked_mul(60).and_then(|t| t.checked_add(part)).ok_or_else(|| out_of_range(value))?;
        }
        total
    } else {
        py_int(body, 10)?
    };
    let n = if negative { magnitude.checked_neg().ok_or_else(|| out_of_range(value))? } else { magnitude };
    int_value(n).ok_or_else(|| out_of_range(value))
}

fn out_of_range(value: &str) -> String {
    format!("integer {value} does not fit in 64 bits")
}

fn int_value(n: i128) -> Option<Value> {
    if let Ok(i) = i64::try_from(n) {
        Some(Value::from(i))
    } else {
        u64::try_from(n).ok().map(Value::from)
    }
}

/// Python's `int(text, base)` for the texts PyYAML hands it: surrounding whitespace and one
/// sign allowed, at least one digit, no overflow beyond i128.
fn py_int(text: &str, base: u32) -> Result<i128, String> {
    let invalid = || format!("invalid literal for int() with base {base}: {text:?}");
    let t = text.trim();
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() {
        return Err(invalid());
    }
    let mut n: i128 = 0;
    for c in digits.chars() {
        let d = c.to_digit(base).ok_or_else(invalid)?;
        n = n
            .checked_mul(i128::from(base))
            .and_then(|n| n.checked_add(i128::from(d)))
            .ok_or_else(|| out_of_range(text))?;
    }
    Ok(if negative { -n } else { n })
}

/// PyYAML's `construct_yaml_float`.
pub(crate) fn construct_float(value: &str) -> Result<f64, String> {
    let text = value.replace('_', "").to_lowercase();
    let first = text.chars().next().ok_or_else(|| "empty float".to_owned())?;
    let sign = if first == '-' { -1.0 } else { 1.0 };
    let body = if matches!(first, '-' | '+') { &text[1..] } else { &text[..] };
    if body == ".inf" {
        return Ok(sign * f64::INFINITY);
    }
    if body == ".nan" {
        return Ok(f64::NAN);
    }
    if body.contains(':') {
        let mut total = 0.0;
        let mut base = 1.0;
        for part in body.rsplit(':') {
            total += py_float(part)? * base;
            base *= 60.0;
        }
        return Ok(sign * total);
    }
    Ok(sign * py_float(body)?)
}

/// Python's `float(text)`: surrounding whitespace allowed; `inf`, `infinity` and `nan` in any
/// case, which Rust's parser also accepts.
fn py_float(text: &str) -> Result<f64, String> {
    text.trim().parse::<f64>().map_err(|_| format!("could not convert string to float: {text:?}"))
}
