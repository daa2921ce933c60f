//! The publish socket in a child process, as Salt's master runs its publisher: the master
//! feeds it publishes over a pipe and restarts it if it dies.
//!
//! Why a process and not a task: every minion holds two connections, one to each port, and
//! a process may hold only so many descriptors (20,000 on the benchmark machine, 1,024 by
//! default on many systems); splitting the ports over two processes doubles the minions one
//! master can serve before `LimitNOFILE` matters. The fan-out also gets its own CPU time.
//!
//! Pipe format: each publish as a 4-byte big-endian length and the frame. The child reports
//! `ready` on stdout once listening (so a port in use fails the master's start-up, not
//! later), and exits when the pipe closes: a master that dies takes its publisher with it.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use halite_zmq::{serve_publisher, PublishSender, SocketOptions};
use tracing::{error, info, warn};

/// The flag that makes `halite-master` the publisher child.
pub const CHILD_FLAG: &str = "--publisher";

/// Largest frame the child accepts from the pipe: a sanity bound, far above any publish.
const MAX_FRAME: usize = 1 << 30;

/// How the master starts its child: the same binary, the same config and log level.
#[derive(Clone)]
pub struct ChildCommand {
    pub config_dir: Option<PathBuf>,
    pub log_level: Option<String>,
}

impl ChildCommand {
    fn spawn(&self) -> anyhow::Result<(Child, ChildStdin)> {
        let exe = std::env::current_exe().context("locating the halite-master binary for the publisher process")?;
        let mut cmd = Command::new(exe);
        cmd.arg(CHILD_FLAG).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit());
        if let Some(dir) = &self.config_dir {
            cmd.arg("-c").arg(dir);
        }
        if let Some(level) = &self.log_level {
            cmd.arg("-l").arg(level);
        }
        let mut child = cmd.spawn().context("starting the publisher process")?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            bail!("the publisher process has no pipes");
        };
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        if line.trim() != "ready" {
            let status = child.wait().context("waiting for the publisher process")?;
            bail!("the publisher process did not start ({status}); its error is logged above");
        }
        Ok((child, stdin))
    }
}

/// The running child and the thread that feeds and supervises it.
pub struct PublishProcess {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PublishProcess {
    /// Starts the child (failing if it cannot listen) and returns where to send publishes.
    pub fn start(command: ChildCommand) -> anyhow::Result<(PublishProcess, PublishSender)> {
        let (child, stdin) = command.spawn()?;
        let (sender, frames) = PublishSender::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("publisher-feed".into())
                .spawn(move || supervise(&command, child, stdin, &frames, &stop))
                .context("starting the publisher feed thread")?
        };
        Ok((PublishProcess { stop, thread: Some(thread) }, sender))
    }

    /// Closes the pipe (the child exits after sending what it has) and waits for it.
    pub fn shutdown(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn write_frame(stdin: &mut ChildStdin, frame: &[u8]) -> std::io::Result<()> {
    let len = u32::try_from(frame.len()).map_err(|_| std::io::Error::other("publish larger than 4 GiB"))?;
    stdin.write_all(&len.to_be_bytes())?;
    stdin.write_all(frame)
}

fn supervise(
    command: &ChildCommand,
    mut child: Child,
    mut stdin: ChildStdin,
    frames: &Receiver<Vec<u8>>,
    stop: &AtomicBool,
) {
    while !stop.load(Ordering::Relaxed) {
        let died = match frames.recv_timeout(Duration::from_secs(1)) {
            Ok(frame) => match write_frame(&mut stdin, &frame) {
                Ok(()) => continue,
                Err(e) => {
                    error!(error = %e, bytes = frame.len(), "publish lost: the publisher process is gone");
                    true
                }
            },
            Err(RecvTimeoutError::Timeout) => !matches!(child.try_wait(), Ok(None)),
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if died {
            let status = child.wait().map(|s| s.to_string()).unwrap_or_else(|e| e.to_string());
            error!(%status, "the publisher process exited; restarting it (minions reconnect on their own)");
            match respawn(command, stop) {
                Some((c, s)) => (child, stdin) = (c, s),
                None => return,
            }
        }
    }
    drop(stdin);
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    warn!("the publisher process did not exit within 5 s of its pipe closing; killing it");
    let _ = child.kill();
    let _ = child.wait();
}

/// Starts the child again, once a second until it comes up or the master stops.
fn respawn(command: &ChildCommand, stop: &AtomicBool) -> Option<(Child, ChildStdin)> {
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_secs(1));
        match command.spawn() {
            Ok(started) => {
                info!("publisher process restarted");
                return Some(started);
            }
            Err(e) => error!(error = %e, "restarting the publisher process failed; retrying"),
        }
    }
    None
}

/// The child's life: listen, say `ready`, publish what arrives on stdin until it closes.
pub async fn run_child(addr: std::net::SocketAddr, opts: SocketOptions) -> anyhow::Result<()> {
    // A predecessor whose master was killed lets go of the port when it reads the end of
    // its pipe, a moment after the new master has started: wait that moment out.
    let deadline = Instant::now() + Duration::from_secs(5);
    let (publisher, sender) = loop {
        let (sender, frames) = PublishSender::channel();
        match serve_publisher(addr, &opts, sender.clone(), frames) {
            Ok(publisher) => break (publisher, sender),
            Err(halite_zmq::TransportError::Bind { source, .. })
                if source.kind() == std::io::ErrorKind::AddrInUse && Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => return Err(e.into()),
        }
    };
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "ready").and_then(|()| out.flush()).context("telling the master the publisher is ready")?;
    }
    let feed = tokio::task::spawn_blocking(move || read_frames(std::io::stdin().lock(), &sender));
    match feed.await {
        Ok(Ok(())) => info!("the master closed the publish pipe; publisher stopping"),
        Ok(Err(e)) => error!(error = %e, "reading publishes from the master failed; publisher stopping"),
        Err(e) => error!(error = %e, "the publish pipe reader stopped"),
    }
    publisher.shutdown().await;
    Ok(())
}

fn read_frames(mut pipe: impl Read, sender: &PublishSender) -> anyhow::Result<()> {
    let mut len = [0u8; 4];
    loop {
        // The end of the pipe is clean only between frames.
        let mut got = 0;
        while got < len.len() {
            match pipe.read(&mut len[got..]) {
                Ok(0) if got == 0 => return Ok(()),
                Ok(0) => bail!("the pipe ended inside a frame header"),
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        let len = u32::from_be_bytes(len) as usize;
        if len > MAX_FRAME {
            bail!("a {len}-byte publish on the pipe: the master and publisher disagree on the format");
        }
        let mut frame = vec![0; len];
        pipe.read_exact(&mut frame).context("a publish cut short on the pipe")?;
        sender.publish(frame)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_cross_the_pipe_format_intact() {
        let mut bytes = Vec::new();
        for frame in [&b"one"[..], &[7u8; 70_000][..]] {
            bytes.extend_from_slice(&(frame.len() as u32).to_be_bytes());
            bytes.extend_from_slice(frame);
        }
        let (sender, frames) = PublishSender::channel();
        read_frames(&bytes[..], &sender).unwrap();
        assert_eq!(frames.try_recv().unwrap(), b"one");
        assert_eq!(frames.try_recv().unwrap(), vec![7u8; 70_000]);
        // A frame cut short, in its header or its body, is an error, not a publish.
        for cut in [9, 20] {
            let (sender, _frames) = PublishSender::channel();
            assert!(read_frames(&bytes[..cut], &sender).is_err(), "cut at {cut}");
        }
    }
}
