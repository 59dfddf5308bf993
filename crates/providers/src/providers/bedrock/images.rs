//! Image URLs for Converse, which takes image bytes: `data:` URLs are decoded here,
//! `https://` URLs are fetched by the gateway within limits (size, time, content type),
//! and never from loopback, private, link-local or otherwise non-public addresses unless
//! configuration allows it, so no client can make the gateway reach inside its network.
//! The check happens in the connector's resolver, on the very addresses it connects to,
//! so DNS rebinding cannot slip past it.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::{Bytes, BytesMut};
use futures_util::future::try_join_all;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::chat::limits::{off_workers, BEDROCK_MAX_IMAGES};

/// Largest image accepted (Bedrock's own limit is 3.75 MB per image).
pub const MAX_IMAGE_BYTES: usize = 3_750_000;
/// Most image bytes one request may fetch, all its images together: Bedrock's 20 images
/// at 3.75 MB each. Counted as the bytes arrive, so no fetch reads past it.
pub const REQUEST_IMAGE_BYTES: usize = BEDROCK_MAX_IMAGES * MAX_IMAGE_BYTES;
/// Longest time a request's image fetches may take, all of them together (they run
/// concurrently), and the connect timeout of each.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// An image ready for Converse: its format and bytes (held once: the fetched body's
/// buffer, not a copy).
#[derive(Debug, Clone)]
pub struct Image {
    pub format: &'static str,
    pub bytes: Bytes,
}

fn format_of(media_type: &str) -> Option<&'static str> {
    match media_type.split(';').next().unwrap_or("").trim() {
        "image/png" => Some("png"),
        "image/jpeg" | "image/jpg" => Some("jpeg"),
        "image/gif" => Some("gif"),
        "image/webp" => Some("webp"),
        _ => None,
    }
}

type ImageClient =
    Client<hyper_rustls::HttpsConnector<HttpConnector<PublicResolver>>, Empty<Bytes>>;

#[derive(Clone)]
pub struct ImageFetcher {
    client: ImageClient,
    allow_private: bool,
}

impl ImageFetcher {
    pub fn new(allow_private: bool) -> Result<Self, rustls::Error> {
        let mut http = HttpConnector::new_with_resolver(PublicResolver { allow_private });
        http.set_nodelay(true);
        http.enforce_http(false);
        http.set_connect_timeout(Some(FETCH_TIMEOUT));
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
            .https_only()
            .enable_http1()
            .wrap_connector(http);
        Ok(Self {
            // Idle connections to image hosts are closed after 30 s (the timer makes the
            // pool do it; without one they stay until the host closes them).
            client: Client::builder(TokioExecutor::new())
                .pool_timer(hyper_util::rt::TokioTimer::new())
                .pool_idle_timeout(std::time::Duration::from_secs(30))
                .build(https),
            allow_private,
        })
    }

    /// The images a request's `image_url`s name, in order: fetched concurrently, within
    /// [`REQUEST_IMAGE_BYTES`] and [`FETCH_TIMEOUT`] for all of them together. The first
    /// failure ends the others. Errors are the client's (a 400). The caller checks the
    /// count against the provider's cap before calling.
    pub async fn load_all(&self, urls: &[&str]) -> Result<Vec<Image>, String> {
        self.load_all_within(urls, REQUEST_IMAGE_BYTES, FETCH_TIMEOUT)
            .await
    }

    /// [`ImageFetcher::load_all`] within `max_bytes` and `time` for all the images.
    async fn load_all_within(
        &self,
        urls: &[&str],
        max_bytes: usize,
        time: Duration,
    ) -> Result<Vec<Image>, String> {
        if urls.is_empty() {
            return Ok(Vec::new());
        }
        let budget = Budget {
            left: AtomicUsize::new(max_bytes),
            max: max_bytes,
        };
        let all = try_join_all(urls.iter().map(|u| self.load_within(u, &budget)));
        tokio::time::timeout(time, all).await.map_err(|_| {
            format!(
                "fetching the request's {} images took longer than {time:?}",
                urls.len()
            )
        })?
    }

    /// One image, as [`ImageFetcher::load_all`] loads it.
    pub async fn load(&self, url: &str) -> Result<Image, String> {
        let mut all = self.load_all(&[url]).await?;
        all.pop()
            .ok_or_else(|| format!("the image at {url} was not loaded"))
    }

    /// One image; its bytes are taken from the request's `budget`.
    async fn load_within(&self, url: &str, budget: &Budget) -> Result<Image, String> {
        if let Some(parsed) = crate::chat::request::parse_data_url(url) {
            let (media, data) = parsed?;
            let format = format_of(media).ok_or_else(|| {
                format!("image type {media} is not supported (png, jpeg, gif, webp)")
            })?;
            // Refused by its length before decoding (base64 holds 3 bytes per 4 chars).
            if data.len() / 4 * 3 > MAX_IMAGE_BYTES + 2 {
                return Err(format!("the image is larger than {MAX_IMAGE_BYTES} bytes"));
            }
            // Up to 5 MB of base64 per image: decoded off the async workers when large.
            let bytes = off_workers(data.len(), || aws_smithy_types::base64::decode(data))
                .await
                .map_err(|e| format!("the image data URL is not valid base64: {e}"))?;
            if bytes.len() > MAX_IMAGE_BYTES {
                return Err(format!("the image is larger than {MAX_IMAGE_BYTES} bytes"));
            }
            budget.take(bytes.len())?;
            return Ok(Image {
                format,
                bytes: Bytes::from(bytes),
            });
        }
        if !url.starts_with("https://") {
            return Err("image URLs must be https:// or data: URLs".to_owned());
        }
        let uri: hyper::Uri = url
            .parse()
            .map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        // An IP literal is connected to without the resolver: check it here.
        let host = uri
            .host()
            .unwrap_or("")
            .trim_start_matches('[')
            .trim_end_matches(']');
        if let Ok(ip) = host.parse::<IpAddr>() {
            if !self.allow_private && !is_public(ip) {
                return Err(format!("{host} is not a public address; the gateway does not fetch from private networks (no public address)"));
            }
        }
        let resp = self.client.get(uri).await.map_err(|e| {
            format!(
                "the image at {url} could not be fetched: {}",
                crate::providers::http::chain(&e)
            )
        })?;
        if !resp.status().is_success() {
            return Err(format!(
                "the image at {url} answered HTTP {}",
                resp.status()
            ));
        }
        let ct = resp
            .headers()
            .get(hyper::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let format = format_of(&ct).ok_or_else(|| {
            format!("the image at {url} has content type `{ct}`, not png, jpeg, gif or webp")
        })?;
        let too_large = || format!("the image at {url} is larger than {MAX_IMAGE_BYTES} bytes");
        let declared = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_IMAGE_BYTES) {
            return Err(too_large());
        }
        let mut buf = BytesMut::with_capacity(declared.unwrap_or(64 * 1024));
        let mut body = resp.into_body();
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| format!("the image at {url} broke off: {e}"))?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            if buf.len() + data.len() > MAX_IMAGE_BYTES {
                return Err(too_large());
            }
            budget.take(data.len())?;
            buf.extend_from_slice(&data);
        }
        Ok(Image {
            format,
            bytes: buf.freeze(),
        })
    }
}

/// The image bytes a request has left, shared by its concurrent fetches.
struct Budget {
    left: AtomicUsize,
    max: usize,
}

impl Budget {
    fn take(&self, n: usize) -> Result<(), String> {
        self.left
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
                left.checked_sub(n)
            })
            .map(|_| ())
            .map_err(|_| {
                format!(
                    "the request's images are larger than {} bytes together",
                    self.max
                )
            })
    }
}

/// Whether an address is on the public internet.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15
                || o[0] >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // 6to4 (2002::/16) and IPv4-compatible (::a.b.c.d) addresses embed an IPv4 one.
            let v4 = |hi: u16, lo: u16| {
                IpAddr::V4(Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo)))
            };
            if s[0] == 0x2002 {
                return is_public(v4(s[1], s[2]));
            }
            if s[..6].iter().all(|&x| x == 0) && !v6.is_loopback() && !v6.is_unspecified() {
                return is_public(v4(s[6], s[7]));
            }
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64
                || (s[0] == 0x2001 && s[1] == 0xdb8)) // documentation
        }
    }
}

/// A resolver that drops non-public addresses (unless allowed) and fails when none remain.
#[derive(Clone)]
pub struct PublicResolver {
    allow_private: bool,
}

type Addrs = std::vec::IntoIter<SocketAddr>;

impl tower::Service<Name> for PublicResolver {
    type Response = Addrs;
    type Error = std::io::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Addrs, std::io::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let allow = self.allow_private;
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .filter(|a| allow || is_public(a.ip()))
                .collect();
            if addrs.is_empty() {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!("{host} resolves to no public address; the gateway does not fetch from private networks"),
                ));
            }
            Ok(addrs.into_iter())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_loopback_and_link_local_addresses_are_not_public() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "2002:7f00:1::",
            "::10.0.0.1",
        ] {
            assert!(!is_public(ip.parse().expect("ip")), "{ip}");
        }
        for ip in ["93.184.216.34", "2606:2800:220:1::1"] {
            assert!(is_public(ip.parse().expect("ip")), "{ip}");
        }
    }

    #[tokio::test]
    async fn data_urls_are_decoded_and_private_hosts_refused() {
        let f = ImageFetcher::new(false).expect("fetcher");
        let img = f
            .load("data:image/png;base64,iVBORw0KGgo=")
            .await
            .expect("png");
        assert_eq!(img.format, "png");
        assert_eq!(&img.bytes[..4], b"\x89PNG");
        assert!(f.load("data:image/tiff;base64,AAAA").await.is_err());
        assert!(f.load("data:image/png;base64,@@@").await.is_err());
        assert!(f.load("http://example.com/a.png").await.is_err());
        let e = f
            .load("https://127.0.0.1:9/a.png")
            .await
            .expect_err("loopback refused");
        assert!(e.contains("no public address"), "{e}");
        let e = f
            .load("https://localhost:9/a.png")
            .await
            .expect_err("localhost refused");
        assert!(e.contains("no public address"), "{e}");
    }

    #[tokio::test]
    async fn a_requests_images_share_one_byte_budget() {
        let f = ImageFetcher::new(false).expect("fetcher");
        let png = "data:image/png;base64,iVBORw0KGgo="; // 8 bytes
        let urls = [png, png, png];
        let long = Duration::from_secs(5);
        assert_eq!(
            f.load_all_within(&urls, 24, long)
                .await
                .expect("fits")
                .len(),
            3
        );
        let e = f
            .load_all_within(&urls, 23, long)
            .await
            .expect_err("over the budget");
        assert!(e.contains("larger than 23 bytes together"), "{e}");
    }

    #[tokio::test]
    async fn a_requests_fetches_run_concurrently_within_one_time_budget() {
        // A server that accepts connections and never answers (not even TLS).
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let server = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                held.push(s);
            }
        });
        let f = ImageFetcher::new(true).expect("fetcher");
        let urls: Vec<String> = (0..3)
            .map(|i| format!("https://127.0.0.1:{port}/{i}.png"))
            .collect();
        let urls: Vec<&str> = urls.iter().map(String::as_str).collect();
        let t = std::time::Instant::now();
        let e = f
            .load_all_within(&urls, REQUEST_IMAGE_BYTES, Duration::from_millis(500))
            .await
            .expect_err("never answered");
        let took = t.elapsed();
        assert!(e.contains("took longer than 500ms"), "{e}");
        // One budget for the three, not one each; and all three were under way.
        assert!(took < Duration::from_millis(1_400), "{took:?}");
        assert_eq!(accepted.load(Ordering::SeqCst), 3);
        server.abort();
    }
}
