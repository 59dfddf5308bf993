//! Limits per request: how much work one request body may ask of the gateway.
//!
//! A body may be 32 MiB, which is room for a 30 MB `model` string, a million messages or
//! a hundred thousand tool calls. Every loop the gateway runs over a request is linear,
//! and these caps bound the constant: each is a provider's own documented limit where
//! one exists (so nothing refused here would have been accepted upstream), or else a
//! bound far above any real request. A request over a cap is refused with a 400
//! `invalid_request` whose message names the cap and whose `param` names the field,
//! before any credit is held or any provider is called. docs/architecture.md, "Limits
//! per request", lists them.
//!
//! # Why the image cap is checked per endpoint
//! The providers differ: Bedrock Converse takes at most 20 images, Anthropic 100, OpenAI
//! 500. Refusing at the smallest would refuse requests another endpoint of the same model
//! serves; refusing at the largest would send Bedrock requests it refuses (and fetch up
//! to 500 URLs first). So [`MAX_IMAGE_PARTS`] (the largest) is checked at parse time,
//! and [`fit_images`] then drops from the plan the endpoints whose provider takes fewer
//! images than the request has: the request goes to an endpoint that accepts it, or is
//! refused naming the cap when none does.

use std::sync::Arc;

use super::RequestError;
use crate::catalog::{Endpoint, ProviderKind};

pub use crate::catalog::resolve::MAX_MODEL_BYTES;

/// Most messages per request: the Anthropic Messages API's limit (100,000 messages in a
/// single request), the only provider limit documented; OpenAI and Bedrock document none.
pub const MAX_MESSAGES: usize = 100_000;

/// Most tool definitions per request: OpenAI's limit (`tools`: "a max of 128 functions
/// are supported"); Anthropic and Bedrock document none lower.
pub const MAX_TOOLS: usize = 128;

/// Most entries in each list of the `provider` object (`order`, `only`, `ignore`). The
/// gateway knows a handful of providers; every entry is compared with every endpoint.
pub const MAX_PROVIDER_LIST: usize = 32;

/// Most entries in `models`, the fallback models. Each model is resolved and planned
/// before anything is held, and the credit hold covers the dearest of them.
pub const MAX_FALLBACK_MODELS: usize = 8;

/// Bedrock Converse: at most 20 images per request (each at most 3.75 MB).
pub const BEDROCK_MAX_IMAGES: usize = 20;
/// The Anthropic Messages API: at most 100 images per request.
pub const ANTHROPIC_MAX_IMAGES: usize = 100;
/// OpenAI: at most 500 image inputs per request. OpenAI-compatible servers document
/// their own (or none); they are given OpenAI's, and refuse upstream what they cannot
/// take.
pub const OPENAI_MAX_IMAGES: usize = 500;

/// Most image parts per request at any provider: the largest provider limit. Checked when
/// the request is parsed; [`fit_images`] then applies each provider's own.
pub const MAX_IMAGE_PARTS: usize = OPENAI_MAX_IMAGES;

/// Bodies up to this size are parsed and converted on the async worker. Parsing measured
/// 6–12 ms per MiB in a debug build (`measure_parsing_large_bodies`), so 64 KiB is under
/// a millisecond there and a fraction of one in a release build: less than is worth
/// moving to another thread.
pub const INLINE_WORK_BYTES: usize = 64 * 1024;

/// Runs `f`, work that grows with a body of `body_len` bytes (parsing it, building a
/// provider's request from it), off the async workers when the body is larger than
/// [`INLINE_WORK_BYTES`]: with `block_in_place`, the worker's other tasks move to another
/// thread while this one works, so one large body holds up no other client. Borrows stay
/// valid, unlike `spawn_blocking` (which would need the parsed request to own its body).
///
/// Moving the work is not enough when many large bodies arrive at once: each would take
/// a core, and the workers would be left a small share of the CPU. So large bodies take
/// turns, through [`heavy_work`]'s permits (half the cores, at least one): the others
/// wait asynchronously, holding no thread, and the remaining cores serve everyone else.
///
/// On a single-threaded runtime (some tests) there is no other worker to move to, and
/// `f` runs inline.
pub async fn off_workers<R>(body_len: usize, f: impl FnOnce() -> R) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    let multi_thread =
        Handle::try_current().is_ok_and(|h| h.runtime_flavor() == RuntimeFlavor::MultiThread);
    if body_len <= INLINE_WORK_BYTES || !multi_thread {
        return f();
    }
    // The semaphore is never closed, so `acquire` cannot fail; if it did, the work would
    // run without a permit rather than fail the request.
    let _permit = heavy_work().acquire().await.ok();
    tokio::task::block_in_place(f)
}

/// The permits for work on large bodies ([`off_workers`]), one per two cores. Global,
/// not in the application state, because the provider adapters take turns too and know
/// no state; one process has one CPU to share.
fn heavy_work() -> &'static tokio::sync::Semaphore {
    static PERMITS: std::sync::OnceLock<tokio::sync::Semaphore> = std::sync::OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        tokio::sync::Semaphore::new((cores / 2).max(1))
    })
}

/// The most images one request may carry at `provider`.
pub fn max_images(provider: &ProviderKind) -> usize {
    match provider {
        ProviderKind::Bedrock => BEDROCK_MAX_IMAGES,
        ProviderKind::Anthropic => ANTHROPIC_MAX_IMAGES,
        ProviderKind::OpenAi | ProviderKind::OpenAiCompatible(_) => OPENAI_MAX_IMAGES,
    }
}

/// Keeps the planned endpoints whose provider accepts `images` images, in order. When
/// none does, the request is refused naming the largest cap among the planned endpoints
/// (the one the client would have to meet). An empty plan is returned as it is.
pub fn fit_images(
    plan: Vec<Arc<Endpoint>>,
    images: usize,
) -> Result<Vec<Arc<Endpoint>>, RequestError> {
    let Some(cap) = plan.iter().map(|e| max_images(&e.provider)).max() else {
        return Ok(plan);
    };
    if images <= cap {
        return Ok(plan
            .into_iter()
            .filter(|e| images <= max_images(&e.provider))
            .collect());
    }
    let mut providers: Vec<String> = plan.iter().map(|e| e.provider.to_string()).collect();
    providers.dedup();
    Err(RequestError::new(
        Some("messages"),
        format!(
            "This request has {images} image parts; the endpoints that may serve it ({}) \
             accept at most {cap} images per request. Send fewer images.",
            providers.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    #[test]
    fn bedrock_is_dropped_over_its_cap_and_the_request_refused_when_nothing_fits() {
        let c = Catalog::builtin().expect("catalog");
        let m = c
            .resolve("anthropic/claude-sonnet-4-6")
            .expect("model")
            .model;
        let plan: Vec<_> = m.endpoints.to_vec();
        assert!(plan.iter().any(|e| e.provider == ProviderKind::Bedrock));
        assert!(plan.iter().any(|e| e.provider == ProviderKind::Anthropic));
        // At Bedrock's cap every endpoint stays.
        assert_eq!(
            fit_images(plan.clone(), BEDROCK_MAX_IMAGES)
                .expect("fits")
                .len(),
            plan.len()
        );
        // Over it, only Anthropic's endpoints stay.
        let kept = fit_images(plan.clone(), BEDROCK_MAX_IMAGES + 1).expect("anthropic fits");
        assert!(!kept.is_empty());
        assert!(kept.iter().all(|e| e.provider == ProviderKind::Anthropic));
        // Only Bedrock: refused, naming the cap and the field.
        let bedrock: Vec<_> = plan
            .iter()
            .filter(|e| e.provider == ProviderKind::Bedrock)
            .cloned()
            .collect();
        let e = fit_images(bedrock, 21).expect_err("over Bedrock's cap");
        assert_eq!(e.param.as_deref(), Some("messages"));
        assert!(e.message.contains("at most 20 images"), "{}", e.message);
        let e = fit_images(plan, ANTHROPIC_MAX_IMAGES + 1).expect_err("over every cap");
        assert!(e.message.contains("at most 100 images"), "{}", e.message);
    }
}
