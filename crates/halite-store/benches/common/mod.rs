//! What the store's benches share: their `--flag value` command lines.

/// One `--flag value` pair of the command line.
pub struct Flag {
    pub name: String,
    pub value: String,
}

impl Flag {
    pub fn number(&self) -> u64 {
        self.value.parse().unwrap_or_else(|_| panic!("{}: not a number: {}", self.name, self.value))
    }
}

/// The `--flag value` pairs of the command line, without the `--bench` cargo adds.
pub fn flags() -> Vec<Flag> {
    let mut flags = Vec::new();
    let mut it = std::env::args().skip(1).filter(|a| a != "--bench");
    while let Some(name) = it.next() {
        let value = it.next().unwrap_or_else(|| panic!("{name} needs a value"));
        flags.push(Flag { name, value });
    }
    flags
}
