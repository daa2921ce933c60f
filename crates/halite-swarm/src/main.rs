//! `halite-swarm`: N simulated salt-minions against a master, then a JSON report.
//!
//! ```text
//! halite-swarm --minions 1000 --protocol mixed --host 127.0.0.1 --ret-port 4506 \
//!              --publish-port 4505 --duration 60 [--keys-dir DIR] [--prefix swarm]
//! ```
//!
//! The minions authenticate (the master must accept them: `auto_accept`, or `salt-key -A`
//! while they wait), fetch their pillar, subscribe, and answer `test.ping`, `grains.get`,
//! `grains.items` and `saltutil.find_job` for `--duration` seconds after all are ready (or
//! after the ready timeout). The report (stdout) says when all were authenticated and
//! ready, and for each job seen how many received and returned it and how long from the
//! first publish to the last return.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use halite_swarm::{keys, Config, Protocol, Swarm};

struct Args {
    config: Config,
    minions: usize,
    keys_dir: PathBuf,
    duration: Duration,
    ready_timeout: Duration,
}

fn usage() -> &'static str {
    "usage: halite-swarm [--minions N] [--protocol v2|v3|mixed] [--host H] [--ret-port P] \
     [--publish-port P] [--duration SECS] [--ready-timeout SECS] [--keys-dir DIR] [--prefix P]"
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
        },
        minions: 100,
        keys_dir: home.join(".cache/halite/swarm-keys"),
        duration: Duration::from_secs(30),
        ready_timeout: Duration::from_secs(300),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        if flag == "-h" || flag == "--help" {
            println!("{}", usage());
            std::process::exit(0);
        }
        let value = it.next().with_context(|| format!("{flag} needs a value\n{}", usage()))?;
        let number = |v: &str| v.parse::<u64>().with_context(|| format!("{flag}: {v:?} is not a number"));
        match flag.as_str() {
            "--minions" | "-n" => a.minions = number(&value)? as usize,
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

fn main() -> anyhow::Result<()> {
    let args = parse()?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    eprintln!("halite-swarm: loading or generating {} keys in {}", args.minions, args.keys_dir.display());
    let keys = keys::load_or_generate(&args.keys_dir, args.minions, threads)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    runtime.block_on(async {
        let swarm = Swarm::start(args.config, keys);
        let all_ready = swarm.wait_ready(args.ready_timeout).await;
        eprintln!("halite-swarm: {} of {} ready", swarm.ready(), args.minions);
        if all_ready {
            tokio::time::sleep(args.duration).await;
        }
        let report = swarm.report();
        swarm.stop().await;
        println!("{}", serde_json::to_string_pretty(&report.0)?);
        anyhow::Ok(())
    })
}
