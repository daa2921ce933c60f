//! OpenSSH user certificates (`trusted_user_ca_keys`), decided as sshd decides them for a
//! certificate signed by a key of `TrustedUserCAKeys`, with no `AuthorizedPrincipalsFile`:
//! - a user certificate (not a host one), signed by one of the trusted CA keys;
//! - the user's name among its principals (a certificate without principals is refused);
//! - its critical options understood: `source-address` (the client's address must be in
//!   its CIDR list), `force-command` (nothing runs here anyway); `verify-required` is
//!   refused (the PIN flag of a security key is not checked); any other is refused, as a
//!   critical option must be;
//! - port forwarding only with the `permit-port-forwarding` extension;
//! - not signed by the CA with SHA-1 (`ssh-rsa`: sshd's `CASignatureAlgorithms` dropped it
//!   in 8.2), and a security key's certificate only with `no-touch-required` (the touch
//!   flag is not checked).
//!
//! A certificate is not looked up in `authorized_keys`: its key's lines there, and their
//! restrictions, do not apply to it, as in sshd.
//!
//! The certificate's own signature and validity window are checked before this, by the
//! SSH library. Pure: the caller passes what the certificate says.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;

/// What a certificate says, as far as the decision goes.
pub struct Certificate<'a> {
    pub user_certificate: bool,
    pub principals: &'a [String],
    pub critical_options: &'a BTreeMap<String, String>,
    pub extensions: &'a BTreeMap<String, String>,
    /// The signing CA key, in SSH wire encoding.
    pub signer: &'a [u8],
    /// The CA signed with SHA-1 (`ssh-rsa`).
    pub signed_with_sha1: bool,
    /// The certified key is a security key (`sk-*`).
    pub security_key: bool,
}

/// What a certificate that signs in may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub port_forwarding: bool,
}

/// The CA keys of a `trusted_user_ca_keys` file (OpenSSH public-key lines, without
/// options), or the first error in it, so a broken line is an error, not a CA silently
/// dropped. An empty file trusts no CA.
pub fn read_authorities(text: &str) -> Result<Vec<Vec<u8>>, String> {
    for (index, line) in text.lines().enumerate() {
        let line = line.trim_start_matches([' ', '\t']);
        let first = line.split([' ', '\t']).next().unwrap_or("");
        if !line.is_empty() && !line.starts_with('#') && !halite_authkeys::KEY_TYPES.contains(&first) {
            return Err(format!("line {}: not a key type (the file takes keys alone, without options)", index + 1));
        }
    }
    let parsed = halite_authkeys::parse(text);
    if let Some(e) = parsed.errors.first() {
        return Err(e.to_string());
    }
    Ok(parsed.entries.into_iter().map(|e| e.blob).collect())
}

pub fn admit(cert: &Certificate<'_>, user: &str, client: IpAddr, authorities: &[Vec<u8>]) -> Result<Grant, String> {
    if !authorities.iter().any(|ca| ca == cert.signer) {
        return Err(format!("certificate signed by {}, not a trusted CA", halite_authkeys::fingerprint(cert.signer)));
    }
    if cert.signed_with_sha1 {
        return Err("the CA signed the certificate with SHA-1 (ssh-rsa)".to_owned());
    }
    if !cert.user_certificate {
        return Err("a host certificate, not a user one".to_owned());
    }
    if cert.security_key && !cert.extensions.contains_key("no-touch-required") {
        return Err("a security key's touch cannot be verified (the certificate needs no-touch-required)".to_owned());
    }
    if !cert.principals.iter().any(|p| p == user) {
        return Err(format!("the certificate's principals do not name {user}"));
    }
    for (name, value) in cert.critical_options {
        match name.as_str() {
            "force-command" => {}
            "source-address" => {
                if !source_allows(value, client)? {
                    return Err(format!("the certificate is not valid from {client}"));
                }
            }
            other => return Err(format!("unsupported critical option {other:?}")),
        }
    }
    Ok(Grant { port_forwarding: cert.extensions.contains_key("permit-port-forwarding") })
}

/// `source-address`: a comma-separated list of addresses and CIDR blocks.
fn source_allows(list: &str, client: IpAddr) -> Result<bool, String> {
    let client = match client {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(client, IpAddr::V4),
        v4 => v4,
    };
    let mut allowed = false;
    for item in list.split(',') {
        let net = match item.parse::<IpNet>() {
            // Host bits under the mask (`10.1.2.3/8`): sshd refuses the certificate.
            Ok(net) if net.network() != net.addr() => None,
            Ok(net) => Some(net),
            Err(_) => item.parse::<IpAddr>().ok().map(IpNet::from),
        };
        let net = net.ok_or_else(|| format!("source-address {item:?} is not an address or network"))?;
        allowed |= net.contains(&client);
    }
    Ok(allowed)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CA: &[u8] = b"ca-key-blob";

    fn check(
        critical: &[(&str, &str)],
        extensions: &[&str],
        principals: &[&str],
        client: &str,
    ) -> Result<Grant, String> {
        let principals: Vec<String> = principals.iter().map(|p| p.to_string()).collect();
        let critical: BTreeMap<String, String> = critical.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let extensions: BTreeMap<String, String> = extensions.iter().map(|k| (k.to_string(), String::new())).collect();
        let cert = Certificate {
            user_certificate: true,
            principals: &principals,
            critical_options: &critical,
            extensions: &extensions,
            signer: CA,
            signed_with_sha1: false,
            security_key: false,
        };
        admit(&cert, "alice", client.parse().unwrap(), &[CA.to_vec()])
    }

    #[test]
    fn a_certificate_for_the_user_from_a_trusted_ca_signs_in() {
        assert_eq!(
            check(&[], &["permit-port-forwarding"], &["alice"], "10.0.0.1"),
            Ok(Grant { port_forwarding: true })
        );
        assert_eq!(check(&[], &["permit-pty"], &["alice"], "10.0.0.1"), Ok(Grant { port_forwarding: false }));
        assert!(check(&[], &[], &["bob"], "10.0.0.1").is_err());
        assert!(check(&[], &[], &[], "10.0.0.1").is_err(), "no principals: refused, as sshd does");
    }

    #[test]
    fn critical_options_are_understood_or_refused() {
        let from = [("source-address", "10.0.0.0/8,192.0.2.7")];
        assert!(check(&from, &[], &["alice"], "10.1.2.3").is_ok());
        assert!(check(&from, &[], &["alice"], "::ffff:192.0.2.7").is_ok());
        assert!(check(&from, &[], &["alice"], "198.51.100.1").is_err());
        assert!(check(&[("source-address", "nonsense")], &[], &["alice"], "10.1.2.3").is_err());
        assert!(check(&[("source-address", "10.1.2.3/8")], &[], &["alice"], "10.1.2.3").is_err(), "host bits set");
        assert!(check(&[("force-command", "/bin/true")], &[], &["alice"], "10.1.2.3").is_ok());
        assert!(check(&[("verify-required", "")], &[], &["alice"], "10.1.2.3").is_err());
        assert!(check(&[("no-such-option", "")], &[], &["alice"], "10.1.2.3").is_err());
    }

    #[test]
    fn an_untrusted_signer_or_a_host_certificate_is_refused() {
        let principals = vec!["alice".to_owned()];
        let empty = BTreeMap::new();
        let mut cert = Certificate {
            user_certificate: true,
            principals: &principals,
            critical_options: &empty,
            extensions: &empty,
            signer: b"another-ca",
            signed_with_sha1: false,
            security_key: false,
        };
        let client = "10.0.0.1".parse().unwrap();
        assert!(admit(&cert, "alice", client, &[CA.to_vec()]).is_err());
        cert.signer = CA;
        assert!(admit(&cert, "alice", client, &[CA.to_vec()]).is_ok());
        cert.signed_with_sha1 = true;
        assert!(admit(&cert, "alice", client, &[CA.to_vec()]).is_err(), "a SHA-1 CA signature");
        cert.signed_with_sha1 = false;
        cert.security_key = true;
        assert!(admit(&cert, "alice", client, &[CA.to_vec()]).is_err(), "a security key without no-touch-required");
        let touchless: BTreeMap<String, String> = [("no-touch-required".to_owned(), String::new())].into();
        cert.extensions = &touchless;
        assert!(admit(&cert, "alice", client, &[CA.to_vec()]).is_ok());
        cert.user_certificate = false;
        assert!(admit(&cert, "alice", client, &[CA.to_vec()]).is_err());
    }

    #[test]
    fn ca_files_take_keys_alone() {
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPNpE2F40wm7Ie+YNw9jKpdiEEjE7BZOjZBVIXY1aP7m ca";
        assert_eq!(read_authorities(&format!("# CAs\n{key}\n")).unwrap().len(), 1);
        assert_eq!(read_authorities("").unwrap().len(), 0, "an empty file trusts no CA");
        assert!(read_authorities(&format!("from=\"10.0.0.0/8\" {key}")).is_err());
        assert!(read_authorities(&format!("restrict {key}")).is_err());
        assert!(read_authorities("ssh-ed25519 !!!").is_err());
    }
}
