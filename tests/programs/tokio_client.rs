//! A tokio program for the relay's tests: edge-triggered epoll (mio) on a current-thread
//! runtime, the way Rust MCP servers and clients run. Usage: `tokio-client URL_HOST...`: fetches
//! `/` from every `host` at once (port 80) and prints each body, or the error kind of a failed
//! connect (`ConnectionRefused`, `TimedOut`...).

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

async fn fetch(host: String) -> String {
    let mut stream = match TcpStream::connect((host.as_str(), 80)).await {
        Ok(stream) => stream,
        Err(e) => return format!("{:?}", e.kind()),
    };
    if let Err(e) = stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await {
        return format!("write: {:?}", e.kind());
    }
    let mut reply = Vec::new();
    if let Err(e) = stream.read_to_end(&mut reply).await {
        return format!("read: {:?}", e.kind());
    }
    let text = String::from_utf8_lossy(&reply);
    text.split_once("\r\n\r\n")
        .map_or("(no body)".to_string(), |(_, body)| body.to_string())
}

fn main() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let hosts: Vec<String> = std::env::args().skip(1).collect();
    let results = runtime.block_on(async {
        let tasks: Vec<_> = hosts.into_iter().map(|h| tokio::spawn(fetch(h))).collect();
        let mut results = Vec::new();
        for task in tasks {
            results.push(task.await.unwrap_or_else(|e| format!("task: {e}")));
        }
        results
    });
    for result in results {
        println!("{result}");
    }
}
