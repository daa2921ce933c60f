//! `salt-run`'s end of [`halite_runner`]: the runner functions run in the `salt-run`
//! process, as Salt's do, and use the master over the local channel.

use std::time::Instant;

use halite_config::MasterConfig;
use halite_ipc::{JobQuery, PillarQuery, Request};
use halite_runner::{mine_load, Backend, JobChannel, Published, Settings};
use halite_yaml::Value;

use crate::client::{Client, ClientError, Identity};
use crate::returns::LocalJobs;

pub use halite_runner::{RunnerError, RunnerOutput, FUNCTIONS};

pub struct Context<'a> {
    pub client: &'a mut Client,
    pub identity: &'a Identity,
    pub config: &'a MasterConfig,
    /// `-t`, when given.
    pub timeout: Option<u64>,
}

/// Calls runner `fun` with Salt's parsed arguments (`parse_input`: positionals, then a
/// `__kwarg__` dict).
pub fn call(ctx: &mut Context<'_>, fun: &str, args: &[Value]) -> Result<RunnerOutput, RunnerError> {
    let settings = Settings {
        timeout: ctx.timeout.unwrap_or(ctx.config.timeout),
        gather_job_timeout: ctx.config.gather_job_timeout(),
    };
    let mut backend = Local { jobs: LocalJobs { client: ctx.client, identity: ctx.identity }, config: ctx.config };
    halite_runner::call(&mut backend, &settings, fun, args)
}

/// The master over the local channel; accepted keys straight from the pki dir.
struct Local<'a> {
    jobs: LocalJobs<'a>,
    config: &'a MasterConfig,
}

impl Local<'_> {
    fn ask(&mut self, request: impl FnOnce(String, String) -> Request) -> Result<Value, ClientError> {
        let identity = self.jobs.identity;
        self.jobs.client.call(&request(identity.user.clone(), identity.key.clone()))
    }
}

impl JobChannel for Local<'_> {
    type Error = ClientError;

    fn publish(&mut self, load: Value) -> Result<Option<Published>, ClientError> {
        self.jobs.publish(load)
    }

    fn next_event(&mut self, deadline: Instant) -> Result<Option<(String, Value)>, ClientError> {
        self.jobs.next_event(deadline)
    }
}

impl Backend for Local<'_> {
    fn job_cache(&mut self, query: JobQuery) -> Result<Value, ClientError> {
        self.ask(|user, key| Request::Jobs { user, key, query })
    }

    fn pillar(&mut self, query: PillarQuery) -> Result<Value, ClientError> {
        self.ask(|user, key| Request::Pillar { user, key, query })
    }

    fn connected(&mut self) -> Result<Vec<String>, ClientError> {
        let reply = self.ask(|user, key| Request::Connected { user, key })?;
        Ok(reply
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
            .unwrap_or_default())
    }

    fn accepted(&mut self) -> Result<Vec<String>, ClientError> {
        let keys = |e: halite_pki::PkiError| {
            ClientError::Io(std::io::Error::other(format!("pki dir {}: {e}", self.config.pki_dir.display())))
        };
        let pki = halite_pki::PkiDir::open(&self.config.pki_dir).map_err(keys)?;
        pki.list(halite_pki::KeyState::Accepted).map_err(keys)
    }

    fn mine_get(&mut self, tgt: Value, fun: Value, tgt_type: Value) -> Result<Value, ClientError> {
        let load = mine_load(&self.config.master_id(), tgt, fun, tgt_type);
        self.ask(|user, key| Request::Mine { user, key, load })
    }

    fn notice(&mut self, text: &str) {
        println!("{text}");
    }
}
