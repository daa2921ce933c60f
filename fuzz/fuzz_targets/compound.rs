//! Any text as a compound target from a minion (`_mine_get`, peer publish), resolved by
//! `check_minions` over a few minions with grains and pillar, and as a nodegroup's definition:
//! an answer or an error, never a panic, a stack overflow or a hang. halite-target's limits
//! (nesting, words, delimiters, regex backtracking, grain search steps) keep every input cheap.
#![no_main]

use std::sync::LazyLock;

use halite_target::{check_minions, CachedMinion, Expr, MinionIndex, TargetType};
use halite_yaml::Value;
use libfuzzer_sys::fuzz_target;

/// Three minions with nested grains and pillar, lists and a dict in a list, so that every
/// engine has data to search.
struct Site {
    minions: Vec<(String, Value, Value)>,
}

static SITE: LazyLock<Site> = LazyLock::new(|| {
    let load = |text: &str| halite_yaml::load(text).expect("site data");
    let grains = load(
        "{os: Debian, roles: [web, db], ipv4: [10.0.0.11, 127.0.0.1], num: 4,
          ip_interfaces: {eth0: [10.0.0.11], lo: []}, nested: {a: {b: 'c:d'}},
          mixed: [{k: v}, plain, 3], url: 'http://a:8080', long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}",
    );
    let pillar = load("{role: production, web: {port: 8080, vhosts: [a.example, b.example]}}");
    let minions =
        ["web1", "db1", "Mail.Example"].into_iter().map(|id| (id.to_owned(), grains.clone(), pillar.clone())).collect();
    Site { minions }
});

impl MinionIndex for Site {
    fn accepted(&self) -> Vec<String> {
        self.minions.iter().map(|(id, _, _)| id.clone()).collect()
    }

    fn cached(&self, id: &str) -> Option<CachedMinion<'_>> {
        let (_, grains, pillar) = self.minions.iter().find(|(m, _, _)| m == id)?;
        Some(CachedMinion { grains: Some(grains), pillar: Some(pillar) })
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let site = &*SITE;
    // The fuzzed text is also nodegroup `fuzzed`, next to groups that nest and loop.
    let nodegroups = vec![
        ("fuzzed".to_owned(), Value::from(text.as_ref())),
        ("webs".to_owned(), Value::from("G@roles:web or N@fuzzed")),
        ("loop".to_owned(), Value::from("N@loop")),
    ];
    let target = Expr::Text(text.clone().into_owned());
    for tgt_type in [TargetType::Compound, TargetType::CompoundPillarExact] {
        let _ = check_minions(site, &target, tgt_type, ":", &nodegroups);
    }
    let _ = check_minions(site, &Expr::Text("webs".to_owned()), TargetType::Nodegroup, ":", &nodegroups);
});
