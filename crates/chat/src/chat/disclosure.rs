//! What of a provider's error may reach a client.
//!
//! A provider's error text is written for the account that called it, which is the
//! gateway's, not the client's: an AWS access denial names the deployment's account ID
//! and role ARN (`User: arn:aws:sts::123456789012:assumed-role/...`), an OpenAI rate
//! limit names the organisation and its quota. So a client is told the category, the
//! provider and its status, never the text; the text goes to the log.
//!
//! The one exception is a provider's refusal of the client's own input (a context
//! overflow, roles that do not alternate, a temperature out of range): the text is the
//! only useful answer and is about the client's request. It is passed on through
//! [`redact`], which replaces anything that looks like an ARN, a 12-digit AWS account
//! ID or a credential, and caps the length. Redaction is a second line of defence: the
//! first is that only validation errors are passed on at all.

/// The longest provider text passed on to a client, in characters.
pub const MAX_DISCLOSED_CHARS: usize = 500;

/// Prefixes of credentials the gateway holds or a provider may echo: OpenAI and
/// Anthropic keys (`sk-`, `sk-ant-`), AWS access key IDs (`AKIA` long-term, `ASIA`
/// temporary), Bedrock API keys (`ABSK`, `bedrock-api-key-`), OpenAI organisation IDs.
const KEY_PREFIXES: &[(&str, usize)] = &[
    ("sk-", 8),
    ("AKIA", 16),
    ("ASIA", 16),
    ("ABSK", 16),
    ("bedrock-api-key-", 17),
    ("org-", 8),
];

/// `text` with ARNs, 12-digit account IDs and key-like tokens replaced, control
/// characters dropped, and cut to [`MAX_DISCLOSED_CHARS`].
pub fn redact(text: &str) -> String {
    let mut out = String::with_capacity(text.len().min(MAX_DISCLOSED_CHARS * 2));
    for piece in text.split_inclusive(char::is_whitespace) {
        let word = piece.trim_end_matches(char::is_whitespace);
        redact_word(word, &mut out);
        if word.len() < piece.len() {
            out.push(' ');
        }
    }
    let mut cut: String = out
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_DISCLOSED_CHARS)
        .collect();
    if out.chars().count() > MAX_DISCLOSED_CHARS {
        cut.push('…');
    }
    cut.trim_end().to_owned()
}

/// One whitespace-free word: everything from `arn:` on is an ARN (ARNs contain no
/// whitespace); elsewhere keys and account IDs are replaced.
fn redact_word(word: &str, out: &mut String) {
    let lower = word.to_ascii_lowercase();
    let arn = lower
        .match_indices("arn:")
        .map(|(i, _)| i)
        .find(|&i| at_boundary(word, i));
    match arn {
        Some(i) => {
            redact_tokens(&word[..i], out);
            out.push_str("[redacted ARN]");
            // Keep closing punctuation (`arn:...).` ends the sentence).
            let tail = word[i..].len()
                - word[i..]
                    .trim_end_matches(['.', ',', ';', ')', ']', '"', '\'', '`'])
                    .len();
            out.push_str(&word[word.len() - tail..]);
        }
        None => redact_tokens(word, out),
    }
}

/// Whether `i` starts a token: the start of `s`, or after a character that is not
/// alphanumeric.
fn at_boundary(s: &str, i: usize) -> bool {
    s[..i]
        .chars()
        .next_back()
        .is_none_or(|c| !c.is_ascii_alphanumeric())
}

/// Replaces key-like tokens and runs of exactly 12 digits in `s`.
fn redact_tokens(s: &str, out: &mut String) {
    let mut i = 0;
    while i < s.len() {
        let rest = &s[i..];
        if at_boundary(s, i) {
            if let Some(len) = key_len(rest) {
                out.push_str("[redacted key]");
                i += len;
                continue;
            }
        }
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 {
            if digits == 12 && at_boundary(s, i) {
                out.push_str("[redacted account ID]");
            } else {
                out.push_str(&rest[..digits]);
            }
            i += digits;
            continue;
        }
        let c = rest.chars().next().unwrap_or(' ');
        out.push(c);
        i += c.len_utf8();
    }
}

/// The length of the key-like token `s` starts with, if it starts with one.
fn key_len(s: &str) -> Option<usize> {
    KEY_PREFIXES.iter().find_map(|(prefix, min)| {
        if !s.starts_with(prefix) {
            return None;
        }
        let len = s
            .bytes()
            .take_while(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'+' | b'/' | b'=')
            })
            .count();
        (len >= *min).then_some(len)
    })
}

/// A provider's error code or type if it is a plain identifier (`ThrottlingException`,
/// `overloaded_error`, `rate_limit_exceeded`), safe to show; anything else is not shown.
pub fn identifier(code: &str) -> Option<&str> {
    let ok = !code.is_empty()
        && code.len() <= 64
        && code
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        && redact(code) == code;
    ok.then_some(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_iam_denial_loses_its_account_id_and_arns() {
        let m = "User: arn:aws:sts::123456789012:assumed-role/GammaInfra/i-0abc is not authorized to perform: bedrock:InvokeModel on resource: arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-6 because no identity-based policy allows the bedrock:InvokeModel action";
        let r = redact(m);
        assert!(!r.contains("123456789012"), "{r}");
        assert!(!r.contains("arn:"), "{r}");
        assert!(!r.contains("GammaInfra/i-0abc"), "{r}");
        assert!(
            r.starts_with("User: [redacted ARN] is not authorized"),
            "{r}"
        );
        assert!(r.contains("bedrock:InvokeModel action"), "{r}");
    }

    #[test]
    fn keys_and_account_ids_are_replaced_and_validation_texts_kept() {
        let r = redact("Incorrect API key provided: sk-proj-abcdefgh1234. Key AKIAIOSFODNN7EXAMPLE (ASIAXXXXXXXXXXXXXXXX), org org-abc12345, account 123456789012.");
        assert_eq!(
            r,
            "Incorrect API key provided: [redacted key]. Key [redacted key] ([redacted key]), org [redacted key], account [redacted account ID]."
        );
        for kept in [
            "messages: roles must alternate between \"user\" and \"assistant\", but found multiple \"user\" roles in a row",
            "temperature: Input should be less than or equal to 1",
            "This model's maximum context length is 128000 tokens. However, your messages resulted in 130412 tokens.",
            "Input is too long for requested model.",
            "The maximum tokens you requested exceed the model limit of 4096. Try again with a maximum tokens value lower than 4096.",
            "task-specific 1234567890123 and 12345678901 stay",
        ] {
            assert_eq!(redact(kept), kept);
        }
    }

    #[test]
    fn long_texts_are_cut_and_control_characters_dropped() {
        let r = redact(&"a\u{7}b ".repeat(400));
        assert!(r.chars().count() <= MAX_DISCLOSED_CHARS + 1);
        assert!(r.ends_with('…') && !r.contains('\u{7}'));
    }

    #[test]
    fn only_plain_identifiers_are_shown_as_codes() {
        assert_eq!(
            identifier("ThrottlingException"),
            Some("ThrottlingException")
        );
        assert_eq!(identifier("overloaded_error"), Some("overloaded_error"));
        assert_eq!(identifier("arn:aws:iam::123456789012:role/x"), None);
        assert_eq!(identifier("org-abcdefgh"), None);
        assert_eq!(identifier("has space"), None);
    }
}
