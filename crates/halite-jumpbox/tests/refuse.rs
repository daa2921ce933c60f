//! What halite-jumpbox refuses, seen from the stock OpenSSH client: a key not in
//! `authorized_keys`, a destination outside `forward_to`, a forward `permitopen` does not
//! allow, `from=`, `-R`, agent forwarding, a shell and commands; and a source that keeps
//! failing is throttled while another still signs in.

mod common;

use common::*;

#[test]
fn a_key_not_in_authorized_keys_is_refused_and_audited() {
    let site = Site::new();
    let jumpbox = JumpBox::start(&site, "");
    let port = jumpbox.port.to_string();
    site.write(
        "stranger_config",
        &site
            .read("ssh_config")
            .replace(&site.path("client").display().to_string(), &site.path("stranger").display().to_string()),
    );
    let out = std::process::Command::new("ssh")
        .arg("-F")
        .arg(site.path("stranger_config"))
        .args(["-p", &port, "127.0.0.1", "vms"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(text(&out.stderr).contains("Permission denied (publickey)"), "{}", text(&out.stderr));
    let record = site.await_audit("for the refused key", |r| {
        r["event"] == "connection" && r["refused"].as_str().is_some_and(|s| s.contains("not in"))
    });
    assert_eq!(record["user"], "root");
    assert_eq!(record["key"], serde_json::Value::Null, "no key signed in");

    // An unknown user is refused the same way, without a file read for it.
    let out = site.run(&["-l", "no-such-user", "-p", &port, "127.0.0.1", "vms"]);
    assert_eq!(out.status.code(), Some(255));
}

#[test]
fn forwards_outside_forward_to_or_permitopen_are_administratively_prohibited() {
    let site = Site::new();
    let allowed = Server::start("allowed\n", Some(0));
    let other = Server::start("other\n", Some(0));
    // `limited` may only open the allowed server's port, by address.
    site.write(
        "root_keys",
        &format!(
            "{}restrict,port-forwarding,permitopen=\"127.0.0.1:{}\" {}",
            site.public("client"),
            allowed.port,
            site.public("limited")
        ),
    );
    let jumpbox = JumpBox::start(&site, "");
    let port = jumpbox.port.to_string();

    // Outside forward_to (127.0.0.1/32 only): 127.0.0.2 answers, but is not allowed.
    let out = site.run(&["-W", &format!("127.0.0.2:{}", other.port), "-p", &port, "127.0.0.1"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(text(&out.stderr).contains("administratively prohibited"), "{}", text(&out.stderr));
    site.await_audit("for 127.0.0.2", |r| {
        r["destination"] == format!("127.0.0.2:{}", other.port)
            && r["refused"].as_str().is_some_and(|s| s.contains("no address inside forward_to"))
    });

    let limited = site
        .read("ssh_config")
        .replace(&site.path("client").display().to_string(), &site.path("limited").display().to_string());
    site.write("limited_config", &limited);
    let limited_ssh = |dest: String| {
        std::process::Command::new("ssh")
            .arg("-F")
            .arg(site.path("limited_config"))
            .args(["-W", &dest, "-p", &port, "127.0.0.1"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = limited_ssh(format!("127.0.0.1:{}", allowed.port));
    assert_ok(&out, "permitopen's own destination");
    assert_eq!(text(&out.stdout), "allowed\n");
    let out = limited_ssh(format!("127.0.0.1:{}", other.port));
    assert!(text(&out.stderr).contains("administratively prohibited"), "{}", text(&out.stderr));
    // permitopen compares the host as written: the name of the same address is not allowed.
    let out = limited_ssh(format!("localhost:{}", allowed.port));
    assert!(text(&out.stderr).contains("administratively prohibited"), "{}", text(&out.stderr));
    site.await_audit("for permitopen", |r| r["refused"].as_str().is_some_and(|s| s.contains("permitopen")));
}

#[test]
fn from_and_no_port_forwarding_options_are_applied() {
    let site = Site::new();
    let server = Server::start("x\n", Some(0));
    site.write(
        "root_keys",
        &format!("from=\"10.0.0.0/8\" {}no-port-forwarding {}", site.public("limited"), site.public("client")),
    );
    let jumpbox = JumpBox::start(&site, "");
    let port = jumpbox.port.to_string();
    // The client key signs in but may not forward.
    let out = site.run(&["-W", &format!("127.0.0.1:{}", server.port), "-p", &port, "127.0.0.1"]);
    assert!(text(&out.stderr).contains("administratively prohibited"), "{}", text(&out.stderr));
    // The limited key is only good from 10/8, and this client is on loopback.
    let limited = site
        .read("ssh_config")
        .replace(&site.path("client").display().to_string(), &site.path("limited").display().to_string());
    site.write("limited_config", &limited);
    let out = std::process::Command::new("ssh")
        .arg("-F")
        .arg(site.path("limited_config"))
        .args(["-p", &port, "127.0.0.1", "vms"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stdout));
    site.await_audit("for from=", |r| r["refused"].as_str().is_some_and(|s| s.contains("not allowed from 127.0.0.1")));
}

#[test]
fn remote_forwards_agent_forwarding_shells_and_commands_are_refused() {
    let site = Site::new();
    let jumpbox = JumpBox::start(&site, "");
    let port = jumpbox.port.to_string();

    let out =
        site.run(&["-N", "-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:22", "-p", &port, "127.0.0.1"]);
    assert_eq!(out.status.code(), Some(255));
    assert!(text(&out.stderr).contains("remote port forwarding failed"), "{}", text(&out.stderr));

    // A shell request prints the listing and closes; no shell reads what is typed.
    let mut child = site
        .ssh(&["-p", &port, "127.0.0.1"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"id\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_ok(&out, "the shell request");
    assert!(!text(&out.stdout).contains("uid="), "{}", text(&out.stdout));
    assert!(text(&out.stdout).contains("The VM list is not available"), "{}", text(&out.stdout));
    // A terminal is refused, as sshd refuses one to a `restrict`ed key; with -tt the client
    // then gives up on the session.
    let out = site.run(&["-tt", "-p", &port, "127.0.0.1"]);
    assert!(text(&out.stderr).contains("PTY allocation request failed"), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("uid="));

    let out = site.run(&["-p", &port, "127.0.0.1", "id"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("halite-jumpbox runs no commands"), "{}", text(&out.stderr));
    assert!(!text(&out.stdout).contains("uid="));

    let out = site.run(&["-s", "-p", &port, "127.0.0.1", "sftp"]);
    assert_ne!(out.status.code(), Some(0), "the sftp subsystem is refused");

    // OpenSSH asks for agent forwarding without wanting a reply; the refusal is in the log.
    let agent = std::process::Command::new("ssh-agent").arg("-s").output().unwrap();
    let sock = text(&agent.stdout).split("SSH_AUTH_SOCK=").nth(1).unwrap().split(';').next().unwrap().to_owned();
    let pid = text(&agent.stdout).split("SSH_AGENT_PID=").nth(1).unwrap().split(';').next().unwrap().to_owned();
    let out = site.ssh(&["-A", "-p", &port, "127.0.0.1", "vms"]).env("SSH_AUTH_SOCK", &sock).output().unwrap();
    let _ = std::process::Command::new("kill").arg(&pid).status();
    assert_ok(&out, "ssh -A vms");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !jumpbox.log().contains("agent forwarding refused") {
        assert!(std::time::Instant::now() < deadline, "no agent refusal in the log:\n{}", jumpbox.log());
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(jumpbox.log().contains("remote forward"), "the -R refusal is logged");
}

#[test]
fn a_failing_source_is_throttled_while_another_signs_in() {
    let site = Site::new();
    let jumpbox = JumpBox::start(&site, "throttle: {failures: 3, window: 600, ban: 600}\n");
    let port = jumpbox.port.to_string();
    let stranger = site
        .read("ssh_config")
        .replace(&site.path("client").display().to_string(), &site.path("stranger").display().to_string());
    site.write("stranger_config", &stranger);
    let attempt = |source: &str, config: &str| {
        std::process::Command::new("ssh")
            .arg("-F")
            .arg(site.path(config))
            .args(["-b", source, "-p", &port, "127.0.0.1", "vms"])
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    for _ in 0..3 {
        let out = attempt("127.0.0.2", "stranger_config");
        assert!(text(&out.stderr).contains("Permission denied"), "{}", text(&out.stderr));
    }
    site.await_audit("for the third failure", |r| {
        r["event"] == "connection" && r["source"].as_str().unwrap().starts_with("127.0.0.2") && r["refused"].is_string()
    });
    // Banned now, even with the right key: dropped before the version exchange.
    let out = attempt("127.0.0.2", "ssh_config");
    assert_eq!(out.status.code(), Some(255));
    assert!(!text(&out.stderr).contains("Permission denied"), "{}", text(&out.stderr));
    site.await_audit("for the ban", |r| {
        r["refused"].as_str().is_some_and(|s| s.starts_with("banned after failed sign-ins"))
    });
    // Another source is untouched.
    let out = attempt("127.0.0.1", "ssh_config");
    assert_ok(&out, "another source");
}

#[test]
fn authorized_keys_are_opened_as_the_user() {
    let site = Site::new();
    // `nobody` may read a root-owned 0644 file (StrictModes allows root's ownership) ...
    site.write("nobody_keys", &site.public("client"));
    let jumpbox = JumpBox::start(&site, "");
    let port = jumpbox.port.to_string();
    let out = site.run(&["-l", "nobody", "-p", &port, "127.0.0.1", "vms"]);
    assert_ok(&out, "nobody with a readable file");
    // ... but not a link to a file only root may read: it is opened with nobody's ids.
    let secret = site.path("root-only");
    std::fs::write(&secret, site.public("client")).unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    std::fs::remove_file(site.path("nobody_keys")).unwrap();
    std::os::unix::fs::symlink(&secret, site.path("nobody_keys")).unwrap();
    let out = site.run(&["-l", "nobody", "-p", &port, "127.0.0.1", "vms"]);
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stdout));
    site.await_audit("for the unreadable link", |r| {
        r["user"] == "nobody" && r["refused"].as_str().is_some_and(|s| s.contains("Permission denied"))
    });
}
