//! The CLI's end of the local channel (`halite-ipc`): a blocking unix-socket client.
//!
//! The tools are short-lived and do one thing at a time, so a blocking socket with read
//! timeouts is all they need; no async runtime is started (it would cost start-up time the
//! CLI's overhead budget does not have).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use halite_config::MasterConfig;
use halite_ipc::{encode_frame, ErrorKind, FrameDecoder, Request, ServerMsg};
use halite_yaml::Value;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The master is not running (or runs with another sock_dir).
    #[error("cannot reach the master at {path}: {source}")]
    Connect { path: PathBuf, source: std::io::Error },
    #[error("cannot read the key of user {user} at {path}: {source}")]
    Key { user: String, path: PathBuf, source: std::io::Error },
    #[error("lost the connection to the master: {0}")]
    Io(#[from] std::io::Error),
    #[error("the master sent something unreadable: {0}")]
    Protocol(#[from] halite_ipc::IpcError),
    /// The master answered the request with an error.
    #[error("{message}")]
    Master { kind: ErrorKind, message: String },
}

/// Who the CLI acts as: Salt's local-client user (`sudo_<name>` under sudo) and the key
/// that proves it, `cachedir/.<user>_key`.
#[derive(Debug, Clone)]
pub struct Identity {
    pub user: String,
    pub key: String,
}

impl Identity {
    /// The invoking user, as Salt's `get_user` sees it, and that user's key (root's under
    /// sudo, as Salt maps `sudo_*` users to root).
    pub fn current(config: &MasterConfig) -> Result<Identity, ClientError> {
        let me = current_user_name();
        let user = match std::env::var("SUDO_USER") {
            Ok(sudo) if !sudo.is_empty() && me == "root" => format!("sudo_{sudo}"),
            _ => me.clone(),
        };
        let key_user = if user.starts_with("sudo_") { "root".to_owned() } else { me };
        let path = config.cachedir.join(format!(".{key_user}_key"));
        let key = std::fs::read_to_string(&path)
            .map_err(|source| ClientError::Key { user: key_user.clone(), path: path.clone(), source })?
            .trim()
            .to_owned();
        Ok(Identity { user, key })
    }
}

fn current_user_name() -> String {
    // SAFETY: geteuid has no preconditions.
    let uid = unsafe { libc::geteuid() };
    if let Ok(passwd) = std::fs::read_to_string("/etc/passwd") {
        for line in passwd.lines() {
            let mut fields = line.split(':');
            let (Some(name), _, Some(id)) = (fields.next(), fields.next(), fields.next()) else { continue };
            if id.parse::<u32>().ok() == Some(uid) {
                return name.to_owned();
            }
        }
    }
    std::env::var("USER").unwrap_or_else(|_| uid.to_string())
}

/// One connection to the master.
pub struct Client {
    stream: UnixStream,
    decoder: FrameDecoder,
    /// Events that arrived while a reply was awaited.
    pending_events: std::collections::VecDeque<(String, Value)>,
}

impl Client {
    pub fn connect(sock_dir: &Path) -> Result<Client, ClientError> {
        let path = sock_dir.join(halite_ipc::SOCKET_NAME);
        let stream = UnixStream::connect(&path).map_err(|source| ClientError::Connect { path, source })?;
        Ok(Client { stream, decoder: FrameDecoder::default(), pending_events: Default::default() })
    }

    /// Sends `request` and waits for its reply (events arriving meanwhile are kept for
    /// [`Client::next_event`]).
    pub fn call(&mut self, request: &Request) -> Result<Value, ClientError> {
        self.stream.write_all(&encode_frame(&request.to_value()))?;
        self.stream.set_read_timeout(None)?;
        loop {
            match self.read_msg()? {
                ServerMsg::Reply(Ok(v)) => return Ok(v),
                ServerMsg::Reply(Err((kind, message))) => return Err(ClientError::Master { kind, message }),
                ServerMsg::Event { tag, data } => self.pending_events.push_back((tag, data)),
            }
        }
    }

    /// The next event of a followed job, or `None` once `deadline` passes.
    pub fn next_event(&mut self, deadline: Instant) -> Result<Option<(String, Value)>, ClientError> {
        if let Some(ev) = self.pending_events.pop_front() {
            return Ok(Some(ev));
        }
        loop {
            if let Some(msg) = self.decoder.next_frame()? {
                match ServerMsg::from_value(&msg)? {
                    ServerMsg::Event { tag, data } => return Ok(Some((tag, data))),
                    ServerMsg::Reply(_) => continue,
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ok(None);
            }
            self.stream.set_read_timeout(Some((deadline - now).max(Duration::from_millis(1))))?;
            let mut buf = [0u8; 64 * 1024];
            match self.stream.read(&mut buf) {
                Ok(0) => return Err(ClientError::Io(std::io::ErrorKind::UnexpectedEof.into())),
                Ok(n) => self.decoder.push(&buf[..n]),
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return Ok(None)
                }
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn read_msg(&mut self) -> Result<ServerMsg, ClientError> {
        loop {
            if let Some(msg) = self.decoder.next_frame()? {
                return Ok(ServerMsg::from_value(&msg)?);
            }
            let mut buf = [0u8; 64 * 1024];
            let n = self.stream.read(&mut buf)?;
            if n == 0 {
                return Err(ClientError::Io(std::io::ErrorKind::UnexpectedEof.into()));
            }
            self.decoder.push(&buf[..n]);
        }
    }
}
