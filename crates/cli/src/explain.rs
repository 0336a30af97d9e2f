//! `mcp-redirect explain`: which rule a host (and port) hits, what the resolver would answer, and
//! why each earlier rule did not match. It builds the library's own state from the config and
//! calls the library's own decision functions (`lookup::plan`, `connect::choose`,
//! `RuleTable::trace`): what it prints is what the library would do.

#![forbid(unsafe_code)]

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use serde_json::{json, Value};

use mcp_redirect_core::config::Config;
use mcp_redirect_core::connect;
use mcp_redirect_core::lookup;
use mcp_redirect_core::net;
use mcp_redirect_core::rules::{Action, Decision, ResolvePlan, Target};
use mcp_redirect_core::runtime::Runtime;

#[derive(clap::Args)]
pub struct ExplainArgs {
    /// Configuration file (default: $MCP_REDIRECT_CONFIG, else
    /// $XDG_CONFIG_HOME/mcp-redirect/config.toml, else /etc/mcp-redirect/mcp-redirect.toml, else
    /// the proxy environment)
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Decide as this process (executable base name, for `process` rules)
    #[arg(long, value_name = "NAME")]
    pub process: Option<String>,
    /// Do not resolve names that the library would resolve for real (`cidr` rules then cannot
    /// be evaluated for them)
    #[arg(long)]
    pub no_resolve: bool,
    /// Print one JSON object per target
    #[arg(long)]
    pub json: bool,
    /// Hosts to explain: HOST, HOST:PORT, an address, or [IPv6]:PORT
    #[arg(required = true, value_name = "HOST[:PORT]")]
    pub targets: Vec<String>,
}

pub fn explain(args: ExplainArgs) -> u8 {
    let Some(config) = crate::check::load(args.config.as_ref()) else {
        return 2;
    };
    let exe = args.process.clone().unwrap_or_default();
    let summary = Summary::of(&config);
    let process_rules = config.rules.rules().iter().any(|r| r.process.is_some());
    let rt = Runtime::from_config(config, exe);
    let mut code = 0;
    for target in &args.targets {
        match explain_one(&rt, &summary, target, !args.no_resolve) {
            Ok(report) => {
                if args.json {
                    println!("{report}");
                } else {
                    print_text(&report, process_rules && args.process.is_none());
                }
            }
            Err(message) => {
                crate::complain(format!("{target}: {message}"));
                code = 2;
            }
        }
    }
    code
}

/// What of the config the report needs after the config has moved into the runtime.
struct Summary {
    gateway_endpoints: Vec<String>,
    rewrites: Vec<bool>,
}

impl Summary {
    fn of(config: &Config) -> Summary {
        Summary {
            gateway_endpoints: config
                .gateways
                .iter()
                .map(|g| g.endpoints[0].to_string())
                .collect(),
            rewrites: config
                .gateways
                .iter()
                .map(|g| g.kind == mcp_redirect_core::config::GatewayKind::Rewrite)
                .collect(),
        }
    }
}

/// Splits `host`, `host:port`, `a.b.c.d:port`, `[v6]:port` or a bare IPv6 address.
fn parse_target(text: &str) -> Result<(String, Option<u16>), String> {
    let port = |p: &str| {
        p.parse::<u16>()
            .map_err(|_| format!("\"{p}\" is not a port"))
    };
    if let Some(rest) = text.strip_prefix('[') {
        let (host, tail) = rest.split_once(']').ok_or("unclosed '['")?;
        let port = match tail.strip_prefix(':') {
            Some(p) => Some(port(p)?),
            None if tail.is_empty() => None,
            None => return Err("expected :PORT after ']'".into()),
        };
        return Ok((host.to_string(), port));
    }
    if text.parse::<IpAddr>().is_ok() {
        return Ok((text.to_string(), None));
    }
    match text.rsplit_once(':') {
        Some((host, p)) => Ok((host.to_string(), Some(port(p)?))),
        None => Ok((text.to_string(), None)),
    }
}

fn action_json(rt: &Runtime, action: Action) -> Value {
    match action {
        Action::Gateway(i) => json!({"action": "gateway", "gateway": rt.gateways[i].name}),
        other => json!({"action": other.name()}),
    }
}

/// The deciding rule; for one that reads a list file, also the file, line and entry that
/// matched `target`.
fn rule_json(
    rt: &Runtime,
    decision: Decision,
    pattern: Option<&str>,
    target: &Target<'_>,
) -> Value {
    match decision.rule_index {
        Some(i) => {
            let rule = &rt.rules.rules()[i];
            let mut json = json!({"index": i, "pattern": rule.pattern});
            if let Some((file, line)) = rule.list_entry(target) {
                json["list"] = json!({
                    "file": file.display().to_string(),
                    "line": line,
                    "entry": list_line(file, line),
                });
            }
            json
        }
        None => json!({"index": null, "pattern": pattern.unwrap_or("default")}),
    }
}

/// Line `line` (from 1) of a list file, as written (comment and line end removed).
fn list_line(file: &std::path::Path, line: u64) -> Option<String> {
    let text = std::fs::read(file).ok()?;
    let raw = text
        .split(|&b| b == b'\n')
        .nth(usize::try_from(line).ok()?.checked_sub(1)?)?;
    let raw = String::from_utf8_lossy(raw);
    let raw = raw.split(" #").next().unwrap_or_default();
    Some(raw.trim().to_string())
}

/// `rules[N] PATTERN`, and for a list, `(FILE line N: ENTRY)`.
fn rule_text(rule: &Value) -> String {
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    let mut text = match rule["index"].as_u64() {
        Some(i) => format!("rules[{i}] {}", s(&rule["pattern"])),
        None => s(&rule["pattern"]),
    };
    let list = &rule["list"];
    if let Some(line) = list["line"].as_u64() {
        text.push_str(&format!(" (line {line}: {})", s(&list["entry"])));
    }
    text
}

/// The explanation of one target, as JSON (the text form is printed from it).
fn explain_one(
    rt: &Runtime,
    summary: &Summary,
    text: &str,
    resolve: bool,
) -> Result<Value, String> {
    let (raw_host, port) = parse_target(text)?;
    let mut report = json!({"target": text, "port": port});
    let literal: Option<IpAddr> = raw_host
        .parse()
        .ok()
        .or_else(|| net::parse_ipv4_any(&raw_host).map(IpAddr::V4));

    // Lookup time.
    let (name, ip, is_fake) = if let Some(ip) = literal {
        report["lookup"] = json!({"answer": "numeric address: no lookup"});
        (None, Some(ip), false)
    } else {
        let host = net::normalize_host(&raw_host)
            .ok_or("not a valid host name: the library refuses to look it up")?;
        report["host"] = json!(host);
        let plan = lookup::plan(rt, &host);
        let fake = || {
            rt.resolver
                .fake
                .assign(&host)
                .ok()
                .map(|i| IpAddr::V4(rt.resolver.fake.ipv4(i)))
        };
        let real = || -> Result<Vec<SocketAddr>, String> {
            if !resolve {
                return Ok(Vec::new());
            }
            mcp_redirect_core::sys::resolve_real(&host, port.unwrap_or(0))
                .map_err(|code| mcp_redirect_core::errno::eai_name(code).to_string())
        };
        let (kind, decision, answer, fake_answer) = match plan {
            ResolvePlan::Fake(d) => ("fake", d, Vec::new(), fake()),
            ResolvePlan::Real(d) => ("real", d, real()?, None),
            ResolvePlan::RealOrFake(d) => match real() {
                Ok(addrs) if !addrs.is_empty() => ("real", d, addrs, None),
                _ => ("fake (DNS has no answer)", d, Vec::new(), fake()),
            },
        };
        let pattern = if decision.rule_index.is_none()
            && rt.resolver.is_local_name(&host)
            && decision.action == Action::Direct
        {
            Some("local name (localhost or /etc/hosts)")
        } else if decision.rule_index.is_none() && rt.is_gateway_host(&host) {
            Some("gateway endpoint")
        } else {
            None
        };
        let addresses: Vec<String> = answer.iter().map(|a| a.ip().to_string()).collect();
        report["lookup"] = json!({
            "answer": kind,
            "fake_address": fake_answer.map(|a| a.to_string()),
            "addresses": addresses,
            "because": rule_json(
                rt,
                decision,
                pattern,
                &Target {
                    host: Some(&host),
                    addr: None,
                    port: None,
                    exe: &rt.exe,
                },
            ),
            "decision": action_json(rt, decision.action),
        });
        let ip = fake_answer.or_else(|| answer.first().map(|a| a.ip()));
        (Some(host), ip, fake_answer.is_some())
    };

    // Connect time.
    let Some(port) = port else {
        report["connect"] =
            json!("give HOST:PORT to see the connect-time decision (rules may depend on the port)");
        return Ok(report);
    };
    let names: Vec<&str> = name.iter().map(String::as_str).collect();
    let chosen = connect::choose(rt, &rt.exe, &names, is_fake, ip, port);
    let target = Target {
        host: chosen.host,
        addr: if is_fake { None } else { ip },
        port: Some(port),
        exe: &rt.exe,
    };
    let builtin = chosen.decision.rule_index.is_none() && chosen.pattern != "default";
    let passed_over: Vec<Value> = if builtin
        && chosen.pattern != "loopback (a default gateway does not apply)"
    {
        Vec::new()
    } else {
        rt.rules
            .trace(&target)
            .into_iter()
            .map(|(i, why)| json!({"index": i, "pattern": rt.rules.rules()[i].pattern, "why_not": why.describe()}))
            .collect()
    };
    let mut connect = json!({
        "destination": ip.map(|ip| SocketAddr::new(ip, port).to_string()),
        "rule": rule_json(rt, chosen.decision, Some(chosen.pattern), &target),
        "passed_over": passed_over,
    });
    let mut decided = action_json(rt, chosen.decision.action);
    if let Action::Gateway(i) = chosen.decision.action {
        decided["endpoint"] = json!(summary.gateway_endpoints[i]);
        decided["rewrite"] = json!(summary.rewrites[i]);
        decided["sends"] = json!(match (chosen.host, ip) {
            (Some(h), _) => format!("{h}:{port}"),
            (None, Some(ip)) => SocketAddr::new(ip, port).to_string(),
            (None, None) => String::new(),
        });
    }
    if rt.audit && chosen.decision.action == Action::Deny {
        // Audit mode: the library logs the denial and lets the connection go.
        decided["enforced"] = json!(false);
    }
    connect["decision"] = decided;
    report["connect"] = connect;
    Ok(report)
}

fn print_text(report: &Value, no_process: bool) {
    let s = |v: &Value| {
        v.as_str()
            .map(str::to_string)
            .unwrap_or_else(|| v.to_string())
    };
    println!("{}", s(&report["target"]));
    let lookup = &report["lookup"];
    match lookup["answer"].as_str() {
        Some(answer) if lookup["because"].is_object() => {
            let rule = rule_text(&lookup["because"]);
            let detail = match (
                lookup["fake_address"].as_str(),
                lookup["addresses"].as_array(),
            ) {
                (Some(fake), _) => format!(" {fake}"),
                (None, Some(list)) if !list.is_empty() => {
                    format!(" {}", list.iter().map(s).collect::<Vec<_>>().join(", "))
                }
                _ => String::new(),
            };
            println!("  lookup:  {answer}{detail} (by {rule})");
        }
        Some(answer) => println!("  lookup:  {answer}"),
        None => {}
    }
    let connect = &report["connect"];
    if let Some(note) = connect.as_str() {
        println!("  connect: {note}");
        return;
    }
    for step in connect["passed_over"].as_array().into_iter().flatten() {
        println!(
            "  rules[{}] {}: no, {}",
            step["index"],
            s(&step["pattern"]),
            s(&step["why_not"])
        );
    }
    let rule_text = rule_text(&connect["rule"]);
    let decision = &connect["decision"];
    let mut line = format!("  connect: {} by {rule_text}", s(&decision["action"]));
    if decision["enforced"] == false {
        line.push_str(" (audit mode: logged, not enforced: the connection goes direct)");
    }
    if let Some(gw) = decision["gateway"].as_str() {
        let how = if decision["rewrite"] == true {
            "connected there in place of"
        } else {
            "asked for"
        };
        line.push_str(&format!(
            ": gateway {gw} at {}, {how} {}",
            s(&decision["endpoint"]),
            s(&decision["sends"])
        ));
    }
    println!("{line}");
    if no_process {
        println!("  (as a process matching no `process` rule; use --process NAME)");
    }
}
