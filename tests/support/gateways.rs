//! Test gateways that record what they are asked: an HTTP CONNECT proxy and a SOCKS5 server.
//! Whatever host they are asked for, they connect to the one origin they were given.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use super::read_head;

/// How many handshakes a gateway holds unanswered at once, and the most it ever held: a
/// program whose connects run one after the other (an event loop blocked inside `connect()`)
/// never has more than one waiting.
#[derive(Default, Debug)]
pub struct Waiting {
    now: AtomicUsize,
    most: AtomicUsize,
}

impl Waiting {
    /// Holds one handshake for `ms` milliseconds, counted.
    fn hold(&self, ms: u64) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        thread::sleep(Duration::from_millis(ms));
        self.now.fetch_sub(1, Ordering::SeqCst);
    }

    /// The most handshakes held at the same time.
    pub fn most(&self) -> usize {
        self.most.load(Ordering::SeqCst)
    }
}

/// How the CONNECT proxy answers.
#[derive(Clone, Debug)]
pub enum ProxyBehaviour {
    /// Waits this long after the request, then behaves as `then` (see [`Waiting`]).
    Delayed(u64, Box<ProxyBehaviour>),
    /// `200 Connection established`, then a tunnel to the origin.
    Tunnel,
    /// Answers with this status line (e.g. `HTTP/1.1 403 Forbidden`) and closes.
    Refuse(&'static str),
    /// Requires `Proxy-Authorization: Basic <this token>`, else 407.
    RequireBasic(String),
    /// Sends these raw bytes and closes.
    Raw(Vec<u8>),
    /// Sends these bytes one at a time, `pause_ms` apart, then (if `then_hang`) keeps the
    /// connection open without a word, else tunnels to the origin.
    Trickle {
        bytes: Vec<u8>,
        pause_ms: u64,
        then_hang: bool,
    },
}

pub struct ConnectProxy {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    /// Handshakes held by `Delayed`.
    pub waiting: Arc<Waiting>,
}

impl ConnectProxy {
    pub fn start(origin: SocketAddr, behaviour: ProxyBehaviour) -> ConnectProxy {
        Self::start_on("127.0.0.1:0".parse().unwrap(), origin, behaviour)
    }

    /// As `start`, on a given address (to bring a "dead" endpoint back to life).
    pub fn start_on(at: SocketAddr, origin: SocketAddr, behaviour: ProxyBehaviour) -> ConnectProxy {
        let listener = TcpListener::bind(at).unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let waiting = Arc::new(Waiting::default());
        let held = waiting.clone();
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let seen = seen.clone();
                let behaviour = behaviour.clone();
                let held = held.clone();
                thread::spawn(move || serve_connect(client, origin, behaviour, seen, &held));
            }
        });
        ConnectProxy {
            addr,
            requests,
            waiting,
        }
    }

    /// Every request head received, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }

    /// The request lines (`CONNECT host:port HTTP/1.1`).
    pub fn request_lines(&self) -> Vec<String> {
        self.requests()
            .iter()
            .map(|r| r.lines().next().unwrap_or("").to_string())
            .collect()
    }
}

fn serve_connect(
    mut client: TcpStream,
    origin: SocketAddr,
    mut behaviour: ProxyBehaviour,
    seen: Arc<Mutex<Vec<String>>>,
    waiting: &Waiting,
) {
    let _ = client.set_read_timeout(Some(Duration::from_secs(10)));
    let head = read_head(&mut client);
    seen.lock().unwrap().push(head.clone());
    if !head.starts_with("CONNECT ") {
        let _ = client.write_all(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n");
        return;
    }
    while let ProxyBehaviour::Delayed(ms, then) = behaviour {
        waiting.hold(ms);
        behaviour = *then;
    }
    match behaviour {
        ProxyBehaviour::Delayed(..) => unreachable!("unwrapped above"),
        ProxyBehaviour::Refuse(status) => {
            let _ = client.write_all(format!("{status}\r\nContent-Length: 0\r\n\r\n").as_bytes());
        }
        ProxyBehaviour::Raw(bytes) => {
            let _ = client.write_all(&bytes);
        }
        ProxyBehaviour::RequireBasic(token) => {
            let expected = format!("proxy-authorization: basic {}", token.to_ascii_lowercase());
            if head
                .to_ascii_lowercase()
                .lines()
                .any(|l| l.trim() == expected)
            {
                tunnel(client, origin);
            } else {
                let _ = client.write_all(b"HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic realm=\"t\"\r\nContent-Length: 0\r\n\r\n");
            }
        }
        ProxyBehaviour::Tunnel => tunnel(client, origin),
        ProxyBehaviour::Trickle {
            bytes,
            pause_ms,
            then_hang,
        } => {
            for byte in bytes {
                if client.write_all(&[byte]).is_err() {
                    return;
                }
                thread::sleep(Duration::from_millis(pause_ms));
            }
            if then_hang {
                thread::sleep(Duration::from_secs(30));
            } else if let Ok(upstream) = TcpStream::connect(origin) {
                splice(client, upstream);
            }
        }
    }
}

fn tunnel(mut client: TcpStream, origin: SocketAddr) {
    let Ok(upstream) = TcpStream::connect(origin) else {
        let _ = client.write_all(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
        return;
    };
    let _ = client.write_all(b"HTTP/1.1 200 Connection established\r\n\r\n");
    splice(client, upstream);
}

/// Copies both ways until either side closes.
fn splice(a: TcpStream, b: TcpStream) {
    let _ = a.set_read_timeout(None);
    let (mut a_read, mut b_write) = (a.try_clone().unwrap(), b.try_clone().unwrap());
    let forward = thread::spawn(move || {
        let _ = std::io::copy(&mut a_read, &mut b_write);
        let _ = b_write.shutdown(Shutdown::Write);
    });
    let (mut b_read, mut a_write) = (b, a);
    let _ = std::io::copy(&mut b_read, &mut a_write);
    let _ = a_write.shutdown(Shutdown::Write);
    let _ = forward.join();
}

/// What a SOCKS5 client asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocksRequest {
    pub methods: Vec<u8>,
    pub credentials: Option<(String, String)>,
    /// The domain name (ATYP 3) or the address as text (ATYP 1/4).
    pub host: String,
    pub atyp: u8,
    pub port: u16,
}

pub struct Socks5Server {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<SocksRequest>>>,
    /// Requests held before the reply (see `start_delayed`).
    pub waiting: Arc<Waiting>,
}

impl Socks5Server {
    /// `credentials`: require RFC 1929 auth with these; `reply`: the reply code to send (0 =
    /// success, then a tunnel to the origin).
    pub fn start(origin: SocketAddr, credentials: Option<(&str, &str)>, reply: u8) -> Socks5Server {
        Self::start_delayed(origin, credentials, reply, 0)
    }

    /// As `start`, holding each request `delay_ms` before replying (see [`Waiting`]).
    pub fn start_delayed(
        origin: SocketAddr,
        credentials: Option<(&str, &str)>,
        reply: u8,
        delay_ms: u64,
    ) -> Socks5Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let seen = requests.clone();
        let waiting = Arc::new(Waiting::default());
        let held = waiting.clone();
        let credentials = credentials.map(|(u, p)| (u.to_string(), p.to_string()));
        thread::spawn(move || {
            for client in listener.incoming().flatten() {
                let seen = seen.clone();
                let credentials = credentials.clone();
                let held = held.clone();
                thread::spawn(move || {
                    let _ = serve_socks(client, origin, credentials, reply, seen, &held, delay_ms);
                });
            }
        });
        Socks5Server {
            addr,
            requests,
            waiting,
        }
    }

    pub fn requests(&self) -> Vec<SocksRequest> {
        self.requests.lock().unwrap().clone()
    }
}

fn serve_socks(
    mut client: TcpStream,
    origin: SocketAddr,
    required: Option<(String, String)>,
    reply: u8,
    seen: Arc<Mutex<Vec<SocksRequest>>>,
    waiting: &Waiting,
    delay_ms: u64,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = [0u8; 2];
    client.read_exact(&mut head)?;
    let mut methods = vec![0u8; head[1] as usize];
    client.read_exact(&mut methods)?;
    let mut credentials = None;
    if let Some((user, pass)) = &required {
        if !methods.contains(&2) {
            client.write_all(&[5, 0xff])?;
            return Ok(());
        }
        client.write_all(&[5, 2])?;
        let mut ver_len = [0u8; 2];
        client.read_exact(&mut ver_len)?;
        let mut u = vec![0u8; ver_len[1] as usize];
        client.read_exact(&mut u)?;
        let mut plen = [0u8; 1];
        client.read_exact(&mut plen)?;
        let mut p = vec![0u8; plen[0] as usize];
        client.read_exact(&mut p)?;
        let got = (
            String::from_utf8_lossy(&u).into_owned(),
            String::from_utf8_lossy(&p).into_owned(),
        );
        let ok = &got.0 == user && &got.1 == pass;
        credentials = Some(got);
        client.write_all(&[1, if ok { 0 } else { 1 }])?;
        if !ok {
            return Ok(());
        }
    } else {
        client.write_all(&[5, 0])?;
    }
    let mut req = [0u8; 4];
    client.read_exact(&mut req)?;
    let host = match req[3] {
        1 => {
            let mut a = [0u8; 4];
            client.read_exact(&mut a)?;
            std::net::Ipv4Addr::from(a).to_string()
        }
        4 => {
            let mut a = [0u8; 16];
            client.read_exact(&mut a)?;
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len)?;
            let mut name = vec![0u8; len[0] as usize];
            client.read_exact(&mut name)?;
            String::from_utf8_lossy(&name).into_owned()
        }
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port)?;
    seen.lock().unwrap().push(SocksRequest {
        methods,
        credentials,
        host,
        atyp: req[3],
        port: u16::from_be_bytes(port),
    });
    if delay_ms > 0 {
        waiting.hold(delay_ms);
    }
    if reply != 0 {
        client.write_all(&[5, reply, 0, 1, 0, 0, 0, 0, 0, 0])?;
        return Ok(());
    }
    let upstream = TcpStream::connect(origin)?;
    // Reply with a domain-type bound address, to exercise the variable-length parse.
    client.write_all(&[
        5, 0, 0, 3, 9, b'l', b'o', b'c', b'a', b'l', b'h', b'o', b's', b't', 0x1f, 0x90,
    ])?;
    splice(client, upstream);
    Ok(())
}
