//! Salt's reading of a job's command-line arguments (`salt.utils.args.parse_input`), shared
//! with the master, which reads the arguments minions send with `publish.*` the same way.

use halite_yaml::Value;

/// [`halite_runner::args::parse_input`] for command-line words.
pub fn parse_input(args: &[String], no_parse: &[&str]) -> Vec<Value> {
    let args: Vec<Value> = args.iter().map(|a| Value::from(a.as_str())).collect();
    halite_runner::args::parse_input(&args, no_parse)
}
