//! Behaviour that does not need Salt installed: Salt's quirks pinned as literal values, error
//! positions, the limits halite adds, and robustness on mangled input.

use halite_yaml::{load, py, Value, MAX_DEPTH};

fn s(v: &str) -> Value {
    Value::from(v)
}

fn map(pairs: Vec<(Value, Value)>) -> Value {
    Value::Map(pairs)
}

#[test]
fn salt_reads_leading_zero_integers_as_decimal() {
    assert_eq!(load("0644").unwrap(), Value::from(644));
    assert_eq!(load("0_755").unwrap(), Value::from(755));
    assert_eq!(load("000").unwrap(), Value::from(0));
    // The strip misses signed values, which PyYAML then reads as octal.
    assert_eq!(load("-0644").unwrap(), Value::from(-420));
    assert_eq!(load("+0644").unwrap(), Value::from(420));
    assert_eq!(load("!!int 0644").unwrap(), Value::from(644));
    // Not YAML 1.1 integers at all.
    assert_eq!(load("09").unwrap(), s("09"));
    assert_eq!(load("0o17").unwrap(), s("0o17"));
}

#[test]
fn yaml_1_1_scalars() {
    let v =
        load("[yes, No, ON, off, y, n, ~, null, '', 12:30, 0x1F, 0b11, 1_000, 1e3, 1.0e+3, .inf, 2001-12-14]").unwrap();
    let expected = Value::Array(vec![
        Value::Boolean(true),
        Value::Boolean(false),
        Value::Boolean(true),
        Value::Boolean(false),
        s("y"),
        s("n"),
        Value::Nil,
        Value::Nil,
        s(""),
        Value::from(750),
        Value::from(31),
        Value::from(3),
        Value::from(1000),
        s("1e3"),
        Value::F64(1000.0),
        Value::F64(f64::INFINITY),
        s("2001-12-14"),
    ]);
    assert_eq!(v, expected);
    assert!(matches!(load(".NaN").unwrap(), Value::F64(f) if f.is_nan()));
}

#[test]
fn quoting_and_tags_decide_the_type() {
    assert_eq!(
        load("['12', \"yes\", !!str 12, ! '12', !!float 1]").unwrap(),
        Value::Array(vec![s("12"), s("yes"), s("12"), Value::from(12), Value::F64(1.0),])
    );
    assert_eq!(load("!!binary aGVsbG8=").unwrap(), Value::Binary(b"hello".to_vec()));
    assert_eq!(
        load("!!omap [a: 1, b: 2]").unwrap(),
        Value::Array(vec![Value::Array(vec![s("a"), Value::from(1)]), Value::Array(vec![s("b"), Value::from(2)]),])
    );
    assert_eq!(load("!!set {a, b}").unwrap(), map(vec![(s("a"), Value::Nil), (s("b"), Value::Nil)]));
}

#[test]
fn keys_keep_their_types_and_order() {
    let v = load("b: 1\n2: int\ntrue: bool\n~: nil\n1.5: float\n'2': str\n").unwrap();
    assert_eq!(
        v,
        map(vec![
            (s("b"), Value::from(1)),
            (Value::from(2), s("int")),
            (Value::Boolean(true), s("bool")),
            (Value::Nil, s("nil")),
            (Value::F64(1.5), s("float")),
            (s("2"), s("str")),
        ])
    );
    // `1` and `true` are one key to Python.
    let e = load("1: a\ntrue: b\n").unwrap_err();
    assert!(e.message.contains("found conflicting ID 'True'"), "{e}");
}

#[test]
fn merge_keys_follow_salts_flatten_mapping() {
    let v = load("a: &a {x: 1, y: 2}\nb: &b {z: 3}\nc:\n  <<: [*a, *b]\n  y: 9\n").unwrap();
    let Value::Map(top) = v else { panic!("not a map") };
    // Sequence merges are taken last-first, merged keys come before own keys, and an own
    // key drops the merged one.
    assert_eq!(top[2].1, map(vec![(s("z"), Value::from(3)), (s("x"), Value::from(1)), (s("y"), Value::from(9))]));
    let e = load("a: &a {x: 1}\nb: &b {x: 2}\nc: {<<: [*a, *b]}\n").unwrap_err();
    assert!(e.message.contains("conflicting ID 'x'"), "{e}");
}

#[test]
fn errors_carry_line_and_column() {
    let e = load("a: 1\nb: [1, 2\n").unwrap_err();
    assert_eq!((e.line, e.column), (3, 1), "{e}");
    let e = load("a: 1\nb:\n  c: 1\n  c: 2\n").unwrap_err();
    assert_eq!((e.line, e.column), (4, 3), "{e}");
    let e = load("x: !unknown 1\n").unwrap_err();
    assert_eq!(e.line, 1);
    assert!(e.message.contains("'!unknown'"), "{e}");
    let e = load("a: 1\n---\nb: 2\n").unwrap_err();
    assert_eq!(e.line, 2, "{e}");
    assert!(e.to_string().contains("line 2"), "{e}");
}

#[test]
fn empty_inputs_are_nil() {
    for text in ["", "\n", "# comment\n", "---\n", "---\n...\n", "\u{feff}"] {
        assert_eq!(load(text).unwrap(), Value::Nil, "{text:?}");
    }
}

#[test]
fn tab_after_colon_reads_as_a_space() {
    assert_eq!(load("a:\tb\n").unwrap(), map(vec![(s("a"), s("b"))]));
    // Inside quotes and block scalars the tab is content and stays.
    assert_eq!(load("a:\tb\nq: 'x:\ty'\n").unwrap(), map(vec![(s("a"), s("b")), (s("q"), s("x:\ty"))]));
}

#[test]
fn block_scalars_at_end_of_input_keep_only_read_line_breaks() {
    assert_eq!(load("k: |\n  text").unwrap(), map(vec![(s("k"), s("text"))]));
    assert_eq!(load("k: |\n  text\n").unwrap(), map(vec![(s("k"), s("text\n"))]));
    assert_eq!(load("k: |\n").unwrap(), map(vec![(s("k"), s(""))]));
    assert_eq!(load("k: |+\n  text\n\n").unwrap(), map(vec![(s("k"), s("text\n\n"))]));
    assert_eq!(load("k: >\n  a\n  b").unwrap(), map(vec![(s("k"), s("a b"))]));
}

#[test]
fn recursive_aliases_are_refused() {
    let e = load("&a [*a]").unwrap_err();
    assert!(e.message.contains("recursive"), "{e}");
    assert!(load("&a {k: *a}").is_err());
}

#[test]
fn duplicate_anchors_are_refused() {
    let e = load("- &x a\n- &x b\n").unwrap_err();
    assert_eq!(e.line, 2);
}

#[test]
fn big_integers_are_refused() {
    assert_eq!(load("18446744073709551615").unwrap(), Value::from(u64::MAX));
    assert_eq!(load("-9223372036854775808").unwrap(), Value::from(i64::MIN));
    assert!(load("18446744073709551616").is_err());
    assert!(load("-9223372036854775809").is_err());
}

#[test]
fn nesting_is_bounded() {
    let nested = |levels: usize| -> String { (0..levels).map(|i| format!("{}k:\n", "  ".repeat(i))).collect() };
    // Built and dropped on a test thread's default 2 MiB stack, in a debug build.
    assert!(load(&nested(MAX_DEPTH)).is_ok());
    let e = load(&nested(MAX_DEPTH + 1)).unwrap_err();
    assert!(e.message.contains("nested"), "{e}");
    // yaml-rust2 stops flow collections one level earlier.
    assert!(load(&format!("{}{}", "[".repeat(MAX_DEPTH - 1), "]".repeat(MAX_DEPTH - 1))).is_ok());
    assert!(load(&format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH))).is_err());
    // Aliases can stack depth beyond what the text shows.
    let half = MAX_DEPTH / 2 + 10;
    let text = format!("- &a {}{}\n- {}*a{}\n", "[".repeat(half), "]".repeat(half), "[".repeat(half), "]".repeat(half));
    let e = load(&text).unwrap_err();
    assert!(e.message.contains("deeper"), "{e}");
}

#[test]
fn alias_bombs_are_refused() {
    let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let prev = i - 1;
        text.push_str(&format!("a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"));
    }
    let e = load(&text).unwrap_err();
    assert!(e.message.contains("expand"), "{e}");
}

#[test]
fn python_str_and_equality() {
    for (f, repr) in [
        (1.0, "1.0"),
        (0.1, "0.1"),
        (1e16, "1e+16"),
        (1.5e16, "1.5e+16"),
        (123456789.125, "123456789.125"),
        (1e-5, "1e-05"),
        (0.0001, "0.0001"),
        (-2.5, "-2.5"),
        (1e300, "1e+300"),
        (f64::NEG_INFINITY, "-inf"),
    ] {
        assert_eq!(py::float_repr(f), repr);
    }
    assert_eq!(py::str(&Value::Boolean(true)).as_deref(), Some("True"));
    assert_eq!(py::str(&Value::Nil).as_deref(), Some("None"));
    assert!(py::eq(&Value::from(1), &Value::F64(1.0)));
    assert!(py::eq(&Value::from(1), &Value::Boolean(true)));
    assert!(!py::eq(&Value::from(1), &s("1")));
    assert!(!py::eq(&Value::F64(f64::NAN), &Value::F64(f64::NAN)));
    assert!(py::eq(
        &map(vec![(s("a"), Value::from(1)), (s("b"), Value::Nil)]),
        &map(vec![(s("b"), Value::Nil), (s("a"), Value::F64(1.0))])
    ));
}

/// Mangled YAML must give an error or a value, never a panic: a small deterministic fuzz
/// over YAML-significant characters.
#[test]
fn mangled_input_never_panics() {
    let seeds = [
        "a: &x {b: [1, 2], c: *x}\n",
        "- |\n  text\n- >-\n  more\n",
        "? [a, b]\n: {<<: *m, k: !!int 0644}\n",
        "%YAML 1.1\n---\nk: \"esc\\u00e9\" # c\n...\n",
        "{a: [b, {c: d}], 'e': \"f\"}\n",
        "<<: [*a, *b]\n=: 1\n",
    ];
    let alphabet: Vec<char> = "-?:,[]{}#&*!|>'\"%@`\t \n\r\\0aZ.<=~+é\u{feff}".chars().collect();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..6000 {
        let mut chars: Vec<char> = seeds[round % seeds.len()].chars().collect();
        for _ in 0..(1 + next() % 6) {
            let at = (next() as usize) % (chars.len() + 1);
            match next() % 3 {
                0 => chars.insert(at, alphabet[(next() as usize) % alphabet.len()]),
                1 if at < chars.len() => {
                    chars.remove(at);
                }
                _ => {
                    let end = (at + (next() as usize) % 8).min(chars.len());
                    let chunk: Vec<char> = chars[at..end].to_vec();
                    chars.splice(at..at, chunk);
                }
            }
        }
        let text: String = chars.into_iter().collect();
        let outcome = std::panic::catch_unwind(|| load(&text));
        assert!(outcome.is_ok(), "load panicked on {text:?}");
    }
}
