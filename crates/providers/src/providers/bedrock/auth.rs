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

    /// The signer this deployment's configuration asks for. `region` (the first of
    /// the Bedrock regions) is the credential chain's own region (for STS) when neither
    /// `AWS_REGION` / `AWS_DEFAULT_REGION` nor the profile sets one.
    pub async fn from_config(auth: &BedrockAuthConfig, region: &str) -> Self {
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
                    use aws_config::meta::region::RegionProviderChain;
                    let conf = aws_config::provider_config::ProviderConfig::default()
                        .with_http_client(http);
                    // Never asked of the instance metadata service, whose answer off EC2 is
                    // a timeout or a refusal, logged at length.
                    let chain_region = RegionProviderChain::first_try(
                        aws_config::environment::region::EnvironmentVariableRegionProvider::new(),
                    )
                    .or_else(
                        aws_config::profile::ProfileFileRegionProvider::builder()
                            .configure(&conf)
                            .build(),
                    )
                    .or_else(aws_config::Region::new(region.to_owned()));
                    let chain = aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .configure(conf)
                        .region(chain_region)
                        .build()
                        .await;
                    Self::sigv4(CredentialSource::Chain(
                        aws_credential_types::provider::SharedCredentialsProvider::new(chain),
                    ))
                }
                #[cfg(not(feature = "aws-credential-chain"))]
                {
                    // Without the chain there is nothing to give a region to.
                    let _ = region;
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
                match p.provide_credentials().await {
                    Ok(c) => c,
                    // A profile that is not there is the cause, whatever the chain's
                    // last provider said.
                    Err(e) => {
                        return Err(match profile_problem().await {
                            Some(why) => UpstreamError::new(
                                UpstreamErrorKind::Auth,
                                "bedrock",
                                format!("no usable AWS credentials: {why}"),
                            ),
                            None => no_credentials(&e.to_string()),
                        })
                    }
                }
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

    /// Which credentials this signer sends, for messages (never the credentials): the
    /// Bedrock API key, or where the credential chain takes its access key from, in the
    /// chain's order (environment, `AWS_PROFILE`, web identity, container, then the
    /// `default` profile or the instance role).
    pub fn describe(&self) -> String {
        let source = match self {
            Signer::Bearer(_) => {
                return "the Bedrock API key in AWS_BEARER_TOKEN_BEDROCK".to_owned();
            }
            Signer::SigV4 { source, .. } => source,
        };
        let env = "the access key in AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY".to_owned();
        match source {
            CredentialSource::Static(_) => "the access key configured for the gateway".to_owned(),
            #[cfg(not(feature = "aws-credential-chain"))]
            CredentialSource::Environment => env,
            #[cfg(feature = "aws-credential-chain")]
            CredentialSource::Chain(_) => {
                let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
                if var("AWS_ACCESS_KEY_ID").is_some() {
                    env
                } else if let Some(p) = var("AWS_PROFILE") {
                    format!("the credentials of the AWS profile `{p}` (AWS_PROFILE)")
                } else if var("AWS_WEB_IDENTITY_TOKEN_FILE").is_some() {
                    "the web identity role (AWS_ROLE_ARN, AWS_WEB_IDENTITY_TOKEN_FILE)".to_owned()
                } else if var("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI")
                    .or_else(|| var("AWS_CONTAINER_CREDENTIALS_FULL_URI"))
                    .is_some()
                {
                    "the container credentials (AWS_CONTAINER_CREDENTIALS_*)".to_owned()
                } else {
                    "the AWS credential chain's credentials (the `default` profile or the instance role)".to_owned()
                }
            }
        }
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

/// `AWS_PROFILE` naming a profile that the shared config and credentials files do not
/// define, said so (with the files looked at and the profiles they do define); `None`
/// when `AWS_PROFILE` is unset or its profile exists. Checked at start and when the
/// credential chain finds no credentials, whose own error would not name the cause.
pub async fn profile_problem() -> Option<String> {
    #[cfg(feature = "aws-credential-chain")]
    {
        use aws_types::os_shim_internal::{Env, Fs};
        missing_profile(&Env::real(), &Fs::real()).await
    }
    #[cfg(not(feature = "aws-credential-chain"))]
    {
        None
    }
}

#[cfg(feature = "aws-credential-chain")]
async fn missing_profile(
    env: &aws_types::os_shim_internal::Env,
    fs: &aws_types::os_shim_internal::Fs,
) -> Option<String> {
    let var = |k: &str| env.get(k).ok().filter(|v| !v.is_empty());
    let name = var("AWS_PROFILE")?;
    // A file that does not parse is the chain's to report, with its line.
    let set = aws_config::profile::load(fs, env, &Default::default(), None)
        .await
        .ok()?;
    if set.get_profile(&name).is_some() {
        return None;
    }
    let file = |var_name: &str, default: &str, what: &str| match var(var_name) {
        Some(p) => format!("the shared {what} file {p} ({var_name})"),
        None => format!("the shared {what} file {default}"),
    };
    let mut defined: Vec<&str> = set.profiles().collect();
    defined.sort_unstable();
    let defined = if defined.is_empty() {
        "they define no profile".to_owned()
    } else {
        format!("they define {}", defined.join(", "))
    };
    Some(format!(
        "the AWS profile `{name}` named by AWS_PROFILE does not exist in {} or {} ({defined}); add it there, or set AWS_PROFILE to one of theirs",
        file("AWS_CONFIG_FILE", "~/.aws/config", "config"),
        file("AWS_SHARED_CREDENTIALS_FILE", "~/.aws/credentials", "credentials"),
    ))
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

    #[cfg(feature = "aws-credential-chain")]
    #[tokio::test]
    async fn a_profile_missing_from_the_shared_files_is_named_with_the_files() {
        use aws_types::os_shim_internal::{Env, Fs};
        let fs = Fs::from_slice(&[
            (
                "/home/u/.aws/config",
                "[default]\nregion = us-east-1\n[profile dev]\nregion = eu-west-1\n",
            ),
            (
                "/home/u/.aws/credentials",
                "[ci]\naws_access_key_id = AKID\naws_secret_access_key = s\n",
            ),
            ("/etc/aws/config", "[profile prod]\nregion = us-east-1\n"),
        ]);
        let env = |vars: &[(&'static str, &'static str)]| {
            let mut all = vec![("HOME", "/home/u")];
            all.extend_from_slice(vars);
            Env::from_slice(&all)
        };
        assert_eq!(
            missing_profile(&env(&[("AWS_PROFILE", "prdo")]), &fs).await.as_deref(),
            Some("the AWS profile `prdo` named by AWS_PROFILE does not exist in the shared config file ~/.aws/config or the shared credentials file ~/.aws/credentials (they define ci, default, dev); add it there, or set AWS_PROFILE to one of theirs")
        );
        assert_eq!(
            missing_profile(
                &env(&[("AWS_PROFILE", "dev"), ("AWS_CONFIG_FILE", "/etc/aws/config")]),
                &fs
            )
            .await
            .as_deref(),
            Some("the AWS profile `dev` named by AWS_PROFILE does not exist in the shared config file /etc/aws/config (AWS_CONFIG_FILE) or the shared credentials file ~/.aws/credentials (they define ci, prod); add it there, or set AWS_PROFILE to one of theirs")
        );
        for name in ["dev", "ci", "default"] {
            let vars = [("AWS_PROFILE", name)];
            assert_eq!(missing_profile(&env(&vars), &fs).await, None, "{name}");
        }
        assert_eq!(missing_profile(&env(&[]), &fs).await, None);
        assert_eq!(
            missing_profile(&env(&[("AWS_PROFILE", "dev")]), &Fs::from_slice(&[]))
                .await
                .as_deref(),
            Some("the AWS profile `dev` named by AWS_PROFILE does not exist in the shared config file ~/.aws/config or the shared credentials file ~/.aws/credentials (they define no profile); add it there, or set AWS_PROFILE to one of theirs")
        );
    }

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
