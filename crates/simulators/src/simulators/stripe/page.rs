//! The stand-in for Stripe's hosted payment page: plain, accessible HTML (a language,
//! a title, one heading, a table with a caption and header cells, a real form button)
//! with no script and no style sheet, so a browser test or a person can pay with one
//! click.

use super::checkout::{dollars, Session, Status};

/// The page for `session`: its line items and total, then the Pay button (open), or
/// what became of it (complete or expired).
pub(super) fn payment_page(session: &Session) -> String {
    let d = &session.details;
    let total = dollars(d.amount_total);
    let mut rows = String::new();
    for item in &d.line_items {
        let description = item
            .description
            .as_deref()
            .map(|text| format!("<br><small>{}</small>", escape(text)))
            .unwrap_or_default();
        rows.push_str(&format!(
            "<tr><th scope=\"row\">{}{description}</th><td>{}</td><td>{}</td><td>{}</td></tr>\n",
            escape(&item.name),
            item.quantity,
            dollars(item.unit_amount),
            dollars(item.amount()),
        ));
    }
    let email = d
        .customer_email
        .as_deref()
        .map(|email| format!("<p>Email: {}</p>\n", escape(email)))
        .unwrap_or_default();
    let cancel = d
        .cancel_url
        .as_deref()
        .map(|url| {
            format!(
                "<p><a id=\"cancel\" href=\"{}\">Cancel and go back</a></p>\n",
                escape(url)
            )
        })
        .unwrap_or_default();
    let action = match session.status {
        Status::Open => format!(
            "<form method=\"post\" action=\"/pay/{}\">\n<button type=\"submit\" id=\"pay\">Pay</button>\n</form>\n{cancel}",
            escape(&session.id)
        ),
        Status::Complete => format!(
            "<p role=\"status\">This payment is complete.</p>\n<p><a id=\"continue\" href=\"{}\">Continue</a></p>\n",
            escape(&session.success_redirect())
        ),
        Status::Expired => format!("<p role=\"status\">This Checkout Session has expired.</p>\n{cancel}"),
    };
    let heading = match session.status {
        Status::Open => format!("Pay {total}"),
        Status::Complete => format!("Paid {total}"),
        Status::Expired => "Checkout expired".to_owned(),
    };
    format!(
        "<!doctype html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">
<title>{heading} - Stripe simulator</title>
</head>
<body>
<main>
<h1>{heading}</h1>
<p>Simulated Stripe Checkout in test mode: no card is charged.</p>
{email}<table>
<caption>Order summary</caption>
<thead><tr><th scope=\"col\">Item</th><th scope=\"col\">Quantity</th><th scope=\"col\">Unit price</th><th scope=\"col\">Amount</th></tr></thead>
<tbody>
{rows}</tbody>
<tfoot><tr><th scope=\"row\" colspan=\"3\">Total</th><td id=\"total\">{total}</td></tr></tfoot>
</table>
{action}</main>
</body>
</html>
"
    )
}

/// A short page for an answer that is not a payment page (unknown session, a link
/// whose redirect cannot be sent).
pub(super) fn message_page(title: &str, message_html: &str) -> String {
    format!(
        "<!doctype html>
<html lang=\"en\">
<head>
<meta charset=\"utf-8\">
<title>{title} - Stripe simulator</title>
</head>
<body>
<main>
<h1>{title}</h1>
<p>{message_html}</p>
</main>
</body>
</html>
"
    )
}

/// Escapes text for HTML content and double-quoted attributes.
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}
