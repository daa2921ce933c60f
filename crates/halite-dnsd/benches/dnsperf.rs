//! UDP query throughput of halite-dns against gdnsd 3.8 (the server it replaces on the salt
//! VM) and Knot DNS, measured with dnsperf on loopback, one server at a time.
//!
//! Every server gets the same zone (`dev.wpdn`, shaped like `states/salt/files/zone.jinja`
//! renders it: SOA, NS and ~60 A records for roles and VMs, plus a few AAAA, CNAME, MX and
//! TXT records) and the same number of UDP worker threads. The query file mixes ~80% A
//! queries for existing names, ~10% AAAA queries (mostly NODATA) and ~10% NXDOMAIN names.
//!
//! Per server:
//! - **Saturation run**: `dnsperf -c 1 -T 1 -l 10` with no rate limit (dnsperf keeps up to
//!   100 queries outstanding), after a 2 s warm-up. Gives queries per second, lost queries,
//!   dnsperf's average and maximum latency, the server's CPU time per query
//!   (utime + stime from `/proc/PID/stat` around the run) and its RSS afterwards.
//! - **Two more saturation runs**: the same mix, 20,000 lines, each name in a case pattern
//!   of its own (the 0x20 trick of some resolvers: no query repeats byte for byte); and
//!   20,000 names of their own that the zone does not hold (a flood of random names: every
//!   reply built, halite-dns's memo of replies never answers).
//! - **Fixed-load run**: dnsperf 2.10 has no latency histogram, but `-v` prints each
//!   reply's latency. Printing costs dnsperf enough CPU to skew a saturation run on a small
//!   machine, so the percentiles come from a separate 5 s run at half the lowest rate any
//!   server reached in its saturation run: every server carries the same load, and the
//!   latency is the server's answer time rather than time queued behind 100 outstanding.
//!
//! Run: `cargo bench -p halite-dnsd --bench dnsperf [-- THREADS]` (THREADS defaults to 1).
//! Needs Debian's `dnsperf`, `gdnsd` and `knot` packages. Prints a Markdown table; nothing
//! is asserted about speed.
//!
//! **Soak** (issue 20): `cargo bench -p halite-dnsd --bench dnsperf -- --soak MINUTES
//! [THREADS]` runs halite-dns alone under dnsperf at a steady `SOAK_QPS` for MINUTES, with
//! the query file of names that never repeat (each reply built anew, the memo of replies
//! churning), sampling its RSS, PSS and descriptors every 10 s: are they flat once warm?

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const ZONE: &str = "dev.wpdn";
const WARM_UP_SECS: u32 = 2;
const RUN_SECS: u32 = 10;
const LATENCY_RUN_SECS: u32 = 5;

/// Queries per second of the soak: a steady load well under any server's saturation here.
const SOAK_QPS: u64 = 20_000;

fn main() {
    // The thread count is the one bare word.
    let (soak_minutes, words) = halite_testkit::procstat::soak_args();
    let threads: usize = words
        .first()
        .map(|arg| arg.parse().unwrap_or_else(|_| panic!("usage: dnsperf [--soak MINUTES] [THREADS], not {arg:?}")))
        .unwrap_or(1);
    assert!(threads >= 1, "at least one worker thread");
    for tool in ["dnsperf", "gdnsd", "knotd"] {
        assert!(find_program(tool).is_some(), "{tool} is not installed: apt-get install -y dnsperf gdnsd knot");
    }

    let dir = tempfile::tempdir().expect("a temporary directory");
    let zone_file = dir.path().join(format!("{ZONE}.zone"));
    std::fs::write(&zone_file, zone_text()).expect("writing the zone");
    let queries = dir.path().join("queries.txt");
    std::fs::write(&queries, query_lines().join("\n") + "\n").expect("writing the queries");
    let extra_mixes: Vec<(&str, PathBuf)> = [
        ("0x20: each name in a case pattern of its own", case_pattern_lines()),
        ("no repeats: each query a name of its own, none in the zone", distinct_name_lines()),
    ]
    .into_iter()
    .enumerate()
    .map(|(i, (title, lines))| {
        let path = dir.path().join(format!("queries-{i}.txt"));
        std::fs::write(&path, lines.join("\n") + "\n").expect("writing the queries");
        (title, path)
    })
    .collect();

    if let Some(minutes) = soak_minutes {
        let (_, distinct) = extra_mixes.last().expect("the no-repeats mix");
        return soak(start_halite(dir.path(), &zone_file, threads), distinct, minutes);
    }

    // Declared after `dir`, so dropped (killed) before the files they read are removed.
    let mut servers = [
        start_halite(dir.path(), &zone_file, threads),
        start_gdnsd(dir.path(), &zone_file, threads),
        start_knot(dir.path(), &zone_file, threads),
    ];
    for server in &servers {
        server.check_answers();
    }

    eprintln!("load average before the runs: {}", std::fs::read_to_string("/proc/loadavg").unwrap_or_default().trim());
    let mut results = Vec::new();
    for server in servers.iter_mut() {
        eprintln!("{}: warm-up {WARM_UP_SECS} s, then {RUN_SECS} s at full speed", server.name);
        dnsperf(server.port, &queries, &["-l", &WARM_UP_SECS.to_string()]);
        let cpu_before = halite_testkit::procstat::usage(&[server.pid()]).cpu_s;
        let run = dnsperf(server.port, &queries, &["-l", &RUN_SECS.to_string()]);
        let cpu = halite_testkit::procstat::usage(&[server.pid()]).cpu_s - cpu_before;
        let summary = Summary::parse(&run);
        let rss_mib = halite_testkit::procstat::usage(&[server.pid()]).rss_mib;
        let extra = extra_mixes
            .iter()
            .map(|(title, queries)| {
                eprintln!("{}: {RUN_SECS} s at full speed, {title}", server.name);
                let cpu_before = halite_testkit::procstat::usage(&[server.pid()]).cpu_s;
                let run = Summary::parse(&dnsperf(server.port, queries, &["-l", &RUN_SECS.to_string()]));
                let cpu = halite_testkit::procstat::usage(&[server.pid()]).cpu_s - cpu_before;
                let cpu_us_per_query = cpu * 1e6 / run.completed as f64;
                (run, cpu_us_per_query)
            })
            .collect();
        results.push(Row {
            name: server.name,
            cpu_us_per_query: cpu * 1e6 / summary.completed as f64,
            rss_mib,
            summary,
            extra,
            percentiles: None,
            fixed_load_qps: 0.0,
        });
        assert!(server.alive(), "{} died during the run:\n{}", server.name, server.log());
    }

    let slowest = results.iter().map(|r| r.summary.qps).fold(f64::INFINITY, f64::min);
    let fixed_rate = ((slowest / 2.0 / 1000.0).floor() * 1000.0).max(1000.0) as u64;
    for (server, row) in servers.iter().zip(&mut results) {
        eprintln!("{}: {LATENCY_RUN_SECS} s at {fixed_rate} queries/s, each latency printed", server.name);
        let run =
            dnsperf(server.port, &queries, &["-l", &LATENCY_RUN_SECS.to_string(), "-Q", &fixed_rate.to_string(), "-v"]);
        row.percentiles = Some(Percentiles::of(&run));
        row.fixed_load_qps = Summary::parse(&run).qps;
    }

    let titles: Vec<&str> = extra_mixes.iter().map(|(title, _)| *title).collect();
    print_table(threads, fixed_rate, &results, &titles);
}

/// halite-dns under dnsperf at `SOAK_QPS` for `minutes`, sampled every 10 s; prints the
/// flatness table and what dnsperf saw.
fn soak(server: Server, queries: &Path, minutes: u64) {
    server.check_answers();
    let secs = minutes * 60;
    eprintln!("{}: {minutes} min at {SOAK_QPS} queries/s, names that never repeat", server.name);
    let (port, queries) = (server.port, queries.to_owned());
    let load =
        std::thread::spawn(move || dnsperf(port, &queries, &["-l", &secs.to_string(), "-Q", &SOAK_QPS.to_string()]));
    let pid = server.pid();
    let soak = halite_testkit::procstat::Soak::run(Duration::from_secs(secs), Duration::from_secs(10), || {
        halite_testkit::procstat::usage(&[pid])
    });
    let run = Summary::parse(&load.join().expect("the dnsperf thread"));
    println!(
        "halite-dns, {minutes} min of dnsperf at {SOAK_QPS} queries/s (names that never repeat), after the first fifth:\n"
    );
    print!("{}", soak.flatness_table());
    println!(
        "\n{} queries sent, {} completed, {} lost ({}); {:.0} queries/s; {:.1} µs of halite-dns CPU per query",
        run.sent,
        run.completed,
        run.lost,
        run.rcodes,
        run.qps,
        soak.cpu_s() * 1e6 / run.completed.max(1) as f64
    );
}

/// The zone every server loads, in RFC 1035 syntax all three read.
fn zone_text() -> String {
    let mut zone = format!(
        "; Shaped like states/salt/files/zone.jinja renders it for {ZONE}, plus a few other types.\n\
         $ORIGIN {ZONE}.\n$TTL 300\n\
         @\tIN\tSOA\tsalt.{ZONE}. hostmaster.{ZONE}. ( 1 3600 600 604800 300 )\n\
         @\tIN\tNS\tsalt.{ZONE}.\n\
         @\tIN\tMX\t10 mail.{ZONE}.\n\
         @\tIN\tTXT\t\"v=spf1 ip4:10.30.10.0/24 -all\"\n"
    );
    for (name, address) in a_records() {
        zone += &format!("{name}\tIN\tA\t{address}\n");
    }
    for n in 1..=4 {
        zone += &format!("web{n}\tIN\tAAAA\tfd00:30:10::{:x}\n", 100 + n);
    }
    zone += "salt\tIN\tAAAA\tfd00:30:10::2\n";
    zone += "salt\tIN\tTXT\t\"managed by halite\"\n";
    zone += &format!("www\tIN\tCNAME\tweb1.{ZONE}.\n");
    zone += "db\tIN\tCNAME\tmasterdb\n";
    zone += "search\tIN\tCNAME\telastic\n";
    zone
}

/// The A records: the role names of `infra:hosts_entries`, then one per VM.
fn a_records() -> Vec<(String, String)> {
    let roles = ["salt", "source", "mail", "masterdb", "sessions", "memcache", "elastic"];
    let mut records: Vec<(String, String)> =
        roles.iter().enumerate().map(|(i, role)| (role.to_string(), format!("10.30.10.{}", 2 + i))).collect();
    let vms = [
        ("web", 20),
        ("app", 12),
        ("db", 4),
        ("jobrunner", 4),
        ("memcache", 3),
        ("elastic", 3),
        ("sessions", 2),
        ("blog", 2),
        ("notes", 2),
        ("mail", 1),
        ("source", 1),
        ("bots", 1),
        ("jumpbox", 1),
    ];
    let mut host = 20;
    for (role, count) in vms {
        for n in 1..=count {
            records.push((format!("{role}{n}"), format!("10.30.10.{host}")));
            host += 1;
        }
    }
    records
}

/// dnsperf's input: every tenth line an AAAA query, the one after it a missing name, the
/// rest A queries cycling through every A name (and two CNAMEs, which a client also asks).
fn query_lines() -> Vec<String> {
    let mut a_names: Vec<String> = a_records().into_iter().map(|(name, _)| name).collect();
    a_names.extend(["www".to_owned(), "db".to_owned()]);
    // web1..4 and salt have an AAAA; the others answer NODATA, as most AAAA lookups do here.
    let aaaa_names = ["web1", "app3", "masterdb", "web2", "memcache1", "salt", "jobrunner2", "elastic1"];
    let missing = ["web21", "db9", "nope", "app13.old", "wiki", "ldap", "www2", "monitor"];
    let (mut a, mut aaaa, mut nx) = (0, 0, 0);
    (0..400)
        .map(|i| match i % 10 {
            8 => {
                aaaa += 1;
                format!("{}.{ZONE} AAAA", aaaa_names[aaaa % aaaa_names.len()])
            }
            9 => {
                nx += 1;
                format!("{}.{ZONE} A", missing[nx % missing.len()])
            }
            _ => {
                a += 1;
                format!("{}.{ZONE} A", a_names[a % a_names.len()])
            }
        })
        .collect()
}

/// The same mix, 20,000 lines long, each name in a case pattern of its own, as a resolver
/// using the 0x20 trick sends them: hardly a query's bytes repeat within a thousand.
/// halite-dns's memo of replies keys the name without case, so it still answers them.
fn case_pattern_lines() -> Vec<String> {
    let lines = query_lines();
    (0..20_000u64)
        .map(|i| {
            let line = &lines[i as usize % lines.len()];
            let (name, rtype) = line.split_once(' ').expect("NAME TYPE");
            let mut bits = i.wrapping_mul(0x9e37_79b9_7f4a_7c15);
            let name: String = name
                .chars()
                .map(|c| {
                    bits = bits.rotate_left(1);
                    if bits & 1 == 1 {
                        c.to_ascii_uppercase()
                    } else {
                        c
                    }
                })
                .collect();
            format!("{name} {rtype}")
        })
        .collect()
}

/// 20,000 A queries, each for a name of its own that the zone does not hold: what a flood
/// of random names costs (an NXDOMAIN with the SOA built for every one; halite-dns's memo
/// never answers).
fn distinct_name_lines() -> Vec<String> {
    (0..20_000u64).map(|i| format!("r{:x}.{ZONE} A", i.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20)).collect()
}

/// A server process on a loopback port, killed when dropped (a panic included).
struct Server {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Starts `command` with its stderr to `log` and waits until it answers on `port`.
    fn spawn(name: &'static str, mut command: Command, port: u16, log: PathBuf) -> Server {
        let stderr = std::fs::File::create(&log).expect("creating a log");
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {name}: {e}"));
        let mut server = Server { name, child, port, log };
        let deadline = Instant::now() + Duration::from_secs(20);
        // Any reply will do here, even REFUSED: the server is up. Answers are checked later.
        while exchange(port, "probe.invalid", 1, Duration::from_millis(200)).is_none() {
            assert!(server.alive(), "{name} exited at start:\n{}", server.log());
            assert!(Instant::now() < deadline, "{name} does not answer on port {port}:\n{}", server.log());
        }
        server
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A found name, a NODATA and a missing name, as dnsperf will ask them: a server that
    /// answered them wrongly would make its numbers meaningless.
    fn check_answers(&self) {
        let ask = |name: &str, qtype: u16| {
            exchange(self.port, &format!("{name}.{ZONE}"), qtype, Duration::from_secs(2))
                .unwrap_or_else(|| panic!("{}: no reply for {name}", self.name))
        };
        const A: u16 = 1;
        const AAAA: u16 = 28;
        assert_eq!(ask("web7", A), Reply { rcode: 0, answers: 1 }, "{}: web7 A", self.name);
        assert_eq!(ask("app3", AAAA), Reply { rcode: 0, answers: 0 }, "{}: app3 AAAA", self.name);
        assert_eq!(ask("web21", A), Reply { rcode: 3, answers: 0 }, "{}: web21 A", self.name);
    }
}

fn start_halite(dir: &Path, zone_file: &Path, threads: usize) -> Server {
    let port = free_port();
    let config = dir.join("dns.yaml");
    // Response rate limiting is off: one client on loopback is all of this benchmark's
    // traffic and would be held to 1,000 replies/s. gdnsd has none, Knot's is off by default.
    std::fs::write(
        &config,
        format!(
            "listen: ['127.0.0.1:{port}']\nzones:\n  {ZONE}: {}\nforwarders: []\nrate_limit: 0\nudp_threads: {threads}\n",
            zone_file.display()
        ),
    )
    .expect("writing dns.yaml");
    let mut command = Command::new(env!("CARGO_BIN_EXE_halite-dns"));
    command.arg("-c").arg(&config).env("RUST_LOG", "info");
    Server::spawn("halite-dns", command, port, dir.join("halite-dns.log"))
}

/// gdnsd 3.x reads `DIR/config` and every file in `DIR/zones/` (named after its zone), and
/// runs in the foreground with the `start` action. Its run and state directories default
/// to /run/gdnsd and /var/lib/gdnsd, where a system instance may live: both go in `dir`.
fn start_gdnsd(dir: &Path, zone_file: &Path, threads: usize) -> Server {
    let port = free_port();
    let root = dir.join("gdnsd");
    std::fs::create_dir_all(root.join("zones")).expect("creating the gdnsd directories");
    std::fs::copy(zone_file, root.join("zones").join(ZONE)).expect("copying the zone for gdnsd");
    let config = format!(
        "options => {{\n  listen => [ 127.0.0.1:{port} ]\n  udp_threads => {threads}\n  tcp_threads => 1\n  \
         run_dir => {run}\n  state_dir => {state}\n}}\n",
        run = root.join("run").display(),
        state = root.join("state").display(),
    );
    std::fs::write(root.join("config"), config).expect("writing the gdnsd config");
    let mut command = Command::new(find_program("gdnsd").expect("gdnsd"));
    command.arg("-c").arg(&root).arg("start");
    Server::spawn("gdnsd", command, port, root.join("gdnsd.log"))
}

fn start_knot(dir: &Path, zone_file: &Path, threads: usize) -> Server {
    let port = free_port();
    let run = dir.join("knot");
    std::fs::create_dir_all(&run).expect("creating the knot directory");
    // No journal and no zone file flush: the zone file is only read.
    let config = format!(
        "server:\n  rundir: {run}\n  listen: 127.0.0.1@{port}\n  udp-workers: {threads}\n  tcp-workers: 1\n  \
         background-workers: 1\ndatabase:\n  storage: {run}\nlog:\n  - target: stderr\n    any: info\nzone:\n  \
         - domain: {ZONE}\n    file: {zone}\n    journal-content: none\n    zonefile-sync: -1\n",
        run = run.display(),
        zone = zone_file.display(),
    );
    std::fs::write(run.join("knot.conf"), config).expect("writing knot.conf");
    let mut command = Command::new(find_program("knotd").expect("knotd"));
    command.arg("-c").arg(run.join("knot.conf"));
    Server::spawn("knot", command, port, run.join("knot.log"))
}

/// `name` in PATH or the sbin directories (not in a non-root PATH on Debian).
fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

/// A port free on loopback for both UDP and TCP (asked of the kernel, then released).
fn free_port() -> u16 {
    loop {
        let udp = UdpSocket::bind("127.0.0.1:0").expect("binding a UDP socket");
        let port = udp.local_addr().expect("its address").port();
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}

#[derive(Debug, PartialEq)]
struct Reply {
    rcode: u8,
    answers: u16,
}

/// Sends one query (`name`, type `qtype`, class IN, no EDNS) over UDP; None after `wait`.
fn exchange(port: u16, name: &str, qtype: u16, wait: Duration) -> Option<Reply> {
    const ID: [u8; 2] = [0x4a, 0x17];
    let mut query = ID.to_vec();
    query.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        query.push(label.len() as u8);
        query.extend_from_slice(label.as_bytes());
    }
    query.push(0);
    query.extend_from_slice(&qtype.to_be_bytes());
    query.extend_from_slice(&1u16.to_be_bytes());

    let socket = UdpSocket::bind("127.0.0.1:0").expect("binding a UDP socket");
    socket.set_read_timeout(Some(wait)).expect("a read timeout");
    socket.send_to(&query, SocketAddr::from(([127, 0, 0, 1], port))).ok()?;
    let mut buf = [0u8; 4096];
    let len = socket.recv(&mut buf).ok()?;
    let reply = &buf[..len];
    let is_reply = len >= 12 && reply[..2] == ID && reply[2] & 0x80 != 0;
    is_reply.then(|| Reply { rcode: reply[3] & 0x0f, answers: u16::from_be_bytes([reply[6], reply[7]]) })
}

/// Runs dnsperf against `port` with the fixed client shape plus `extra`; returns its stdout.
fn dnsperf(port: u16, queries: &Path, extra: &[&str]) -> String {
    let output = Command::new(find_program("dnsperf").expect("dnsperf"))
        .args(["-s", "127.0.0.1", "-p", &port.to_string(), "-c", "1", "-T", "1", "-d"])
        .arg(queries)
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("running dnsperf");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "dnsperf {extra:?} failed ({}):\n{stdout}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// What dnsperf's closing statistics say.
struct Summary {
    sent: u64,
    completed: u64,
    lost: u64,
    qps: f64,
    avg_latency: f64,
    max_latency: f64,
    rcodes: String,
}

impl Summary {
    fn parse(out: &str) -> Summary {
        let field = |label: &str| -> &str {
            out.lines()
                .find_map(|line| line.trim().strip_prefix(label))
                .unwrap_or_else(|| panic!("no {label:?} in dnsperf's output:\n{out}"))
                .trim()
        };
        let first_number = |text: &str| -> f64 {
            let number = text.split_whitespace().next().unwrap_or_default();
            number.parse().unwrap_or_else(|_| panic!("not a number: {text:?}"))
        };
        // "Average Latency (s):  0.000181 (min 0.000007, max 0.002581)"
        let latency = field("Average Latency (s):");
        let max = latency.rsplit("max ").next().unwrap_or_default().trim_end_matches(')');
        Summary {
            sent: first_number(field("Queries sent:")) as u64,
            completed: first_number(field("Queries completed:")) as u64,
            lost: first_number(field("Queries lost:")) as u64,
            qps: first_number(field("Queries per second:")),
            avg_latency: first_number(latency),
            max_latency: first_number(max),
            rcodes: field("Response codes:").to_owned(),
        }
    }
}

/// Latency percentiles from dnsperf `-v` lines: `> NOERROR web1.dev.wpdn A 0.000052`.
struct Percentiles {
    replies: usize,
    timeouts: usize,
    p50: f64,
    p99: f64,
    p999: f64,
}

impl Percentiles {
    fn of(out: &str) -> Percentiles {
        let mut latencies = Vec::new();
        let mut timeouts = 0;
        for line in out.lines().filter_map(|line| line.strip_prefix("> ")) {
            // A timed-out query is reported as "T" in place of the rcode, with no latency.
            if line.starts_with("T ") {
                timeouts += 1;
            } else if let Some(latency) = line.rsplit(' ').next().and_then(|s| s.parse::<f64>().ok()) {
                latencies.push(latency);
            }
        }
        assert!(!latencies.is_empty(), "no per-query latency in dnsperf -v's output:\n{out}");
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1];
        Percentiles { replies: latencies.len(), timeouts, p50: at(0.50), p99: at(0.99), p999: at(0.999) }
    }
}

struct Row {
    name: &'static str,
    summary: Summary,
    cpu_us_per_query: f64,
    rss_mib: f64,
    /// The runs of the other mixes ([`case_pattern_lines`], [`distinct_name_lines`]), each
    /// with the server's CPU µs per query.
    extra: Vec<(Summary, f64)>,
    percentiles: Option<Percentiles>,
    /// What the percentile run reached: below the asked rate, dnsperf (printing) fell behind.
    fixed_load_qps: f64,
}

/// halite-dns's qps and CPU per query, as `measure` reads them from a row, over each other
/// server's.
fn print_ratios(rows: &[Row], run: &str, measure: impl Fn(&Row) -> (f64, f64)) {
    let (qps, cpu) = measure(rows.iter().find(|r| r.name == "halite-dns").expect("a halite-dns row"));
    for other in rows.iter().filter(|r| r.name != "halite-dns") {
        let (other_qps, other_cpu) = measure(other);
        println!(
            "halite-dns / {}{run}: qps × {:.2}, CPU per query × {:.2}",
            other.name,
            qps / other_qps,
            cpu / other_cpu
        );
    }
}

fn print_table(threads: usize, fixed_rate: u64, rows: &[Row], mix_titles: &[&str]) {
    let us = |seconds: f64| seconds * 1e6;
    println!();
    println!(
        "dnsperf -c 1 -T 1 -l {RUN_SECS} (after a {WARM_UP_SECS} s warm-up), UDP on loopback, {threads} server \
         thread(s); percentiles from a separate {LATENCY_RUN_SECS} s run at {fixed_rate} queries/s (-Q, -v)"
    );
    println!();
    println!(
        "| server | threads | qps | lost | avg latency µs | max latency µs | p50 / p99 / p99.9 µs @ {fixed_rate}/s \
         | CPU µs/query | RSS MiB |"
    );
    println!("|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for row in rows {
        let s = &row.summary;
        let percentiles = match &row.percentiles {
            Some(p) if p.timeouts == 0 => format!("{:.0} / {:.0} / {:.0}", us(p.p50), us(p.p99), us(p.p999)),
            Some(p) => format!(
                "{:.0} / {:.0} / {:.0} ({} of {} timed out)",
                us(p.p50),
                us(p.p99),
                us(p.p999),
                p.timeouts,
                p.timeouts + p.replies
            ),
            None => "n/a".to_owned(),
        };
        println!(
            "| {} | {threads} | {:.0} | {} of {} | {:.0} | {:.0} | {percentiles} | {:.2} | {:.1} |",
            row.name,
            s.qps,
            s.lost,
            s.sent,
            us(s.avg_latency),
            us(s.max_latency),
            row.cpu_us_per_query,
            row.rss_mib
        );
    }
    println!();
    print_ratios(rows, "", |row| (row.summary.qps, row.cpu_us_per_query));
    println!();
    for (index, title) in mix_titles.iter().enumerate() {
        println!("{title} (20,000 lines):");
        println!();
        println!("| server | threads | qps | lost | CPU µs/query |");
        println!("|---|---:|---:|---:|---:|");
        for row in rows {
            let (run, cpu) = &row.extra[index];
            println!("| {} | {threads} | {:.0} | {} of {} | {cpu:.2} |", row.name, run.qps, run.lost, run.sent);
        }
        println!();
        let label = format!(" ({})", title.split(':').next().unwrap_or(title));
        print_ratios(rows, &label, |row| (row.extra[index].0.qps, row.extra[index].1));
        println!();
    }
    for row in rows {
        println!(
            "{}: response codes {}; percentile run reached {:.0} of {fixed_rate} queries/s",
            row.name, row.summary.rcodes, row.fixed_load_qps
        );
    }
}
