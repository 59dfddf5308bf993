//! The Bedrock control plane (`https://bedrock.{region}.amazonaws.com`, SigV4 service
//! `bedrock`): the calls `gammainfra catalog verify` needs to check a model ID's form.

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ACCEPT, HOST};
use hyper::Request;
use serde_json::Value;

use super::auth::Signer;
use super::encode_model_id;
use crate::providers::http::{BaseUrl, HttpClient};
use crate::providers::{UpstreamError, UpstreamErrorKind};

pub struct ControlPlane {
    signer: Signer,
    endpoint: Option<BaseUrl>,
    client: HttpClient,
}

/// What the control plane said about one ID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    Found(Value),
    NotFound,
    AccessDenied(String),
}

impl ControlPlane {
    pub fn new(
        signer: Signer,
        endpoint_url: Option<&str>,
        client: HttpClient,
    ) -> Result<Self, String> {
        Ok(Self {
            signer,
            endpoint: endpoint_url.map(BaseUrl::parse).transpose()?,
            client,
        })
    }

    async fn get(&self, region: &str, path: &str) -> Result<Lookup, UpstreamError> {
        let (url, host) = match &self.endpoint {
            Some(b) => (b.url(path), b.host_header.clone()),
            None => {
                let host = format!("bedrock.{region}.amazonaws.com");
                (format!("https://{host}{path}"), host)
            }
        };
        let mut req = Request::get(&url)
            .header(HOST, &host)
            .header(ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|e| {
                UpstreamError::new(UpstreamErrorKind::Protocol, "bedrock", e.to_string())
            })?;
        self.signer.sign(&mut req, b"", region).await?;
        let resp = self.client.send(req, "bedrock").await?;
        let status = resp.status().as_u16();
        let error_type = resp
            .headers()
            .get("x-amzn-errortype")
            .and_then(|v| v.to_str().ok())
            .map(|t| super::errors::exception_name(t).to_owned());
        let body = self.client.read_body(resp.into_body(), "bedrock").await?;
        let json: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let message = json["message"]
            .as_str()
            .or(json["Message"].as_str())
            .unwrap_or("")
            .to_owned();
        match (status, error_type.as_deref()) {
            (200..=299, _) => Ok(Lookup::Found(json)),
            (_, Some("ResourceNotFoundException")) => Ok(Lookup::NotFound),
            // A 404 that is not Bedrock's "no such resource" is not about the model: the
            // URL reached something other than the control plane.
            (404, _) => Err(UpstreamError::new(
                UpstreamErrorKind::Protocol,
                "bedrock",
                format!(
                    "{url} answered 404 without a ResourceNotFoundException: this is not the Bedrock control plane of {region} (check AWS_ENDPOINT_URL_BEDROCK / bedrock.control_endpoint_url)"
                ),
            )),
            // An API key that is not valid is an AccessDeniedException too, with an
            // authentication text: that is the credentials, not the model's access.
            (403, Some(name @ "AccessDeniedException"))
                if !super::errors::is_credential_refusal(name, &message) =>
            {
                Ok(Lookup::AccessDenied(message))
            }
            _ => Err(super::errors::from_response(
                status,
                error_type.as_deref(),
                &body,
                path,
                region,
            )),
        }
    }

    /// GetInferenceProfile.
    pub async fn inference_profile(&self, region: &str, id: &str) -> Result<Lookup, UpstreamError> {
        self.get(
            region,
            &format!("/inference-profiles/{}", encode_model_id(id)),
        )
        .await
    }

    /// GetFoundationModel.
    pub async fn foundation_model(&self, region: &str, id: &str) -> Result<Lookup, UpstreamError> {
        self.get(
            region,
            &format!("/foundation-models/{}", encode_model_id(id)),
        )
        .await
    }

    /// ListInferenceProfiles (system-defined), all pages: the profile IDs of a region.
    pub async fn inference_profile_ids(&self, region: &str) -> Result<Vec<String>, UpstreamError> {
        let mut ids = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut path = "/inference-profiles?maxResults=1000&type=SYSTEM_DEFINED".to_owned();
            if let Some(t) = &token {
                path.push_str("&nextToken=");
                path.push_str(&encode_model_id(t));
            }
            let Lookup::Found(v) = self.get(region, &path).await? else {
                return Ok(ids);
            };
            for s in v["inferenceProfileSummaries"]
                .as_array()
                .into_iter()
                .flatten()
            {
                if let Some(id) = s["inferenceProfileId"].as_str() {
                    ids.push(id.to_owned());
                }
            }
            token = v["nextToken"].as_str().map(str::to_owned);
            if token.is_none() {
                return Ok(ids);
            }
        }
    }
}
