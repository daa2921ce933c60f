//! Waiting for a job's returns over the local channel: [`halite_runner::collect`]'s rule
//! driven by the master's job events on this connection.

use std::time::Instant;

use halite_ipc::{ErrorKind, Request};
use halite_runner::{JobChannel, Published};
use halite_yaml::Value;

use crate::client::{Client, ClientError, Identity};

pub use halite_runner::collect::{retcode_of, Collector, MinionReturn, Step};

/// A connection to the master as a [`JobChannel`]: publishes as `identity`, listening to
/// each job's events on the same connection.
pub struct LocalJobs<'a> {
    pub client: &'a mut Client,
    pub identity: &'a Identity,
}

impl JobChannel for LocalJobs<'_> {
    type Error = ClientError;

    fn publish(&mut self, load: Value) -> Result<Option<Published>, ClientError> {
        let request =
            Request::Publish { user: self.identity.user.clone(), key: self.identity.key.clone(), load, listen: true };
        let reply = match self.client.call(&request) {
            Ok(reply) => reply,
            Err(ClientError::Master { kind: ErrorKind::NoMinions, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let ids = |key: &str| -> Vec<String> {
            get(&reply, key)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect())
                .unwrap_or_default()
        };
        Ok(Some(Published {
            jid: get(&reply, "jid").and_then(Value::as_str).unwrap_or("").to_owned(),
            minions: ids("minions"),
            missing: ids("missing"),
        }))
    }

    fn next_event(&mut self, deadline: Instant) -> Result<Option<(String, Value)>, ClientError> {
        self.client.next_event(deadline)
    }
}

/// Drives a [`Collector`] over a connection that published job `jid` with `listen`: prints
/// through `on_return` as returns arrive, sends the `find_job` follow-ups, and returns every
/// minion's result (those that did not return included, when `collector` expects them).
pub fn wait_for_returns(
    client: &mut Client,
    identity: &Identity,
    jid: &str,
    collector: Collector,
    on_return: impl FnMut(&MinionReturn) -> Result<(), ClientError>,
) -> Result<Vec<MinionReturn>, ClientError> {
    halite_runner::collect::wait_for_returns(&mut LocalJobs { client, identity }, jid, collector, on_return)
}

/// Salt's `gather_job_info` over this connection; `None` when nothing could be published.
pub(crate) fn publish_find_job(
    client: &mut Client,
    identity: &Identity,
    jid: &str,
    stragglers: &[String],
) -> Option<String> {
    halite_runner::collect::publish_find_job(&mut LocalJobs { client, identity }, jid, stragglers)
}

fn get<'a>(map: &'a Value, key: &str) -> Option<&'a Value> {
    map.as_map()?.iter().find(|(k, _)| k.as_str() == Some(key)).map(|(_, v)| v)
}
