//! The rule table's cost per decision, by table size: `cargo bench --bench rules`.
//!
//! Tables of 10 to 100,000 rules mix exact hosts, `*.suffix` and `.domain` wildcards, regexes
//! and CIDR prefixes (some port- or process-limited). The rule that decides each target sits at
//! the end of the table, so a linear walk passes over every other rule first. Targets: a
//! hostname at `connect()` (recovered from a fake address), a literal address at `connect()`,
//! and the same hostname at lookup time. `load` is the config-side cost: parsing every rule
//! (each regex compiles its own DFA) and building the table.

use std::net::IpAddr;
use std::time::Duration;

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};

use mcp_redirect_core::net::{Cidr, PortRange};
use mcp_redirect_core::rules::{Action, AddressMatch, HostMatch, Rule, RuleTable, Target};

const SIZES: [usize; 4] = [10, 1_000, 10_000, 100_000];

/// The hostname target: only the second-to-last rule (`*.target.example`) matches it.
const HOST: &str = "api.svc.target.example";
/// The address target: only the last rule (`203.0.113.0/24`) matches it.
const ADDR: &str = "203.0.113.7";

fn action(index: usize) -> Action {
    match index % 3 {
        0 => Action::Gateway(0),
        1 => Action::Direct,
        _ => Action::Deny,
    }
}

/// `count` rules: a mix of every kind, then the two that decide the targets.
fn table_rules(count: usize) -> Vec<Rule> {
    let mut rules: Vec<Rule> = (0..count.saturating_sub(2))
        .map(|index| {
            let host = |text: String| Some(HostMatch::parse_host(&text).unwrap());
            let cidr = |text: String| Some(AddressMatch::Prefix(Cidr::parse(&text).unwrap()));
            let (a, b) = ((index >> 8) & 255, index & 255);
            let (host, cidr, ports, process) = match index % 10 {
                0..=2 => (host(format!("host-{index}.corp.example")), None, None, None),
                3 => (
                    host(format!("api-{index}.corp.example")),
                    None,
                    Some(PortRange::parse("443").unwrap()),
                    None,
                ),
                4 => (host(format!("*.svc-{index}.example")), None, None, None),
                5 => (
                    host(format!("*.edge-{index}.example")),
                    None,
                    None,
                    Some("node".to_string()),
                ),
                6 => (host(format!(".dom-{index}.example")), None, None, None),
                7 => {
                    let source = if index % 20 == 7 {
                        format!(r"api[0-9]+\.re-{index}\.example")
                    } else {
                        format!(r"[a-z]+-{index}\.(rx|ry)\.example")
                    };
                    (
                        Some(HostMatch::parse_regex(&source).unwrap()),
                        None,
                        None,
                        None,
                    )
                }
                8 => (None, cidr(format!("10.{a}.{b}.0/24")), None, None),
                _ => (
                    None,
                    cidr(format!("172.16.{a}.{b}/32")),
                    Some(PortRange::parse("8000-8999").unwrap()),
                    None,
                ),
            };
            Rule::new(host, cidr, ports, process, action(index))
        })
        .collect();
    if count >= 2 {
        rules.push(Rule::new(
            Some(HostMatch::parse_host("*.target.example").unwrap()),
            None,
            None,
            None,
            Action::Gateway(0),
        ));
        rules.push(Rule::new(
            None,
            Some(AddressMatch::Prefix(Cidr::parse("203.0.113.0/24").unwrap())),
            None,
            None,
            Action::Deny,
        ));
    }
    rules
}

fn decisions(c: &mut Criterion) {
    let addr: IpAddr = ADDR.parse().unwrap();
    let mut group = c.benchmark_group("decide");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    for count in SIZES {
        let table = RuleTable::new(table_rules(count), Action::Direct);
        let host_target = Target {
            host: Some(HOST),
            addr: None,
            port: Some(443),
            exe: "curl",
        };
        let addr_target = Target {
            host: None,
            addr: Some(addr),
            port: Some(443),
            exe: "curl",
        };
        assert_eq!(table.decide(&host_target).rule_index, Some(count - 2));
        assert_eq!(table.decide(&addr_target).rule_index, Some(count - 1));
        group.bench_with_input(BenchmarkId::new("host", count), &table, |b, table| {
            b.iter(|| table.decide(black_box(&host_target)))
        });
        group.bench_with_input(BenchmarkId::new("addr", count), &table, |b, table| {
            b.iter(|| table.decide(black_box(&addr_target)))
        });
        group.bench_with_input(BenchmarkId::new("lookup", count), &table, |b, table| {
            b.iter(|| table.plan_lookup(black_box(HOST), black_box("curl")))
        });
    }
    group.finish();
}

fn loading(c: &mut Criterion) {
    let mut group = c.benchmark_group("load");
    group
        .sampling_mode(SamplingMode::Flat)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(10);
    for count in SIZES {
        group.bench_with_input(BenchmarkId::from_parameter(count), &count, |b, &count| {
            b.iter(|| RuleTable::new(table_rules(count), Action::Direct))
        });
    }
    group.finish();
}

/// A `host_list` of a million names (compiled once, in memory): a decision for a name in it, a
/// subdomain caught by a `.domain` entry, and a name in none, through the table as the library
/// makes it.
fn lists(c: &mut Criterion) {
    let dir = std::env::temp_dir().join(format!("mcpr-bench-lists-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("list.txt");
    let mut text = String::new();
    for i in 0..1_000_000 {
        text.push_str(&format!("h{i}.example{}.test\n", i % 997));
    }
    text.push_str(".caught.example\n");
    std::fs::write(&path, text).unwrap();
    let list = mcp_redirect_core::lists::HostList::load(&path, None).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let rule = Rule::new(
        Some(HostMatch::List(std::sync::Arc::new(list))),
        None,
        None,
        None,
        Action::Deny,
    );
    let table = RuleTable::new(vec![rule], Action::Direct);
    let mut group = c.benchmark_group("host_list_1m");
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30);
    for (name, host, decided) in [
        ("listed", "h123456.example825.test", Some(0)),
        ("subdomain", "a.b.caught.example", Some(0)),
        ("absent", "api.github.com", None),
    ] {
        let target = Target {
            host: Some(host),
            addr: None,
            port: Some(443),
            exe: "curl",
        };
        assert_eq!(table.decide(&target).rule_index, decided, "{host}");
        group.bench_function(name, |b| b.iter(|| table.decide(black_box(&target))));
    }
    group.finish();
}

criterion_group!(benches, decisions, loading, lists);
criterion_main!(benches);
