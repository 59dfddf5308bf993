//! The customers' web console (docs/console.md), driven as a browser drives it: forms
//! posted with their CSRF tokens, cookies kept, redirects read. The real browser walks
//! the same pages in tests/browser/console.py.

use std::collections::HashMap;

use crate::harness::{on_both_backends, Backend, Gw, Resp};

pub(crate) const PASSWORD: &str = "correct horse battery";

/// A browser's cookie jar over the harness's client.
pub(crate) struct Browser<'g> {
    gw: &'g Gw,
    cookies: HashMap<String, String>,
}

impl<'g> Browser<'g> {
    pub(crate) fn new(gw: &'g Gw) -> Self {
        Self {
            gw,
            cookies: HashMap::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, r: &Resp) {
        for v in r.headers.get_all("set-cookie") {
            let v = v.to_str().expect("cookie");
            let (pair, _) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = pair.split_once('=').expect("name=value");
            if val.is_empty() || v.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), val.to_owned());
            }
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Resp {
        let c = self.cookie_header();
        let r = self
            .gw
            .send("GET", path, None, None, &[("cookie", &c)])
            .await;
        self.keep_cookies(&r);
        r
    }

    async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Resp {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let c = self.cookie_header();
        let r = self
            .gw
            .send(
                "POST",
                path,
                None,
                Some(&body),
                &[
                    ("cookie", &c),
                    ("content-type", "application/x-www-form-urlencoded"),
                ],
            )
            .await;
        self.keep_cookies(&r);
        r
    }

    /// Opens the page at `path` and posts its form (the one whose action is `action`)
    /// with its CSRF token and `fields`.
    async fn submit(&mut self, path: &str, action: &str, fields: &[(&str, &str)]) -> Resp {
        let page = self.get(path).await;
        assert_eq!(page.status, 200, "{path}: {}", page.text());
        let csrf = csrf_of(&page.text(), action);
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post(action, &all).await
    }

    pub(crate) async fn sign_up(&mut self, email: &str) -> Resp {
        self.submit(
            "/console/signup",
            "/console/signup",
            &[("email", email), ("password", PASSWORD)],
        )
        .await
    }

    pub(crate) async fn log_in(&mut self, email: &str, password: &str) -> Resp {
        self.submit(
            "/console/login",
            "/console/login",
            &[("email", email), ("password", password)],
        )
        .await
    }
}

/// The CSRF token of the form posting to `action`.
fn csrf_of(html: &str, action: &str) -> String {
    let form = html
        .split("<form")
        .find(|f| f.contains(&format!("action=\"{action}\"")))
        .unwrap_or_else(|| panic!("no form for {action} in {html}"));
    between(form, "name=\"csrf\" value=\"", "\"")
}

fn between(s: &str, start: &str, end: &str) -> String {
    let i = s
        .find(start)
        .unwrap_or_else(|| panic!("`{start}` not in {s}"))
        + start.len();
    let j = s[i..].find(end).expect("end") + i;
    s[i..j].to_owned()
}

/// The text of the element with `id`.
fn by_id(html: &str, id: &str) -> String {
    let tag = format!("id=\"{id}\"");
    let i = html
        .find(&tag)
        .unwrap_or_else(|| panic!("no #{id} in {html}"));
    let j = html[i..].find('>').expect("tag end") + i + 1;
    let k = html[j..].find("</").expect("closing tag") + j;
    html[j..k].to_owned()
}

/// The messages the outbox holds for `to`, newest first.
async fn mails(gw: &Gw, to: &str) -> Vec<serde_json::Value> {
    let r = gw
        .admin("GET", &format!("/admin/v1/outbox?to={to}"), None)
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["data"].as_array().expect("data").clone()
}

/// The path and query of the link in the newest message to `to` that contains `marker`.
pub(crate) async fn link(gw: &Gw, to: &str, marker: &str) -> String {
    let m = mails(gw, to).await;
    let body = m
        .iter()
        .find_map(|m| m["body"].as_str().filter(|b| b.contains(marker)))
        .unwrap_or_else(|| panic!("no mail with {marker} to {to}: {m:?}"));
    let i = body.find("/console/").expect("link");
    body[i..]
        .split_whitespace()
        .next()
        .expect("link")
        .to_owned()
}

/// The account of an email, through the admin API's view of the ledger.
async fn account_of(gw: &Gw, email: &str) -> String {
    gw.state
        .ledger
        .store()
        .login_row(email)
        .await
        .expect("store")
        .expect("account")
        .account_id
}

async fn signing_up_and_verifying_grants_the_trial_once(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let mut b = Browser::new(&gw);
    let r = b.sign_up("  Ada@Example.COM ").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("ada@example.com"), "{}", r.text());
    let account = account_of(&gw, "ada@example.com").await;
    // No trial, no key before the email is verified.
    let v = gw.account_view(&account).await;
    assert_eq!(v["trial_usd"], "0.00", "{v}");
    assert_eq!(v["balance_usd"], "0.00", "{v}");

    // Logged in but unverified: the overview says so and keys cannot be made.
    let r = b.log_in("ada@example.com", PASSWORD).await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/console"));
    let page = b.get("/console").await.text();
    assert!(page.contains("id=\"verify-panel\""), "{page}");
    assert_eq!(by_id(&page, "trial"), "$0.00");
    let csrf = csrf_of(&b.get("/console/keys").await.text(), "/console/logout");
    let r = b
        .post("/console/keys", &[("csrf", &csrf), ("name", "x")])
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert!(r.text().contains("Verify your email"), "{}", r.text());

    let verify = link(&gw, "ada@example.com", "/console/verify?token=").await;
    let r = b.get(&verify).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text()
            .contains("$3.00 of trial credit is on your account"),
        "{}",
        r.text()
    );
    let page = b.get("/console").await.text();
    assert_eq!(by_id(&page, "trial"), "$3.00");
    assert_eq!(by_id(&page, "balance"), "$3.00");
    assert!(!page.contains("verify-panel"), "{page}");

    // The link works once (opened again, it says so: a mail scanner may have opened it
    // first); a made-up one is refused. Signing up again with the address (any case)
    // makes no second account and no second trial: its owner is told by email instead.
    let again = b.get(&verify).await;
    assert_eq!(again.status, 200);
    assert!(
        again.text().contains("already verified"),
        "{}",
        again.text()
    );
    let made_up = b
        .get(&format!("/console/verify?token={}", "ab".repeat(32)))
        .await;
    assert_eq!(made_up.status, 400);
    assert!(made_up
        .text()
        .contains("invalid, was already used, or has expired"));
    let mut other = Browser::new(&gw);
    let r = other.sign_up("ADA@example.com").await;
    assert_eq!(r.status, 200, "the same page either way: {}", r.text());
    let m = mails(&gw, "ada@example.com").await;
    assert_eq!(m.len(), 2, "{m:?}");
    assert_eq!(m[0]["subject"], "You already have a GammaInfra account");
    let v = gw.account_view(&account).await;
    assert_eq!(v["trial_usd"], "3.00", "{v}");
    assert_eq!(v["balance_usd"], "3.00", "{v}");
    assert_eq!(
        gw.state
            .ledger
            .store()
            .ledger_count(&account)
            .await
            .expect("count"),
        1,
        "one trial entry"
    );
}

async fn forms_without_their_csrf_token_change_nothing(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    // Before login: the token must match the gi_csrf cookie set with the form.
    let mut b = Browser::new(&gw);
    let r = b
        .post(
            "/console/signup",
            &[
                ("csrf", "x"),
                ("email", "eve@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "{}", r.text());
    b.get("/console/signup").await;
    let r = b
        .post(
            "/console/signup",
            &[
                ("csrf", &"0".repeat(64)),
                ("email", "eve@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(
        r.status,
        403,
        "a token other than the cookie's: {}",
        r.text()
    );
    assert!(mails(&gw, "eve@example.com").await.is_empty());
    assert!(gw
        .state
        .ledger
        .store()
        .login_row("eve@example.com")
        .await
        .expect("store")
        .is_none());

    // Logged in: the session's own token.
    b.sign_up("eve@example.com").await;
    let verify = link(&gw, "eve@example.com", "verify?token=").await;
    b.get(&verify).await;
    assert_eq!(b.log_in("eve@example.com", PASSWORD).await.status, 303);
    let r = b
        .submit("/console/keys", "/console/keys", &[("name", "kept")])
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let key_id = between(&r.text(), "id=\"key-", "\"");
    let pre_login_token = b.cookies["gi_csrf"].clone();
    for (path, fields) in [
        ("/console/keys".to_owned(), vec![("name", "forged")]),
        (format!("/console/keys/{key_id}/revoke"), vec![]),
        ("/console/topup".to_owned(), vec![("amount", "10")]),
        ("/console/logout".to_owned(), vec![]),
    ] {
        for token in ["", pre_login_token.as_str()] {
            let mut f = vec![("csrf", token)];
            f.extend_from_slice(&fields);
            let r = b.post(&path, &f).await;
            assert_eq!(r.status, 403, "{path} with {token:?}: {}", r.text());
        }
    }
    let page = b.get("/console/keys").await.text();
    assert!(!page.contains("forged"), "{page}");
    assert!(page.contains("Revoke"), "the key is still active: {page}");
    assert_eq!(b.get("/console").await.status, 200, "still logged in");
}

async fn sessions_are_http_only_lax_cookies_ended_by_logout(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let mut b = Browser::new(&gw);
    b.sign_up("sam@example.com").await;
    let r = b.log_in("sam@example.com", PASSWORD).await;
    let cookie = r.header("set-cookie").expect("session cookie").to_owned();
    assert!(cookie.starts_with("gi_session="), "{cookie}");
    for part in [
        "HttpOnly",
        "SameSite=Lax",
        "Path=/console",
        "Max-Age=604800",
    ] {
        assert!(cookie.contains(part), "{part}: {cookie}");
    }
    assert!(
        !cookie.contains("Secure"),
        "reached on loopback over plain HTTP: {cookie}"
    );
    // Only the token's SHA-256 is stored.
    let token = b.cookies["gi_session"].clone();
    let store = gw.state.ledger.store();
    let now = gammainfra::clock::now_rfc3339();
    assert!(store.session(&token, &now).await.expect("store").is_none());
    let page = b.get("/console").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page
        .header("content-security-policy")
        .is_some_and(|c| c.contains("frame-ancestors 'none'")));

    let r = b.submit("/console", "/console/logout", &[]).await;
    assert_eq!(r.status, 303);
    assert_eq!(
        r.header("location"),
        Some("/console/login?notice=logged_out")
    );
    // The old cookie no longer opens anything.
    let mut replay = Browser::new(&gw);
    replay.cookies.insert("gi_session".into(), token);
    let r = replay.get("/console/usage").await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/console/login"));

    // Off loopback (a public HTTPS address), cookies are Secure.
    let gw = Gw::start_on(Backend::Sqlite, |c| {
        c.public_url = Some("https://console.example.com".into());
    })
    .await;
    let mut b = Browser::new(&gw);
    let r = b.get("/console/login").await;
    assert!(r
        .header("set-cookie")
        .is_some_and(|c| c.starts_with("gi_csrf=") && c.ends_with("; Secure")));
}

async fn logins_are_rate_limited_per_email(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let mut b = Browser::new(&gw);
    b.sign_up("max@example.com").await;
    b.sign_up("kim@example.com").await;
    // The limit counts per UTC minute: six attempts straddling a minute would be two
    // windows' worth. Start early in a minute.
    let into_minute = gammainfra::clock::unix_millis().rem_euclid(60_000);
    if into_minute > 40_000 {
        tokio::time::sleep(std::time::Duration::from_millis(
            (60_000 - into_minute) as u64,
        ))
        .await;
    }
    for _ in 0..5 {
        let r = b.log_in("max@example.com", "wrong password!").await;
        assert_eq!(r.status, 401, "{}", r.text());
        assert_eq!(
            by_id(&r.text(), "form-error"),
            "Incorrect email or password."
        );
    }
    let r = b.log_in("max@example.com", PASSWORD).await;
    assert_eq!(r.status, 429, "even the right password: {}", r.text());
    assert!(
        r.text().contains("Too many login attempts for this email"),
        "{}",
        r.text()
    );
    assert!(r.header("set-cookie").is_none());
    // Another address is not held back, and an unknown one answers as a wrong password.
    assert_eq!(b.log_in("kim@example.com", PASSWORD).await.status, 303);
    let r = Browser::new(&gw)
        .log_in("nobody@example.com", PASSWORD)
        .await;
    assert_eq!(r.status, 401);
}

async fn a_password_reset_sets_the_password_and_ends_every_session(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let mut first = Browser::new(&gw);
    first.sign_up("lee@example.com").await;
    assert_eq!(first.log_in("lee@example.com", PASSWORD).await.status, 303);

    let mut b = Browser::new(&gw);
    let r = b
        .submit(
            "/console/reset",
            "/console/reset",
            &[("email", "lee@example.com")],
        )
        .await;
    assert_eq!(r.status, 200);
    // The same answer for an address without an account, and no mail.
    let r2 = b
        .submit(
            "/console/reset",
            "/console/reset",
            &[("email", "none@example.com")],
        )
        .await;
    assert_eq!(r2.text(), r.text());
    assert!(mails(&gw, "none@example.com").await.is_empty());

    let confirm = link(&gw, "lee@example.com", "/console/reset/confirm?token=").await;
    let token = confirm.split("token=").nth(1).expect("token").to_owned();
    let page = b.get(&confirm).await;
    assert_eq!(page.status, 200, "{}", page.text());
    let csrf = csrf_of(&page.text(), "/console/reset/confirm");
    let short = b
        .post(
            "/console/reset/confirm",
            &[("csrf", &csrf), ("token", &token), ("password", "short")],
        )
        .await;
    assert_eq!(short.status, 400, "{}", short.text());
    let r = b
        .post(
            "/console/reset/confirm",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", "a brand new secret"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.text());
    assert_eq!(r.header("location"), Some("/console/login?notice=password"));
    // Used up; the old session is over; only the new password logs in.
    let again = b
        .post(
            "/console/reset/confirm",
            &[
                ("csrf", &csrf),
                ("token", &token),
                ("password", "yet another secret"),
            ],
        )
        .await;
    assert_eq!(again.status, 400);
    assert_eq!(first.get("/console").await.status, 303);
    assert_eq!(b.log_in("lee@example.com", PASSWORD).await.status, 401);
    assert_eq!(
        b.log_in("lee@example.com", "a brand new secret")
            .await
            .status,
        303
    );
    // The link reached the inbox: the email is verified, the trial granted.
    let page = b.get("/console").await.text();
    assert_eq!(by_id(&page, "trial"), "$3.00");

    // An account an operator made (its trial already granted) gets a password the
    // same way, and no second trial.
    let (account, _) = gw.account("ops-made@example.com").await;
    b.submit(
        "/console/reset",
        "/console/reset",
        &[("email", "ops-made@example.com")],
    )
    .await;
    let confirm = link(&gw, "ops-made@example.com", "reset/confirm").await;
    let token = confirm.split("token=").nth(1).expect("token").to_owned();
    let csrf = csrf_of(&b.get(&confirm).await.text(), "/console/reset/confirm");
    let r = b
        .post(
            "/console/reset/confirm",
            &[("csrf", &csrf), ("token", &token), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(r.status, 303);
    let mut c = Browser::new(&gw);
    assert_eq!(c.log_in("ops-made@example.com", PASSWORD).await.status, 303);
    assert_eq!(gw.account_view(&account).await["trial_usd"], "3.00");
    assert_eq!(by_id(&c.get("/console").await.text(), "balance"), "$3.00");
}

async fn console_keys_serve_requests_until_revoked(backend: Backend) {
    let gw = Gw::start_on(backend, |_| {}).await;
    let mut b = Browser::new(&gw);
    b.sign_up("kai@example.com").await;
    let verify = link(&gw, "kai@example.com", "verify?token=").await;
    b.get(&verify).await;
    b.log_in("kai@example.com", PASSWORD).await;

    // A refused form is shown again with the reason and its values.
    let r = b
        .submit(
            "/console/keys",
            "/console/keys",
            &[("name", "ci"), ("daily_usd", "5.001")],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(by_id(&r.text(), "form-error").contains("2 decimal places"));
    assert!(r.text().contains("value=\"5.001\""));

    let r = b
        .submit(
            "/console/keys",
            "/console/keys",
            &[
                ("name", "ci"),
                ("residency", "us"),
                ("daily_usd", "5.00"),
                ("requests_per_minute", "60"),
            ],
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text());
    let page = r.text();
    let key = by_id(&page, "new-key-value");
    let key_id = between(&page, "id=\"key-", "\"");
    assert!(page.contains("$5.00/day, 60 requests/min"), "{page}");
    // Shown once: the keys page never shows it again.
    assert!(!b.get("/console/keys").await.text().contains(&key));
    let kv = gw
        .admin("GET", &format!("/admin/v1/keys/{key_id}"), None)
        .await
        .json();
    assert_eq!(kv["residency"], "us", "{kv}");
    assert_eq!(kv["limits"]["daily_usd"], "5.00", "{kv}");

    let chat = crate::harness::chat_body("anthropic/claude-sonnet-4-6", "Hello", "");
    let r = gw.chat(&key, &chat, &[]).await;
    assert_eq!(r.status, 200, "{}", r.text());
    // At once: the page commits the charges just answered before reading.
    let usage = b.get("/console/usage").await.text();
    assert!(
        by_id(&usage, "usage-summary").ends_with("in 1 request."),
        "{usage}"
    );
    assert!(usage.contains("<rect class=\"c0\""), "a bar: {usage}");
    let legend = between(&usage, "id=\"usage-legend\"", "</ul>");
    assert!(legend.contains("anthropic/claude-sonnet-4-6"), "{legend}");
    let request_id = r.header("x-request-id").expect("request id");
    assert!(usage.contains(request_id), "{usage}");
    let spent = by_id(&b.get("/console").await.text(), "spent");
    assert_ne!(spent, "$0.00");

    // Another account cannot revoke it.
    let mut other = Browser::new(&gw);
    other.sign_up("mallory@example.com").await;
    other.log_in("mallory@example.com", PASSWORD).await;
    // (with Mallory's own, valid session token)
    let csrf = csrf_of(&other.get("/console").await.text(), "/console/logout");
    let r = other
        .post(
            &format!("/console/keys/{key_id}/revoke"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(gw.chat(&key, &chat, &[]).await.status, 200);

    let keys_page = b.get("/console/keys").await.text();
    let revoke = format!("/console/keys/{key_id}/revoke");
    let csrf = csrf_of(&keys_page, &revoke);
    let r = b.post(&revoke, &[("csrf", &csrf)]).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let page = b.get("/console/keys?notice=revoked").await.text();
    assert!(by_id(&page, "notice").contains("revoked"));
    assert_eq!(gw.chat(&key, &chat, &[]).await.status, 401);
}

async fn a_console_top_up_shows_the_fee_and_is_credited_once(backend: Backend) {
    let (gw, sim) = crate::payments::with_stripe(backend).await;
    let mut b = Browser::new(&gw);
    b.sign_up("pat@example.com").await;
    let verify = link(&gw, "pat@example.com", "verify?token=").await;
    b.get(&verify).await;
    b.log_in("pat@example.com", PASSWORD).await;

    let low = b
        .submit("/console/topup", "/console/topup", &[("amount", "9.99")])
        .await;
    assert_eq!(low.status, 400);
    assert!(by_id(&low.text(), "form-error").contains("The minimum top-up is $10.00"));

    let review = b
        .submit("/console/topup", "/console/topup", &[("amount", "$10")])
        .await;
    assert_eq!(review.status, 200, "{}", review.text());
    let page = review.text();
    let today = time::OffsetDateTime::now_utc().date();
    let (fee, total) = if today <= time::macros::date!(2026 - 06 - 23) {
        ("$0.30", "$10.30")
    } else {
        ("$0.50", "$10.50")
    };
    assert_eq!(by_id(&page, "review-credit"), "$10.00");
    assert_eq!(by_id(&page, "review-fee"), fee);
    assert_eq!(by_id(&page, "review-total"), total);
    let csrf = csrf_of(&page, "/console/topup/checkout");
    let idem = between(&page, "name=\"idem\" value=\"", "\"");
    let fields = [
        ("csrf", csrf.as_str()),
        ("amount", "10.00"),
        ("idem", idem.as_str()),
    ];
    let r = b.post("/console/topup/checkout", &fields).await;
    assert_eq!(r.status, 303, "{}", r.text());
    let pay_url = r.header("location").expect("to Stripe").to_owned();
    assert!(pay_url.starts_with(&sim.base_url()), "{pay_url}");
    // Pressing Pay twice (the same review form) gets the same session.
    let again = b.post("/console/topup/checkout", &fields).await;
    assert_eq!(again.header("location"), Some(pay_url.as_str()));
    let session_id = pay_url.rsplit('/').next().expect("session").to_owned();
    let s = sim.session(&session_id).expect("session at Stripe");
    assert_eq!(s["amount_total"], if fee == "$0.30" { 1030 } else { 1050 });
    assert_eq!(
        s["success_url"],
        "https://gateway.example.com/console/topup/done?session_id={CHECKOUT_SESSION_ID}"
    );

    let done = format!("/console/topup/done?session_id={session_id}");
    assert!(b.get(&done).await.text().contains("id=\"waiting\""));
    // Paid; Stripe delivers the event twice, then once more by hand.
    sim.set_delivery(gammainfra::simulators::DeliveryMode::Duplicate);
    sim.pay(&session_id).expect("paid");
    crate::payments::delivered(&sim, 2).await;
    sim.set_delivery(gammainfra::simulators::DeliveryMode::Immediate);
    let event = sim.events()[0]["id"].as_str().expect("event").to_owned();
    sim.redeliver(&event).expect("redeliver");
    crate::payments::delivered(&sim, 3).await;
    assert_eq!(
        by_id(&b.get(&done).await.text(), "credited"),
        "$10.00 was added to your balance."
    );
    let page = b.get("/console").await.text();
    assert_eq!(by_id(&page, "topups"), "$10.00");
    assert_eq!(by_id(&page, "balance"), "$13.00");
    let receipts = b.get("/console/receipts").await.text();
    assert_eq!(
        receipts.matches("/console/receipts/cs_").count(),
        1,
        "{receipts}"
    );
    let receipt = b.get(&format!("/console/receipts/{session_id}")).await;
    assert_eq!(receipt.status, 200);
    assert!(receipt.text().contains(total), "{}", receipt.text());
    // Someone else's receipt is not shown.
    let mut other = Browser::new(&gw);
    other.sign_up("quinn@example.com").await;
    other.log_in("quinn@example.com", PASSWORD).await;
    assert_eq!(
        other
            .get(&format!("/console/receipts/{session_id}"))
            .await
            .status,
        404
    );
}

async fn pages_need_a_login_and_sign_up_can_be_closed(backend: Backend) {
    let gw = Gw::start_on(backend, |c| c.console.signup = false).await;
    let mut b = Browser::new(&gw);
    for path in [
        "/console",
        "/console/usage",
        "/console/keys",
        "/console/topup",
        "/console/receipts",
    ] {
        let r = b.get(path).await;
        assert_eq!(r.status, 303, "{path}");
        assert_eq!(r.header("location"), Some("/console/login"), "{path}");
    }
    assert_eq!(b.get("/console/signup").await.status, 403);
    let csrf_page = b.get("/console/login").await.text();
    let csrf = csrf_of(&csrf_page, "/console/login");
    let r = b
        .post(
            "/console/signup",
            &[
                ("csrf", &csrf),
                ("email", "new@example.com"),
                ("password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    assert!(gw
        .state
        .ledger
        .store()
        .login_row("new@example.com")
        .await
        .expect("store")
        .is_none());
    // The outbox is the operator's.
    let r = gw
        .send("GET", "/admin/v1/outbox", Some("nope"), None, &[])
        .await;
    assert_eq!(r.status, 401);
    let css = b.get("/console/assets/console.css").await;
    assert_eq!(css.status, 200);
    assert_eq!(css.header("content-type"), Some("text/css; charset=utf-8"));
}

on_both_backends!(
    signing_up_and_verifying_grants_the_trial_once,
    forms_without_their_csrf_token_change_nothing,
    sessions_are_http_only_lax_cookies_ended_by_logout,
    logins_are_rate_limited_per_email,
    a_password_reset_sets_the_password_and_ends_every_session,
    console_keys_serve_requests_until_revoked,
    a_console_top_up_shows_the_fee_and_is_credited_once,
    pages_need_a_login_and_sign_up_can_be_closed,
);

/// An SMTP server that accepts every message and keeps its DATA.
async fn smtp_sink() -> (u16, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = got.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let (r, mut w) = sock.into_split();
                let mut lines = BufReader::new(r).lines();
                w.write_all(b"220 sink ESMTP\r\n").await.ok();
                let (mut data, mut in_data) = (String::new(), false);
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            kept.lock().expect("lock").push(std::mem::take(&mut data));
                            w.write_all(b"250 2.0.0 queued\r\n").await.ok();
                        } else {
                            data.push_str(&line);
                            data.push('\n');
                        }
                        continue;
                    }
                    let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                    let answer: &[u8] = match verb.as_str() {
                        "EHLO" | "HELO" => b"250 sink\r\n",
                        "DATA" => {
                            in_data = true;
                            b"354 go ahead\r\n"
                        }
                        "QUIT" => {
                            w.write_all(b"221 bye\r\n").await.ok();
                            break;
                        }
                        _ => b"250 OK\r\n",
                    };
                    w.write_all(answer).await.ok();
                }
            });
        }
    });
    (port, got)
}

/// With an SMTP server configured, the verification link goes to it, not the outbox.
#[tokio::test]
async fn with_smtp_configured_the_link_is_mailed() {
    let (port, got) = smtp_sink().await;
    let gw = Gw::start_on(Backend::Sqlite, |c| {
        c.mail = Some(gammainfra::config::MailConfig {
            smtp_url: gammainfra::config::Secret::new(format!("smtp://127.0.0.1:{port}")),
            from: "GammaInfra <billing@example.com>".into(),
        });
    })
    .await;
    let mut b = Browser::new(&gw);
    let r = b.sign_up("rio@example.com").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(!r.text().contains("outbox"), "{}", r.text());
    let msgs = got.lock().expect("lock").clone();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    let m = &msgs[0];
    assert!(m.contains("From: GammaInfra <billing@example.com>"), "{m}");
    assert!(m.contains("To: rio@example.com"), "{m}");
    assert!(
        m.contains("Subject: Verify your email for GammaInfra"),
        "{m}"
    );
    // Quoted-printable, as mail clients decode it.
    let m = m.replace("=\n", "").replace("=3D", "=");
    let i = m.find("/console/verify?token=").expect("link");
    let path: String = m[i..].chars().take_while(|c| !c.is_whitespace()).collect();
    assert!(
        mails(&gw, "rio@example.com").await.is_empty(),
        "not in the outbox"
    );
    let r = gw.admin("GET", "/admin/v1/outbox", None).await.json();
    assert_eq!(r["smtp"], true);
    assert_eq!(b.get(&path).await.status, 200);
}
