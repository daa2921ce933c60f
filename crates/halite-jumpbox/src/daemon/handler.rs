//! One connection's SSH handler: public-key sign-in from `authorized_keys`, forwards, the
//! session channel's listing, and a refusal for everything else.
//!
//! russh calls these methods one at a time per connection, so none of them waits on the
//! network: the `authorized_keys` read runs on the blocking pool, and a forward's lookup,
//! connect and copy run in their own task, which answers the channel-open once it knows.
//! A forward whose destination stops reading is closed after `stall_timeout`
//! (`io::forward`), since russh stops reading the whole connection while one channel's
//! queue is full.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use halite_authkeys::{fingerprint, CivilTime, Entry};
use halite_jumpbox::audit::{Event, Record};
use halite_jumpbox::config::{expand, valid_user};
use halite_jumpbox::forward::{self, allowed_addresses, Refused, Request};
use halite_jumpbox::{certs, vms};
use halite_ratelog::{peer_warn, shown};
use russh::keys::{Algorithm, Certificate, PublicKey};
use russh::server::{Auth, ChannelOpenHandle, Handler, Msg, PublicKeyOffer, Session, VerifiedPublicKey};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, Instrument};

use crate::daemon::io::{self, Carried};
use crate::daemon::keys::{self, AuthorizedFile};
use crate::daemon::Shared;

/// Addresses of one name tried in turn: a name with more is a misconfiguration or an
/// attempt to hold a forward slot for many connect timeouts.
const MAX_ADDRESSES_TRIED: usize = 4;

/// What the connection's end needs to know, shared with the task that serves it.
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
    /// Open channels (sessions and forwards), and since when none has been.
    channels: usize,
    idle_since: Instant,
}

impl State {
    pub fn new() -> State {
        State {
            user: None,
            key: None,
            signed_in: false,
            tried: false,
            refusal: None,
            forwards: Vec::new(),
            channels: 0,
            idle_since: Instant::now(),
        }
    }

    /// How long the connection has had no channel open; `None` while one is.
    pub fn idle_for(&self) -> Option<Duration> {
        (self.channels == 0).then(|| self.idle_since.elapsed())
    }

    fn remember_user(&mut self, user: &str) {
        self.user.get_or_insert_with(|| user.chars().take(64).collect());
    }
}

impl Default for State {
    fn default() -> State {
        State::new()
    }
}

/// One open channel of the connection, counted while it lives (`idle_timeout`).
struct OpenChannel {
    state: Arc<Mutex<State>>,
}

impl OpenChannel {
    fn new(state: &Arc<Mutex<State>>) -> OpenChannel {
        state.lock().unwrap_or_else(|e| e.into_inner()).channels += 1;
        OpenChannel { state: state.clone() }
    }
}

impl Drop for OpenChannel {
    fn drop(&mut self) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.channels -= 1;
        if state.channels == 0 {
            state.idle_since = Instant::now();
        }
    }
}

pub struct Connection {
    shared: Arc<Shared>,
    peer: SocketAddr,
    state: Arc<Mutex<State>>,
    signed_in: Option<oneshot::Sender<()>>,
    /// The `authorized_keys` line the key signed in with.
    grant: Option<Entry>,
    sessions: HashMap<ChannelId, OpenChannel>,
    /// Each open forward's own stop, fired when the client closes its channel: russh's
    /// stream then never grows the window again, and the copy back would wait forever.
    forward_stops: HashMap<ChannelId, oneshot::Sender<()>>,
    stop: watch::Receiver<bool>,
    /// The last user's file, read once per connection however many keys the client offers.
    file: Option<(String, Result<Arc<AuthorizedFile>, String>)>,
    /// Key offers so far: russh counts refused ones only, and each offer is a lookup.
    offers: usize,
}

impl Connection {
    pub fn new(
        shared: Arc<Shared>,
        peer: SocketAddr,
        state: Arc<Mutex<State>>,
        signed_in: oneshot::Sender<()>,
        stop: watch::Receiver<bool>,
    ) -> Connection {
        Connection {
            shared,
            peer,
            state,
            signed_in: Some(signed_in),
            grant: None,
            sessions: HashMap::new(),
            forward_stops: HashMap::new(),
            stop,
            file: None,
            offers: 0,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether `user` is a local account that may sign in (not past its expiry), as sshd
    /// requires of a certificate's user too.
    async fn account_usable(&self, user: &str) -> Result<(), String> {
        if !valid_user(user) {
            return Err(format!("invalid user {}", shown(user)));
        }
        let owned = user.to_owned();
        let account = tokio::task::spawn_blocking(move || keys::account(&owned)).await.ok().flatten();
        match account {
            None => Err(format!("invalid user {user}")),
            Some(a) if a.expired => Err(format!("account {user} has expired")),
            Some(_) => Ok(()),
        }
    }

    /// The user's `authorized_keys`, read on the blocking pool the first time a connection
    /// asks for that user.
    async fn authorized(&mut self, user: &str) -> Result<Arc<AuthorizedFile>, String> {
        if let Some((cached, file)) = &self.file {
            if cached == user {
                return file.clone();
            }
        }
        let file = if !valid_user(user) {
            Err(format!("invalid user {}", shown(user)))
        } else {
            let pattern = self.shared.live().config.authorized_keys.clone();
            let owned = user.to_owned();
            tokio::task::spawn_blocking(move || {
                let account = keys::account(&owned).ok_or_else(|| format!("invalid user {owned}"))?;
                if account.expired {
                    return Err(format!("account {owned} has expired"));
                }
                let path = expand(&pattern, &owned, &account.home.to_string_lossy())?;
                keys::authorized_keys(&path, &account).map(Arc::new)
            })
            .await
            .unwrap_or_else(|e| Err(format!("reading authorized_keys failed: {e}")))
        };
        if let Ok(file) = &file {
            for e in &file.keys.errors {
                debug!(path = %file.path.display(), "{e}");
            }
        }
        self.file = Some((user.to_owned(), file.clone()));
        file
    }

    /// The line of the user's `authorized_keys` that lets `key`, signing with `algorithm`,
    /// sign in from this peer, with the key's fingerprint; or why none does.
    async fn check(&mut self, user: &str, key: &PublicKey, algorithm: &Algorithm) -> Result<(Entry, String), String> {
        if matches!(algorithm, Algorithm::Rsa { hash: None }) {
            // SHA-1 signatures: OpenSSH 8.8 stopped accepting them.
            return Err("ssh-rsa (SHA-1) signatures are not accepted; use rsa-sha2-256 or -512".to_owned());
        }
        let blob = key.to_bytes().map_err(|e| format!("key not encodable: {e}"))?;
        let print = fingerprint(&blob);
        let file = self.authorized(user).await?;
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let mut last_refusal = None;
        for entry in file.keys.lines_for(&blob) {
            let admitted = entry.admits(self.peer.ip(), now, &local_time).and_then(|()| touch_policy(entry));
            match admitted {
                Ok(()) => return Ok((entry.clone(), print)),
                Err(refusal) => last_refusal = Some(format!("{}: {refusal}", file.path.display())),
            }
        }
        Err(last_refusal.unwrap_or_else(|| format!("key {print} not in {}", file.path.display())))
    }

    fn refuse_sign_in(&self, user: &str, why: String) -> Auth {
        peer_warn!("ssh auth", Some(self.peer.ip()), "sign-in as {} from {} refused: {why}", shown(user), self.peer);
        let mut state = self.state();
        state.remember_user(user);
        state.refusal = Some(why);
        Auth::reject()
    }

    fn record(&self, event: Event) -> Record {
        let state = self.state();
        let mut record = Record::new(event, self.peer, SystemTime::now()).user(state.user.as_deref());
        record.key = state.key.clone();
        record
    }
}

/// Security keys (`sk-*`) prove a touch, or a PIN, in flags russh does not check: such a
/// key signs in only where its line waives the touch, as `no-touch-required` does in sshd,
/// and never where it asks for a PIN.
fn touch_policy(entry: &Entry) -> Result<(), halite_authkeys::Refusal> {
    let sk = entry.key_type.starts_with("sk-");
    if sk && (!entry.options.no_touch_required || entry.options.verify_required) {
        return Err(halite_authkeys::Refusal::Unverifiable { line: entry.line });
    }
    Ok(())
}

/// An `expiry-time` without a zone, read in the system's zone as sshd reads it (mktime(3),
/// daylight saving as of that date).
fn local_time(t: &CivilTime) -> i64 {
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    tm.tm_year = t.year - 1900;
    tm.tm_mon = t.month as i32 - 1;
    tm.tm_mday = t.day as i32;
    tm.tm_hour = t.hour as i32;
    tm.tm_min = t.minute as i32;
    tm.tm_sec = t.second as i32;
    tm.tm_isdst = -1;
    // SAFETY: `tm` is a live local; mktime only reads and normalises it.
    let at = unsafe { libc::mktime(&mut tm) };
    if at == -1 {
        t.as_utc()
    } else {
        at
    }
}

impl Handler for Connection {
    type Error = russh::Error;

    async fn authentication_banner(&mut self) -> Result<Option<String>, Self::Error> {
        Ok(self.shared.live().banner.clone())
    }

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        let mut state = self.state();
        state.tried = true;
        state.remember_user(user);
        Ok(Auth::reject())
    }

    async fn auth_publickey_offered(&mut self, user: &str, offer: PublicKeyOffer<'_>) -> Result<Auth, Self::Error> {
        {
            let mut state = self.state();
            state.tried = true;
            state.remember_user(user);
        }
        self.offers += 1;
        if self.offers > self.shared.live().config.max_auth_tries {
            return Ok(self.refuse_sign_in(user, "too many keys offered".to_owned()));
        }
        Ok(match self.check(user, offer.public_key, offer.algorithm).await {
            Ok(_) => Auth::Accept,
            // russh asks about a certificate's offer with the certified key alone, which
            // looks like any key: with CAs trusted, the signed request decides
            // (`auth_openssh_certificate` for a certificate, `auth_publickey` for a key).
            // SHA-1 stays refused: the certificate path does not see the algorithm.
            Err(why)
                if self.shared.live().config.trusted_user_ca_keys.is_some()
                    && !matches!(offer.algorithm, Algorithm::Rsa { hash: None }) =>
            {
                self.state().refusal = Some(why);
                Auth::Accept
            }
            Err(why) => {
                debug!("key offered for {} not accepted: {why}", shown(user));
                self.state().refusal = Some(why);
                Auth::reject()
            }
        })
    }

    async fn auth_publickey(&mut self, user: &str, key: VerifiedPublicKey<'_>) -> Result<Auth, Self::Error> {
        // Checked again: a client may sign without offering first, and with another
        // algorithm than it offered.
        match self.check(user, key.public_key, key.algorithm).await {
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

    async fn auth_openssh_certificate(&mut self, user: &str, certificate: &Certificate) -> Result<Auth, Self::Error> {
        // russh has checked the certificate's own signature and validity window.
        let Some(ca_file) = self.shared.live().config.trusted_user_ca_keys.clone() else {
            return Ok(self.refuse_sign_in(user, "no trusted_user_ca_keys: certificates are not accepted".to_owned()));
        };
        let authorities = tokio::task::spawn_blocking(move || keys::authorities(&ca_file))
            .await
            .unwrap_or_else(|e| Err(format!("reading the CA keys failed: {e}")));
        let authorities = match authorities {
            Ok(authorities) => authorities,
            Err(why) => return Ok(self.refuse_sign_in(user, format!("trusted_user_ca_keys: {why}"))),
        };
        let signer = PublicKey::from(certificate.signature_key().clone()).to_bytes();
        let certified = PublicKey::from(certificate.public_key().clone()).to_bytes();
        let (Ok(signer), Ok(certified)) = (signer, certified) else {
            return Ok(self.refuse_sign_in(user, "certificate keys not encodable".to_owned()));
        };
        let facts = certs::Certificate {
            user_certificate: certificate.cert_type().is_user(),
            principals: certificate.valid_principals(),
            critical_options: &certificate.critical_options().0,
            extensions: &certificate.extensions().0,
            signer: &signer,
            signed_with_sha1: matches!(certificate.signature().algorithm(), Algorithm::Rsa { hash: None }),
            security_key: certificate.algorithm().to_string().starts_with("sk-"),
        };
        let decided = match self.account_usable(user).await {
            Ok(()) => certs::admit(&facts, user, self.peer.ip(), &authorities),
            Err(why) => Err(why),
        };
        match decided {
            Ok(grant) => {
                let key_id: String = certificate.key_id().chars().take(64).collect();
                let print = format!(
                    "{} (certificate {key_id:?}, serial {}, CA {})",
                    fingerprint(&certified),
                    certificate.serial(),
                    fingerprint(&signer)
                );
                let key_type = certificate.algorithm().to_string();
                self.grant = Some(Entry::granted(key_type, certified, key_id, grant.port_forwarding));
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
        self.file = None;
        if let Some(tx) = self.signed_in.take() {
            let _ = tx.send(());
        }
        let mut state = self.state();
        state.signed_in = true;
        state.idle_since = Instant::now();
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
        self.sessions.insert(channel.id(), OpenChannel::new(&self.state));
        reply.accept().await;
        Ok(())
    }

    async fn channel_close(&mut self, channel: ChannelId, _session: &mut Session) -> Result<(), Self::Error> {
        self.sessions.remove(&channel);
        if let Some(stop) = self.forward_stops.remove(&channel) {
            let _ = stop.send(());
        }
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
        let banner = self.shared.live().banner.clone();
        let text = vms::welcome(banner.as_deref(), &self.listing().await);
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
                let text = vms::table(&self.listing().await);
                self.answer(channel, session, text, String::new(), 0)
            }
            ["vms", "--json"] => {
                let text = vms::json(&self.listing().await);
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
        let mut record = self.record(Event::Forward);
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
        // Forwards that ended by themselves were closed by this side, and russh calls no
        // channel_close for those: their stops are dropped here.
        self.forward_stops.retain(|_, stop| !stop.is_closed());
        let (closed_tx, mut closed_rx) = oneshot::channel::<()>();
        self.forward_stops.insert(channel.id(), closed_tx);
        let live = self.shared.live();
        let networks = live.config.networks_for(&user);
        let (connect_timeout, stall) = (live.config.connect_timeout, live.config.stall_timeout);
        let shared = self.shared.clone();
        let peer = self.peer;
        let mut stop = self.stop.clone();
        let open = OpenChannel::new(&self.state);
        let span = tracing::info_span!("forward", destination = %record.destination.as_deref().unwrap_or(""));
        let task = tokio::spawn(
            async move {
                // Given back before the audit line is written: a reader of the log may
                // open the next forward at once.
                let held = (slot, open);
                let connected = tokio::select! {
                    connected = tokio::time::timeout(connect_timeout, connect(&request, &networks)) => connected
                        .unwrap_or_else(|_| Err(Refused::Unreachable(format!("{}: no connection within {}s", request.host, connect_timeout.as_secs())))),
                    _ = stop.changed() => Err(Refused::Unreachable("the client's connection closed".to_owned())),
                };
                let stream = match connected {
                    Ok(stream) => stream,
                    Err(refused) => {
                        debug!("forward for {user} refused: {refused}");
                        let failure = if refused.is_policy() {
                            ChannelOpenFailure::AdministrativelyProhibited
                        } else {
                            ChannelOpenFailure::ConnectFailed
                        };
                        reply.reject(failure).await;
                        drop(held);
                        record.refused = Some(refused.to_string());
                        shared.audit.limited("forward refused", peer.ip(), record.lasted(started.elapsed()));
                        return;
                    }
                };
                record.address = stream.peer_addr().ok();
                reply.accept().await;
                let carried = Carried::default();
                tokio::select! {
                    copied = io::forward(channel.into_stream(), stream, &carried, stall) => {
                        if let Err(e) = copied {
                            info!("forward ended: {e}");
                        }
                    }
                    _ = stop.changed() => debug!("forward stopped: its connection closed"),
                    _ = &mut closed_rx => debug!("forward stopped: the client closed its channel"),
                }
                drop(held);
                record.bytes_in = carried.to_destination.load(Ordering::Relaxed);
                record.bytes_out = carried.to_client.load(Ordering::Relaxed);
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
        let mut record = self.record(Event::Forward);
        record.destination = Some(format!("{host}:{port}"));
        record.refused = Some("remote forwarding (-R) is not offered".to_owned());
        self.shared.audit.limited("remote forward", self.peer.ip(), record);
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
    /// The roster, read on the blocking pool.
    async fn listing(&self) -> vms::Listing {
        let Some(path) = self.shared.live().config.vms.clone() else {
            return Err("no roster is configured (vms: in jumpbox.yaml)".to_owned());
        };
        tokio::task::spawn_blocking(move || {
            use std::io::Read;
            let mut text = String::new();
            keys::open_regular(&path)
                .and_then(|f| f.take(vms::MAX_ROSTER_BYTES + 1).read_to_string(&mut text))
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if text.len() as u64 > vms::MAX_ROSTER_BYTES {
                return Err(format!("{} is larger than {} bytes", path.display(), vms::MAX_ROSTER_BYTES));
            }
            vms::parse_roster(&text)
        })
        .await
        .unwrap_or_else(|e| Err(format!("reading the roster failed: {e}")))
    }

    /// Sends a session channel's whole answer and closes it: no shell ever runs. A channel
    /// is answered once; an answer larger than the window the client opened is replaced by
    /// a short error, so nothing waits in russh's queue for a window that may never come.
    fn answer(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
        out: String,
        err: String,
        status: u32,
    ) -> Result<(), russh::Error> {
        // Answered channels leave the map: a second shell or exec on one gets a failure.
        let Some(open) = self.sessions.remove(&channel) else {
            return session.channel_failure(channel);
        };
        let window = session.window_size(&channel) as usize;
        let (out, err, status) = if out.len() + err.len() <= window {
            (out, err, status)
        } else {
            let short = "halite-jumpbox: the channel's window is too small for the answer\n".to_owned();
            (String::new(), if short.len() <= window { short } else { String::new() }, 1)
        };
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
        // russh forgets a channel this side closes, and calls no channel_close for it.
        drop(open);
        self.shared.audit.limited("session", self.peer.ip(), self.record(Event::Session));
        Ok(())
    }

    async fn refuse_forward(&self, reply: ChannelOpenHandle, mut record: Record, refused: Refused) {
        debug!("forward to {} refused: {refused}", record.destination.as_deref().unwrap_or(""));
        let failure = match refused {
            Refused::TooManyChannels => ChannelOpenFailure::ResourceShortage,
            _ => ChannelOpenFailure::AdministrativelyProhibited,
        };
        reply.reject(failure).await;
        record.refused = Some(refused.to_string());
        self.shared.audit.limited("forward refused", self.peer.ip(), record);
    }
}

/// Resolves once, keeps the addresses inside the networks, and connects to the first of
/// them that answers. The connection is made to those checked addresses only.
async fn connect(request: &Request, networks: &[ipnet::IpNet]) -> Result<TcpStream, Refused> {
    let resolved: Vec<IpAddr> = match request.literal {
        Some(addr) => vec![addr],
        None => match tokio::net::lookup_host((request.host.as_str(), request.port)).await {
            Ok(addrs) => addrs.map(|a| a.ip()).take(64).collect(),
            Err(e) => return Err(Refused::Unreachable(format!("{}: {e}", request.host))),
        },
    };
    let allowed = allowed_addresses(&request.host, &resolved, networks)?;
    let mut last = String::new();
    for addr in allowed.into_iter().take(MAX_ADDRESSES_TRIED) {
        let target = SocketAddr::new(addr, request.port);
        match TcpStream::connect(target).await {
            Ok(stream) => {
                let _ = stream.set_nodelay(true);
                return Ok(stream);
            }
            Err(e) => last = format!("{target}: {e}"),
        }
    }
    Err(Refused::Unreachable(last))
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
