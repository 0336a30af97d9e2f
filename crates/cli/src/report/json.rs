//! The summary as one JSON object, for programs: the text report's content, with every top-k
//! table saying whether it is approximate and by how much a count may be high.
#![forbid(unsafe_code)]

use serde_json::{json, Value};

use super::histogram::Histogram;
use super::summary::{split_pair, Action, Summary, Traffic, HOSTS_SHOWN, ROWS_SHOWN};
use super::time::format_time;
use super::top_k::TopK;

/// The summary as one JSON object, with the text report's content.
pub(super) fn render_json(s: &Summary) -> Value {
    let malformed_listed: Vec<Value> = s
        .malformed
        .listed
        .iter()
        .map(|(source, line, flaw)| {
            json!({"file": s.sources[*source], "line": line, "reason": flaw.to_string()})
        })
        .collect();
    let by_action: serde_json::Map<String, Value> = Action::ALL
        .iter()
        .map(|&action| {
            let a = &s.by_action[action as usize];
            let counts = json!({
                "connects": a.connects,
                "ok": a.ok,
                "in_progress": a.in_progress,
                "not_ok": a.not_ok,
            });
            (action.name().to_string(), counts)
        })
        .collect();
    let times = |h: &Histogram| {
        json!({
            "count": h.total,
            "p50": h.percentile(500),
            "p99": h.percentile(990),
            "max": (h.total > 0).then_some(h.max),
        })
    };
    let mut elapsed = serde_json::Map::new();
    let note = "p50 and p99 are histogram bucket upper bounds, at most 6.25% high";
    elapsed.insert("percentiles".into(), note.into());
    elapsed.insert("all".into(), times(&s.elapsed));
    for action in Action::ALL {
        elapsed.insert(
            action.name().into(),
            times(&s.by_action[action as usize].elapsed),
        );
    }
    let r = &s.resolves;
    json!({
        "inputs": s.sources,
        "since": s.since.map(format_time),
        "lines": s.lines,
        "skipped_before_since": s.skipped_before_since,
        "events": s.events,
        "first_ts": s.first_ts.map(format_time),
        "last_ts": s.last_ts.map(format_time),
        "malformed": {
            "count": s.malformed.count,
            "truncated_last_lines": s.malformed.truncated,
            "first": malformed_listed,
        },
        "connects": {
            "total": s.connects,
            "tcp": s.tcp,
            "udp": s.udp,
            "in_progress": s.in_progress,
            "by_action": by_action,
        },
        "elapsed_us": elapsed,
        "gateways": top_json(&s.gateways, ROWS_SHOWN, |key, d| {
            let (gateway, endpoint) = split_pair(key);
            json!({
                "gateway": gateway,
                "endpoint": endpoint,
                "ok": d.ok,
                "in_progress": d.in_progress,
                "failed": d.failed,
            })
        }),
        "hosts": top_json(&s.hosts, HOSTS_SHOWN, |key, d| {
            json!({
                "host": key,
                "direct": d.direct,
                "gateway": d.gateway,
                "deny": d.deny,
                "failed": d.failed,
            })
        }),
        "denials": {
            "total": s.denials,
            "by_rule": top_json(&s.deny_rules, ROWS_SHOWN, |key, ()| json!({"rule": key})),
            "by_host": top_json(&s.denied_hosts, HOSTS_SHOWN, |key, ()| {
                let (host, rule) = split_pair(key);
                json!({"host": host, "rule": rule})
            }),
        },
        "results": top_json(&s.results, ROWS_SHOWN, |key, d| {
            json!({"result": key, "connect": d.connect, "resolve": d.resolve})
        }),
        "processes": top_json(&s.processes, ROWS_SHOWN, |key, d| {
            json!({"exe": key, "denied": d.denied, "failed": d.failed})
        }),
        "traffic": traffic_json(s),
        "resolves": {"total": r.total, "fake": r.fake, "real": r.real, "failed": r.failed},
        "config_errors": {
            "total": s.config_errors,
            "texts": top_json(&s.config_texts, ROWS_SHOWN, |key, ()| json!({"error": key})),
        },
        "other_events": s.other_events,
    })
}

/// `close` lines: totals, bytes per host, gateway and process (`count` is bytes sent), the
/// longest connections.
fn traffic_json(s: &Summary) -> Value {
    let c = &s.closes;
    let bytes = |name: &'static str| move |key: &str, d: &Traffic| json!({name: key, "connections": d.closes, "received": d.received});
    let longest: Vec<Value> = c
        .longest
        .iter()
        .map(|l| {
            json!({
                "host": l.host,
                "exe": l.exe,
                "closed_at": format_time(l.ts),
                "duration_ms": l.duration_ms,
                "sent": l.sent,
                "received": l.received,
            })
        })
        .collect();
    json!({
        "closes": c.total,
        "bytes_sent": c.sent,
        "bytes_received": c.received,
        "ended": top_json(&s.endings, ROWS_SHOWN, |key, ()| json!({"ended": key})),
        "by_host": sent_json(top_json(&s.host_bytes, HOSTS_SHOWN, bytes("host"))),
        "by_gateway": sent_json(top_json(&s.gateway_bytes, ROWS_SHOWN, bytes("gateway"))),
        "by_process": sent_json(top_json(&s.process_bytes, ROWS_SHOWN, bytes("exe"))),
        "longest": longest,
    })
}

/// A bytes table's entries say `sent` (and `sent_overcount`) where others say `count`.
fn sent_json(mut table: Value) -> Value {
    if let Some(entries) = table["entries"].as_array_mut() {
        for entry in entries.iter_mut().filter_map(Value::as_object_mut) {
            for (from, to) in [("count", "sent"), ("overcount", "sent_overcount")] {
                if let Some(value) = entry.remove(from) {
                    entry.insert(to.into(), value);
                }
            }
        }
    }
    table
}

/// A top-k table as `{approximate, distinct, entries: [{<fields>, count, overcount}]}`;
/// `distinct` is null when approximate, `overcount` bounds how much too high `count` may be.
fn top_json<D>(table: &TopK<D>, shown: usize, fields: impl Fn(&str, &D) -> Value) -> Value {
    let entries: Vec<Value> = table
        .ranked()
        .into_iter()
        .take(shown)
        .map(|slot| {
            let mut entry = fields(&slot.key, &slot.detail);
            if let Value::Object(map) = &mut entry {
                map.insert("count".into(), slot.count.into());
                map.insert("overcount".into(), slot.overcount.into());
            }
            entry
        })
        .collect();
    json!({"approximate": table.approximate(), "distinct": table.distinct(), "entries": entries})
}
