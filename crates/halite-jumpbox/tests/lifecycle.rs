//! halite-jumpbox over time: its host key across restarts, 50 forwards at once, a forward
//! whose client is killed mid-stream, and a reload that leaves open forwards running.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

fn keyscan(port: u16) -> String {
    let out = std::process::Command::new("ssh-keyscan")
        .args(["-t", "ed25519", "-p", &port.to_string(), "127.0.0.1"])
        .output()
        .unwrap();
    let line = text(&out.stdout).lines().find(|l| !l.starts_with('#')).unwrap_or_default().to_owned();
    assert!(line.contains("ssh-ed25519"), "ssh-keyscan: {}", text(&out.stderr));
    line
}

#[test]
fn the_host_key_is_made_once_and_kept_across_restarts() {
    let site = Site::new();
    let jumpbox = JumpBox::start(&site, "");
    let first = keyscan(jumpbox.port);
    assert!(site.path("host_ed25519_key.pub").exists());
    let on_disk = site.read("host_ed25519_key.pub");
    assert!(first.contains(on_disk.split_whitespace().nth(1).unwrap()), "the served key is the file's");
    let jumpbox = jumpbox.restart(&site);
    assert_eq!(keyscan(jumpbox.port), first);
    // A client that pinned it in known_hosts signs in with strict checking.
    site.write("known_hosts", &format!("{first}\n"));
    let out = site.run(&[
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        &format!("UserKnownHostsFile={}", site.path("known_hosts").display()),
        "-p",
        &jumpbox.port.to_string(),
        "127.0.0.1",
        "vms",
    ]);
    assert_ok(&out, "strict host key check after a restart");
}

#[test]
fn fifty_forwards_at_once() {
    let site = Site::new();
    let jumpbox = JumpBox::start(&site, "");
    const SIZE: u64 = 1 << 20;
    let server = Server::start("", Some(SIZE));
    let local = free_port();
    let mut forward = local_forward(&site, &jumpbox, &format!("127.0.0.1:{local}:127.0.0.1:{}", server.port), local);
    let readers: Vec<_> = (0..50).map(|_| std::thread::spawn(move || fetch(local).map(|b| b.len() as u64))).collect();
    for reader in readers {
        assert_eq!(reader.join().unwrap().unwrap(), SIZE);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let done = site.audit().iter().filter(|r| r["event"] == "forward" && r["bytes_out"] == SIZE).count();
        if done == 50 {
            break;
        }
        assert!(Instant::now() < deadline, "{done} of 50 forwards audited:\n{}", site.read("audit.log"));
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = forward.kill();
    let _ = forward.wait();
}

#[test]
fn a_forward_killed_mid_stream_frees_its_resources() {
    let site = Site::new();
    let jumpbox = JumpBox::start(&site, "max_channels_per_user: 1\n");
    let endless = Server::start("", None);
    let idle = jumpbox.open_descriptors();

    let local = free_port();
    let mut forward = local_forward(&site, &jumpbox, &format!("127.0.0.1:{local}:127.0.0.1:{}", endless.port), local);
    let mut stream = TcpStream::connect(("127.0.0.1", local)).unwrap();
    let mut buf = vec![0u8; 1 << 20];
    let mut got = 0;
    while got < 8 << 20 {
        got += stream.read(&mut buf).unwrap();
    }
    // kill -9: no goodbye from the client, its TCP connection just ends.
    let _ = forward.kill();
    let _ = forward.wait();
    let record = site
        .await_audit("for the killed forward", |r| r["event"] == "forward" && r["bytes_out"].as_u64().unwrap_or(0) > 0);
    assert!(record["bytes_out"].as_u64().unwrap() >= 8 << 20, "{record}");
    site.await_audit("for the killed connection", |r| r["event"] == "connection");

    let deadline = Instant::now() + Duration::from_secs(15);
    while jumpbox.open_descriptors() > idle {
        assert!(
            Instant::now() < deadline,
            "{} descriptors open, {idle} before the forward",
            jumpbox.open_descriptors()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The user's one forward slot is free again.
    let hello = Server::start("hello\n", Some(0));
    let out = site.run(&["-W", &format!("127.0.0.1:{}", hello.port), "-p", &jumpbox.port.to_string(), "127.0.0.1"]);
    assert_ok(&out, "a forward after the killed one");
    assert_eq!(text(&out.stdout), "hello\n");
}

#[test]
fn a_reload_keeps_open_forwards_and_applies_to_new_ones() {
    let site = Site::new();
    let jumpbox = JumpBox::start(&site, "");
    let endless = Server::start("", None);
    let local = free_port();
    let mut forward = local_forward(&site, &jumpbox, &format!("127.0.0.1:{local}:127.0.0.1:{}", endless.port), local);
    let mut stream = TcpStream::connect(("127.0.0.1", local)).unwrap();
    let mut buf = vec![0u8; 1 << 16];
    stream.read_exact(&mut buf).unwrap();

    // forward_to no longer holds 127.0.0.1: new forwards are refused, the open one goes on.
    let config = site.read("jumpbox.yaml").replace("forward_to: [127.0.0.1/32]", "forward_to: [10.0.0.0/24]");
    site.write("jumpbox.yaml", &config);
    jumpbox.hup();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !jumpbox.log().contains("reloaded") {
        assert!(Instant::now() < deadline, "no reload in the log:\n{}", jumpbox.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    for _ in 0..64 {
        stream.read_exact(&mut buf).unwrap();
    }
    let hello = Server::start("hello\n", Some(0));
    let out = site.run(&["-W", &format!("127.0.0.1:{}", hello.port), "-p", &jumpbox.port.to_string(), "127.0.0.1"]);
    assert!(text(&out.stderr).contains("administratively prohibited"), "{}", text(&out.stderr));
    stream.read_exact(&mut buf).unwrap();
    let _ = forward.kill();
    let _ = forward.wait();
}

#[test]
fn a_forward_the_client_closes_gives_its_slot_back_while_the_destination_still_sends() {
    let site = Site::new();
    let jumpbox = JumpBox::start(&site, "max_channels_per_user: 2\n");
    let endless = Server::start("", None);
    let local = free_port();
    let mut forward = local_forward(&site, &jumpbox, &format!("127.0.0.1:{local}:127.0.0.1:{}", endless.port), local);
    // Three downloads in turn, each abandoned after a little: a browser closing tabs.
    for _ in 0..3 {
        let mut stream = TcpStream::connect(("127.0.0.1", local)).unwrap();
        let mut buf = vec![0u8; 1 << 16];
        stream.read_exact(&mut buf).unwrap();
        drop(stream);
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let ended = site.audit().iter().filter(|r| r["event"] == "forward" && r["refused"].is_null()).count();
        if ended == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "{ended} of 3 abandoned forwards ended:\n{}", site.read("audit.log"));
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!site.read("audit.log").contains("too many open channels"), "{}", site.read("audit.log"));
    let _ = forward.kill();
    let _ = forward.wait();
}
