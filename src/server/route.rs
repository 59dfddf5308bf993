//! The `x-gammainfra-route` response header: how a proxied request was routed, on every
//! answer that reached a provider (a success or a provider's failure).
//!
//! ```text
//! x-gammainfra-route: sort=<price|latency|throughput>; <attempt>[, <attempt>]…
//! <attempt> = <model>@<endpoint>=<outcome>
//! ```
//!
//! One attempt per endpoint called, in the order called: the gateway model ID, the
//! endpoint's key (`<provider>:<upstream model ID>`, as in the logs and the circuit
//! state), and the outcome: `ok` (it answered; for a stream, its first output arrived),
//! else the provider's HTTP status (`503`), else, when it sent none, the failure's kind:
//! `connect`, `timeout`, `rate_limited`, `unavailable`, `rejected`, `auth`,
//! `model_missing`, `catalog_fault`, `protocol` or `interrupted`. Names are written as
//! the catalog has them, except that bytes outside visible ASCII and the separators `%`
//! `,` `;` `=` `@` are percent-encoded (`%2C`), so the value always splits one way.
//! A model of `models` with no eligible endpoint was not attempted and has no entry.
//!
//! Built on the hot path: one string, grown in place, handed to the header without a
//! copy.

use std::fmt::Write;

use axum::http::HeaderValue;
use axum::response::Response;

use crate::catalog::Endpoint;
use crate::chat::request::SortBy;
use crate::providers::{UpstreamError, UpstreamErrorKind};

pub const ROUTE: &str = "x-gammainfra-route";

/// The decision so far: the sort, then one entry per endpoint called.
pub struct RouteTrace {
    buf: String,
    attempts: usize,
}

impl RouteTrace {
    pub fn new(sort: SortBy) -> Self {
        // Room for the sort and one attempt of a long model ID and endpoint key.
        let mut buf = String::with_capacity(160);
        buf.push_str("sort=");
        buf.push_str(sort.as_str());
        buf.push(';');
        Self { buf, attempts: 0 }
    }

    /// Notes an endpoint that answered.
    pub fn ok(&mut self, model: &str, ep: &Endpoint) {
        self.entry(model, ep);
        self.buf.push_str("ok");
    }

    /// Notes an endpoint that failed.
    pub fn failed(&mut self, model: &str, ep: &Endpoint, e: &UpstreamError) {
        self.entry(model, ep);
        match e.status {
            Some(s) => {
                let _ = write!(self.buf, "{s}");
            }
            None => self.buf.push_str(kind(e.kind)),
        }
    }

    fn entry(&mut self, model: &str, ep: &Endpoint) {
        self.buf
            .push_str(if self.attempts == 0 { " " } else { ", " });
        self.attempts += 1;
        encode(&mut self.buf, model);
        self.buf.push('@');
        encode(&mut self.buf, &ep.key);
        self.buf.push('=');
    }

    /// The header's value, as text (for an error's headers).
    pub fn into_string(self) -> String {
        self.buf
    }

    /// Sets the header on a response.
    pub fn set_on(self, resp: &mut Response) {
        if let Ok(v) = HeaderValue::try_from(self.buf) {
            resp.headers_mut().insert(ROUTE, v);
        }
    }
}

fn kind(k: UpstreamErrorKind) -> &'static str {
    match k {
        UpstreamErrorKind::Connect => "connect",
        UpstreamErrorKind::Timeout => "timeout",
        UpstreamErrorKind::RateLimited => "rate_limited",
        UpstreamErrorKind::Unavailable => "unavailable",
        UpstreamErrorKind::Rejected => "rejected",
        UpstreamErrorKind::Auth => "auth",
        UpstreamErrorKind::ModelMissing => "model_missing",
        UpstreamErrorKind::CatalogFault => "catalog_fault",
        UpstreamErrorKind::Protocol => "protocol",
        UpstreamErrorKind::Interrupted => "interrupted",
    }
}

fn plain(b: u8) -> bool {
    b.is_ascii_graphic() && !matches!(b, b'%' | b',' | b';' | b'=' | b'@')
}

/// Appends `s`, percent-encoding every byte that is not [`plain`].
fn encode(buf: &mut String, s: &str) {
    if s.bytes().all(plain) {
        buf.push_str(s);
        return;
    }
    for b in s.bytes() {
        if plain(b) {
            buf.push(char::from(b));
        } else {
            let _ = write!(buf, "%{b:02X}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn the_value_names_the_sort_and_each_attempt_in_order() {
        let c = Catalog::builtin().expect("catalog");
        let m = c.model("anthropic/claude-sonnet-4-6").expect("model");
        let (a, b) = (&m.endpoints[0], &m.endpoints[1]);
        let mut t = RouteTrace::new(SortBy::Latency);
        let mut e = UpstreamError::new(UpstreamErrorKind::Unavailable, "bedrock", "x");
        e.status = Some(503);
        t.failed(&m.id, a, &e);
        t.failed(
            &m.id,
            b,
            &UpstreamError::new(UpstreamErrorKind::Timeout, "bedrock", "x"),
        );
        t.ok(&m.id, a);
        assert_eq!(
            t.into_string(),
            format!(
                "sort=latency; {0}@{1}=503, {0}@{2}=timeout, {0}@{1}=ok",
                m.id, a.key, b.key
            )
        );
        let mut one = RouteTrace::new(SortBy::Price);
        one.ok(&m.id, a);
        let s = one.into_string();
        assert_eq!(s, format!("sort=price; {}@{}=ok", m.id, a.key));
        assert!(s.capacity() <= 160, "one allocation on the first try");
    }

    #[test]
    fn separators_and_non_ascii_are_percent_encoded() {
        let mut s = String::new();
        encode(&mut s, "a,b;c=d@e%f g/h:i-é");
        assert_eq!(s, "a%2Cb%3Bc%3Dd%40e%25f%20g/h:i-%C3%A9");
        assert!(HeaderValue::try_from(s).is_ok());
    }
}
