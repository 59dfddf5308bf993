//! The customers' web console under `/console` (docs/console.md): sign-up with email
//! verification (the trial is granted when the email is verified), login, logout and
//! password reset; the balance, usage by day and model and recent requests; API keys;
//! card top-ups through Stripe Checkout; receipts.
//!
//! Pages are rendered on the server ([`pages`]); forms post back here and are answered
//! with a page or a `303 See Other`. Every form carries a CSRF token ([`session`]).
//! The console speaks HTML, not the API's JSON errors: a refused form is shown again
//! with the reason.

mod pages;
mod session;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use maud::Markup;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use self::session::{Customer, Form};
use super::error::ApiError;
use super::{admin, payments, AppState, Serving};
use crate::ledger::{StoreError, TokenPurpose, UsageFilter, UsageOrder};
use crate::mail::Mail;
use crate::money::Nanos;

/// A form body is a few fields: anything larger is refused.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Logins tried per email and minute; emails sent per address and minute.
const LOGINS_PER_MINUTE: u64 = 5;
const MAILS_PER_MINUTE: u64 = 3;
/// How long the links sent by email work.
const VERIFY_LINK_HOURS: i64 = 48;
const RESET_LINK_HOURS: i64 = 1;
/// The usage page covers this many UTC days, today included.
const USAGE_DAYS: i64 = 30;
const RECENT_REQUESTS: u32 = 50;

/// Says at start when the console's cookies cannot work: a plain-HTTP public address
/// off loopback gets `Secure` cookies, which browsers send back over HTTPS only.
pub(super) fn check_public_url(public_url: Option<&str>) {
    if let Some(host) = public_url.and_then(|u| u.strip_prefix("http://")) {
        let authority = host.split('/').next().unwrap_or_default();
        if !session::is_loopback_host(authority) {
            tracing::warn!(public_url = public_url.unwrap_or_default(), "GAMMAINFRA_PUBLIC_URL is plain http:// off loopback: the console's login cookies are Secure, so browsers will not send them back; serve the console over HTTPS (a TLS proxy) and set an https:// public URL");
        }
    }
}

super::route_table! {
    /// The console's routes (HTML pages and form posts).
    pub(super) fn routes() and const ROUTES {
        "/console" => get(overview),
        "/console/" => get(overview),
        "/console/assets/console.css" => get(css),
        "/console/assets/console.js" => get(js),
        "/console/signup" => get(signup_page).post(signup),
        "/console/login" => get(login_page).post(login),
        "/console/logout" => post(logout),
        "/console/verify" => get(verify),
        "/console/verify/resend" => post(resend),
        "/console/reset" => get(reset_page).post(reset),
        "/console/reset/confirm" => get(reset_confirm_page).post(reset_confirm),
        "/console/usage" => get(usage),
        "/console/keys" => get(keys).post(create_key),
        "/console/keys/{id}/revoke" => post(revoke_key),
        "/console/topup" => get(topup_page).post(topup_review),
        "/console/topup/checkout" => post(topup_checkout),
        "/console/topup/done" => get(topup_done),
        "/console/receipts" => get(receipts),
        "/console/receipts/{session_id}" => get(receipt),
    }
}

/// An HTML answer with the console's headers: never cached, never framed, scripts and
/// styles from the gateway only, no referrer beyond it (links carry tokens).
fn page(status: StatusCode, markup: Markup) -> Response {
    let mut r = (status, markup.into_string()).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    secure_headers(h);
    r
}

fn secure_headers(h: &mut HeaderMap) {
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
}

fn ok(markup: Markup) -> Response {
    page(StatusCode::OK, markup)
}

/// `303 See Other` to `to`, with cookies to set.
fn see_other(to: &str, cookies: &[String]) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(to) {
        h.insert(header::LOCATION, v);
    }
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(c) {
            h.append(header::SET_COOKIE, v);
        }
    }
    secure_headers(h);
    r
}

fn with_cookie(mut r: Response, cookie: Option<String>) -> Response {
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        r.headers_mut().append(header::SET_COOKIE, v);
    }
    r
}

/// A failure shown as a page (a database or provider error, a refused payment).
struct PageError(StatusCode, String);

impl From<StoreError> for PageError {
    fn from(e: StoreError) -> Self {
        ApiError::from(e).into()
    }
}

impl From<ApiError> for PageError {
    fn from(e: ApiError) -> Self {
        if e.status.is_server_error() {
            tracing::error!(code = e.code, message = %e.message, "console page failed");
        }
        PageError(e.status, e.message)
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = if self.0.is_server_error() {
            "Something went wrong"
        } else {
            "That did not work"
        };
        page(
            self.0,
            pages::message(
                title,
                None,
                &self.1,
                Some(("/console", "Back to the console")),
            ),
        )
    }
}

type PageResult = Result<Response, PageError>;

/// The customer logged in with the request's session: a handler taking it answers
/// logged-out browsers with the login page.
struct LoggedIn(Customer);

impl axum::extract::FromRequestParts<Serving> for LoggedIn {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        serving: &Serving,
    ) -> Result<Self, Response> {
        let st = <AppState as axum::extract::FromRef<Serving>>::from_ref(serving);
        match session::current(&st, &parts.headers).await {
            Ok(Some(c)) => Ok(LoggedIn(c)),
            Ok(None) => Err(see_other("/console/login", &[])),
            Err(e) => Err(PageError::from(e).into_response()),
        }
    }
}

/// The form of a logged-in customer's POST, its CSRF token checked.
fn session_form(c: &Customer, body: &Bytes) -> Result<Form, PageError> {
    let f = parse_form(body)?;
    if session::same(f.get("csrf"), &c.csrf) {
        Ok(f)
    } else {
        Err(csrf_refused())
    }
}

/// The form of a POST made before logging in, checked against the `gi_csrf` cookie.
fn public_form(h: &HeaderMap, body: &Bytes) -> Result<Form, PageError> {
    let f = parse_form(body)?;
    match session::cookie(h, session::CSRF_COOKIE) {
        Some(c) if session::same(f.get("csrf"), c) => Ok(f),
        _ => Err(csrf_refused()),
    }
}

fn parse_form(body: &Bytes) -> Result<Form, PageError> {
    if body.len() > MAX_FORM_BYTES {
        return Err(PageError(
            StatusCode::PAYLOAD_TOO_LARGE,
            "The form is larger than the console accepts.".into(),
        ));
    }
    Ok(Form::parse(body))
}

fn csrf_refused() -> PageError {
    PageError(
        StatusCode::FORBIDDEN,
        "This form has expired or did not come from this console. Reload the page and try again."
            .into(),
    )
}

/// The `gi_csrf` token for a page with a form shown before login: the request's, or a
/// new one with its `Set-Cookie`.
fn public_csrf(st: &AppState, h: &HeaderMap) -> (String, Option<String>) {
    match session::cookie(h, session::CSRF_COOKIE) {
        Some(t) if t.len() == 64 && t.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (t.to_owned(), None)
        }
        _ => {
            let t = session::random_token();
            let c =
                session::set_cookie(session::CSRF_COOKIE, &t, 24 * 3600, session::secure(st, h));
            (t, Some(c))
        }
    }
}

#[derive(Deserialize, Default)]
struct NoticeQuery {
    notice: Option<String>,
}

/// The fixed messages a redirect can ask a page to show.
fn notice_text(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "verified" => "Your email is verified.",
        "password" => "Your password is set. Log in with it.",
        "resent" => "We sent the link again.",
        "revoked" => "The key is revoked: requests with it are refused from now on.",
        "cancelled" => "Checkout cancelled: nothing was charged.",
        "logged_out" => "You are logged out.",
        _ => return None,
    })
}

/// A static asset of the console, cached briefly by browsers.
fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    r
}

async fn css() -> Response {
    asset(pages::CSS, "text/css; charset=utf-8")
}

async fn js() -> Response {
    asset(pages::JS, "text/javascript; charset=utf-8")
}

// ---- Sign-up, verification, login, logout, password reset ----

async fn signup_page(State(st): State<AppState>, h: HeaderMap) -> PageResult {
    if session::current(&st, &h).await?.is_some() {
        return Ok(see_other("/console", &[]));
    }
    if !st.config.console.signup {
        return Ok(page(StatusCode::FORBIDDEN, signup_closed()));
    }
    let (csrf, cookie) = public_csrf(&st, &h);
    Ok(with_cookie(
        ok(pages::signup(&csrf, "", None, st.ledger.billing().trial)),
        cookie,
    ))
}

fn signup_closed() -> Markup {
    pages::message(
        "Sign-up is closed",
        None,
        "This gateway does not take new sign-ups; its operator creates accounts.",
        Some(("/console/login", "Log in")),
    )
}

async fn signup(State(st): State<AppState>, h: HeaderMap, body: Bytes) -> PageResult {
    if !st.config.console.signup {
        return Ok(page(StatusCode::FORBIDDEN, signup_closed()));
    }
    let f = public_form(&h, &body)?;
    let email = crate::ledger::normalize_email(f.get("email"));
    let password = f.get("password");
    let csrf = f.get("csrf");
    let trial = st.ledger.billing().trial;
    let again = |status, e: &str| page(status, pages::signup(csrf, &email, Some(e), trial));
    if let Some(e) = session::email_problem(&email) {
        return Ok(again(StatusCode::BAD_REQUEST, e));
    }
    if let Some(e) = session::password_problem(password) {
        return Ok(again(StatusCode::BAD_REQUEST, &e));
    }
    if let Err(wait) = st
        .limiter
        .attempt(&format!("mail:{email}"), MAILS_PER_MINUTE)
        .await
    {
        return Ok(again(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many attempts for this email; try again in {wait} s."),
        ));
    }
    let hash = session::hash_password(password.to_owned())
        .await
        .map_err(|e| {
            PageError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("The password could not be hashed: {e}"),
            )
        })?;
    let base = payments::public_base(&st, &h);
    // The same page either way, so that the form does not tell who has an account; the
    // owner of a taken address is told by email instead.
    let mail = match st.ledger.create_customer(&email, &hash).await {
        Ok(account) => verification_mail(&st, &base, &account, &email).await?,
        Err(StoreError::EmailTaken) => Mail {
            to: email.clone(),
            subject: "You already have a GammaInfra account".into(),
            body: format!(
                "Someone (probably you) tried to sign up with this address, which already has an account.\n\nLog in: {base}/console/login\nForgot the password? {base}/console/reset\n\nIf it was not you, ignore this message.\n"
            ),
        },
        Err(e) => return Err(e.into()),
    };
    send(&st, &mail).await?;
    Ok(ok(pages::check_inbox(&email, st.mailer.is_outbox())))
}

/// A verification link for the account, stored, in a message to send.
async fn verification_mail(
    st: &AppState,
    base: &str,
    account: &str,
    email: &str,
) -> Result<Mail, PageError> {
    let token = email_token(st, account, TokenPurpose::Verify, VERIFY_LINK_HOURS).await?;
    let trial = st.ledger.billing().trial;
    let credit = if trial > Nanos::ZERO {
        format!(" and get your ${trial} of trial credit")
    } else {
        String::new()
    };
    Ok(Mail {
        to: email.to_owned(),
        subject: "Verify your email for GammaInfra".into(),
        body: format!(
            "Open this link to verify your email{credit}:\n\n{base}/console/verify?token={token}\n\nThe link works once, for {VERIFY_LINK_HOURS} hours. If you did not sign up, ignore this message.\n"
        ),
    })
}

/// A new one-time link token for the account, stored as its SHA-256.
async fn email_token(
    st: &AppState,
    account: &str,
    purpose: TokenPurpose,
    hours: i64,
) -> Result<String, PageError> {
    let token = session::random_token();
    let now = time::OffsetDateTime::now_utc();
    st.ledger
        .store()
        .add_email_token(
            &session::digest(&token),
            account,
            purpose,
            &crate::clock::rfc3339(now),
            &crate::clock::rfc3339(now + time::Duration::hours(hours)),
        )
        .await?;
    Ok(token)
}

async fn send(st: &AppState, m: &Mail) -> Result<(), PageError> {
    st.mailer.send(st.ledger.store(), m).await.map_err(|e| {
        tracing::error!(error = %e, to = %m.to, "console mail not sent");
        PageError(
            StatusCode::BAD_GATEWAY,
            "We could not send the email just now; try again in a few minutes.".into(),
        )
    })
}

#[derive(Deserialize)]
struct TokenQuery {
    token: Option<String>,
}

async fn verify(
    State(st): State<AppState>,
    h: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> PageResult {
    let c = session::current(&st, &h).await?;
    let next = match &c {
        Some(_) => ("/console", "Go to the console"),
        None => ("/console/login", "Log in"),
    };
    let now = crate::clock::now_rfc3339();
    let account = match q.token.as_deref() {
        Some(t) => {
            st.ledger
                .store()
                .use_email_token(&session::digest(t), TokenPurpose::Verify, &now)
                .await?
        }
        None => None,
    };
    let Some(account) = account else {
        // Opened before (by the customer, or by a mail scanner that follows links): the
        // email is verified all the same.
        if let Some(t) = q.token.as_deref() {
            let store = st.ledger.store();
            if let Some(a) = store
                .email_token_account(&session::digest(t), TokenPurpose::Verify)
                .await?
            {
                if store
                    .customer(&a)
                    .await?
                    .is_some_and(|c| c.email_verified_at.is_some())
                {
                    return Ok(ok(pages::message(
                        "Email verified",
                        c.as_ref(),
                        "Your email is already verified.",
                        Some(next),
                    )));
                }
            }
        }
        return Ok(page(
            StatusCode::BAD_REQUEST,
            pages::message(
                "This link does not work",
                c.as_ref(),
                "The verification link is invalid, was already used, or has expired. Log in to have a new one sent.",
                Some(("/console/login", "Log in")),
            ),
        ));
    };
    let granted = st.ledger.verify_email(&account).await?;
    tracing::info!(account = %account, trial = %granted, "console email verified");
    let text = if granted > Nanos::ZERO {
        format!("Your email is verified and ${granted} of trial credit is on your account.")
    } else {
        "Your email is verified.".to_owned()
    };
    Ok(ok(pages::message(
        "Email verified",
        c.as_ref(),
        &text,
        Some(next),
    )))
}

async fn resend(
    State(st): State<AppState>,
    LoggedIn(c): LoggedIn,
    h: HeaderMap,
    body: Bytes,
) -> PageResult {
    session_form(&c, &body)?;
    if c.verified {
        return Ok(see_other("/console?notice=verified", &[]));
    }
    if let Err(wait) = st
        .limiter
        .attempt(&format!("mail:{}", c.email), MAILS_PER_MINUTE)
        .await
    {
        return Err(PageError(
            StatusCode::TOO_MANY_REQUESTS,
            format!("We just sent one; try again in {wait} s."),
        ));
    }
    let base = payments::public_base(&st, &h);
    let m = verification_mail(&st, &base, &c.account_id, &c.email).await?;
    send(&st, &m).await?;
    Ok(see_other("/console?notice=resent", &[]))
}

async fn login_page(
    State(st): State<AppState>,
    h: HeaderMap,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    if session::current(&st, &h).await?.is_some() {
        return Ok(see_other("/console", &[]));
    }
    let (csrf, cookie) = public_csrf(&st, &h);
    Ok(with_cookie(
        ok(pages::login(
            &csrf,
            "",
            None,
            notice_text(q.notice.as_deref()),
        )),
        cookie,
    ))
}

async fn login(State(st): State<AppState>, h: HeaderMap, body: Bytes) -> PageResult {
    let f = public_form(&h, &body)?;
    let email = crate::ledger::normalize_email(f.get("email"));
    let csrf = f.get("csrf");
    let again = |status, e: &str| page(status, pages::login(csrf, &email, Some(e), None));
    if let Err(wait) = st
        .limiter
        .attempt(&format!("login:{email}"), LOGINS_PER_MINUTE)
        .await
    {
        return Ok(again(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many login attempts for this email; try again in {wait} s."),
        ));
    }
    let row = st.ledger.store().login_row(&email).await?;
    let hash = row.as_ref().and_then(|r| r.password_hash.clone());
    if !session::check_password(f.get("password").to_owned(), hash).await {
        return Ok(again(
            StatusCode::UNAUTHORIZED,
            "Incorrect email or password.",
        ));
    }
    let Some(row) = row else {
        return Ok(again(
            StatusCode::UNAUTHORIZED,
            "Incorrect email or password.",
        ));
    };
    let cookie = session::start(&st, &h, &row.account_id).await?;
    tracing::info!(account = %row.account_id, "console login");
    Ok(see_other("/console", &[cookie]))
}

async fn logout(
    State(st): State<AppState>,
    LoggedIn(c): LoggedIn,
    h: HeaderMap,
    body: Bytes,
) -> PageResult {
    session_form(&c, &body)?;
    st.ledger
        .store()
        .end_session(&c.token_hash, &crate::clock::now_rfc3339())
        .await?;
    let gone = session::set_cookie(session::SESSION_COOKIE, "", 0, session::secure(&st, &h));
    Ok(see_other("/console/login?notice=logged_out", &[gone]))
}

async fn reset_page(State(st): State<AppState>, h: HeaderMap) -> Response {
    let (csrf, cookie) = public_csrf(&st, &h);
    with_cookie(ok(pages::reset_request(&csrf, None)), cookie)
}

async fn reset(State(st): State<AppState>, h: HeaderMap, body: Bytes) -> PageResult {
    let f = public_form(&h, &body)?;
    let email = crate::ledger::normalize_email(f.get("email"));
    if let Some(e) = session::email_problem(&email) {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            pages::reset_request(f.get("csrf"), Some(e)),
        ));
    }
    let sent = pages::message(
        "Check your inbox",
        None,
        "If an account has this email, we sent it a link to choose a new password. It works once, for an hour.",
        Some(("/console/login", "Log in")),
    );
    if st
        .limiter
        .attempt(&format!("mail:{email}"), MAILS_PER_MINUTE)
        .await
        .is_err()
    {
        return Ok(ok(sent));
    }
    if let Some(row) = st.ledger.store().login_row(&email).await? {
        let token =
            email_token(&st, &row.account_id, TokenPurpose::Reset, RESET_LINK_HOURS).await?;
        let base = payments::public_base(&st, &h);
        send(
            &st,
            &Mail {
                to: email.clone(),
                subject: "Choose a new GammaInfra password".into(),
                body: format!(
                    "Open this link to choose a new password:\n\n{base}/console/reset/confirm?token={token}\n\nThe link works once, for {RESET_LINK_HOURS} hour. If you did not ask for it, ignore this message: your password stays as it is.\n"
                ),
            },
        )
        .await?;
    }
    Ok(ok(sent))
}

fn bad_reset_link() -> Response {
    page(
        StatusCode::BAD_REQUEST,
        pages::message(
            "This link does not work",
            None,
            "The password link is invalid, was already used, or has expired.",
            Some(("/console/reset", "Ask for a new one")),
        ),
    )
}

async fn reset_confirm_page(
    State(st): State<AppState>,
    h: HeaderMap,
    Query(q): Query<TokenQuery>,
) -> PageResult {
    let token = q.token.unwrap_or_default();
    let valid = st
        .ledger
        .store()
        .email_token(
            &session::digest(&token),
            TokenPurpose::Reset,
            &crate::clock::now_rfc3339(),
        )
        .await?;
    if valid.is_none() {
        return Ok(bad_reset_link());
    }
    let (csrf, cookie) = public_csrf(&st, &h);
    Ok(with_cookie(
        ok(pages::reset_confirm(&csrf, &token, None)),
        cookie,
    ))
}

async fn reset_confirm(State(st): State<AppState>, h: HeaderMap, body: Bytes) -> PageResult {
    let f = public_form(&h, &body)?;
    let (token, password) = (f.get("token"), f.get("password"));
    if let Some(e) = session::password_problem(password) {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            pages::reset_confirm(f.get("csrf"), token, Some(&e)),
        ));
    }
    let hash = session::hash_password(password.to_owned())
        .await
        .map_err(|e| {
            PageError(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("The password could not be hashed: {e}"),
            )
        })?;
    let store = st.ledger.store();
    let Some(account) = store
        .use_email_token(
            &session::digest(token),
            TokenPurpose::Reset,
            &crate::clock::now_rfc3339(),
        )
        .await?
    else {
        return Ok(bad_reset_link());
    };
    // Every session ends with the old password.
    store.set_password(&account, &hash).await?;
    // The link reached the inbox: the email is verified (and the trial granted if the
    // account never had it).
    st.ledger.verify_email(&account).await?;
    tracing::info!(account = %account, "console password set through a reset link");
    Ok(see_other("/console/login?notice=password", &[]))
}

// ---- Balance and usage ----

async fn overview(
    State(st): State<AppState>,
    LoggedIn(c): LoggedIn,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let b = st
        .ledger
        .account_balance(&c.account_id)
        .await?
        .unwrap_or_default();
    Ok(ok(pages::overview(
        &c,
        &b,
        notice_text(q.notice.as_deref()),
    )))
}

async fn usage(State(st): State<AppState>, LoggedIn(c): LoggedIn) -> PageResult {
    let today = time::OffsetDateTime::now_utc().date();
    let days: Vec<String> = (0..USAGE_DAYS)
        .rev()
        .filter_map(|back| today.checked_sub(time::Duration::days(back)))
        .map(|d| d.to_string())
        .collect();
    let filter = UsageFilter {
        start: days.first().map(|d| format!("{d}T00:00:00Z")),
        ..UsageFilter::default()
    };
    // Charges are committed in groups: the ones just answered are written first, so
    // that a request answered a moment ago is on the page.
    st.ledger.flush_timeout().await.map_err(ApiError::from)?;
    let store = st.ledger.store();
    let daily = store.usage_daily(&c.account_id, &filter).await?;
    let recent = store
        .usage_records(
            &c.account_id,
            &UsageFilter::default(),
            None,
            UsageOrder::Descending,
            RECENT_REQUESTS,
        )
        .await?;
    Ok(ok(pages::usage(&c, &days, &daily, &recent)))
}

// ---- Keys ----

async fn keys(
    State(st): State<AppState>,
    LoggedIn(c): LoggedIn,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let list = st.ledger.store().keys_of(&c.account_id).await?;
    Ok(ok(pages::keys(
        &c,
        &list,
        None,
        &pages::KeyForm::default(),
        None,
        notice_text(q.notice.as_deref()),
    )))
}

async fn create_key(State(st): State<AppState>, LoggedIn(c): LoggedIn, body: Bytes) -> PageResult {
    let f = session_form(&c, &body)?;
    let form = pages::KeyForm {
        name: f.get("name").trim(),
        residency: f.get("residency").trim(),
        daily: f.get("daily_usd").trim(),
        monthly: f.get("monthly_usd").trim(),
        total: f.get("total_usd").trim(),
        rpm: f.get("requests_per_minute").trim(),
        tpm: f.get("tokens_per_minute").trim(),
    };
    if c.disabled {
        return key_refused(
            &st,
            &c,
            &form,
            StatusCode::FORBIDDEN,
            "This account is disabled.",
        )
        .await;
    }
    if !c.verified {
        return key_refused(
            &st,
            &c,
            &form,
            StatusCode::FORBIDDEN,
            "Verify your email before creating keys.",
        )
        .await;
    }
    if form.name.chars().count() > 100 {
        return key_refused(
            &st,
            &c,
            &form,
            StatusCode::BAD_REQUEST,
            "A key's name is at most 100 characters.",
        )
        .await;
    }
    // The admin API's key creation, with the form's fields as its JSON.
    let mut limits = Map::new();
    for (field, v) in [
        ("daily_usd", form.daily),
        ("monthly_usd", form.monthly),
        ("total_usd", form.total),
    ] {
        if !v.is_empty() {
            limits.insert(field.into(), json!(v.trim_start_matches('$')));
        }
    }
    for (field, v) in [
        ("requests_per_minute", form.rpm),
        ("tokens_per_minute", form.tpm),
    ] {
        if !v.is_empty() {
            limits.insert(
                field.into(),
                v.parse::<u64>().map_or_else(|_| json!(v), |n| json!(n)),
            );
        }
    }
    let nk = admin::NewKey {
        name: (!form.name.is_empty()).then(|| form.name.to_owned()),
        residency: (!form.residency.is_empty()).then(|| form.residency.to_owned()),
        default_region: None,
        limits: (!limits.is_empty()).then_some(Value::Object(limits)),
    };
    let created = match admin::new_key(&st, &c.account_id, nk).await {
        Ok(v) => v,
        Err(e) if e.status.is_client_error() => {
            return key_refused(&st, &c, &form, e.status, &e.message).await;
        }
        Err(e) => return Err(e.into()),
    };
    let shown = pages::CreatedKey {
        id: created["key_id"].as_str().unwrap_or_default().to_owned(),
        name: created["name"].as_str().map(str::to_owned),
        plain: created["api_key"].as_str().unwrap_or_default().to_owned(),
    };
    tracing::info!(account = %c.account_id, key = %shown.id, "console key created");
    let list = st.ledger.store().keys_of(&c.account_id).await?;
    Ok(page(
        StatusCode::CREATED,
        pages::keys(
            &c,
            &list,
            Some(&shown),
            &pages::KeyForm::default(),
            None,
            None,
        ),
    ))
}

/// The keys page again, with the refused form's values and the reason.
async fn key_refused(
    st: &AppState,
    c: &Customer,
    form: &pages::KeyForm<'_>,
    status: StatusCode,
    e: &str,
) -> PageResult {
    let list = st.ledger.store().keys_of(&c.account_id).await?;
    Ok(page(
        status,
        pages::keys(c, &list, None, form, Some(e), None),
    ))
}

async fn revoke_key(
    State(st): State<AppState>,
    LoggedIn(c): LoggedIn,
    Path(id): Path<String>,
    body: Bytes,
) -> PageResult {
    session_form(&c, &body)?;
    // Only the account's own keys (another account's key ID is "no such key").
    match st.ledger.store().key(&id).await? {
        Some(k) if k.account_id == c.account_id => {}
        _ => {
            return Err(PageError(
                StatusCode::NOT_FOUND,
                "No such key on your account.".into(),
            ));
        }
    }
    let ledger = st.ledger.clone();
    let key = id.clone();
    admin::to_completion(async move { ledger.revoke_key(&key).await }).await??;
    tracing::info!(account = %c.account_id, key = %id, "console key revoked");
    Ok(see_other("/console/keys?notice=revoked", &[]))
}

// ---- Top-ups and receipts ----

fn fee_today(st: &AppState) -> (Nanos, i64) {
    let b = st.ledger.billing();
    (
        b.min_topup,
        b.fee_basis_points(time::OffsetDateTime::now_utc()),
    )
}

async fn topup_page(
    State(st): State<AppState>,
    LoggedIn(c): LoggedIn,
    Query(q): Query<NoticeQuery>,
) -> PageResult {
    let (min, bp) = fee_today(&st);
    Ok(ok(pages::topup(
        &c,
        min,
        bp,
        "",
        None,
        notice_text(q.notice.as_deref()),
        st.payments.is_some(),
    )))
}

/// The amount of a top-up form, checked as the API checks it.
fn topup_amount(st: &AppState, f: &Form) -> Result<Nanos, ApiError> {
    let raw = f.get("amount").trim().trim_start_matches('$');
    admin::topup_amount(st, json!(raw))
}

async fn topup_review(
    State(st): State<AppState>,
    LoggedIn(c): LoggedIn,
    body: Bytes,
) -> PageResult {
    let f = session_form(&c, &body)?;
    let (min, bp) = fee_today(&st);
    if let Some(refused) = topup_refused(&st, &c) {
        return Ok(page(
            StatusCode::FORBIDDEN,
            pages::topup(
                &c,
                min,
                bp,
                f.get("amount"),
                Some(refused),
                None,
                st.payments.is_some(),
            ),
        ));
    }
    let credit = match topup_amount(&st, &f) {
        Ok(n) => n,
        Err(e) => {
            return Ok(page(
                StatusCode::BAD_REQUEST,
                pages::topup(&c, min, bp, f.get("amount"), Some(&e.message), None, true),
            ))
        }
    };
    let fee = st
        .ledger
        .billing()
        .topup_fee(credit, time::OffsetDateTime::now_utc());
    Ok(ok(pages::topup_review(
        &c,
        credit,
        fee,
        bp,
        &session::random_token(),
    )))
}

fn topup_refused(st: &AppState, c: &Customer) -> Option<&'static str> {
    if st.payments.is_none() {
        Some("Card top-ups are not configured on this gateway.")
    } else if c.disabled {
        Some("This account is disabled.")
    } else if !c.verified {
        Some("Verify your email before topping up.")
    } else {
        None
    }
}

async fn topup_checkout(
    State(st): State<AppState>,
    LoggedIn(c): LoggedIn,
    h: HeaderMap,
    body: Bytes,
) -> PageResult {
    let f = session_form(&c, &body)?;
    if let Some(refused) = topup_refused(&st, &c) {
        return Err(PageError(StatusCode::FORBIDDEN, refused.into()));
    }
    let credit = topup_amount(&st, &f)?;
    let idem = f.get("idem");
    let idem = (idem.len() == 64 && idem.bytes().all(|b| b.is_ascii_hexdigit())).then_some(idem);
    let base = payments::public_base(&st, &h);
    let started = payments::start_checkout(
        &st,
        &c.account_id,
        credit,
        idem,
        &format!("{base}/console/topup/done?session_id={{CHECKOUT_SESSION_ID}}"),
        &format!("{base}/console/topup?notice=cancelled"),
    )
    .await?;
    tracing::info!(account = %c.account_id, session = %started.session_id, credit = %credit, fee = %started.fee, "console checkout started");
    Ok(see_other(&started.url, &[]))
}

#[derive(Deserialize)]
struct DoneQuery {
    session_id: Option<String>,
}

async fn topup_done(
    State(st): State<AppState>,
    LoggedIn(c): LoggedIn,
    Query(q): Query<DoneQuery>,
) -> PageResult {
    let session_id = q
        .session_id
        .filter(|s| s.len() <= 200 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or_default();
    let list = st.ledger.store().payment_receipts(&c.account_id).await?;
    let paid = list.iter().find(|r| r.session_id == session_id);
    Ok(ok(pages::topup_done(&c, &session_id, paid)))
}

async fn receipts(State(st): State<AppState>, LoggedIn(c): LoggedIn) -> PageResult {
    let list = st.ledger.store().payment_receipts(&c.account_id).await?;
    Ok(ok(pages::receipts(&c, &list)))
}

async fn receipt(
    State(st): State<AppState>,
    LoggedIn(c): LoggedIn,
    Path(session_id): Path<String>,
) -> PageResult {
    let list = st.ledger.store().payment_receipts(&c.account_id).await?;
    match list.iter().find(|r| r.session_id == session_id) {
        Some(r) => Ok(ok(pages::receipt(&c, r))),
        None => Err(PageError(
            StatusCode::NOT_FOUND,
            "No such receipt on your account.".into(),
        )),
    }
}
