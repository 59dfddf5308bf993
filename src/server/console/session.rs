//! The console's logins: passwords (argon2id), session cookies, CSRF tokens and form
//! bodies.
//!
//! * A login session is a random 256-bit token in the `gi_session` cookie (`HttpOnly`,
//!   `SameSite=Lax`, `Path=/console`, `Secure` unless the gateway is reached on
//!   loopback); the database keeps only its SHA-256 ([`crate::ledger::Store::session`]).
//! * Every form carries a CSRF token: the session's own once logged in, and before that
//!   (sign-up, login, password reset) the value of a `gi_csrf` cookie set with the form
//!   (a double-submit token: another site can neither read the cookie nor set it).

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::HeaderMap;
use sha2::{Digest, Sha256};

use crate::ledger::StoreError;
use crate::server::AppState;

pub const SESSION_COOKIE: &str = "gi_session";
pub const CSRF_COOKIE: &str = "gi_csrf";

/// Passwords are 10 to 128 characters.
pub const MIN_PASSWORD: usize = 10;
pub const MAX_PASSWORD: usize = 128;

/// The customer logged in with the request's session cookie.
#[derive(Debug, Clone)]
pub struct Customer {
    pub account_id: String,
    pub email: String,
    pub verified: bool,
    pub disabled: bool,
    /// The token every form of this session carries.
    pub csrf: String,
    /// The SHA-256 of the session's token (to end it).
    pub token_hash: String,
}

/// 32 random bytes from the OS, hex-encoded.
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

/// What the database stores of a token.
pub fn digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A cookie of the request.
pub fn cookie<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// Whether cookies must be `Secure`: always, unless the gateway is reached on loopback
/// (`localhost`, `127.0.0.0/8`, `[::1]`), where browsers allow plain HTTP.
pub fn secure(st: &AppState, h: &HeaderMap) -> bool {
    let host = match &st.config.public_url {
        Some(u) => u
            .split_once("://")
            .map(|(_, rest)| rest.split('/').next().unwrap_or_default().to_owned())
            .unwrap_or_default(),
        None => h
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned(),
    };
    !is_loopback_host(&host)
}

pub fn is_loopback_host(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or_default(),
        None => authority.rsplit_once(':').map_or(authority, |(h, _)| h),
    };
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A `Set-Cookie` value for the console's path. `max_age: 0` removes the cookie.
pub fn set_cookie(name: &str, value: &str, max_age_secs: u64, secure: bool) -> String {
    format!(
        "{name}={value}; Path=/console; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{}",
        if secure { "; Secure" } else { "" }
    )
}

/// The customer of the request's session, if it is live.
pub async fn current(st: &AppState, h: &HeaderMap) -> Result<Option<Customer>, StoreError> {
    let Some(token) = cookie(h, SESSION_COOKIE) else {
        return Ok(None);
    };
    let token_hash = digest(token);
    let Some(s) = st
        .ledger
        .store()
        .session(&token_hash, &crate::clock::now_rfc3339())
        .await?
    else {
        return Ok(None);
    };
    let c = s.customer;
    let disabled = c.disabled_at.is_some() || st.ledger.account_disabled(&s.account_id);
    Ok(Some(Customer {
        account_id: s.account_id,
        email: c.email,
        verified: c.email_verified_at.is_some(),
        disabled,
        csrf: s.csrf,
        token_hash,
    }))
}

/// Starts a session for the account: the `Set-Cookie` value to send.
pub async fn start(st: &AppState, h: &HeaderMap, account_id: &str) -> Result<String, StoreError> {
    let token = random_token();
    let now = time::OffsetDateTime::now_utc();
    let ttl = st.config.console.session;
    let expires = now + ttl;
    st.ledger
        .store()
        .add_session(
            &digest(&token),
            account_id,
            &random_token(),
            &crate::clock::rfc3339(now),
            &crate::clock::rfc3339(expires),
        )
        .await?;
    Ok(set_cookie(
        SESSION_COOKIE,
        &token,
        ttl.as_secs(),
        secure(st, h),
    ))
}

/// Whether two tokens are equal, in time independent of where they differ.
pub fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && !a.is_empty()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The argon2id hash (PHC string) of a password, with the crate's recommended costs
/// (19 MiB, 2 passes), computed off the async threads.
pub async fn hash_password(password: String) -> Result<String, String> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Whether `password` matches `hash`. Without a hash (no such account, or no password
/// set) a hash is still computed, so that the answer takes as long either way.
pub async fn check_password(password: String, hash: Option<String>) -> bool {
    tokio::task::spawn_blocking(move || {
        let a = Argon2::default();
        match hash.as_deref().map(PasswordHash::new) {
            Some(Ok(h)) => a.verify_password(password.as_bytes(), &h).is_ok(),
            _ => {
                let salt = SaltString::generate(&mut OsRng);
                let _ = a.hash_password(password.as_bytes(), &salt);
                false
            }
        }
    })
    .await
    .unwrap_or(false)
}

/// Why a new password is refused, if it is.
pub fn password_problem(p: &str) -> Option<String> {
    let n = p.chars().count();
    if n < MIN_PASSWORD {
        Some(format!(
            "Choose a password of at least {MIN_PASSWORD} characters."
        ))
    } else if n > MAX_PASSWORD {
        Some(format!("A password is at most {MAX_PASSWORD} characters."))
    } else {
        None
    }
}

/// Why an email address is refused, if it is: one `@`, something before it, a domain
/// with a dot after it, no spaces, at most 254 characters.
pub fn email_problem(e: &str) -> Option<&'static str> {
    let ok = e.len() <= 254
        && !e.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(e.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.contains('@') && domain.contains('.')
                && !domain.starts_with('.') && !domain.ends_with('.'));
    (!ok).then_some("Enter an email address such as you@example.com.")
}

/// A form body (`application/x-www-form-urlencoded`).
pub struct Form(Vec<(String, String)>);

impl Form {
    pub fn parse(body: &[u8]) -> Form {
        Form(form_urlencoded::parse(body).into_owned().collect())
    }

    /// The field's value, or "".
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_found_by_name_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            axum::http::header::COOKIE,
            "a=1; gi_session=abc; gi_csrf=def".parse().expect("header"),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("abc"));
        assert_eq!(cookie(&h, CSRF_COOKIE), Some("def"));
        assert_eq!(cookie(&h, "gi"), None);
    }

    #[test]
    fn only_loopback_hosts_go_without_secure_cookies() {
        for h in [
            "localhost:8080",
            "127.0.0.1:3000",
            "[::1]:80",
            "127.0.0.2",
            "LOCALHOST",
        ] {
            assert!(is_loopback_host(h), "{h}");
        }
        for h in [
            "gw.example.com",
            "10.0.0.5:8080",
            "[2001:db8::1]:443",
            "localhost.example.com",
        ] {
            assert!(!is_loopback_host(h), "{h}");
        }
        let c = set_cookie(SESSION_COOKIE, "t", 60, true);
        assert_eq!(
            c,
            "gi_session=t; Path=/console; Max-Age=60; HttpOnly; SameSite=Lax; Secure"
        );
        assert!(!set_cookie(SESSION_COOKIE, "t", 60, false).contains("Secure"));
    }

    #[tokio::test]
    async fn passwords_hash_with_argon2id_and_verify() {
        let h = hash_password("correct horse battery".into())
            .await
            .expect("hash");
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(check_password("correct horse battery".into(), Some(h.clone())).await);
        assert!(!check_password("correct horse batterx".into(), Some(h)).await);
        assert!(!check_password("anything".into(), None).await);
    }

    #[test]
    fn emails_and_passwords_are_checked() {
        assert!(email_problem("you@example.com").is_none());
        for bad in [
            "",
            "you",
            "@example.com",
            "you@example",
            "a b@example.com",
            "you@@example.com",
            "you@example.com.",
        ] {
            assert!(email_problem(bad).is_some(), "{bad}");
        }
        assert!(password_problem("short").is_some());
        assert!(password_problem("long enough!").is_none());
        assert!(password_problem(&"x".repeat(129)).is_some());
    }

    #[test]
    fn tokens_compare_exactly() {
        assert!(same("abc", "abc"));
        assert!(!same("abc", "abd"));
        assert!(!same("", ""));
        assert!(!same("abc", "abcd"));
        assert_ne!(random_token(), random_token());
        assert_eq!(random_token().len(), 64);
    }
}
