//! `halite-swarm`: N simulated salt-minions against a master, then a JSON report.
//!
//! ```text
//! halite-swarm --minions 1000 --protocol mixed --host 127.0.0.1 --ret-port 4506 \
//!              --publish-port 4505 --duration 60 [--first 0] [--keys-dir DIR] [--prefix swarm]
//! halite-swarm --minions 4000 --first 4000 --control ...
//! ```
//!
//! The minions authenticate (the master must accept them: `auto_accept`, or `salt-key -A`
//! while they wait), fetch their pillar, subscribe, and answer `test.ping`, `test.sleep`,
//! `grains.get`, `grains.items`, `saltutil.find_job`, `state.apply` and `mine.update` for
//! `--duration` seconds after all are ready (or after the ready timeout). The report (stdout) says when all were authenticated and
//! ready, and for each job seen how many received and returned it and how long from the
//! first publish to the last return.
//!
//! With `--control`, a driver (the swarm benchmark) steers it over stdin/stdout, one JSON
//! object per output line: `{"event":"loaded"}` once the keys are in memory, then the swarm
//! starts on the input line `go`; `{"event":"ready",...}` (or `"not_ready"`) with the report
//! when all are ready; the input `report` prints the report, `ready_since <unix secs>` prints
//! `{"event":"ready_since","count":N}`, `acknowledged <jid>` prints the ids whose return of
//! the job the master acknowledged (`{"event":"acknowledged","jid":J,"ids":[...]}`),
//! `restart <n>` restarts the next n minions in turn (`{"event":"restarting","count":n}`),
//! and `stop` (or end of input) prints the final report and exits. Several processes with
//! distinct `--first` make one larger swarm.

use std::io::BufRead;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use halite_swarm::{keys, shards, Config, Protocol, Swarm};

mod parent;

struct Args {
    config: Config,
    minions: usize,
    keys_dir: PathBuf,
    duration: Duration,
    ready_timeout: Duration,
    control: bool,
    /// Run by a parent swarm for a part of its range: never split again.
    child: bool,
}

fn usage() -> &'static str {
    "usage: halite-swarm [--minions N] [--first I] [--protocol v2|v3|mixed] [--host H] [--ret-port P] \
     [--publish-port P] [--duration SECS] [--ready-timeout SECS] [--keys-dir DIR] [--prefix P] [--control]"
}

fn parse() -> anyhow::Result<Args> {
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
    let mut a = Args {
        config: Config {
            host: "127.0.0.1".into(),
            ret_port: 4506,
            publish_port: 4505,
            protocol: Protocol::Mixed,
            prefix: "swarm".into(),
            request_timeout: Duration::from_secs(60),
            first_index: 0,
        },
        minions: 100,
        keys_dir: home.join(".cache/halite/swarm-keys"),
        duration: Duration::from_secs(30),
        ready_timeout: Duration::from_secs(300),
        control: false,
        child: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "-h" | "--help" => {
                println!("{}", usage());
                std::process::exit(0);
            }
            "--control" => {
                a.control = true;
                continue;
            }
            "--child" => {
                a.child = true;
                continue;
            }
            _ => {}
        }
        let value = it.next().with_context(|| format!("{flag} needs a value\n{}", usage()))?;
        let number = |v: &str| v.parse::<u64>().with_context(|| format!("{flag}: {v:?} is not a number"));
        match flag.as_str() {
            "--minions" | "-n" => a.minions = number(&value)? as usize,
            "--first" => a.config.first_index = number(&value)? as usize,
            "--protocol" => {
                a.config.protocol = Protocol::from_name(&value).with_context(|| format!("--protocol: {value:?}"))?
            }
            "--host" => a.config.host = value,
            "--ret-port" => a.config.ret_port = number(&value)? as u16,
            "--publish-port" => a.config.publish_port = number(&value)? as u16,
            "--duration" => a.duration = Duration::from_secs(number(&value)?),
            "--ready-timeout" => a.ready_timeout = Duration::from_secs(number(&value)?),
            "--keys-dir" => a.keys_dir = PathBuf::from(value),
            "--prefix" => a.config.prefix = value,
            other => bail!("unknown option {other}\n{}", usage()),
        }
    }
    Ok(a)
}

/// One line of the control protocol.
pub(crate) fn emit(event: &str, mut body: serde_json::Value) {
    if let serde_json::Value::Object(map) = &mut body {
        map.insert("event".into(), event.into());
    }
    println!("{body}");
}

/// Input lines, read on a thread of their own so the runtime never blocks on stdin.
fn control_lines() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if tx.send(line.trim().to_owned()).is_err() {
                break;
            }
        }
    });
    rx
}

fn main() -> anyhow::Result<()> {
    let args = parse()?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let range = args.config.first_index..args.config.first_index + args.minions;
    let soft_limit = shards::raise_descriptor_limit().context("reading RLIMIT_NOFILE")?;
    let per_process = shards::capacity(soft_limit);
    if !args.child && args.minions > per_process {
        if per_process == 0 || args.minions.div_ceil(per_process) > shards::MAX_PROCESSES {
            bail!(
                "{} minions need {} descriptors at {} a minion; the limit is {soft_limit} (raise it with ulimit -n)",
                args.minions,
                args.minions as u64 * shards::DESCRIPTORS_PER_MINION + shards::RESERVED_DESCRIPTORS,
                shards::DESCRIPTORS_PER_MINION
            );
        }
        let parts = shards::split(args.config.first_index, args.minions, per_process);
        eprintln!(
            "halite-swarm: {} minions in {} processes ({per_process} a process under {soft_limit} descriptors)",
            args.minions,
            parts.len()
        );
        // Generated here once, so the children only read their part.
        keys::load_or_generate(&args.keys_dir, range, threads)?;
        return parent::run(&args, &parts);
    }
    eprintln!("halite-swarm: loading or generating keys {range:?} in {}", args.keys_dir.display());
    let keys = keys::load_or_generate(&args.keys_dir, range, threads)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let mut lines = args.control.then(control_lines);
        if let Some(lines) = lines.as_mut() {
            emit("loaded", serde_json::json!({}));
            loop {
                match lines.recv().await.as_deref() {
                    Some("go") => break,
                    Some(_) => continue,
                    None => return anyhow::Ok(()),
                }
            }
        }
        let swarm = Swarm::start(args.config, keys);
        let all_ready = swarm.wait_ready(args.ready_timeout).await;
        eprintln!("halite-swarm: {} of {} ready", swarm.ready(), args.minions);
        match lines.as_mut() {
            None => {
                if all_ready {
                    tokio::time::sleep(args.duration).await;
                }
            }
            Some(lines) => {
                emit(if all_ready { "ready" } else { "not_ready" }, swarm.report().0);
                while let Some(line) = lines.recv().await {
                    let mut words = line.split_whitespace();
                    match (words.next(), words.next()) {
                        (Some("report"), _) => emit("report", swarm.report().0),
                        (Some("ready_since"), Some(unix)) => match unix.parse::<f64>() {
                            Ok(unix) => emit("ready_since", serde_json::json!({ "count": swarm.ready_since(unix) })),
                            Err(_) => emit("error", serde_json::json!({ "not_a_time": unix })),
                        },
                        (Some("acknowledged"), Some(jid)) => {
                            emit("acknowledged", serde_json::json!({ "jid": jid, "ids": swarm.acknowledged(jid) }))
                        }
                        (Some("restart"), Some(count)) => match count.parse::<usize>() {
                            Ok(count) => emit("restarting", serde_json::json!({ "count": swarm.restart(count) })),
                            Err(_) => emit("error", serde_json::json!({ "not_a_count": count })),
                        },
                        (Some("stop"), _) => break,
                        _ => emit("error", serde_json::json!({ "unknown_command": line })),
                    }
                }
            }
        }
        let report = swarm.report();
        swarm.stop().await;
        if args.control {
            emit("final", report.0);
        } else {
            println!("{}", serde_json::to_string_pretty(&report.0)?);
        }
        anyhow::Ok(())
    })
}
