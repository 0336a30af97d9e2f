//! Property tests ("fuzzing on stable") for everything that parses input we do not control:
//! config text, rule patterns, addresses, proxy URLs, and gateway replies read off a real
//! socket by the real handshake code. Properties: never panic; hostile names never come out
//! valid; a handshake that succeeds consumed exactly the reply head.
//!
//! Cases per property: PROPTEST_CASES (256 by default here; `scripts/fuzz.sh` runs many more).

use std::io::Write;
use std::os::unix::io::AsRawFd;
use std::os::unix::net::UnixStream;

use proptest::prelude::*;

use mcp_redirect::config::{self, ConfigSource, Gateway, GatewayKind};
use mcp_redirect::gateway::{http_connect, socks5, Destination};
use mcp_redirect::net::{self, Cidr, HostPort, PortRange};
use mcp_redirect::rules::HostMatch;
use mcp_redirect::sys::socket::Deadline;

fn no_env(_: &str) -> Option<String> {
    Some("pw".into())
}

/// Config-shaped text: sections, keys and values drawn from the schema's vocabulary and noise.
fn config_text() -> impl Strategy<Value = String> {
    let key = prop_oneof![
        Just("default"),
        Just("on_config_error"),
        Just("strict"),
        Just("host"),
        Just("host_regex"),
        Just("cidr"),
        Just("port"),
        Just("process"),
        Just("via"),
        Just("action"),
        Just("kind"),
        Just("endpoints"),
        Just("username"),
        Just("password_env"),
        Just("strategy"),
        Just("mode"),
        Just("path"),
        Just("proxy_protocol"),
        Just("nameserver"),
        Just("max_hosts"),
        Just("bogus"),
    ];
    let value = prop_oneof![
        "\"[a-z*.\\\\()\\[\\]0-9:/_-]{0,24}\"",
        "-?[0-9]{1,6}",
        Just("true".to_string()),
        Just("[\"127.0.0.1:3128\", \"srv:_g._tcp.x\"]".to_string()),
        "\\{ [a-z]{1,5} = \"[a-z]{0,5}\" \\}",
        "[^\\n]{0,12}",
    ];
    let header = prop_oneof![
        Just("[[rules]]"),
        Just("[gateways.g]"),
        Just("[gateways.direct]"),
        Just("[dns]"),
        Just("[log]"),
        Just("[discovery]"),
        Just(""),
    ];
    prop::collection::vec((header, prop::collection::vec((key, value), 0..5)), 0..6).prop_map(
        |sections| {
            let mut text = String::new();
            for (header, pairs) in sections {
                text.push_str(header);
                text.push('\n');
                for (key, value) in pairs {
                    text.push_str(&format!("{key} = {value}\n"));
                }
            }
            text
        },
    )
}

proptest! {
    #[test]
    fn config_text_never_panics(text in config_text()) {
        let _ = config::parse(&text, ConfigSource::Nothing, &no_env);
    }

    #[test]
    fn arbitrary_bytes_as_config_never_panic(text in "\\PC{0,200}") {
        let _ = config::parse(&text, ConfigSource::Nothing, &no_env);
    }

    #[test]
    fn rule_patterns_never_panic(pattern in "\\PC{0,40}", name in "[a-zA-Z0-9.-]{0,40}") {
        if let Ok(host) = HostMatch::parse_regex(&pattern) {
            let _ = host.matches(&name.to_ascii_lowercase());
        }
        if let Ok(host) = HostMatch::parse_host(&pattern) {
            let _ = host.matches(&name.to_ascii_lowercase());
        }
        let _ = Cidr::parse(&pattern);
        let _ = PortRange::parse(&pattern);
        let _ = HostPort::parse(&pattern);
        let _ = net::parse_ipv4_any(&pattern);
    }

    #[test]
    fn normalized_names_are_never_hostile(raw in "\\PC{0,300}") {
        if let Some(name) = net::normalize_host(&raw) {
            prop_assert!(name.len() <= net::MAX_HOST_LEN);
            prop_assert!(!name.bytes().any(|b| b.is_ascii_control() || b == b' ' || b == b'/'));
            prop_assert_eq!(net::normalize_host(&name), Some(name.clone()), "normalising is idempotent");
        }
    }

    #[test]
    fn proxy_urls_never_echo_their_password(user in "[a-z]{1,8}", password in "[!-~]{6,20}", rest in "\\PC{0,30}") {
        let url = format!("http://{user}:{password}@{rest}");
        if let Err(message) = config::env::parse_proxy_url(&url, "x") {
            prop_assert!(!message.contains(&password), "{}", message);
        }
    }

    #[test]
    fn http_replies_are_parsed_safely_and_exactly(reply in reply_bytes(), tail in prop::collection::vec(any::<u8>(), 0..16)) {
        let mut bytes = reply.clone();
        bytes.extend_from_slice(&tail);
        let (ours, theirs) = UnixStream::pair().unwrap();
        // The gateway's side writes its reply and hangs up; ours is non-blocking, as the
        // library makes a socket for a handshake.
        let writer = std::thread::spawn(move || {
            let mut theirs = theirs;
            let _ = theirs.write_all(&bytes);
        });
        ours.set_nonblocking(true).unwrap();
        let dest = Destination { host: Some("api.example.test"), addr: None, port: 443 };
        let result = http_connect::handshake(ours.as_raw_fd(), &gateway(GatewayKind::Http), &dest, Deadline::after_ms(2000));
        writer.join().unwrap();
        if result.is_ok() {
            // Success means a 2xx head ending in a blank line, consumed to the byte: what
            // follows it is still in the socket, for the program.
            let end = find(&reply, b"\r\n\r\n").unwrap() + 4;
            let mut rest = vec![0u8; 4096];
            let n = std::io::Read::read(&mut &ours, &mut rest).unwrap_or(0);
            let mut expected = reply[end..].to_vec();
            expected.extend_from_slice(&tail);
            prop_assert_eq!(&rest[..n], &expected[..n.min(expected.len())]);
            prop_assert!(reply.starts_with(b"HTTP/1."));
        }
    }

    #[test]
    fn socks5_replies_never_panic(reply in prop::collection::vec(any::<u8>(), 0..40), prefix in prop::bool::ANY) {
        let mut bytes = if prefix { vec![5, 0] } else { Vec::new() };
        bytes.extend_from_slice(&reply);
        let (ours, theirs) = UnixStream::pair().unwrap();
        let writer = std::thread::spawn(move || {
            let mut theirs = theirs;
            let _ = theirs.write_all(&bytes);
        });
        ours.set_nonblocking(true).unwrap();
        let dest = Destination { host: Some("api.example.test"), addr: None, port: 443 };
        let _ = socks5::handshake(ours.as_raw_fd(), &gateway(GatewayKind::Socks5), &dest, Deadline::after_ms(2000));
        let _ = writer.join();
    }
}

/// Reply heads: mostly near-HTTP, sometimes garbage.
fn reply_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (
            "HTTP/1\\.[01] [0-9]{3}[ -~]{0,20}",
            prop::collection::vec("[A-Za-z-]{1,10}: [ -~]{0,20}", 0..4),
            prop::bool::ANY
        )
            .prop_map(|(status, headers, terminated)| {
                let mut text = format!("{status}\r\n");
                for header in headers {
                    text.push_str(&header);
                    text.push_str("\r\n");
                }
                if terminated {
                    text.push_str("\r\n");
                }
                text.into_bytes()
            }),
        prop::collection::vec(any::<u8>(), 0..64),
    ]
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn gateway(kind: GatewayKind) -> Gateway {
    let mut gw = config::env::parse_proxy_url("http://127.0.0.1:9", "g").unwrap();
    gw.kind = kind;
    gw
}
