//! The request channel's commands, parsed once: the one table of what a minion may ask the
//! master over an opened AES request (Salt's `AESFuncs.expose_methods`), who must be proven
//! to ask it, and the typed outcome every handler returns.
//!
//! Why a table and two kinds: a command that reads or writes one minion's data (its pillar,
//! its returns, its mine, its events, its peer jobs) is a [`MinionCmd`], and its handler can
//! only be reached with a [`Caller`], which only [`crate::master`]'s authentication step makes
//! (the id proven by the minion's key, never the `id` a load claims). A command any holder of
//! the opening key may ask (the file server's) is a [`SharedCmd`]. A new command must be put
//! in one of the two, so an identity check cannot be forgotten by a new handler.

use std::net::IpAddr;

use halite_proto::payload::Value;

use crate::jobs::PendingReturn;
use crate::peer::DeferredCmd;

/// A command whose handler acts for one minion: it needs a [`Caller`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MinionCmd {
    Pillar,
    MinionEvent,
    Return,
    Mine(MineCmd),
    MinionPub,
    PubRet,
    MinionPublish,
    MinionRunner,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MineCmd {
    Update,
    Get,
    Delete,
    Flush,
}

/// The file server's commands and what a minion asks before it renders states.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileCmd {
    Envs,
    List,
    DirList,
    EmptyDirs,
    SymlinkList,
    Hash,
    HashAndStat,
    Find,
    Serve,
    MasterOpts,
    /// `_master_tops` and `_ext_nodes`: halite has no master_tops, and answers `{}` as Salt
    /// does without them.
    MasterTops,
}

/// A command any holder of the key that opened the request may ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedCmd {
    File(FileCmd),
    /// 3008 minions announce the resources they manage at start; halite has no resource
    /// targeting (T@/M@), and the minion only logs the answer.
    RegisterResources,
    /// Salt's AESFuncs commands halite does not serve (syndics, `revoke_auth`, file uploads):
    /// answered `False`, as Salt answers a function it does not have.
    NotServed(&'static str),
}

/// What a request's `cmd` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Minion(MinionCmd),
    Shared(SharedCmd),
    /// A `__private` name: Salt answers `{}` without running anything.
    Private,
    /// Anything else, or no `cmd`: Salt answers `False`.
    Unknown,
}

/// Every command name the master knows, and what it is.
const TABLE: &[(&str, Command)] = {
    use Command::{Minion as M, Shared as S};
    use FileCmd as F;
    use MinionCmd as C;
    &[
        ("_pillar", M(C::Pillar)),
        ("_minion_event", M(C::MinionEvent)),
        ("_return", M(C::Return)),
        ("_mine", M(C::Mine(MineCmd::Update))),
        ("_mine_get", M(C::Mine(MineCmd::Get))),
        ("_mine_delete", M(C::Mine(MineCmd::Delete))),
        ("_mine_flush", M(C::Mine(MineCmd::Flush))),
        ("minion_pub", M(C::MinionPub)),
        ("pub_ret", M(C::PubRet)),
        ("minion_publish", M(C::MinionPublish)),
        ("minion_runner", M(C::MinionRunner)),
        ("_file_envs", S(SharedCmd::File(F::Envs))),
        ("_file_list", S(SharedCmd::File(F::List))),
        ("_dir_list", S(SharedCmd::File(F::DirList))),
        ("_file_list_emptydirs", S(SharedCmd::File(F::EmptyDirs))),
        ("_symlink_list", S(SharedCmd::File(F::SymlinkList))),
        ("_file_hash", S(SharedCmd::File(F::Hash))),
        ("_file_hash_and_stat", S(SharedCmd::File(F::HashAndStat))),
        ("_file_find", S(SharedCmd::File(F::Find))),
        ("_serve_file", S(SharedCmd::File(F::Serve))),
        ("_master_opts", S(SharedCmd::File(F::MasterOpts))),
        ("_master_tops", S(SharedCmd::File(F::MasterTops))),
        ("_ext_nodes", S(SharedCmd::File(F::MasterTops))),
        ("_register_resources", S(SharedCmd::RegisterResources)),
        ("_syndic_return", S(SharedCmd::NotServed("_syndic_return"))),
        ("_file_recv", S(SharedCmd::NotServed("_file_recv"))),
        ("revoke_auth", S(SharedCmd::NotServed("revoke_auth"))),
        ("verify_minion", S(SharedCmd::NotServed("verify_minion"))),
        ("_handle_minion_event", S(SharedCmd::NotServed("_handle_minion_event"))),
    ]
};

impl Command {
    pub(crate) fn parse(cmd: Option<&str>) -> Command {
        match cmd {
            None => Command::Unknown,
            Some(name) if name.starts_with("__") => Command::Private,
            Some(name) => TABLE.iter().find(|(known, _)| *known == name).map_or(Command::Unknown, |(_, c)| *c),
        }
    }
}

/// A minion whose id the request proved: the v3 session key that opened it and its `tok`, or
/// (with `minimum_auth_version: 2`) a `tok` that verifies against the accepted key of the id
/// the load names. Only the master's authentication step makes one.
#[derive(Debug, Clone)]
pub struct Caller {
    id: String,
    /// Where the request came from, for rate-limited log lines.
    ip: Option<IpAddr>,
}

impl Caller {
    /// Kept to the authentication step (and the master's own requests on a minion's behalf).
    pub(crate) fn proven(id: String, ip: Option<IpAddr>) -> Caller {
        Caller { id, ip }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn ip(&self) -> Option<IpAddr> {
        self.ip
    }
}

/// What a handler decided to send.
pub(crate) enum Outcome {
    /// Sealed with the key that opened the request.
    Send(Value),
    /// Sent unencrypted: a refusal string Salt sends in the clear.
    SendClear(Value),
    /// Already sealed for this minion alone (`_pillar`'s `send_private`), sent as is.
    SendPrivate(Value),
    /// A `_return`: `reply` is sent once the return is durable.
    AfterCommit { ret: PendingReturn, reply: Value },
    /// Answered later from a thread of its own (it waits for other minions' returns).
    Deferred { cmd: DeferredCmd, caller: Caller, load: Value },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_in_the_table_once() {
        let mut names: Vec<&str> = TABLE.iter().map(|(n, _)| *n).collect();
        names.sort_unstable();
        let before = names.len();
        names.dedup();
        assert_eq!(before, names.len());
    }

    #[test]
    fn commands_on_a_minions_data_need_a_caller() {
        for name in ["_pillar", "_minion_event", "_return", "_mine", "_mine_get", "minion_pub", "pub_ret"] {
            assert!(matches!(Command::parse(Some(name)), Command::Minion(_)), "{name}");
        }
        for name in ["_file_list", "_serve_file", "_master_opts", "_register_resources"] {
            assert!(matches!(Command::parse(Some(name)), Command::Shared(_)), "{name}");
        }
        assert_eq!(Command::parse(Some("__init__")), Command::Private);
        assert_eq!(Command::parse(Some("_pillarx")), Command::Unknown);
        assert_eq!(Command::parse(None), Command::Unknown);
    }
}
