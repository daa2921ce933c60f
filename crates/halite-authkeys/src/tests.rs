//! Vectors: the outcomes are those sshd 9.2p1 (Debian 12) gave the same lines in an
//! `authorized_keys` file, tried with the stock `ssh` client against `sshd -d -D`.

use super::*;

const KEY: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIPNpE2F40wm7Ie+YNw9jKpdiEEjE7BZOjZBVIXY1aP7m";
const NOW: i64 = 1_796_000_000; // 2026-11-29

fn entry(options: &str) -> Result<Option<Entry>, LineError> {
    let sep = if options.is_empty() { "" } else { " " };
    parse_line(1, &format!("{options}{sep}ssh-ed25519 {KEY} alice@site"))
}

fn one(options: &str) -> Entry {
    entry(options).unwrap().unwrap()
}

/// The system's zone for these vectors: UTC.
fn utc(t: &CivilTime) -> i64 {
    t.as_utc()
}

/// A zone one hour east of UTC.
fn utc_plus_1(t: &CivilTime) -> i64 {
    t.as_utc() - 3600
}

fn addr(text: &str) -> IpAddr {
    text.parse().unwrap()
}

#[test]
fn a_plain_line_is_a_key_with_every_permission() {
    let e = one("");
    assert_eq!(e.key_type, "ssh-ed25519");
    assert_eq!(e.comment, "alice@site");
    assert_eq!(fingerprint(&e.blob), "SHA256:7SgnTC2SW0EQXwANe/7Imkb8KBWkoEnyKZ6hPeQZ2UU");
    assert!(e.may_open("db1", 22));
    assert_eq!(e.admits(addr("192.0.2.1"), NOW, &utc), Ok(()));
}

#[test]
fn comments_blank_lines_and_crlf_are_skipped() {
    let keys = parse(&format!("# a comment\n\n   \n  ssh-ed25519 {KEY} x\r\n"));
    assert_eq!(keys.errors, vec![]);
    assert_eq!(keys.entries.len(), 1);
    assert_eq!(keys.entries[0].line, 4);
    assert_eq!(keys.entries[0].comment, "x");
}

#[test]
fn a_bad_line_voids_only_itself() {
    let text = format!("bogus-option ssh-ed25519 {KEY}\nssh-ed25519 !!!\nssh-ed25519 {KEY} ok\n");
    let keys = parse(&text);
    assert_eq!(keys.entries.len(), 1);
    assert_eq!(keys.entries[0].line, 3);
    assert!(matches!(keys.errors[0], LineError::BadOptions { line: 1, .. }));
    assert!(matches!(keys.errors[1], LineError::BadKey { line: 2, .. }));
}

#[test]
fn a_key_whose_blob_names_another_type_is_refused() {
    assert!(matches!(parse_line(1, &format!("ssh-rsa {KEY}")), Err(LineError::BadKey { .. })));
}

#[test]
fn restrict_applies_in_the_order_written() {
    assert!(!one("restrict").may_open("db1", 22));
    assert!(one("restrict,port-forwarding").may_open("db1", 22));
    assert!(!one("port-forwarding,restrict").may_open("db1", 22));
    assert!(!one("no-port-forwarding").may_open("db1", 22));
    assert!(!one("NO-PORT-FORWARDING").may_open("db1", 22), "option names are case-insensitive");
}

#[test]
fn permitopen_is_literal_and_case_sensitive() {
    let e = one(r#"permitopen="db1:22",permitopen="[fd00::3]:80",permitopen="web1:*""#);
    assert!(e.may_open("db1", 22));
    assert!(!e.may_open("DB1", 22));
    assert!(!e.may_open("db1", 23));
    assert!(e.may_open("fd00::3", 80));
    assert!(e.may_open("web1", 65535));
    assert!(!e.may_open("10.0.0.3", 22), "an address is not its name");
    assert!(one(r#"permitopen="*:443""#).may_open("anything", 443));
    assert!(!one(r#"no-port-forwarding,permitopen="db1:22""#).may_open("db1", 22));
}

#[test]
fn bad_permitopen_values_void_the_line() {
    for value in ["db1", "db1:0", "db1:65536", ":22", "db1:x", "[fd00::3:22", "fd00::3:22"] {
        assert!(entry(&format!(r#"permitopen="{value}""#)).is_err(), "{value}");
    }
}

#[test]
fn from_matches_addresses_blocks_and_wildcards() {
    let e = one(r#"from="10.0.0.0/8,!10.9.0.0/16,192.0.2.*,2001:db8::/32""#);
    assert_eq!(e.admits(addr("10.1.2.3"), NOW, &utc), Ok(()));
    assert!(matches!(e.admits(addr("10.9.1.1"), NOW, &utc), Err(Refusal::NotFrom { .. })));
    assert_eq!(e.admits(addr("192.0.2.77"), NOW, &utc), Ok(()));
    assert_eq!(e.admits(addr("::ffff:192.0.2.77"), NOW, &utc), Ok(()), "a mapped IPv4 client is IPv4");
    assert_eq!(e.admits(addr("2001:db8::1"), NOW, &utc), Ok(()));
    assert!(e.admits(addr("198.51.100.1"), NOW, &utc).is_err());
}

#[test]
fn from_names_never_match_an_address() {
    let e = one(r#"from="admin.example.org""#);
    assert!(e.admits(addr("192.0.2.1"), NOW, &utc).is_err());
}

#[test]
fn a_block_with_host_bits_refuses_the_key() {
    let e = one(r#"from="10.0.0.1/8,192.0.2.1""#);
    assert!(e.admits(addr("192.0.2.1"), NOW, &utc).is_err());
}

#[test]
fn expiry_time_forms() {
    let e = one(r#"expiry-time="20261201Z""#);
    let at = 1_796_083_200; // 2026-12-01T00:00:00Z
    assert_eq!(e.admits(addr("192.0.2.1"), at, &utc), Ok(()), "refused once past, not at the time");
    assert!(matches!(e.admits(addr("192.0.2.1"), at + 1, &utc), Err(Refusal::Expired { .. })));
    let local = one(r#"expiry-time="202612010100""#);
    assert_eq!(local.admits(addr("192.0.2.1"), at, &utc_plus_1), Ok(()), "01:00 at UTC+1 is midnight UTC");
    assert!(local.admits(addr("192.0.2.1"), at + 1, &utc_plus_1).is_err());
    let seconds = one(r#"expiry-time="20261201000001UTC""#);
    assert_eq!(seconds.admits(addr("192.0.2.1"), at + 1, &utc_plus_1), Ok(()), "UTC is a zone too");
    for bad in ["2026120", "20261301", "20260230", "202612012400", "x0261201", "19691231"] {
        assert!(entry(&format!(r#"expiry-time="{bad}""#)).is_err(), "{bad}");
    }
}

#[test]
fn the_earliest_of_two_expiry_times_counts() {
    let e = one(r#"expiry-time="20200101Z",expiry-time="20991231Z""#);
    assert!(matches!(e.admits(addr("192.0.2.1"), NOW, &utc), Err(Refusal::Expired { .. })));
}

#[test]
fn clauses_sshd_takes_once_void_a_line_given_twice() {
    for twice in
        [r#"from="10.0.0.1",from="10.0.0.2""#, r#"command="a",command="b""#, r#"principals="a",principals="b""#]
    {
        assert!(entry(twice).is_err(), "{twice}");
    }
    assert!(entry(r#"environment="A-B=1""#).is_err(), "environment names are letters, digits and _");
    assert!(entry(r#"environment="=1""#).is_err());
    assert_eq!(one(r#"environment="A_1=x y""#).options.environment, ["A_1=x y"]);
}

#[test]
fn quoted_values_take_spaces_and_escaped_quotes() {
    let e = one(r#"command="echo \"hi there\"",no-pty"#);
    assert_eq!(e.options.command.as_deref(), Some(r#"echo "hi there""#));
    assert!(!e.options.pty);
    assert!(entry(r#"command="unterminated"#).is_err());
    assert!(entry("command=unquoted").is_err());
    assert!(entry("no-pty=x").is_err());
    assert!(entry("no-pty,,").is_err());
}

#[test]
fn cert_authority_lines_do_not_sign_in_as_keys() {
    let e = one(r#"cert-authority,principals="alice""#);
    assert!(matches!(e.admits(addr("192.0.2.1"), NOW, &utc), Err(Refusal::CertAuthority { .. })));
    assert_eq!(e.options.principals, Some(vec!["alice".to_owned()]));
}

#[test]
fn lines_for_finds_every_line_of_a_key_in_order() {
    let keys = parse(&format!("restrict ssh-ed25519 {KEY}\nssh-ed25519 {KEY}\n"));
    let blob = keys.entries[0].blob.clone();
    let lines: Vec<usize> = keys.lines_for(&blob).map(|e| e.line).collect();
    assert_eq!(lines, vec![1, 2]);
}

#[test]
fn wildcards_are_linear() {
    assert!(wildcard(b"*.*.*.*", b"10.0.0.1"));
    assert!(wildcard(b"10.0.0.?", b"10.0.0.1"));
    assert!(!wildcard(b"10.0.0.?", b"10.0.0.10"));
    assert!(!wildcard(b"*a*a*a*b", "a".repeat(10_000).as_bytes()));
}

#[test]
fn long_lines_are_refused_unread() {
    let line = format!("ssh-ed25519 {KEY} {}", "c".repeat(MAX_LINE));
    assert_eq!(parse_line(7, &line), Err(LineError::TooLong { line: 7 }));
}
