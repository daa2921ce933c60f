//! One connection's SSH handler: public-key sign-in from `authorized_keys`, forwards, the
//! session channel's listing, and a refusal for everything else.
//!
//! russh calls these methods one at a time per connection; nothing here waits on the
//! network. A forward's lookup and connect run in their own task, which answers the
//! channel-open when it knows, so one slow destination never stalls the connection's
//! other channels.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use halite_authkeys::{fingerprint, Entry};
use halite_jumpbox::audit::{Event, Record};
use halite_jumpbox::config::{expand, valid_user};
use halite_jumpbox::forward::{self, allowed_addresses, Refused, Request};
use halite_jumpbox::vms;
use halite_ratelog::{peer_warn, shown};
use russh::server::{Auth, ChannelOpenHandle, Handler, Msg, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::sync::{oneshot, OwnedSemaphorePermit};
use tokio::task::JoinHandle;
use tracing::{debug, info, Instrument};

use crate::daemon::keys::{account, authorized_keys};
use crate::daemon::Shared;

/// What the connection's end needs to know, shared with the task that serves it.
#[derive(Default)]
pub struct State {
    pub user: Option<String>,
    pub key: Option<String>,
    pub signed_in: bool,
    /// The client sent at least one sign-in request.
    pub tried: bool,
    /// Why the last sign-in was refused, for the audit line.
    pub refusal: Option<String>,
    /// The connection's forward tasks: told to stop through [`Connection::new`]'s `stop`
    /// when the connection ends, then awaited so each writes its audit line.
    pub forwards: Vec<JoinHandle<()>>,
}

pub struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    state: Arc<Mutex<State>>,
    signed_in: Option<oneshot::Sender<()>>,
    /// Held until sign-in: the connection counts against `max_startups` until then.
    startup: Option<OwnedSemaphorePermit>,
    /// The `authorized_keys` line the key signed in with.
    grant: Option<Entry>,
    sessions: HashMap<ChannelId, ()>,
    stop: watch::Receiver<bool>,
}

impl Connection {
    pub fn new(
        shared: Arc<Shared>,
        peer: SocketAddr,
        state: Arc<Mutex<State>>,
        signed_in: oneshot::Sender<()>,
        startup: OwnedSemaphorePermit,
        stop: watch::Receiver<bool>,
    ) -> Connection {
        Connection {
            shared,
            peer,
            state,
            signed_in: Some(signed_in),
            startup: Some(startup),
            grant: None,
            sessions: HashMap::new(),
            stop,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The line of the user's `authorized_keys` that lets `blob` sign in from this peer, or
    /// why none does.
    fn find_grant(&self, user: &str, blob: &[u8]) -> Result<Entry, String> {
        if !valid_user(user) {
            return Err(format!("invalid user {}", shown(user)));
        }
        let account = account(user).ok_or_else(|| format!("invalid user {user}"))?;
        let live = self.shared.live();
        let home = account.home.to_string_lossy();
        let path = expand(&live.config.authorized_keys, user, &home)?;
        let keys = authorized_keys(&path, &account)?;
        for e in &keys.errors {
            debug!(path = %path.display(), "{e}");
        }
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let mut last_refusal = None;
        for entry in keys.lines_for(blob) {
            match entry.admits(self.peer.ip(), now, local_utc_offset(now)) {
                Ok(()) => return Ok(entry.clone()),
                Err(refusal) => last_refusal = Some(format!("{}: {refusal}", path.display())),
            }
        }
        Err(last_refusal.unwrap_or_else(|| format!("key {} not in {}", fingerprint(blob), path.display())))
    }

    fn check(&self, user: &str, key: &russh::keys::PublicKey) -> Result<(Entry, String), String> {
        let blob = key.to_bytes().map_err(|e| format!("key not encodable: {e}"))?;
        let print = fingerprint(&blob);
        self.find_grant(user, &blob).map(|entry| (entry, print))
    }

    fn refuse_sign_in(&self, user: &str, why: String) -> Auth {
        peer_warn!("ssh auth", Some(self.peer.ip()), "sign-in as {} from {} refused: {why}", shown(user), self.peer);
        let mut state = self.state();
        state.user.get_or_insert_with(|| user.chars().take(64).collect());
        state.refusal = Some(why);
        Auth::reject()
    }
}

/// The local zone's offset east of UTC at `now`, for an `expiry-time` written without `Z`.
fn local_utc_offset(now: i64) -> i64 {
    let t = now as libc::time_t;
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    // SAFETY: both pointers are to live locals; localtime_r is the thread-safe variant.
    if unsafe { libc::localtime_r(&t, &mut tm) }.is_null() {
        return 0;
    }
    tm.tm_gmtoff
}

impl Handler for Connection {
    type Error = russh::Error;

    async fn authentication_banner(&mut self) -> Result<Option<String>, Self::Error> {
        Ok(self.shared.live().banner.clone())
    }

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        let mut state = self.state();
        state.tried = true;
        state.user.get_or_insert_with(|| user.chars().take(64).collect());
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: russh::server::PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        self.state().tried = true;
        Ok(match self.check(user, offer.public_key) {
            Ok(_) => Auth::Accept,
            Err(why) => {
                debug!("key offered for {} not accepted: {why}", shown(user));
                let mut state = self.state();
                state.refusal = Some(why);
                state.user.get_or_insert_with(|| user.chars().take(64).collect());
                Auth::reject()
            }
        })
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        // Checked again: the file may have changed since the offer, and a client may sign
        // without offering first.
        match self.check(user, key.public_key) {
            Ok((entry, print)) => {
                self.grant = Some(entry);
                let mut state = self.state();
                state.user = Some(user.to_owned());
                state.key = Some(print);
                state.refusal = None;
                Ok(Auth::Accept)
            }
            Err(why) => Ok(self.refuse_sign_in(user, why)),
        }
    }

    async fn auth_succeeded(&mut self, _session: &mut Session) -> Result<(), Self::Error> {
        self.startup.take();
        if let Some(tx) = self.signed_in.take() {
            let _ = tx.send(());
        }
        let mut state = self.state();
        state.signed_in = true;
        info!(user = state.user.as_deref().unwrap_or(""), key = state.key.as_deref().unwrap_or(""), "signed in");
        Ok(())
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.sessions.len() >= self.shared.live().config.max_sessions {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        self.sessions.insert(channel.id(), ());
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        self.sessions.remove(&channel);
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        _term: &str,
        _col_width: u32,
        _row_height: u32,
        _pix_width: u32,
        _pix_height: u32,
        _modes: &[(russh::Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        _variable_name: &str,
        _variable_value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        session.channel_failure(channel)
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        peer_warn!("ssh refused", Some(self.peer.ip()), "subsystem {} refused: this host only forwards", shown(name));
        session.channel_failure(channel)
    }

    async fn shell_request(&mut self, channel: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        let live = self.shared.live();
        let text = vms::welcome(live.banner.as_deref(), &self.listing());
        self.answer(channel, session, text, String::new(), 0)
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let command = String::from_utf8_lossy(data);
        let words: Vec<&str> = command.split_whitespace().collect();
        match words.as_slice() {
            ["vms"] => {
                let text = vms::table(&self.listing());
                self.answer(channel, session, text, String::new(), 0)
            }
            ["vms", "--json"] => {
                let text = vms::json(&self.listing());
                self.answer(channel, session, text, String::new(), 0)
            }
            _ => {
                let error = format!(
                    "halite-jumpbox runs no commands ({}); it forwards (ssh -J, -W, -L, -D).\nIt answers: vms, vms --json\n",
                    shown(data)
                );
                self.answer(channel, session, String::new(), error, 1)
            }
        }
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let started = Instant::now();
        let user = self.state().user.clone().unwrap_or_default();
        let mut record = Record::new(Event::Forward, self.peer, SystemTime::now()).user(Some(&user));
        record.key = self.state().key.clone();
        // JSON-escaped in the line; cut so a hostile name cannot make the line long.
        let host: String = host_to_connect.chars().take(forward::MAX_HOST + 2).collect();
        record.destination = Some(format!("{host}:{port_to_connect}"));
        let Some(grant) = &self.grant else {
            reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
            return Ok(());
        };
        let request = match Request::parse(host_to_connect, port_to_connect, |h, p| grant.may_open(h, p)) {
            Ok(request) => request,
            Err(refused) => {
                self.refuse_forward(reply, record, refused).await;
                return Ok(());
            }
        };
        let Some(slot) = ForwardSlot::take(&self.shared, &user) else {
            self.refuse_forward(reply, record, Refused::TooManyChannels).await;
            return Ok(());
        };
        let live = self.shared.live();
        let networks = live.config.networks_for(&user);
        let connect_timeout = live.config.connect_timeout;
        let shared = self.shared.clone();
        let peer = self.peer;
        let mut stop = self.stop.clone();
        let span = tracing::info_span!("forward", destination = %record.destination.as_deref().unwrap_or(""));
        let task = tokio::spawn(
            async move {
                let _slot = slot;
                let stream = match connect(&request, &networks, connect_timeout).await {
                    Ok(stream) => stream,
                    Err(refused) => {
                        peer_warn!("ssh forward", Some(peer.ip()), "forward for {user} refused: {refused}");
                        let failure = if refused.is_policy() {
                            ChannelOpenFailure::AdministrativelyProhibited
                        } else {
                            ChannelOpenFailure::ConnectFailed
                        };
                        reply.reject(failure).await;
                        record.refused = Some(refused.to_string());
                        shared.audit.write(&record.lasted(started.elapsed()));
                        return;
                    }
                };
                record.address = stream.peer_addr().ok();
                reply.accept().await;
                let to_destination = Arc::new(AtomicU64::new(0));
                let to_client = Arc::new(AtomicU64::new(0));
                let mut tcp = Counted { inner: stream, read: to_client.clone() };
                let mut ssh = Counted { inner: channel.into_stream(), read: to_destination.clone() };
                tokio::select! {
                    copied = tokio::io::copy_bidirectional(&mut ssh, &mut tcp) => {
                        if let Err(e) = copied {
                            debug!("forward ended: {e}");
                        }
                    }
                    _ = stop.changed() => debug!("forward stopped: its connection closed"),
                }
                record.bytes_in = to_destination.load(Ordering::Relaxed);
                record.bytes_out = to_client.load(Ordering::Relaxed);
                shared.audit.write(&record.lasted(started.elapsed()));
            }
            .instrument(span),
        );
        let mut state = self.state();
        state.forwards.retain(|f| !f.is_finished());
        state.forwards.push(task);
        Ok(())
    }

    async fn channel_open_x11(
        &mut self,
        _channel: Channel<Msg>,
        _originator_address: &str,
        _originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn channel_open_direct_streamlocal(
        &mut self,
        _channel: Channel<Msg>,
        socket_path: &str,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        peer_warn!(
            "ssh refused",
            Some(self.peer.ip()),
            "forward to socket {} refused: only TCP forwards",
            shown(socket_path)
        );
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        Ok(())
    }

    async fn tcpip_forward(
        &mut self,
        address: &str,
        port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        peer_warn!(
            "ssh refused",
            Some(self.peer.ip()),
            "remote forward {}:{port} refused: this host only forwards outward",
            shown(address)
        );
        let host: String = address.chars().take(forward::MAX_HOST + 2).collect();
        let mut record = Record::new(Event::Forward, self.peer, SystemTime::now()).user(self.state().user.as_deref());
        record.key = self.state().key.clone();
        record.destination = Some(format!("{host}:{port}"));
        record.refused = Some("remote forwarding (-R) is not offered".to_owned());
        self.shared.audit.write(&record);
        Ok(false)
    }

    async fn agent_request(&mut self, _channel: ChannelId, _session: &mut Session) -> Result<bool, Self::Error> {
        peer_warn!(
            "ssh refused",
            Some(self.peer.ip()),
            "agent forwarding refused: this host runs nothing that could use it"
        );
        Ok(false)
    }
}

impl Connection {
    fn listing(&self) -> vms::Listing {
        let live = self.shared.live();
        let Some(path) = &live.config.vms else {
            return Err("no roster is configured (vms: in jumpbox.yaml)".to_owned());
        };
        use std::io::Read;
        let mut text = String::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(vms::MAX_ROSTER_BYTES).read_to_string(&mut text))
            .map_err(|e| format!("{}: {e}", path.display()))?;
        vms::parse_roster(&text)
    }

    /// Sends a session channel's whole answer and closes it: no shell ever runs.
    fn answer(
        &self,
        channel: ChannelId,
        session: &mut Session,
        out: String,
        err: String,
        status: u32,
    ) -> Result<(), russh::Error> {
        session.channel_success(channel)?;
        if !out.is_empty() {
            session.data(channel, out.into_bytes())?;
        }
        if !err.is_empty() {
            session.extended_data(channel, 1, err.into_bytes())?;
        }
        session.exit_status_request(channel, status)?;
        session.eof(channel)?;
        session.close(channel)?;
        let mut record = Record::new(Event::Session, self.peer, SystemTime::now()).user(self.state().user.as_deref());
        record.key = self.state().key.clone();
        self.shared.audit.write(&record);
        Ok(())
    }

    async fn refuse_forward(&self, reply: ChannelOpenHandle, mut record: Record, refused: Refused) {
        peer_warn!(
            "ssh forward",
            Some(self.peer.ip()),
            "forward to {} refused: {refused}",
            record.destination.as_deref().unwrap_or("")
        );
        reply.reject(ChannelOpenFailure::AdministrativelyProhibited).await;
        record.refused = Some(refused.to_string());
        self.shared.audit.write(&record);
    }
}

/// Resolves once, keeps the addresses inside the networks, and connects to the first that
/// answers. The connection is made to those checked addresses only.
async fn connect(
    request: &Request,
    networks: &[ipnet::IpNet],
    timeout: std::time::Duration,
) -> Result<TcpStream, Refused> {
    let resolved: Vec<IpAddr> = match request.literal {
        Some(addr) => vec![addr],
        None => {
            match tokio::time::timeout(timeout, tokio::net::lookup_host((request.host.as_str(), request.port))).await {
                Ok(Ok(addrs)) => addrs.map(|a| a.ip()).take(64).collect(),
                Ok(Err(e)) => return Err(Refused::Unreachable(format!("{}: {e}", request.host))),
                Err(_) => return Err(Refused::Unreachable(format!("{}: lookup timed out", request.host))),
            }
        }
    };
    let allowed = allowed_addresses(&request.host, &resolved, networks)?;
    let mut last = String::new();
    for addr in allowed {
        let target = SocketAddr::new(addr, request.port);
        match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Ok(Err(e)) => last = format!("{target}: {e}"),
            Err(_) => last = format!("{target}: connect timed out"),
        }
    }
    Err(Refused::Unreachable(last))
}

/// A stream that counts the bytes read from it, for the audit line of a forward however it
/// ends.
struct Counted<S> {
    inner: S,
    read: Arc<AtomicU64>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Counted<S> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        self.read.fetch_add((buf.filled().len() - before) as u64, Ordering::Relaxed);
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Counted<S> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, data)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// One of a user's `max_channels_per_user` forwards, given back when dropped.
struct ForwardSlot {
    shared: Arc<Shared>,
    user: String,
}

impl ForwardSlot {
    fn take(shared: &Arc<Shared>, user: &str) -> Option<ForwardSlot> {
        let limit = shared.live().config.max_channels_per_user;
        let mut forwards = shared.forwards.lock().unwrap_or_else(|e| e.into_inner());
        let open = forwards.entry(user.to_owned()).or_insert(0);
        if *open >= limit {
            return None;
        }
        *open += 1;
        Some(ForwardSlot { shared: shared.clone(), user: user.to_owned() })
    }
}

impl Drop for ForwardSlot {
    fn drop(&mut self) {
        let mut forwards = self.shared.forwards.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(open) = forwards.get_mut(&self.user) {
            *open -= 1;
            if *open == 0 {
                forwards.remove(&self.user);
            }
        }
    }
}
