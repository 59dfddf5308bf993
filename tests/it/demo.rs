//! `serve --demo`: every Bedrock endpoint of the catalog is served, in every region, and
//! its banner's lines work.

use crate::harness::*;

/// The demo enables every source region of the catalog's Bedrock endpoints, so no
/// Bedrock endpoint is left unroutable, and `eu` and `apac` constraints are served by
/// the `eu.` and `apac.` profiles; its banner prints one line per feature and the
/// `catalog verify` environment with the simulated account's credentials.
#[tokio::test]
async fn the_demo_serves_every_bedrock_endpoint_in_every_region() {
    let (demo, config) = gammainfra::demo::prepare(Some("127.0.0.1:0".parse().expect("addr")))
        .await
        .expect("demo");
    let state = gammainfra::gateway::build(config).await.expect("gateway");
    let bedrock: Vec<_> = state
        .catalog
        .models
        .iter()
        .flat_map(|m| m.endpoints.iter())
        .filter(|e| e.bedrock.is_some())
        .collect();
    assert!(bedrock.len() > 50, "{}", bedrock.len());
    for e in &bedrock {
        assert!(
            state.router.routable(e),
            "{} is not routable in the demo",
            e.key
        );
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let st = state.clone();
    tokio::spawn(async move {
        let _ = gammainfra::server::serve(listener, st, std::future::pending()).await;
    });
    let (_, key, _) = state
        .ledger
        .create_account("demo@gammainfra.local")
        .await
        .expect("account");
    let banner = demo.banner(addr, &key.plain, "admin");
    for line in [
        "export GAMMAINFRA_URL=",
        r#"-H "X-GammaInfra-Region: eu""#,
        r#"-H "X-GammaInfra-Region: apac""#,
        "[[sim:error 503 @global.anthropic.claude-sonnet-4-6]]",
        "local/sim-echo",
        "/v1/credits",
        "AWS_ENDPOINT_URL_BEDROCK=",
    ] {
        assert!(banner.contains(line), "the banner lacks {line}:\n{banner}");
    }
    assert!(demo.aws.verify_env().contains(&format!(
        "AWS_ENDPOINT_URL_BEDROCK={} ",
        demo.bedrock.base_url()
    )));
    // The routes the banner shows, through the real simulators.
    let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
        .build_http::<http_body_util::Full<bytes::Bytes>>();
    for (region, model, upstream) in [
        (
            "eu",
            "anthropic/claude-sonnet-4-6",
            "eu.anthropic.claude-sonnet-4-6",
        ),
        ("apac", "amazon/nova-pro-v1", "apac.amazon.nova-pro-v1:0"),
        (
            "jp",
            "anthropic/claude-sonnet-4-6",
            "jp.anthropic.claude-sonnet-4-6",
        ),
        (
            "au",
            "anthropic/claude-sonnet-4-6",
            "au.anthropic.claude-sonnet-4-6",
        ),
    ] {
        let req = hyper::Request::post(format!("http://{addr}/v1/chat/completions"))
            .header("authorization", format!("Bearer {}", key.plain))
            .header("content-type", "application/json")
            .header("x-gammainfra-region", region)
            .body(http_body_util::Full::new(bytes::Bytes::from(chat_body(
                model, "Hello!", "",
            ))))
            .expect("request");
        let r = client.request(req).await.expect("answer");
        assert_eq!(r.status(), 200, "{region}");
        assert_eq!(
            r.headers()["x-gammainfra-upstream-model"],
            upstream,
            "{region}"
        );
    }
}
