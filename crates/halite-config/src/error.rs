use std::fmt;
use std::path::PathBuf;

use halite_yaml::YamlError;

/// Where an option's value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A configuration file (the main file or an included one).
    File(PathBuf),
    /// Salt's built-in defaults (`DEFAULT_MASTER_OPTS`).
    SaltDefaults,
    /// halite's embedded defaults, used when no config directory is given.
    Embedded,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File(path) => write!(f, "{}", path.display()),
            Origin::SaltDefaults => f.write_str("Salt's defaults"),
            Origin::Embedded => f.write_str("halite's embedded defaults"),
        }
    }
}

/// A configuration halite refuses to run with.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `-c DIR` names a directory that does not exist. (Salt only warns and carries on with
    /// its defaults; halite refuses, so a typo cannot start a master on /etc/salt's paths.)
    #[error("config directory {} does not exist", .0.display())]
    MissingConfigDir(PathBuf),
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A config file that Salt's YAML loader would not load. (Salt skips a broken included
    /// file with an error in its log; halite refuses to start instead.)
    #[error("config file {}: invalid YAML: {source}", path.display())]
    Yaml {
        path: PathBuf,
        #[source]
        source: YamlError,
    },
    #[error("config file {}: must hold a mapping of options, not {found}", path.display())]
    NotAMapping { path: PathBuf, found: &'static str },
    /// An `include` chain that comes back to a file it is already reading (Salt would recurse
    /// until Python gives up).
    #[error("config file {}: includes itself (through {})", path.display(), chain.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(" -> "))]
    IncludeCycle { path: PathBuf, chain: Vec<PathBuf> },
    /// An option whose value Salt's types (or halite's bounds) do not allow.
    #[error("{origin}: option '{key}': {problem}")]
    InvalidValue { key: String, origin: Origin, problem: String },
    #[error("cannot determine the current directory: {0}")]
    CurrentDir(#[source] std::io::Error),
    /// The copy of Salt's defaults compiled into halite does not load: a build defect.
    #[error("halite's copy of Salt's defaults is unreadable: {0}")]
    EmbeddedDefaults(#[source] YamlError),
}

/// Something worth telling the operator that does not stop the master.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Warning {
    /// A top-level key Salt's master does not know: most likely a typo. Reported once per key.
    UnknownKey { key: String, file: PathBuf },
    /// An `include` pattern that matched no file (Salt warns the same way; an empty
    /// `default_include` directory is normal and not reported).
    IncludeMatchedNothing { pattern: String, file: PathBuf },
    /// A deprecated option that still takes effect.
    Deprecated { key: String, file: PathBuf, replacement: &'static str },
    /// A value Salt replaces with another when it loads the config.
    Adjusted { key: String, file: PathBuf, message: String },
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Warning::UnknownKey { key, file } => {
                write!(f, "{}: unknown option '{key}' (Salt's master does not know it)", file.display())
            }
            Warning::IncludeMatchedNothing { pattern, file } => {
                write!(f, "{}: include '{pattern}' matches no files", file.display())
            }
            Warning::Deprecated { key, file, replacement } => {
                write!(f, "{}: option '{key}' is deprecated, use '{replacement}'", file.display())
            }
            Warning::Adjusted { key, file, message } => {
                write!(f, "{}: option '{key}': {message}", file.display())
            }
        }
    }
}
