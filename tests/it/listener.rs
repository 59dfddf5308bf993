//! Hostile clients at the door: bodies read only after the key is checked, early
//! answers that reach a client still sending, body timeouts, and concurrency limits.

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::*;

/// Sends a chat request with a `len`-byte body over a raw connection, writing the body
/// while reading the answer; returns the status line and whether every byte of the
/// body could be written (a connection reset cuts the write short).
async fn send_big(gw: &Gw, auth: &str, len: usize) -> (String, bool) {
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (mut rd, mut wr) = stream.into_split();
    let head = format!(
        "POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {auth}\r\ncontent-type: application/json\r\ncontent-length: {len}\r\n\r\n"
    );
    let writer = tokio::spawn(async move {
        wr.write_all(head.as_bytes()).await?;
        let chunk = vec![b' '; 1 << 20];
        let mut left = len;
        while left > 0 {
            let n = left.min(chunk.len());
            wr.write_all(&chunk[..n]).await?;
            left -= n;
        }
        wr.flush().await
    });
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = Instant::now() + Duration::from_secs(20);
    while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
        assert!(Instant::now() < deadline, "no answer");
        match tokio::time::timeout(Duration::from_secs(20), rd.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => answer.extend_from_slice(&buf[..n]),
        }
    }
    let wrote_all = writer.await.expect("writer").is_ok();
    let status = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned();
    (status, wrote_all)
}

/// A request without a valid key gets its 401 without its body being read, and a
/// client still sending a 40 MiB body receives the answer, not a reset.
#[tokio::test]
async fn an_unauthenticated_big_body_gets_its_401_not_a_reset() {
    let gw = Gw::start().await;
    let started = Instant::now();
    let (status, wrote_all) = send_big(&gw, "gi-not-a-key", 40 << 20).await;
    assert_eq!(status, "HTTP/1.1 401 Unauthorized");
    assert!(wrote_all, "the body was drained, not cut by a reset");
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// A body over the limit is refused with 413 from its Content-Length, before it is
/// read, and the client still gets the answer.
#[tokio::test]
async fn a_body_over_the_limit_gets_its_413_not_a_reset() {
    let gw = Gw::start().await;
    let (_, key) = gw.account("big-body@example.com").await;
    let (status, wrote_all) = send_big(&gw, &key, 40 << 20).await;
    assert_eq!(status, "HTTP/1.1 413 Payload Too Large");
    assert!(wrote_all, "the body was drained, not cut by a reset");
}

/// A body that stops arriving is answered 408 after `body_timeout_ms`.
#[tokio::test]
async fn a_body_that_stops_arriving_times_out() {
    let gw = Gw::start_with(|c| c.body_timeout = Duration::from_millis(300)).await;
    let (_, key) = gw.account("slow-body@example.com").await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    s.write_all(
        format!("POST /v1/chat/completions HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{{\"model\":").as_bytes(),
    )
    .await
    .expect("write");
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("answered")
        .expect("read");
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("request_timeout"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// At most `limits.key_max_concurrent_requests` requests of a key run at once; the
/// next gets 429 with Retry-After, and once one finishes the key is served again.
#[tokio::test]
async fn a_key_over_its_concurrency_limit_gets_429() {
    let gw = std::sync::Arc::new(
        Gw::start_with(|c| {
            c.limits.key_concurrent = 2;
            c.limits.account_concurrent = 3;
        })
        .await,
    );
    let (id, key) = gw.account("concurrency@example.com").await;
    let slow = chat_body("gpt-4o-mini", "hello [[sim:slow 600]]", "");
    let fast = chat_body("gpt-4o-mini", "hello", "");
    let mut running = Vec::new();
    for _ in 0..2 {
        let (gw, key, slow) = (gw.clone(), key.clone(), slow.clone());
        running.push(tokio::spawn(async move {
            gw.chat(&key, &slow, &[]).await.status
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = gw.chat(&key, &fast, &[]).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert_eq!(r.error_code(), "too_many_concurrent_requests");
    assert_eq!(r.header("retry-after"), Some("1"));
    // Another key of the account still has room: the account allows three.
    let (_, other) = gw.key_with(&id, "{}").await;
    let held = {
        let (gw, other, slow) = (gw.clone(), other.clone(), slow.clone());
        tokio::spawn(async move { gw.chat(&other, &slow, &[]).await.status })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Now the account is at three: its other key is refused too.
    let r = gw.chat(&other, &fast, &[]).await;
    assert_eq!(r.status, 429, "{}", r.text());
    assert!(r.text().contains("account"), "{}", r.text());
    for t in running {
        assert_eq!(t.await.expect("task"), 200);
    }
    assert_eq!(held.await.expect("task"), 200);
    assert_eq!(gw.chat(&key, &fast, &[]).await.status, 200);
}

/// A connection that sends nothing is closed after `header_read_timeout_ms`, also once
/// it has been answered (the idle keep-alive timeout); and beyond `max_connections`
/// new connections wait until one closes.
#[tokio::test]
async fn idle_connections_are_closed_and_the_connection_cap_holds() {
    let gw = Gw::start_with(|c| {
        c.header_read_timeout = Duration::from_millis(500);
        c.max_connections = 2;
    })
    .await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    // Two connections that never send a request take both slots.
    let mut idle = Vec::new();
    for _ in 0..2 {
        idle.push(
            tokio::net::TcpStream::connect(&addr)
                .await
                .expect("connect"),
        );
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    // A third client waits for a slot: it is served once the idle ones are closed.
    let r = gw.send("GET", "/healthz", None, None, &[]).await;
    assert_eq!(r.status, 200);
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(300),
        "served at once ({waited:?}) although both slots were taken"
    );
    assert!(waited < Duration::from_secs(5), "{waited:?}");
    // The idle connections were closed by the server.
    for mut s in idle {
        let mut b = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut b))
            .await
            .expect("closed")
            .unwrap_or(0);
        let text = String::from_utf8_lossy(&b[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    // Keep-alive: an answered connection left idle is closed too.
    let mut s = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    s.write_all(format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut b = vec![0u8; 1024];
    let n = s.read(&mut b).await.expect("read");
    assert!(String::from_utf8_lossy(&b[..n]).starts_with("HTTP/1.1 200"));
    let idle_from = Instant::now();
    let n = tokio::time::timeout(Duration::from_secs(3), s.read(&mut b))
        .await
        .expect("closed when idle")
        .unwrap_or(0);
    assert!(n == 0 || String::from_utf8_lossy(&b[..n]).starts_with("HTTP/1.1 408"));
    assert!(idle_from.elapsed() >= Duration::from_millis(300));
}
