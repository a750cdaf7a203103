//! Hostile clients against the real stack, with the sidecar's header-read timeout at 1 s:
//! hundreds of connections dribbling their headers a byte at a time, oversized heads, too many
//! header fields, an endless chunked body. Each gets its answer (431, 413) or a close, the
//! sidecar keeps serving everyone else meanwhile, and its open file descriptors are back to
//! where they were once the attackers are gone. Loopback only, bounded in count and time.
//!
//! Needs `cargo build --workspace --bins`, `plugins/build` and PostgreSQL.

#![allow(clippy::unwrap_used)] // tests: a failed unwrap is a failed test
use std::time::{Duration, Instant};

use e2e::{stack::Stack, workspace};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

const SLOW_CLIENTS: usize = 200;

/// `config/sidecar.toml` with a 1 s header-read timeout, its plugin paths made absolute.
fn config() -> std::path::PathBuf {
    let original = std::fs::read_to_string(workspace::path("config/sidecar.toml")).unwrap();
    let plugins = workspace::path("plugins");
    let text = original
        .replace(
            "header_read_timeout = \"10s\"",
            "header_read_timeout = \"1s\"",
        )
        .replace("\"../plugins/", &format!("\"{}/", plugins.display()));
    assert_ne!(text, original);
    let dir = workspace::path("target/e2e-hostile-clients");
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("sidecar.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Reads what the server sends until it closes; `None` if it keeps the connection 10 s.
async fn until_closed(stream: &mut TcpStream) -> Option<String> {
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut answer));
    match read.await {
        Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
        Err(_) => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_clients_get_their_answer_or_a_close_and_everyone_else_is_served() {
    let stack = Stack::start_with_config(&testkit::Postgres::shared().create_database(), &config())
        .await
        .unwrap();
    let proxy = stack.proxy_url.trim_start_matches("http://").to_owned();
    let items = format!("{}/items", stack.proxy_url);
    assert_eq!(testkit::http::get(&items).await.unwrap().status, 200);
    let pid = stack.sidecar.id();
    let baseline = open_fds(pid);

    // Slowloris: each sends a byte of its head every 300 ms and never finishes.
    let started = Instant::now();
    let slow: Vec<_> = (0..SLOW_CLIENTS)
        .map(|_| {
            let proxy = proxy.clone();
            tokio::spawn(async move {
                let mut stream = TcpStream::connect(&proxy).await.unwrap();
                let head = b"GET /items HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
                for byte in head {
                    if stream.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                    let mut probe = [0u8; 1];
                    match tokio::time::timeout(Duration::from_millis(300), stream.read(&mut probe)).await {
                        Ok(Ok(0) | Err(_)) => return true,
                        Ok(Ok(_)) => return until_closed(&mut stream).await.is_some(),
                        Err(_) => {}
                    }
                }
                false
            })
        })
        .collect();

    // Meanwhile everyone else is served.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..20 {
        assert_eq!(testkit::http::get(&items).await.unwrap().status, 200);
    }

    // A head just past max_request_header_bytes (64 KiB) and too many header fields: 431.
    for head in [
        format!(
            "GET /items HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "a".repeat(65 * 1024)
        ),
        format!(
            "GET /items HTTP/1.1\r\nHost: x\r\n{}\r\n",
            (0..101)
                .map(|n| format!("X-{n}: {n}\r\n"))
                .collect::<String>()
        ),
    ] {
        let mut stream = TcpStream::connect(&proxy).await.unwrap();
        let _ = stream.write_all(head.as_bytes()).await;
        let answer = until_closed(&mut stream)
            .await
            .expect("closed after the answer");
        assert!(
            answer.starts_with("HTTP/1.1 431"),
            "{}",
            &answer[..answer.len().min(200)]
        );
    }

    // An endless chunked body: the api's 413 comes back while the client is still sending.
    let mut stream = TcpStream::connect(&proxy).await.unwrap();
    stream
        .write_all(b"POST /items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let sender = tokio::spawn(async move {
        let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, " ".repeat(64 * 1024));
        for _ in 0..256 {
            if writer.write_all(chunk.as_bytes()).await.is_err() {
                break;
            }
        }
    });
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut answer))
        .await
        .expect("an answer while the body is still coming")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    sender.abort();
    drop(reader);

    let mut cut = 0;
    for client in slow {
        if client.await.unwrap() {
            cut += 1;
        }
    }
    assert_eq!(cut, SLOW_CLIENTS, "every slow client was cut off");
    eprintln!(
        "{SLOW_CLIENTS} slow clients cut off within {:?}",
        started.elapsed()
    );

    // The descriptors come back (closing is asynchronous: give it a moment).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut now = open_fds(pid);
    while now > baseline + 2 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
        now = open_fds(pid);
    }
    assert!(now <= baseline + 2, "open fds {now}, baseline {baseline}");
    assert_eq!(testkit::http::get(&items).await.unwrap().status, 200);
}
