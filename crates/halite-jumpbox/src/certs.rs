//! OpenSSH user certificates (`trusted_user_ca_keys`), decided as sshd decides them for a
//! certificate signed by a key of `TrustedUserCAKeys`, with no `AuthorizedPrincipalsFile`:
//! - a user certificate (not a host one), signed by one of the trusted CA keys;
//! - the user's name among its principals (a certificate without principals is refused);
//! - its critical options understood: `source-address` (the client's address must be in
//!   its CIDR list), `force-command` (nothing runs here anyway); `verify-required` is
//!   refused (the PIN flag of a security key is not checked); any other is refused, as a
//!   critical option must be;
//! - port forwarding only with the `permit-port-forwarding` extension.
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
}

/// What a certificate that signs in may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    pub port_forwarding: bool,
}

/// The CA keys of a `trusted_user_ca_keys` file (OpenSSH public-key lines), or the first
/// error in it: a start-up error, not a CA silently dropped.
pub fn read_authorities(text: &str) -> Result<Vec<Vec<u8>>, String> {
    let parsed = halite_authkeys::parse(text);
    if let Some(e) = parsed.errors.first() {
        return Err(e.to_string());
    }
    if parsed.entries.is_empty() {
        return Err("no CA key in the file".to_owned());
    }
    Ok(parsed.entries.into_iter().map(|e| e.blob).collect())
}

pub fn admit(cert: &Certificate<'_>, user: &str, client: IpAddr, authorities: &[Vec<u8>]) -> Result<Grant, String> {
    if !authorities.iter().any(|ca| ca == cert.signer) {
        return Err(format!("certificate signed by {}, not a trusted CA", halite_authkeys::fingerprint(cert.signer)));
    }
    if !cert.user_certificate {
        return Err("a host certificate, not a user one".to_owned());
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
        let net = item
            .parse::<IpNet>()
            .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
            .map_err(|_| format!("source-address {item:?} is not an address or network"))?;
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
        };
        assert!(admit(&cert, "alice", "10.0.0.1".parse().unwrap(), &[CA.to_vec()]).is_err());
        cert.signer = CA;
        cert.user_certificate = false;
        assert!(admit(&cert, "alice", "10.0.0.1".parse().unwrap(), &[CA.to_vec()]).is_err());
    }
}
