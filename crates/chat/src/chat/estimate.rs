//! Input tokens estimated from the request, for a stream cut before the provider reported
//! any usage (docs/billing.md, "Estimated usage").
//!
//! The estimate is charged, so it aims at the provider's own count and must not be
//! systematically low: text is counted at a conservative 3 bytes per token, every
//! message and tool carries a framing overhead, and every image costs what the
//! provider's published rule charges for the largest image it accepts (the gateway does
//! not know the size of an image behind a URL), except where the client asked for
//! OpenAI's low detail, whose cost is fixed. The estimate never exceeds the input bound
//! the credit reservation held ([`input_token_bound`]), so settling it never charges
//! more than was held.

use super::request::{input_token_bound, Content, Message, Part, ToolChoice};
use super::ChatRequest;
use crate::catalog::{Endpoint, ProviderKind};

/// Bytes of text per estimated token. Tokenizers average about 4 bytes per token on
/// English prose and about 3 on code and JSON; text in scripts of 2–3 bytes per
/// character (Cyrillic, Greek, CJK) often takes a token per character or more. 3 keeps
/// the estimate at or above the true count for all of these except the densest CJK on
/// some tokenizers, at the price of overestimating English by about a third.
pub const BYTES_PER_TOKEN: u64 = 3;

/// Framing tokens per message (role markers and separators; OpenAI documents 3–4).
pub const TOKENS_PER_MESSAGE: u64 = 4;
/// Tokens that prime the reply (OpenAI documents 3).
pub const REPLY_PRIMING_TOKENS: u64 = 3;
/// Framing tokens per tool definition and per tool call, beyond their text.
pub const TOKENS_PER_TOOL: u64 = 8;
/// The system prompt Claude adds when tools are present (Anthropic's pricing page: 346
/// tokens for `auto`/`none` tool choice, 313 for `any`/`tool`, Claude 4 models).
pub const CLAUDE_TOOL_PROMPT_TOKENS: u64 = 346;

/// Claude, any image: about width × height / 750 tokens, after resizing so that the long
/// edge is at most 1,568 px and the image at most about 1,600 tokens; the largest sizes
/// Anthropic lists as not resized (1,092 × 1,092 to 784 × 1,568) cost 1,590 to 1,639.
pub const CLAUDE_MAX_IMAGE_TOKENS: u64 = 1_640;
/// Claude Opus 4.7 reads images up to 2,576 px on the long edge (about 3.75 megapixels),
/// at one token per 28 × 28 px patch: at most about 4,784 tokens.
pub const CLAUDE_HIGH_RES_MAX_IMAGE_TOKENS: u64 = 4_784;
/// Amazon Nova: images are rescaled by aspect ratio; the largest example Amazon documents
/// (1,300 × 1,300 px) is about 2,600 tokens. (Nova 2 documents a flat 230 billed tokens
/// per image, but not how that relates to the `inputTokens` Converse reports, which is
/// what the gateway bills; the larger figure is used for both.)
pub const NOVA_MAX_IMAGE_TOKENS: u64 = 2_600;
/// A model whose image rule is not known: about the largest per-image count of the
/// documented rules above (GPT-4o mini's outlier aside).
pub const UNKNOWN_MAX_IMAGE_TOKENS: u64 = 5_000;
/// OpenAI tile models: the most 512 px tiles an image can take. An image is scaled to fit
/// 2,048 × 2,048, then so that its shortest side is at most 768 px: at most 2 × 4 tiles.
pub const OPENAI_MAX_TILES: u64 = 8;
/// OpenAI patch models: the most 32 px patches counted per image.
pub const OPENAI_MAX_PATCHES: u64 = 1_536;

/// How a provider counts an image's input tokens: its published rule, per model family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImageRule {
    /// Claude (Anthropic direct or Bedrock): area-based, at most `max` tokens per image;
    /// `detail` does not apply.
    Claude { max: u64 },
    /// OpenAI tile models: `base` + `tile` × the 512 px tiles; detail `"low"` is `base`.
    OpenAiTiles { base: u64, tile: u64 },
    /// OpenAI patch models: 32 px patches (at most [`OPENAI_MAX_PATCHES`]) times a
    /// per-model multiplier, in thousandths. Detail is not relied on.
    OpenAiPatches { multiplier_milli: u64 },
    /// Amazon Nova: at most [`NOVA_MAX_IMAGE_TOKENS`].
    Nova,
    /// No published rule known: [`UNKNOWN_MAX_IMAGE_TOKENS`].
    Unknown,
}

/// `id` is the model `family` itself or a dated snapshot of it (`gpt-4o-2024-08-06`).
fn family(id: &str, family: &str) -> bool {
    id.strip_prefix(family)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with("-20"))
}

impl ImageRule {
    /// The rule of the model an endpoint serves.
    pub fn of(endpoint: &Endpoint) -> Self {
        Self::for_endpoint(&endpoint.provider, &endpoint.upstream_id)
    }

    /// The rule for `upstream_id` at `provider`. Families are matched exactly (or by
    /// dated snapshot): a newer model of a family may count images differently, and gets
    /// the conservative [`ImageRule::Unknown`] until it is added here.
    pub fn for_endpoint(provider: &ProviderKind, upstream_id: &str) -> Self {
        let claude = |id: &str| ImageRule::Claude {
            max: if id.contains("claude-opus-4-7") {
                CLAUDE_HIGH_RES_MAX_IMAGE_TOKENS
            } else {
                CLAUDE_MAX_IMAGE_TOKENS
            },
        };
        match provider {
            ProviderKind::Anthropic => claude(upstream_id),
            ProviderKind::Bedrock if upstream_id.contains("anthropic.claude") => {
                claude(upstream_id)
            }
            ProviderKind::Bedrock if upstream_id.contains("amazon.nova") => ImageRule::Nova,
            ProviderKind::Bedrock | ProviderKind::OpenAiCompatible(_) => ImageRule::Unknown,
            ProviderKind::OpenAi => Self::openai(upstream_id),
        }
    }

    /// OpenAI's published rules (developers.openai.com, "Images and vision", calculating
    /// costs).
    fn openai(id: &str) -> Self {
        let tiles = |base, tile| ImageRule::OpenAiTiles { base, tile };
        let patches = |multiplier_milli| ImageRule::OpenAiPatches { multiplier_milli };
        if family(id, "gpt-4o-mini") {
            tiles(2_833, 5_667)
        } else if family(id, "gpt-4o")
            || id == "chatgpt-4o-latest"
            || family(id, "gpt-4.1")
            || family(id, "gpt-4.5-preview")
            || family(id, "gpt-4-turbo")
        {
            tiles(85, 170)
        } else if family(id, "gpt-5") || id == "gpt-5-chat-latest" {
            tiles(70, 140)
        } else if family(id, "o1") || family(id, "o1-pro") || family(id, "o3") {
            tiles(75, 150)
        } else if family(id, "gpt-4.1-mini") || family(id, "gpt-5-mini") {
            patches(1_620)
        } else if family(id, "gpt-4.1-nano") || family(id, "gpt-5-nano") {
            patches(2_460)
        } else if family(id, "o4-mini") {
            patches(1_720)
        } else {
            ImageRule::Unknown
        }
    }

    /// Tokens for one image of unknown size at `detail`: the most the rule charges.
    pub fn image_tokens(self, detail: Option<&str>) -> u64 {
        match self {
            ImageRule::Claude { max } => max,
            ImageRule::OpenAiTiles { base, .. } if detail == Some("low") => base,
            ImageRule::OpenAiTiles { base, tile } => base + tile * OPENAI_MAX_TILES,
            ImageRule::OpenAiPatches { multiplier_milli } => {
                (OPENAI_MAX_PATCHES * multiplier_milli).div_ceil(1_000)
            }
            ImageRule::Nova => NOVA_MAX_IMAGE_TOKENS,
            ImageRule::Unknown => UNKNOWN_MAX_IMAGE_TOKENS,
        }
    }
}

/// OpenAI's 512 px tile count for a `width` × `height` image at high detail: scaled
/// (down only) to fit 2,048 × 2,048, then (down only) so the shortest side is 768 px.
/// The source of [`OPENAI_MAX_TILES`]; kept to test it against OpenAI's examples.
pub fn openai_tiles(width: u64, height: u64) -> u64 {
    let (mut w, mut h) = (width.max(1), height.max(1));
    if w > 2_048 || h > 2_048 {
        let long = w.max(h);
        (w, h) = ((w * 2_048) / long, (h * 2_048) / long);
    }
    let short = w.min(h);
    if short > 768 {
        (w, h) = ((w * 768) / short, (h * 768) / short);
    }
    w.max(1).div_ceil(512) * h.max(1).div_ceil(512)
}

impl ChatRequest {
    /// [`ChatRequest::estimated_input_tokens`] at the model `endpoint` serves.
    pub fn estimated_input_tokens_at(&self, body_len: usize, endpoint: &Endpoint) -> u64 {
        self.estimated_input_tokens(body_len, ImageRule::of(endpoint))
    }

    /// The input tokens this request is estimated to cost at a provider whose images
    /// count by `images`, for billing a stream cut before the provider reported usage.
    /// Text (messages, tool calls and results, tool definitions) is counted at
    /// [`BYTES_PER_TOKEN`], plus framing per message and tool, plus each image by its
    /// provider's rule. Never more than the reservation's input bound for `body_len`.
    pub fn estimated_input_tokens(&self, body_len: usize, images: ImageRule) -> u64 {
        let mut text_bytes: u64 = 0;
        let mut framing = REPLY_PRIMING_TOKENS;
        let mut image_tokens: u64 = 0;
        let mut add = |s: &str| text_bytes = text_bytes.saturating_add(s.len() as u64);
        for m in &self.messages {
            framing += TOKENS_PER_MESSAGE;
            match m {
                Message::System { content }
                | Message::Developer { content }
                | Message::User { content } => {
                    if let Content::Parts(parts) = content {
                        for p in parts {
                            if let Part::ImageUrl { image_url } = p {
                                image_tokens = image_tokens.saturating_add(
                                    images.image_tokens(image_url.detail.as_deref()),
                                );
                            }
                        }
                    }
                    content_text(content, &mut add);
                }
                Message::Assistant {
                    content,
                    tool_calls,
                    ..
                } => {
                    if let Some(c) = content {
                        content_text(c, &mut add);
                    }
                    for c in tool_calls.iter().flatten() {
                        framing += TOKENS_PER_TOOL;
                        add(&c.id);
                        add(&c.function.name);
                        add(&c.function.arguments);
                    }
                }
                Message::Tool {
                    content,
                    tool_call_id,
                } => {
                    add(tool_call_id);
                    content_text(content, &mut add);
                }
            }
        }
        let tools = self.tools.as_deref().unwrap_or_default();
        for t in tools {
            framing += TOKENS_PER_TOOL;
            add(&t.function.name);
            add(t.function.description.as_deref().unwrap_or_default());
            add(t.function.parameters.as_ref().map_or("", |p| p.get()));
        }
        if let Some(ToolChoice::Named(n)) = &self.tool_choice {
            add(&n.function.name);
        }
        if !tools.is_empty() && matches!(images, ImageRule::Claude { .. }) {
            framing += CLAUDE_TOOL_PROMPT_TOKENS;
        }
        let estimate = text_bytes
            .div_ceil(BYTES_PER_TOKEN)
            .saturating_add(framing)
            .saturating_add(image_tokens);
        estimate.min(input_token_bound(body_len, self.image_count()))
    }
}

/// Feeds every text part of `content` to `add` (images are counted separately).
fn content_text(content: &Content, add: &mut impl FnMut(&str)) {
    match content {
        Content::Text(t) => add(t),
        Content::Parts(parts) => {
            for p in parts {
                if let Part::Text { text, .. } = p {
                    add(text);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(body: &str) -> ChatRequest {
        ChatRequest::parse(body.as_bytes()).expect("valid request")
    }

    fn estimate(body: &str, rule: ImageRule) -> u64 {
        req(body).estimated_input_tokens(body.len(), rule)
    }

    fn with_image(detail: &str) -> String {
        format!(
            r#"{{"model":"m","messages":[{{"role":"user","content":[{{"type":"text","text":"what is this"}},{{"type":"image_url","image_url":{{"url":"https://example.com/a.png"{detail}}}}}]}}]}}"#
        )
    }

    #[test]
    fn text_is_counted_at_three_bytes_per_token_plus_framing() {
        let text = "a".repeat(300);
        let body = format!(
            r#"{{"model":"m","messages":[{{"role":"system","content":"be brief"}},{{"role":"user","content":"{text}"}}]}}"#
        );
        // 8 + 300 bytes → 103 tokens; 2 messages × 4 + 3 priming.
        assert_eq!(estimate(&body, ImageRule::Unknown), 103 + 8 + 3);
    }

    #[test]
    fn scripts_of_several_bytes_per_character_count_a_token_per_character() {
        // 100 CJK characters, 3 bytes each: at least one token per character.
        let text = "日本語".repeat(100 / 3 + 1);
        let chars = text.chars().count() as u64;
        let body = format!(r#"{{"model":"m","messages":[{{"role":"user","content":"{text}"}}]}}"#);
        assert!(estimate(&body, ImageRule::Unknown) >= chars + TOKENS_PER_MESSAGE);
    }

    #[test]
    fn tools_calls_and_results_are_counted() {
        let body = r#"{"model":"m","messages":[
            {"role":"user","content":"weather?"},
            {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
            {"role":"tool","tool_call_id":"c1","content":"sunny, 24 degrees"}],
            "tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]}"#;
        let r = req(body);
        let text = "weather?".len()
            + "c1get_weather{\"city\":\"Paris\"}".len()
            + "c1sunny, 24 degrees".len()
            + "get_weatherCurrent weather".len()
            + r#"{"type":"object","properties":{"city":{"type":"string"}}}"#.len();
        let framing = 3 * TOKENS_PER_MESSAGE + 2 * TOKENS_PER_TOOL + REPLY_PRIMING_TOKENS;
        let want = (text as u64).div_ceil(3) + framing;
        assert_eq!(
            r.estimated_input_tokens(body.len(), ImageRule::Unknown),
            want
        );
        // Claude adds its tool-use system prompt.
        let claude = ImageRule::Claude {
            max: CLAUDE_MAX_IMAGE_TOKENS,
        };
        assert_eq!(
            r.estimated_input_tokens(body.len(), claude),
            want + CLAUDE_TOOL_PROMPT_TOKENS
        );
    }

    #[test]
    fn a_fetched_image_costs_the_providers_maximum_unless_detail_is_low() {
        let text_only = estimate(
            r#"{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"what is this"}]}]}"#,
            ImageRule::Unknown,
        );
        let cases = [
            (
                ImageRule::for_endpoint(&ProviderKind::Anthropic, "claude-sonnet-4-6"),
                "",
                1_640,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::Bedrock, "us.anthropic.claude-opus-4-7"),
                "",
                4_784,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::Bedrock, "us.amazon.nova-pro-v1:0"),
                "",
                2_600,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "gpt-4o"),
                "",
                85 + 8 * 170,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "gpt-4o"),
                r#","detail":"auto""#,
                1_445,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "gpt-4o"),
                r#","detail":"high""#,
                1_445,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "gpt-4o"),
                r#","detail":"low""#,
                85,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "gpt-4o-mini"),
                "",
                2_833 + 8 * 5_667,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "gpt-4o-mini-2024-07-18"),
                r#","detail":"low""#,
                2_833,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "gpt-5"),
                "",
                70 + 8 * 140,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "gpt-5-mini"),
                r#","detail":"low""#,
                2_489,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "gpt-4.1-mini"),
                "",
                2_489,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "gpt-4.1-nano"),
                "",
                3_779,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "o4-mini"),
                "",
                2_642,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "o3"),
                "",
                75 + 8 * 150,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "gpt-5.2"),
                "",
                5_000,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "gpt-9"),
                "",
                5_000,
            ),
            (
                ImageRule::for_endpoint(&ProviderKind::OpenAiCompatible("x".into()), "gpt-4o"),
                "",
                5_000,
            ),
        ];
        for (rule, detail, image) in cases {
            let body = with_image(detail);
            assert_eq!(
                estimate(&body, rule) - text_only,
                image,
                "{rule:?} {detail}"
            );
        }
    }

    #[test]
    fn openai_tile_rule_matches_openais_examples_and_the_maximum() {
        // "A 1024 x 1024 square image in detail: high mode costs 765 tokens"; "A 2048 x
        // 4096 image ... costs 1105 tokens".
        assert_eq!(85 + 170 * openai_tiles(1_024, 1_024), 765);
        assert_eq!(85 + 170 * openai_tiles(2_048, 4_096), 1_105);
        assert_eq!(openai_tiles(512, 512), 1);
        assert_eq!(openai_tiles(513, 513), 4);
        let mut most = 0;
        for w in (1..=8_000).step_by(97) {
            for h in (1..=8_000).step_by(89) {
                most = most.max(openai_tiles(w, h));
            }
        }
        most = most
            .max(openai_tiles(768, 2_048))
            .max(openai_tiles(8_000, 3_000));
        assert_eq!(most, OPENAI_MAX_TILES);
    }

    #[test]
    fn every_vision_endpoint_of_the_catalog_has_a_known_rule() {
        let c = crate::catalog::Catalog::builtin().expect("catalog");
        for m in c
            .models
            .iter()
            .filter(|m| m.capabilities.contains("vision"))
        {
            for e in &m.endpoints {
                assert_ne!(ImageRule::of(e), ImageRule::Unknown, "{}", e.key);
            }
        }
    }

    proptest::proptest! {
        /// For any text and images: never above the reservation's bound, and never below
        /// the text's bytes / 3 (unless the bound is lower).
        #[test]
        fn between_the_text_rule_and_the_reservation_bound(
            text in proptest::prelude::any::<String>(),
            details in proptest::collection::vec(
                proptest::option::of(proptest::sample::select(vec!["low", "high", "auto"])),
                0..4,
            ),
            rule in proptest::sample::select(vec![
                ImageRule::Claude { max: CLAUDE_MAX_IMAGE_TOKENS },
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "gpt-4o-mini"),
                ImageRule::for_endpoint(&ProviderKind::OpenAi, "gpt-5-mini"),
                ImageRule::Nova,
                ImageRule::Unknown,
            ]),
        ) {
            let mut parts = vec![serde_json::json!({"type": "text", "text": text})];
            for d in &details {
                let mut image = serde_json::json!({"url": "https://example.com/i.png"});
                if let Some(d) = d {
                    image["detail"] = serde_json::json!(d);
                }
                parts.push(serde_json::json!({"type": "image_url", "image_url": image}));
            }
            let body = serde_json::json!({
                "model": "m", "messages": [{"role": "user", "content": parts}],
            })
            .to_string();
            let e = estimate(&body, rule);
            let bound = input_token_bound(body.len(), details.len());
            proptest::prop_assert!(e <= bound);
            proptest::prop_assert!(e >= (text.len() as u64).div_ceil(3).min(bound));
        }
    }

    #[test]
    fn never_more_than_the_reservation_held() {
        // A tiny body with a tool on Claude: framing alone exceeds the body's bytes.
        let body = r#"{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}]}"#;
        let claude = ImageRule::Claude {
            max: CLAUDE_MAX_IMAGE_TOKENS,
        };
        assert_eq!(estimate(body, claude), body.len() as u64);
        // Many images on GPT-4o mini stay within the per-image bound.
        let body = with_image("");
        let mini = ImageRule::for_endpoint(&ProviderKind::OpenAi, "gpt-4o-mini");
        assert!(estimate(&body, mini) <= input_token_bound(body.len(), 1));
    }

    #[test]
    fn every_image_part_is_counted_in_the_estimate_and_the_reservation_bound() {
        // Bedrock's cap of 20 images, in three messages: each one counts.
        let img = r#"{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}"#;
        let msg = |n: usize| {
            format!(
                r#"{{"role":"user","content":[{{"type":"text","text":"x"}},{}]}}"#,
                vec![img; n].join(",")
            )
        };
        let body = format!(
            r#"{{"model":"m","messages":[{},{{"role":"assistant","content":"ok"}},{},{}]}}"#,
            msg(7),
            msg(7),
            msg(6)
        );
        let r = req(&body);
        assert_eq!(r.image_count(), 20);
        let text_only = estimate(
            &body.replace(img, r#"{"type":"text","text":""}"#),
            ImageRule::Nova,
        );
        assert_eq!(
            estimate(&body, ImageRule::Nova),
            text_only + 20 * NOVA_MAX_IMAGE_TOKENS
        );
        // The reservation's bound holds every image at the most any model charges.
        assert_eq!(
            input_token_bound(body.len(), r.image_count()),
            body.len() as u64 + 20 * super::super::request::MAX_IMAGE_TOKENS
        );
    }
}
