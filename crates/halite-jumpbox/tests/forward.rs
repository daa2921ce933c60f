//! The stock OpenSSH client through halite-jumpbox: `-J` into a real sshd, `-W` in a
//! ProxyCommand, `-L`, and `-D` with curl resolving a name through the SOCKS proxy; the
//! banner, and the VM list a session channel prints.

mod common;

use common::*;

#[test]
fn ssh_j_reaches_the_targets_shell() {
    let site = Site::new();
    let jumpbox = JumpBox::start(&site, "");
    let target = Sshd::start(&site, "target");
    let port = target.port.to_string();
    let out = site.run(&["-J", &jumpbox.jump(), "-p", &port, "127.0.0.1", "echo shell on $(id -un)"]);
    assert_ok(&out, "ssh -J");
    assert_eq!(text(&out.stdout), "shell on root\n");

    let record = site.await_audit("for the -J forward", |r| r["event"] == "forward");
    assert_eq!(record["user"], "root");
    assert_eq!(record["destination"], format!("127.0.0.1:{port}"));
    assert_eq!(record["address"], format!("127.0.0.1:{port}"));
    assert_eq!(record["refused"], serde_json::Value::Null);
    assert!(record["bytes_in"].as_u64().unwrap() > 1000 && record["bytes_out"].as_u64().unwrap() > 1000, "{record}");
    let print = record["key"].as_str().unwrap().to_owned();
    let keygen = std::process::Command::new("ssh-keygen").arg("-lf").arg(site.path("client.pub")).output().unwrap();
    assert!(text(&keygen.stdout).contains(&print), "audit key {print} is the client key's fingerprint");
    site.await_audit("for the connection", |r| r["event"] == "connection" && r["user"] == "root");
}

#[test]
fn ssh_w_in_a_proxy_command() {
    let site = Site::new();
    let jumpbox = JumpBox::start(&site, "");
    let target = Sshd::start(&site, "target");
    let proxy =
        format!("ProxyCommand=ssh -F {} -p {} -W %h:%p 127.0.0.1", site.path("ssh_config").display(), jumpbox.port);
    let out = site.run(&["-o", &proxy, "-p", &target.port.to_string(), "127.0.0.1", "echo through -W"]);
    assert_ok(&out, "ssh -W");
    assert_eq!(text(&out.stdout), "through -W\n");
}

#[test]
fn local_and_socks_forwards_reach_a_server_by_address_and_by_name() {
    let site = Site::new();
    let jumpbox = JumpBox::start(&site, "");
    let http = Server::start("HTTP/1.0 200 OK\r\nContent-Length: 11\r\n\r\nmonit page\n", Some(0));

    let local = free_port();
    let mut forward = local_forward(&site, &jumpbox, &format!("127.0.0.1:{local}:127.0.0.1:{}", http.port), local);
    let body = std::process::Command::new("curl").args(["-s", &format!("http://127.0.0.1:{local}/")]).output().unwrap();
    assert_eq!(text(&body.stdout), "monit page\n");
    let _ = forward.kill();
    let _ = forward.wait();

    let socks = free_port();
    let port = jumpbox.port.to_string();
    let mut proxy = site
        .ssh(&[
            "-N",
            "-C",
            "-o",
            "ExitOnForwardFailure=yes",
            "-D",
            &format!("127.0.0.1:{socks}"),
            "-p",
            &port,
            "127.0.0.1",
        ])
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while !listening(socks) {
        assert!(std::time::Instant::now() < deadline, "ssh -D never listened");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    // --socks5-hostname: the name goes to the jump box, which resolves it and checks the
    // address it got against forward_to.
    let by_name = std::process::Command::new("curl")
        .args(["-s", "--socks5-hostname", &format!("127.0.0.1:{socks}"), &format!("http://localhost:{}/", http.port)])
        .output()
        .unwrap();
    assert_eq!(text(&by_name.stdout), "monit page\n", "{}", text(&by_name.stderr));
    let _ = proxy.kill();
    let _ = proxy.wait();
    let record = site.await_audit("for the SOCKS forward", |r| r["destination"] == format!("localhost:{}", http.port));
    assert_eq!(record["address"], format!("127.0.0.1:{}", http.port));
}

#[test]
fn the_banner_and_the_vm_list() {
    let site = Site::new();
    site.write("banner", "LEVEL: PRODUCTION\nssh -J salt.webplatform.org app1.production.wpdn\n");
    site.write(
        "roster.json",
        r#"{"minions":[{"id":"app1","roles":["app","monit"],"connected":true},{"id":"db1","roles":["db"],"connected":false}]}"#,
    );
    let jumpbox = JumpBox::start(&site, &format!("vms: {}/roster.json\n", site.dir.display()));
    let port = jumpbox.port.to_string();

    // The banner comes before authentication, on the client's stderr at LogLevel INFO.
    let out = site.run(&["-o", "LogLevel=INFO", "-p", &port, "127.0.0.1"]);
    assert_ok(&out, "ssh jumpbox");
    assert!(text(&out.stderr).contains("LEVEL: PRODUCTION"), "{}", text(&out.stderr));
    let stdout = text(&out.stdout).replace("\r\n", "\n");
    assert!(stdout.starts_with("LEVEL: PRODUCTION\nssh -J salt"), "{stdout}");
    assert!(stdout.contains("app1  connected  app, monit\n"), "{stdout}");
    assert!(stdout.contains("db1   -          db\n"), "{stdout}");

    let out = site.run(&["-p", &port, "127.0.0.1", "vms", "--json"]);
    assert_ok(&out, "ssh jumpbox vms --json");
    let listing: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listing["minions"][0]["id"], "app1");
    assert_eq!(listing["minions"][1]["connected"], false);

    std::fs::remove_file(site.path("roster.json")).unwrap();
    let out = site.run(&["-p", &port, "127.0.0.1", "vms"]);
    assert_ok(&out, "ssh jumpbox vms without a roster");
    assert!(text(&out.stdout).starts_with("The VM list is not available: "), "{}", text(&out.stdout));
}

#[test]
fn strict_key_exchange_and_sha2_signatures_only() {
    let site = Site::new();
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f"])
        .arg(site.path("rsa"))
        .status()
        .unwrap();
    assert!(status.success());
    site.write("root_keys", &format!("{}{}", site.public("client"), site.public("rsa")));
    let jumpbox = JumpBox::start(&site, "");
    let port = jumpbox.port.to_string();

    // Terrapin (CVE-2023-48795): both sides offer strict key exchange, and use it.
    let out = site.run(&["-vvv", "-p", &port, "127.0.0.1", "vms"]);
    assert_ok(&out, "ssh -vvv");
    assert!(text(&out.stderr).contains("will use strict KEX ordering"), "{}", text(&out.stderr));

    let rsa = site.path("rsa").display().to_string();
    let out = site.run(&[
        "-i",
        &rsa,
        "-o",
        "IdentityFile=none",
        "-o",
        "PubkeyAcceptedAlgorithms=rsa-sha2-512",
        "-p",
        &port,
        "127.0.0.1",
        "vms",
    ]);
    assert_ok(&out, "an RSA key signing with SHA-512");
    // The same key signing with SHA-1 (`ssh-rsa`), which OpenSSH 8.8 stopped accepting: the
    // server's `server-sig-algs` does not list it, so the stock client does not even try
    // (a client that did would be refused by the handler too).
    site.write("rsa_config", &site.read("ssh_config").replace(&site.path("client").display().to_string(), &rsa));
    let out = std::process::Command::new("ssh")
        .arg("-F")
        .arg(site.path("rsa_config"))
        .args(["-o", "PubkeyAcceptedAlgorithms=ssh-rsa", "-p", &port, "127.0.0.1", "vms"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(255), "{}", text(&out.stdout));
    assert!(text(&out.stderr).contains("Permission denied (publickey)"), "{}", text(&out.stderr));
}
