//! Authentication to Bedrock: SigV4 through the official `aws-sigv4` crate, with
//! credentials from the AWS credential chain (cached until shortly before they expire),
//! or a Bedrock API key sent as `Authorization: Bearer`.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use aws_smithy_runtime_api::client::identity::Identity;
use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;
use tokio::sync::RwLock;

use crate::providers::{UpstreamError, UpstreamErrorKind};
use crate::secret::Secret;

/// The SigV4 signing name of Bedrock (runtime and control plane alike).
pub const SERVICE: &str = "bedrock";

/// Where SigV4 credentials come from.
#[derive(Clone)]
pub enum CredentialSource {
    /// Fixed credentials (tests, the demo).
    Static(Credentials),
    /// The standard AWS chain: environment, shared config/credentials files with
    /// `AWS_PROFILE`, web identity, container and instance metadata.
    #[cfg(feature = "aws-credential-chain")]
    Chain(aws_credential_types::provider::SharedCredentialsProvider),
    /// Only `AWS_ACCESS_KEY_ID` / `AWS_SECRET_ACCESS_KEY` / `AWS_SESSION_TOKEN`.
    #[cfg(not(feature = "aws-credential-chain"))]
    Environment,
}

/// Signs requests to Bedrock.
#[derive(Clone)]
pub enum Signer {
    SigV4 {
        source: CredentialSource,
        /// Credentials last resolved. An async RwLock: a refresh awaits the chain, and
        /// concurrent requests must wait for it rather than all refreshing at once.
        cache: Arc<RwLock<Option<Credentials>>>,
    },
    Bearer(Secret),
}

/// How this deployment authenticates to AWS Bedrock.
#[derive(Debug, Clone, PartialEq)]
pub enum BedrockAuthConfig {
    /// `AWS_BEARER_TOKEN_BEDROCK`: a Bedrock API key, sent as a bearer token.
    BearerToken(Secret),
    /// SigV4 with the standard AWS credential chain.
    CredentialChain,
    /// SigV4 with fixed credentials (the demo and tests, against the simulated Bedrock).
    Static {
        access_key_id: String,
        secret_access_key: Secret,
        session_token: Option<Secret>,
    },
}

/// Refresh credentials this long before they expire.
const REFRESH_BEFORE: Duration = Duration::from_secs(300);

impl Signer {
    pub fn sigv4(source: CredentialSource) -> Self {
        Signer::SigV4 {
            source,
            cache: Arc::new(RwLock::new(None)),
        }
    }

    /// The signer this deployment's configuration asks for.
    pub async fn from_config(auth: &BedrockAuthConfig) -> Self {
        match auth {
            BedrockAuthConfig::BearerToken(t) => Signer::Bearer(t.clone()),
            BedrockAuthConfig::Static {
                access_key_id,
                secret_access_key,
                session_token,
            } => Self::sigv4(CredentialSource::Static(Credentials::new(
                access_key_id,
                secret_access_key.expose(),
                session_token.as_ref().map(|t| t.expose().to_owned()),
                None,
                "static",
            ))),
            BedrockAuthConfig::CredentialChain => {
                #[cfg(feature = "aws-credential-chain")]
                {
                    use aws_smithy_http_client::tls;
                    let http = aws_smithy_http_client::Builder::new()
                        .tls_provider(tls::Provider::Rustls(
                            tls::rustls_provider::CryptoMode::Ring,
                        ))
                        .build_https();
                    let chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .configure(
                            aws_config::provider_config::ProviderConfig::default()
                                .with_http_client(http),
                        )
                        .build()
                        .await;
                    Self::sigv4(CredentialSource::Chain(
                        aws_credential_types::provider::SharedCredentialsProvider::new(chain),
                    ))
                }
                #[cfg(not(feature = "aws-credential-chain"))]
                {
                    Self::sigv4(CredentialSource::Environment)
                }
            }
        }
    }

    async fn credentials(&self) -> Result<Credentials, UpstreamError> {
        let Signer::SigV4 { source, cache } = self else {
            return Err(no_credentials("no SigV4 signer"));
        };
        let fresh = |c: &Credentials| {
            c.expiry()
                .is_none_or(|e| e > SystemTime::now() + REFRESH_BEFORE)
        };
        if let Some(c) = cache.read().await.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let mut w = cache.write().await;
        if let Some(c) = w.as_ref().filter(|c| fresh(c)) {
            return Ok(c.clone());
        }
        let c = match source {
            CredentialSource::Static(c) => c.clone(),
            #[cfg(feature = "aws-credential-chain")]
            CredentialSource::Chain(p) => {
                use aws_credential_types::provider::ProvideCredentials;
                p.provide_credentials()
                    .await
                    .map_err(|e| no_credentials(&e.to_string()))?
            }
            #[cfg(not(feature = "aws-credential-chain"))]
            CredentialSource::Environment => {
                let get = |k| std::env::var(k).ok().filter(|v: &String| !v.is_empty());
                match (get("AWS_ACCESS_KEY_ID"), get("AWS_SECRET_ACCESS_KEY")) {
                    (Some(a), Some(s)) => {
                        Credentials::new(a, s, get("AWS_SESSION_TOKEN"), None, "environment")
                    }
                    _ => {
                        return Err(no_credentials(
                            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY are not set",
                        ))
                    }
                }
            }
        };
        *w = Some(c.clone());
        Ok(c)
    }

    /// Adds the authentication headers for `region` to a request whose body is final.
    pub async fn sign(
        &self,
        req: &mut Request<Full<Bytes>>,
        body: &[u8],
        region: &str,
    ) -> Result<(), UpstreamError> {
        if let Signer::Bearer(t) = self {
            let v = format!("Bearer {}", t.expose());
            let v = hyper::header::HeaderValue::from_str(&v)
                .map_err(|_| no_credentials("the Bedrock API key is not a valid header value"))?;
            req.headers_mut().insert(hyper::header::AUTHORIZATION, v);
            return Ok(());
        }
        let creds = self.credentials().await?;
        sign_with(req, body, region, &creds, SystemTime::now())
    }
}

/// SigV4-signs `req` for `region` at `time` (a separate function so tests can fix time).
pub fn sign_with(
    req: &mut Request<Full<Bytes>>,
    body: &[u8],
    region: &str,
    creds: &Credentials,
    time: SystemTime,
) -> Result<(), UpstreamError> {
    let err = |e: &dyn std::fmt::Display| {
        UpstreamError::new(
            UpstreamErrorKind::Protocol,
            "bedrock",
            format!("signing failed: {e}"),
        )
    };
    let identity: Identity = creds.clone().into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(SERVICE)
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .map_err(|e| err(&e))?
        .into();
    let uri = req.uri().to_string();
    let headers: Vec<(String, String)> = req
        .headers()
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let signable = SignableRequest::new(
        req.method().as_str(),
        uri,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(|e| err(&e))?;
    let (instructions, _signature) = sign(signable, &params).map_err(|e| err(&e))?.into_parts();
    instructions.apply_to_request_http1x(req);
    Ok(())
}

fn no_credentials(why: &str) -> UpstreamError {
    UpstreamError::new(
        UpstreamErrorKind::Auth,
        "bedrock",
        format!("no usable AWS credentials ({why}); set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or AWS_BEARER_TOKEN_BEDROCK"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests signed by botocore with fixed credentials and time (tests/data): the
    /// adapter's signing must produce the very same Authorization header, and the
    /// adapter's path encoding the very same wire path.
    #[test]
    fn signatures_match_botocore_for_bedrock_requests() {
        let data: serde_json::Value = serde_json::from_str(include_str!(
            "../../../../simulators/src/simulators/bedrock/testdata/botocore_signed_examples.json"
        ))
        .expect("json");
        let ak = data["credentials"]["access_key"].as_str().expect("ak");
        let sk = data["credentials"]["secret_key"].as_str().expect("sk");
        let time = SystemTime::UNIX_EPOCH + Duration::from_secs(1_736_942_400); // 2025-01-15T12:00:00Z
        let mut checked = 0;
        for ex in data["examples"].as_array().expect("examples") {
            let name = ex["name"].as_str().expect("name");
            let op = ex["operation"].as_str().expect("op");
            if !op.starts_with("converse") {
                continue;
            }
            let model = ex["modelId_input"].as_str().expect("model");
            let region = ex["region"].as_str().expect("region");
            let wire = format!(
                "/model/{}/{}",
                crate::providers::bedrock::encode_model_id(model),
                op.replace('_', "-")
            );
            assert_eq!(
                wire,
                ex["wire_path"].as_str().expect("wire"),
                "{name}: wire path"
            );
            let token = ex["headers"]["X-Amz-Security-Token"]
                .as_str()
                .map(str::to_owned);
            let creds = Credentials::new(ak, sk, token, None, "test");
            let body = ex["body"].as_str().expect("body").as_bytes().to_vec();
            let host = format!("bedrock-runtime.{region}.amazonaws.com");
            let mut req = Request::post(format!("https://{host}{wire}"))
                .header("content-type", "application/json")
                .header("host", &host)
                .body(Full::new(Bytes::from(body.clone())))
                .expect("request");
            sign_with(&mut req, &body, region, &creds, time).expect("sign");
            let got = req.headers()["authorization"].to_str().expect("ascii");
            assert_eq!(got, ex["authorization"].as_str().expect("authz"), "{name}");
            checked += 1;
        }
        assert!(checked >= 4, "checked {checked} examples");
    }
}
