//! The file server's request commands (`_serve_file`, `_file_hash`, `_file_list`, ...),
//! answered from `halite-fileserver` in Salt's reply shapes, and `_master_opts` /
//! `_master_tops`, which a minion asks for before it renders states.

use halite_fileserver::Found;
use halite_proto::payload::{map, Value, ValueExt};
use tracing::{debug, warn};

use crate::command::FileCmd;
use crate::master::Master;

fn text_list(items: impl IntoIterator<Item = String>) -> Value {
    Value::Array(items.into_iter().map(Value::from).collect())
}

/// `prefix` of a list request, stripped of slashes as Salt strips it.
fn prefix(load: &Value) -> String {
    load.get_text("prefix").unwrap_or("").trim_matches('/').to_owned()
}

fn saltenv(load: &Value) -> Option<String> {
    match load.get("saltenv") {
        Some(Value::Nil) | None => None,
        Some(v) => Some(halite_yaml::py::text(v)),
    }
}

impl Master {
    /// Answers a file-server command.
    pub fn file_command(&self, cmd: FileCmd, load: &Value) -> Value {
        match cmd {
            FileCmd::Envs => text_list(self.fileserver.envs()),
            FileCmd::List | FileCmd::DirList | FileCmd::EmptyDirs => {
                let Some(env) = saltenv(load) else { return Value::Array(vec![]) };
                let listing = self.fileserver.listing(&env);
                let items = match cmd {
                    FileCmd::List => &listing.files,
                    FileCmd::DirList => &listing.dirs,
                    _ => &listing.empty_dirs,
                };
                let prefix = prefix(load);
                text_list(items.iter().filter(|f| f.starts_with(&prefix)).cloned())
            }
            FileCmd::SymlinkList => {
                let Some(env) = saltenv(load) else { return map::<_, String>([]) };
                let prefix = prefix(load);
                Value::Map(
                    self.fileserver
                        .listing(&env)
                        .links
                        .iter()
                        .filter(|(k, _)| k.starts_with(&prefix))
                        .map(|(k, v)| (Value::from(k.as_str()), Value::from(v.as_str())))
                        .collect(),
                )
            }
            FileCmd::Hash => match self.find(load) {
                Some(found) => self.hash_of(&found),
                None => Value::from(""),
            },
            FileCmd::HashAndStat => match self.find(load) {
                Some(found) => {
                    let stat = self
                        .fileserver
                        .stat(&found)
                        .map(|s| Value::Array(s.iter().map(|n| Value::from(*n)).collect()))
                        .unwrap_or(Value::Nil);
                    Value::Array(vec![self.hash_of(&found), stat])
                }
                None => Value::Array(vec![Value::from(""), Value::Nil]),
            },
            FileCmd::Find => match self.find(load) {
                Some(found) => {
                    let stat = self.fileserver.stat(&found).ok();
                    map([
                        ("path", Value::from(found.path.to_string_lossy().into_owned())),
                        ("rel", Value::from(found.rel.as_str())),
                        (
                            "stat",
                            stat.map_or(Value::Nil, |s| Value::Array(s.iter().map(|n| Value::from(*n)).collect())),
                        ),
                        ("back", Value::from("roots")),
                    ])
                }
                None => map([("path", Value::from("")), ("rel", Value::from(""))]),
            },
            FileCmd::Serve => self.serve_file(load),
            FileCmd::MasterOpts => self.master_opts(load),
            // No master_tops are configured in halite: Salt answers `{}` then too.
            FileCmd::MasterTops => map::<_, String>([]),
        }
    }

    fn find(&self, load: &Value) -> Option<Found> {
        let path = load.get_text("path")?;
        let env = saltenv(load)?;
        let found = self.fileserver.find_file(path, &env);
        if found.is_none() {
            debug!(%path, saltenv = %env, "file not found in file_roots");
        }
        found
    }

    fn hash_of(&self, found: &Found) -> Value {
        match self.fileserver.file_hash(found) {
            Ok(hsum) => map([("hsum", Value::from(hsum)), ("hash_type", Value::from(self.fileserver.hash_type()))]),
            Err(e) => {
                warn!(error = %e, "cannot hash a file for a minion");
                map::<_, String>([])
            }
        }
    }

    /// Salt's `serve_file`: `{"data": <chunk>, "dest": <rel>}` from byte `loc`, the chunk
    /// gzipped at the level the minion asked for (then `"gzip": <level>` says so); an empty
    /// answer for a path that is not served. Chunks always go as bytes: Salt decodes text
    /// files to str first, and every minion version encodes a str back before writing.
    fn serve_file(&self, load: &Value) -> Value {
        let empty = || map([("data", Value::from("")), ("dest", Value::from(""))]);
        let Some(loc) = load.get("loc").and_then(Value::as_u64) else { return empty() };
        let Some(found) = self.find(load) else { return empty() };
        let gzip_level = load.get("gzip").and_then(Value::as_u64).filter(|l| *l > 0);
        match self.fileserver.read_chunk(&found, loc) {
            Ok(data) => match gzip_level {
                Some(level) if !data.is_empty() => map([
                    ("data", Value::Binary(halite_fileserver::gzip(&data, level as u32))),
                    ("dest", Value::from(found.rel.as_str())),
                    ("gzip", Value::from(level)),
                ]),
                _ => map([("data", Value::Binary(data)), ("dest", Value::from(found.rel.as_str()))]),
            },
            Err(e) => {
                warn!(error = %e, "cannot read a file for a minion");
                empty()
            }
        }
    }

    /// Salt's `_master_opts`: the saltenvs (with no paths), and the options that decide how
    /// minions render states; only the first three with `env_only`.
    fn master_opts(&self, load: &Value) -> Value {
        let envs: Vec<(Value, Value)> =
            self.fileserver.envs().into_iter().map(|e| (Value::from(e), Value::Array(vec![]))).collect();
        let mut opts = vec![(Value::from("file_roots"), Value::Map(envs))];
        let extra = self.settings.master_opts.as_map().cloned().unwrap_or_default();
        let env_only = load.get("env_only").and_then(Value::as_bool).unwrap_or(false);
        for (k, v) in extra {
            let first = matches!(k.as_str(), Some("top_file_merging_strategy" | "env_order" | "default_top"));
            if first || !env_only {
                opts.push((k, v));
            }
        }
        Value::Map(opts)
    }
}
