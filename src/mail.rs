//! The console's emails (verification and password-reset links): sent over SMTP when
//! `GAMMAINFRA_SMTP_URL` is set, otherwise written to the log and to the outbox
//! (`mail_outbox`, read with `GET /admin/v1/outbox`), which is how the demo and the
//! tests receive them.

use lettre::message::Mailbox;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::MailConfig;
use crate::ledger::Store;

/// One message, plain text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: String,
    pub subject: String,
    pub body: String,
}

/// Where messages go.
pub enum Mailer {
    Smtp(Box<Smtp>),
    /// The log and the outbox table.
    Outbox,
}

pub struct Smtp {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("`{0}` is not an email address the mail server can take")]
    Address(String),
    #[error("the message could not be built: {0}")]
    Build(String),
    #[error("the SMTP server refused or could not be reached: {0}")]
    Smtp(String),
    #[error("the outbox could not be written: {0}")]
    Outbox(#[from] crate::ledger::StoreError),
}

/// The SMTP transport of a URL in lettre's form (`smtps://user:pass@host:465`,
/// `smtp://host:587?tls=required`).
pub fn smtp_transport(url: &str) -> Result<AsyncSmtpTransport<Tokio1Executor>, String> {
    AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map(|b| b.build())
        .map_err(|e| e.to_string())
}

impl Mailer {
    /// The mailer of the configuration: SMTP when configured, else the outbox.
    pub fn new(config: Option<&MailConfig>) -> Result<Self, String> {
        let Some(c) = config else {
            return Ok(Mailer::Outbox);
        };
        Ok(Mailer::Smtp(Box::new(Smtp {
            transport: smtp_transport(c.smtp_url.expose())?,
            from: c
                .from
                .parse()
                .map_err(|e| format!("`{}` is not a sender address: {e}", c.from))?,
        })))
    }

    /// Whether messages go to the outbox (and the log) rather than to an SMTP server.
    pub fn is_outbox(&self) -> bool {
        matches!(self, Mailer::Outbox)
    }

    pub async fn send(&self, store: &Store, m: &Mail) -> Result<(), MailError> {
        match self {
            Mailer::Outbox => {
                tracing::info!(to = %m.to, subject = %m.subject, body = %m.body, "mail written to the outbox (no SMTP server configured)");
                store
                    .push_outbox(&m.to, &m.subject, &m.body, &crate::clock::now_rfc3339())
                    .await?;
                Ok(())
            }
            Mailer::Smtp(smtp) => {
                let Smtp { transport, from } = smtp.as_ref();
                let to: Mailbox = m.to.parse().map_err(|_| MailError::Address(m.to.clone()))?;
                let msg = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(m.subject.clone())
                    .header(lettre::message::header::ContentType::TEXT_PLAIN)
                    .body(m.body.clone())
                    .map_err(|e| MailError::Build(e.to_string()))?;
                transport
                    .send(msg)
                    .await
                    .map_err(|e| MailError::Smtp(e.to_string()))?;
                tracing::info!(to = %m.to, subject = %m.subject, "mail sent");
                Ok(())
            }
        }
    }
}
