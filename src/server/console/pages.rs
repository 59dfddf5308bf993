//! The console's pages (maud): plain HTML forms that work without JavaScript, with
//! one small script (`console.js`) that shows the top-up total as the amount is typed
//! and copies a new key. No third-party assets.

use maud::{html, Markup, DOCTYPE};

use super::session::{Customer, MIN_PASSWORD};
use crate::ledger::{Balance, DailyUsage, KeyDetails, PaymentReceipt, UsageRecord};
use crate::money::Nanos;
use crate::server::payments::fee_percent;

/// `$3.00`, `$0.000123`.
fn usd(n: Nanos) -> String {
    if n < Nanos::ZERO {
        format!("−${}", Nanos::ZERO - n)
    } else {
        format!("${n}")
    }
}

/// A page: its title, the navigation when logged in, and the content.
pub fn layout(title: &str, customer: Option<&Customer>, content: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — GammaInfra console" }
                link rel="stylesheet" href="/console/assets/console.css";
                script src="/console/assets/console.js" defer {}
            }
            body {
                header {
                    a.brand href="/console" { "GammaInfra" }
                    @if let Some(c) = customer {
                        nav aria-label="Console" {
                            a href="/console" { "Overview" }
                            a href="/console/usage" { "Usage" }
                            a href="/console/keys" { "API keys" }
                            a href="/console/topup" { "Top up" }
                            a href="/console/receipts" { "Receipts" }
                        }
                        form.logout method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(c.csrf);
                            span.who { (c.email) }
                            button type="submit" id="logout" { "Log out" }
                        }
                    }
                }
                main id="main" {
                    (content)
                }
            }
        }
    }
}

fn error_box(error: Option<&str>) -> Markup {
    html! {
        @if let Some(e) = error {
            p.error role="alert" id="form-error" { (e) }
        }
    }
}

fn notice_box(notice: Option<&str>) -> Markup {
    html! {
        @if let Some(n) = notice {
            p.notice role="status" id="notice" { (n) }
        }
    }
}

/// A page of one message (errors, confirmations).
pub fn message(
    title: &str,
    customer: Option<&Customer>,
    text: &str,
    link: Option<(&str, &str)>,
) -> Markup {
    layout(
        title,
        customer,
        html! {
            h1 { (title) }
            p id="message" { (text) }
            @if let Some((href, label)) = link {
                p { a href=(href) { (label) } }
            }
        },
    )
}

pub fn signup(csrf: &str, email: &str, error: Option<&str>, trial: Nanos) -> Markup {
    layout(
        "Sign up",
        None,
        html! {
            h1 { "Create your account" }
            @if trial > Nanos::ZERO {
                p { "Verify your email and get " strong { (usd(trial)) } " of trial credit." }
            }
            (error_box(error))
            form method="post" action="/console/signup" {
                input type="hidden" name="csrf" value=(csrf);
                label for="email" { "Email" }
                input type="email" id="email" name="email" value=(email) autocomplete="email" required;
                label for="password" { "Password" }
                input type="password" id="password" name="password" autocomplete="new-password"
                    minlength=(MIN_PASSWORD) required aria-describedby="password-help";
                small id="password-help" { "At least " (MIN_PASSWORD) " characters." }
                button type="submit" id="signup" { "Sign up" }
            }
            p { "Already have an account? " a href="/console/login" { "Log in" } }
        },
    )
}

pub fn check_inbox(email: &str, outbox: bool) -> Markup {
    layout(
        "Check your inbox",
        None,
        html! {
            h1 { "Check your inbox" }
            p id="message" { "We sent a link to " strong { (email) } ". Open it to verify your email, then log in." }
            @if outbox {
                p.hint { "This gateway sends no email itself (no mail server is configured): its operator finds the message in the gateway's log and outbox (GET /admin/v1/outbox)." }
            }
            p { a href="/console/login" { "Log in" } }
        },
    )
}

pub fn login(csrf: &str, email: &str, error: Option<&str>, notice: Option<&str>) -> Markup {
    layout(
        "Log in",
        None,
        html! {
            h1 { "Log in" }
            (notice_box(notice))
            (error_box(error))
            form method="post" action="/console/login" {
                input type="hidden" name="csrf" value=(csrf);
                label for="email" { "Email" }
                input type="email" id="email" name="email" value=(email) autocomplete="username" required;
                label for="password" { "Password" }
                input type="password" id="password" name="password" autocomplete="current-password" required;
                button type="submit" id="login" { "Log in" }
            }
            p { a href="/console/reset" { "Forgot your password?" } " · " a href="/console/signup" { "Create an account" } }
        },
    )
}

pub fn reset_request(csrf: &str, error: Option<&str>) -> Markup {
    layout(
        "Reset your password",
        None,
        html! {
            h1 { "Reset your password" }
            p { "We will email you a link to choose a new password." }
            (error_box(error))
            form method="post" action="/console/reset" {
                input type="hidden" name="csrf" value=(csrf);
                label for="email" { "Email" }
                input type="email" id="email" name="email" autocomplete="email" required;
                button type="submit" id="reset" { "Send the link" }
            }
        },
    )
}

pub fn reset_confirm(csrf: &str, token: &str, error: Option<&str>) -> Markup {
    layout(
        "Choose a new password",
        None,
        html! {
            h1 { "Choose a new password" }
            (error_box(error))
            form method="post" action="/console/reset/confirm" {
                input type="hidden" name="csrf" value=(csrf);
                input type="hidden" name="token" value=(token);
                label for="password" { "New password" }
                input type="password" id="password" name="password" autocomplete="new-password"
                    minlength=(MIN_PASSWORD) required;
                button type="submit" id="set-password" { "Set the password" }
            }
        },
    )
}

pub fn overview(c: &Customer, b: &Balance, notice: Option<&str>) -> Markup {
    layout(
        "Overview",
        Some(c),
        html! {
            h1 { "Overview" }
            (notice_box(notice))
            @if c.disabled {
                p.error role="alert" { "This account is disabled: its keys are refused. Contact the gateway's operator." }
            }
            @if !c.verified {
                div.panel id="verify-panel" {
                    p { "Verify your email to get your trial credit and to create keys. We sent a link to " strong { (c.email) } "." }
                    form method="post" action="/console/verify/resend" {
                        input type="hidden" name="csrf" value=(c.csrf);
                        button type="submit" id="resend" { "Send the link again" }
                    }
                }
            }
            dl.balance {
                div { dt { "Balance" } dd id="balance" { (usd(b.balance)) } }
                div { dt { "Available" } dd id="available" { (usd(b.available())) } }
                div { dt { "Trial credit" } dd id="trial" { (usd(b.trial)) } }
                div { dt { "Top-ups" } dd id="topups" { (usd(b.topups)) } }
                @if b.adjustments != Nanos::ZERO {
                    div { dt { "Adjustments" } dd id="adjustments" { (usd(b.adjustments)) } }
                }
                div { dt { "Spent" } dd id="spent" { (usd(b.spent)) } }
            }
            @if b.reserved > Nanos::ZERO {
                p.hint { (usd(b.reserved)) " is held by requests in progress." }
            }
            @if b.balance < Nanos::ZERO {
                p.error role="alert" { "Your balance is below zero (a refunded or disputed payment): requests are refused until you top up." }
            }
            p { a.button href="/console/topup" { "Top up" } " " a.button href="/console/keys" { "Manage API keys" } " " a.button href="/console/usage" { "See usage" } }
        },
    )
}

/// The chart's colours (classes c0…c5 in console.css); a seventh series gathers the
/// remaining models.
const SERIES: usize = 6;

pub fn usage(
    c: &Customer,
    days: &[String],
    daily: &[DailyUsage],
    recent: &[UsageRecord],
) -> Markup {
    // The models, largest cost first; beyond SERIES − 1 they are drawn as "other".
    let mut totals: Vec<(String, i64)> = Vec::new();
    for d in daily {
        match totals.iter_mut().find(|(m, _)| *m == d.model) {
            Some((_, t)) => *t += d.cost.nanos(),
            None => totals.push((d.model.clone(), d.cost.nanos())),
        }
    }
    totals.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let series: Vec<String> = if totals.len() > SERIES {
        totals
            .iter()
            .take(SERIES - 1)
            .map(|(m, _)| m.clone())
            .chain(std::iter::once("other models".to_owned()))
            .collect()
    } else {
        totals.iter().map(|(m, _)| m.clone()).collect()
    };
    let series_of = |model: &str| {
        series
            .iter()
            .position(|s| s == model)
            .unwrap_or(series.len().saturating_sub(1))
    };
    // Per day, the cost of each series.
    let mut grid = vec![vec![0i64; series.len()]; days.len()];
    for d in daily {
        if let Some(i) = days.iter().position(|day| *day == d.day) {
            grid[i][series_of(&d.model)] += d.cost.nanos();
        }
    }
    let top = grid
        .iter()
        .map(|r| r.iter().sum::<i64>())
        .max()
        .unwrap_or(0);
    let (w, h, left, right, bottom) = (640.0_f64, 200.0_f64, 8.0_f64, 8.0_f64, 20.0_f64);
    let slot = (w - left - right) / days.len().max(1) as f64;
    // The stacked bars (display only: pixel heights, not money).
    struct Bar {
        x: f64,
        y: f64,
        height: f64,
        series: usize,
        title: String,
    }
    let mut bars = Vec::new();
    for (i, row) in grid.iter().enumerate() {
        let mut y = h;
        for (s, &cost) in row.iter().enumerate() {
            if cost > 0 && top > 0 {
                let height = (cost as f64 / top as f64 * (h - 16.0)).max(1.0);
                y -= height;
                bars.push(Bar {
                    x: left + i as f64 * slot + 1.0,
                    y,
                    height,
                    series: s,
                    title: format!(
                        "{} · {}: {}",
                        days[i],
                        series[s],
                        usd(Nanos::from_nanos(cost))
                    ),
                });
            }
        }
    }
    let bar_width = format!("{:.1}", (slot - 2.0).max(1.0));
    let total_cost: i64 = daily.iter().map(|d| d.cost.nanos()).sum();
    let total_requests: u64 = daily.iter().map(|d| d.requests).sum();
    let label = format!(
        "Cost per day over the last {} days, by model: {} in {} request{}",
        days.len(),
        usd(Nanos::from_nanos(total_cost)),
        total_requests,
        if total_requests == 1 { "" } else { "s" }
    );
    layout(
        "Usage",
        Some(c),
        html! {
            h1 { "Usage" }
            p id="usage-summary" { (label) "." }
            figure {
                svg id="usage-chart" viewBox=(format!("0 0 {w} {}", h + bottom)) role="img" aria-label=(label) {
                    @for b in &bars {
                        rect class=(format!("c{}", b.series)) x=(format!("{:.1}", b.x))
                            y=(format!("{:.1}", b.y)) width=(bar_width)
                            height=(format!("{:.1}", b.height)) {
                            title { (b.title) }
                        }
                    }
                    line x1=(left) y1=(h) x2=(w - right) y2=(h) class="axis" {}
                    @if let (Some(first), Some(last)) = (days.first(), days.last()) {
                        text x=(left) y=(h + 15.0) class="tick" { (first) }
                        text x=(w - right) y=(h + 15.0) class="tick end" { (last) }
                    }
                    @if top > 0 {
                        text x=(left + 2.0) y="12" class="tick" { "max " (usd(Nanos::from_nanos(top))) " per day" }
                    }
                }
                figcaption {
                    ul.legend id="usage-legend" {
                        @for (s, name) in series.iter().enumerate() {
                            li { svg.swatch viewBox="0 0 10 10" aria-hidden="true" { rect class=(format!("c{s}")) width="10" height="10" {} } (name) }
                        }
                    }
                }
            }
            h2 { "By day and model" }
            @if daily.is_empty() {
                p id="no-usage" { "No requests yet. Create a key and send one: it appears here as soon as it is billed." }
            } @else {
                div.scroll { table id="daily-usage" {
                    thead { tr { th scope="col" { "Day (UTC)" } th scope="col" { "Model" } th scope="col" { "Requests" } th scope="col" { "Input tokens" } th scope="col" { "Output tokens" } th scope="col" { "Cost" } } }
                    tbody {
                        @for d in daily.iter().rev() {
                            tr { td.nowrap { (d.day) } td { (d.model) } td.num { (d.requests) } td.num { (d.input_tokens) } td.num { (d.output_tokens) } td.num { (usd(d.cost)) } }
                        }
                    }
                } }
            }
            h2 { "Recent requests" }
            @if !recent.is_empty() {
                div.scroll { table id="recent-requests" {
                    thead { tr { th scope="col" { "Time (UTC)" } th scope="col" { "Model" } th scope="col" { "Provider" } th scope="col" { "Region" } th scope="col" { "Status" } th scope="col" { "Tokens in / out" } th scope="col" { "Cost" } th scope="col" { "Request ID" } } }
                    tbody {
                        @for r in recent {
                            tr {
                                td.nowrap { (r.created_at) }
                                td { (r.model.as_deref().unwrap_or("")) }
                                td { (r.provider.as_deref().unwrap_or("")) }
                                td { (r.region.as_deref().unwrap_or("")) }
                                td { (r.status.as_deref().unwrap_or("")) }
                                td.num { (r.input_tokens) " / " (r.output_tokens) }
                                td.num { (usd(r.cost)) }
                                td { code.small { (r.request_id) } }
                            }
                        }
                    }
                } }
            }
        },
    )
}

/// The key-creation form's values, kept when it is refused.
#[derive(Default)]
pub struct KeyForm<'a> {
    pub name: &'a str,
    pub residency: &'a str,
    pub daily: &'a str,
    pub monthly: &'a str,
    pub total: &'a str,
    pub rpm: &'a str,
    pub tpm: &'a str,
}

/// A key just created: shown once.
pub struct CreatedKey {
    pub id: String,
    pub name: Option<String>,
    pub plain: String,
}

pub fn keys(
    c: &Customer,
    keys: &[KeyDetails],
    created: Option<&CreatedKey>,
    form: &KeyForm<'_>,
    error: Option<&str>,
    notice: Option<&str>,
) -> Markup {
    layout(
        "API keys",
        Some(c),
        html! {
            h1 { "API keys" }
            (notice_box(notice))
            @if let Some(k) = created {
                div.panel.created id="new-key" {
                    p { "Your new key" @if let Some(n) = &k.name { " “" (n) "”" } " (" code { (k.id) } "). Copy it now: it is shown only once." }
                    p { code id="new-key-value" { (k.plain) } " " button type="button" class="copy" data-copy="new-key-value" { "Copy" } }
                    p.hint { "Use it as " code { "Authorization: Bearer <key>" } " on " code { "/v1/chat/completions" } ", " code { "/v1/messages" } " and the rest of the API." }
                }
            }
            @if !c.verified {
                p.notice { "Verify your email to create keys." }
            } @else {
                h2 { "Create a key" }
                (error_box(error))
                form method="post" action="/console/keys" id="create-key" {
                    input type="hidden" name="csrf" value=(c.csrf);
                    label for="name" { "Name (optional)" }
                    input type="text" id="name" name="name" value=(form.name) maxlength="100";
                    label for="residency" { "Region policy (optional)" }
                    input type="text" id="residency" name="residency" value=(form.residency) placeholder="us, eu, us-east-1, …" aria-describedby="residency-help";
                    small id="residency-help" { "Requests with this key are served only in these regions (an X-GammaInfra-Region value)." }
                    fieldset {
                        legend { "Spending limits in USD (optional)" }
                        label for="daily_usd" { "Per day" }
                        input type="text" inputmode="decimal" id="daily_usd" name="daily_usd" value=(form.daily) placeholder="5.00";
                        label for="monthly_usd" { "Per month" }
                        input type="text" inputmode="decimal" id="monthly_usd" name="monthly_usd" value=(form.monthly) placeholder="50.00";
                        label for="total_usd" { "In total" }
                        input type="text" inputmode="decimal" id="total_usd" name="total_usd" value=(form.total);
                    }
                    fieldset {
                        legend { "Rate limits (optional)" }
                        label for="requests_per_minute" { "Requests per minute" }
                        input type="number" min="1" id="requests_per_minute" name="requests_per_minute" value=(form.rpm);
                        label for="tokens_per_minute" { "Tokens per minute" }
                        input type="number" min="1" id="tokens_per_minute" name="tokens_per_minute" value=(form.tpm);
                    }
                    button type="submit" id="create" { "Create key" }
                }
            }
            h2 { "Your keys" }
            @if keys.is_empty() {
                p id="no-keys" { "No keys yet." }
            } @else {
                table id="keys" {
                    thead { tr { th scope="col" { "Key" } th scope="col" { "Name" } th scope="col" { "Created (UTC)" } th scope="col" { "Region policy" } th scope="col" { "Limits" } th scope="col" { "Status" } } }
                    tbody {
                        @for k in keys {
                            tr id=(format!("key-{}", k.id)) {
                                td { code { (k.id) } }
                                td { (k.name.as_deref().unwrap_or("")) }
                                td { (k.created_at) }
                                td { (k.residency.as_deref().unwrap_or("any")) }
                                td { (limits_text(k)) }
                                td {
                                    @if k.revoked_at.is_some() {
                                        "revoked"
                                    } @else {
                                        form method="post" action=(format!("/console/keys/{}/revoke", k.id)) {
                                            input type="hidden" name="csrf" value=(c.csrf);
                                            button type="submit" class="danger" aria-label=(format!("Revoke {}", k.id))
                                                data-confirm=(format!("Revoke {}? Requests with it are refused from then on; this cannot be undone.", k.id)) { "Revoke" }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        },
    )
}

fn limits_text(k: &KeyDetails) -> String {
    let l = &k.limits;
    let mut parts = Vec::new();
    if let Some(n) = l.spend.daily {
        parts.push(format!("{}/day", usd(n)));
    }
    if let Some(n) = l.spend.monthly {
        parts.push(format!("{}/month", usd(n)));
    }
    if let Some(n) = l.spend.total {
        parts.push(format!("{} in total", usd(n)));
    }
    if let Some(n) = l.rates.rpm {
        parts.push(format!("{n} requests/min"));
    }
    if let Some(n) = l.rates.tpm {
        parts.push(format!("{n} tokens/min"));
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join(", ")
    }
}

pub fn topup(
    c: &Customer,
    min: Nanos,
    fee_bp: i64,
    amount: &str,
    error: Option<&str>,
    notice: Option<&str>,
    enabled: bool,
) -> Markup {
    layout(
        "Top up",
        Some(c),
        html! {
            h1 { "Top up" }
            (notice_box(notice))
            @if !enabled {
                p.error { "Card top-ups are not configured on this gateway; ask its operator for credit." }
            } @else if !c.verified {
                p.notice { "Verify your email to top up." }
            } @else {
                p { "Credit is added at exactly the amount you choose (at least " (usd(min)) "). A top-up fee of " strong id="fee-percent" { (fee_percent(fee_bp)) "%" } " is added at checkout." }
                (error_box(error))
                form method="post" action="/console/topup" id="topup-form" data-fee-bp=(fee_bp) {
                    input type="hidden" name="csrf" value=(c.csrf);
                    label for="amount" { "Credit in USD" }
                    input type="text" inputmode="decimal" id="amount" name="amount" value=(amount) placeholder=(min.to_string()) required;
                    p.hint id="fee-preview" aria-live="polite" {}
                    button type="submit" id="review" { "Review" }
                }
            }
        },
    )
}

pub fn topup_review(c: &Customer, credit: Nanos, fee: Nanos, fee_bp: i64, idem: &str) -> Markup {
    layout(
        "Review your top-up",
        Some(c),
        html! {
            h1 { "Review your top-up" }
            table.summary id="topup-summary" {
                tbody {
                    tr { th scope="row" { "Credit added" } td.num id="review-credit" { (usd(credit)) } }
                    tr { th scope="row" { "Top-up fee (" (fee_percent(fee_bp)) "%)" } td.num id="review-fee" { (usd(fee)) } }
                    tr.total { th scope="row" { "Charged to your card" } td.num id="review-total" { (usd(credit + fee)) } }
                }
            }
            form method="post" action="/console/topup/checkout" {
                input type="hidden" name="csrf" value=(c.csrf);
                input type="hidden" name="amount" value=(credit.to_string());
                input type="hidden" name="idem" value=(idem);
                button type="submit" id="pay" { "Pay " (usd(credit + fee)) " with card" }
            }
            p.hint { "You pay on Stripe's page; the credit is added when Stripe confirms the payment. Nothing is charged if you go back." }
            p { a href="/console/topup" { "Change the amount" } }
        },
    )
}

pub fn topup_done(c: &Customer, session_id: &str, paid: Option<&PaymentReceipt>) -> Markup {
    layout(
        "Payment received",
        Some(c),
        html! {
            @if let Some(r) = paid {
                h1 { "Thank you" }
                p id="credited" { (usd(r.credited)) " was added to your balance." }
                p { a href=(format!("/console/receipts/{}", r.session_id)) { "See the receipt" } " · " a href="/console" { "Back to the overview" } }
            } @else {
                h1 { "Payment received" }
                p id="waiting" { "Your credit is added as soon as Stripe confirms the payment, usually within seconds. This page refreshes by itself." }
                p { a href=(format!("/console/topup/done?session_id={session_id}")) id="refresh" data-auto-refresh="2" { "Refresh" } }
            }
        },
    )
}

pub fn receipts(c: &Customer, list: &[PaymentReceipt]) -> Markup {
    layout(
        "Receipts",
        Some(c),
        html! {
            h1 { "Receipts" }
            @if list.is_empty() {
                p id="no-receipts" { "No card payments yet." }
            } @else {
                table id="receipts" {
                    thead { tr { th scope="col" { "Paid (UTC)" } th scope="col" { "Credit" } th scope="col" { "Fee" } th scope="col" { "Charged" } th scope="col" { "Refunded or disputed" } th scope="col" { "Receipt" } } }
                    tbody {
                        @for r in list {
                            tr {
                                td { (r.paid_at) }
                                td.num { (usd(r.credited)) }
                                td.num { (usd(r.fee)) }
                                td.num { (usd(r.credited + r.fee)) }
                                td.num { (usd(r.taken)) }
                                td { a href=(format!("/console/receipts/{}", r.session_id)) { (r.topup_id) } }
                            }
                        }
                    }
                }
            }
        },
    )
}

pub fn receipt(c: &Customer, r: &PaymentReceipt) -> Markup {
    layout(
        "Receipt",
        Some(c),
        html! {
            h1 { "Receipt " (r.topup_id) }
            table.summary id="receipt" {
                tbody {
                    tr { th scope="row" { "Account" } td { (c.email) " (" (c.account_id) ")" } }
                    tr { th scope="row" { "Paid (UTC)" } td { (r.paid_at) } }
                    tr { th scope="row" { "Credit added" } td.num { (usd(r.credited)) } }
                    tr { th scope="row" { "Top-up fee (" (fee_percent(r.fee_basis_points)) "%)" } td.num { (usd(r.fee)) } }
                    tr.total { th scope="row" { "Charged" } td.num { (usd(r.credited + r.fee)) } }
                    @if r.taken > Nanos::ZERO {
                        tr { th scope="row" { "Credit taken back (refund or dispute)" } td.num { (usd(r.taken)) } }
                    }
                    tr { th scope="row" { "Stripe Checkout Session" } td { code { (r.session_id) } } }
                }
            }
            p { a href="/console/receipts" { "All receipts" } }
        },
    )
}

/// `console.css`.
pub const CSS: &str = include_str!("console.css");
/// `console.js`.
pub const JS: &str = include_str!("console.js");
