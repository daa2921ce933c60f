//! OpenSSH user certificates from `ssh-keygen -s`, signed by a CA of
//! `trusted_user_ca_keys`, with the stock client: principals, `no-port-forwarding`,
//! `source-address`, expiry; and plain keys still need their `authorized_keys` line.

mod common;

use common::*;

/// Signs `name.pub` with the site's CA as `ssh-keygen -s` does, with `extra` options.
fn certify(site: &Site, name: &str, principals: &str, extra: &[&str]) {
    site.keygen(name);
    let out = std::process::Command::new("ssh-keygen")
        .args(["-q", "-s"])
        .arg(site.path("ca"))
        .args(["-I", &format!("{name}-id"), "-n", principals])
        .args(extra)
        .arg(site.path(&format!("{name}.pub")))
        .output()
        .unwrap();
    assert_ok(&out, "ssh-keygen -s");
}

#[test]
fn certificates_from_a_trusted_ca_sign_in_as_sshd_takes_them() {
    let site = Site::new();
    site.keygen("ca");
    let hello = Server::start("hello\n", Some(0));
    let jumpbox = JumpBox::start(&site, &format!("trusted_user_ca_keys: {}\n", site.path("ca.pub").display()));
    let port = jumpbox.port.to_string();
    let forward = format!("127.0.0.1:{}", hello.port);

    certify(&site, "good", "root,deploy", &["-V", "-5m:+1h"]);
    let out = site.run_as("good", &["-W", &forward, "-p", &port, "127.0.0.1"]);
    assert_ok(&out, "a certificate for root");
    assert_eq!(text(&out.stdout), "hello\n");
    let record = site.await_audit("for the certificate", |r| r["event"] == "forward" && r["refused"].is_null());
    assert!(record["key"].as_str().unwrap().contains("certificate \"good-id\""), "{record}");

    certify(&site, "other", "deploy", &[]);
    let out = site.run_as("other", &["-p", &port, "127.0.0.1", "vms"]);
    assert_eq!(out.status.code(), Some(255), "root is not among the principals");
    site.await_audit("for the principals", |r| r["refused"].as_str().is_some_and(|s| s.contains("principals")));

    certify(&site, "shell_only", "root", &["-O", "no-port-forwarding"]);
    let out = site.run_as("shell_only", &["-p", &port, "127.0.0.1", "vms"]);
    assert_ok(&out, "a certificate without port forwarding signs in");
    let out = site.run_as("shell_only", &["-W", &forward, "-p", &port, "127.0.0.1"]);
    assert!(text(&out.stderr).contains("administratively prohibited"), "{}", text(&out.stderr));

    certify(&site, "elsewhere", "root", &["-O", "source-address=10.0.0.0/8"]);
    let out = site.run_as("elsewhere", &["-p", &port, "127.0.0.1", "vms"]);
    assert_eq!(out.status.code(), Some(255), "source-address excludes loopback");
    site.await_audit("for source-address", |r| {
        r["refused"].as_str().is_some_and(|s| s.contains("not valid from 127.0.0.1"))
    });

    certify(&site, "expired", "root", &["-V", "20200101:20200102"]);
    let out = site.run_as("expired", &["-p", &port, "127.0.0.1", "vms"]);
    assert_eq!(out.status.code(), Some(255), "an expired certificate");

    // With CAs trusted, a plain key is still only good with its authorized_keys line.
    let out = site.run_as("stranger", &["-p", &port, "127.0.0.1", "vms"]);
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stdout));
    let out = site.run(&["-p", &port, "127.0.0.1", "vms"]);
    assert_ok(&out, "the client's authorized key");
}

#[test]
fn a_certificate_from_another_ca_is_refused() {
    let site = Site::new();
    site.keygen("ca");
    site.keygen("trusted");
    let jumpbox = JumpBox::start(&site, &format!("trusted_user_ca_keys: {}\n", site.path("trusted.pub").display()));
    certify(&site, "good", "root", &[]);
    let out = site.run_as("good", &["-p", &jumpbox.port.to_string(), "127.0.0.1", "vms"]);
    assert_eq!(out.status.code(), Some(255));
    site.await_audit("for the CA", |r| r["refused"].as_str().is_some_and(|s| s.contains("not a trusted CA")));
}

#[test]
fn a_ca_signature_made_with_sha1_is_refused() {
    let site = Site::new();
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(site.path("ca"))
        .status()
        .unwrap();
    assert!(status.success());
    let jumpbox = JumpBox::start(&site, &format!("trusted_user_ca_keys: {}\n", site.path("ca.pub").display()));
    let port = jumpbox.port.to_string();
    certify(&site, "sha2", "root", &["-t", "rsa-sha2-512"]);
    assert_ok(&site.run_as("sha2", &["-p", &port, "127.0.0.1", "vms"]), "an RSA CA signing with SHA-512");
    certify(&site, "sha1", "root", &["-t", "ssh-rsa"]);
    let out = site.run_as("sha1", &["-p", &port, "127.0.0.1", "vms"]);
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stdout));
    site.await_audit("for the SHA-1 CA signature", |r| r["refused"].as_str().is_some_and(|s| s.contains("SHA-1")));
}

#[test]
fn emptying_the_ca_file_revokes_its_certificates_at_once() {
    let site = Site::new();
    site.keygen("ca");
    let jumpbox = JumpBox::start(&site, &format!("trusted_user_ca_keys: {}\n", site.path("ca.pub").display()));
    let port = jumpbox.port.to_string();
    certify(&site, "good", "root", &[]);
    assert_ok(&site.run_as("good", &["-p", &port, "127.0.0.1", "vms"]), "before");
    // No SIGHUP: the file is read at each certificate's sign-in, as sshd reads it.
    site.write("ca.pub", "");
    let out = site.run_as("good", &["-p", &port, "127.0.0.1", "vms"]);
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stdout));
}
