//! Where CLI commands go: the ward log itself, or — when `treem-ward serve`
//! holds it (sled allows one process per database) — the running node's
//! HTTP API, at the address it wrote to `<data_dir>/http.addr`.

use anyhow::{Context, bail};
use treem_proto::catalogue::Catalogue;
use treem_proto::{Envelope, Event};

use crate::HTTP_ADDR_FILE;
use crate::config::Config;
use crate::http::cases::{CaseIdentity, CaseOpenedResponse, OpenCaseRequest, WithdrawConsentRequest};
use crate::http::events::{Recorded, request_body};
use crate::identity::{self, ConsentWithdrawal, IdentityError, OpenCase};
use crate::log::{LogError, LogStatus, WardLog};

/// Where commands go: the log itself, or the running node that holds it.
pub(crate) enum Backend {
    Local(WardLog),
    Remote { client: reqwest::Client, base: String },
}

impl Backend {
    pub(crate) async fn open(config: &Config) -> anyhow::Result<Backend> {
        config.validate()?;
        match WardLog::open(&config.data_dir, config.ward_path(), Catalogue::shipped()) {
            Ok(log) => {
                log.set_min_free_bytes(config.min_free_bytes);
                // As at `serve`: finish what a crash interrupted in the register.
                identity::recover(&log).await?;
                Ok(Backend::Local(log))
            }
            Err(LogError::Locked { dir }) => {
                let path = config.data_dir.join(HTTP_ADDR_FILE);
                let addr = std::fs::read_to_string(&path).with_context(|| {
                    format!(
                        "the ward log {} is in use by another process, and the address of its HTTP API ({}) cannot be read",
                        dir.display(),
                        path.display()
                    )
                })?;
                Ok(Backend::Remote { client: reqwest::Client::new(), base: format!("http://{}", addr.trim()) })
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(crate) fn is_local(&self) -> bool {
        matches!(self, Backend::Local(_))
    }

    async fn call<T: serde::de::DeserializeOwned>(&self, req: reqwest::RequestBuilder) -> anyhow::Result<T> {
        let Backend::Remote { base, .. } = self else { unreachable!("only remote backends send requests") };
        let resp = req.send().await.with_context(|| format!("cannot reach the running ward node at {base}"))?;
        let status = resp.status();
        let body = resp.bytes().await.with_context(|| format!("reading the answer of {base}"))?;
        if status.is_success() {
            return serde_json::from_slice(&body).with_context(|| format!("unexpected answer from {base}"));
        }
        let message = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_owned))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
        bail!("{message}")
    }

    pub(crate) async fn record(&self, author: &str, event: Event) -> anyhow::Result<Recorded> {
        match self {
            Backend::Local(log) => Ok(Recorded::from(&log.append(author, event).await?)),
            Backend::Remote { client, base } => {
                self.call(client.post(format!("{base}/api/v1/events")).json(&request_body(Some(author), &event))).await
            }
        }
    }

    pub(crate) async fn open_case(&self, author: &str, case: OpenCase) -> anyhow::Result<CaseOpenedResponse> {
        match self {
            Backend::Local(log) => {
                let (case_id, env) = identity::open_case(log, author, case).await?;
                Ok(CaseOpenedResponse { case_id, id: env.id, seq: env.seq })
            }
            Backend::Remote { client, base } => {
                let req = OpenCaseRequest::new(Some(author.to_owned()), case);
                self.call(client.post(format!("{base}/api/v1/cases")).json(&req)).await
            }
        }
    }

    /// The child's identity of a case (decrypted with the case's key).
    pub(crate) async fn show_case(&self, case_id: uuid::Uuid) -> anyhow::Result<CaseIdentity> {
        match self {
            Backend::Local(log) => match identity::identity_of(log, case_id)? {
                Some(identity) => Ok(CaseIdentity { case_id, identity }),
                None => Err(IdentityError::UnknownCase { case_id }.into()),
            },
            Backend::Remote { client, base } => self.call(client.get(format!("{base}/api/v1/cases/{case_id}"))).await,
        }
    }

    /// Withdraws consent: erases the child's identity for good.
    pub(crate) async fn withdraw_consent(&self, case_id: uuid::Uuid, author: &str, reason: &str) -> anyhow::Result<ConsentWithdrawal> {
        match self {
            Backend::Local(log) => Ok(identity::withdraw_consent(log, case_id, author, reason).await?),
            Backend::Remote { client, base } => {
                let req = WithdrawConsentRequest { author: Some(author.to_owned()), reason: reason.to_owned() };
                self.call(client.post(format!("{base}/api/v1/cases/{case_id}/withdraw-consent")).json(&req)).await
            }
        }
    }

    pub(crate) async fn status(&self) -> anyhow::Result<LogStatus> {
        match self {
            Backend::Local(log) => Ok(log.status()?),
            Backend::Remote { client, base } => self.call(client.get(format!("{base}/api/v1/status"))).await,
        }
    }

    pub(crate) async fn events(&self, after: u64, limit: usize) -> anyhow::Result<Vec<Envelope>> {
        match self {
            Backend::Local(log) => Ok(log.read_from(after, limit)?),
            Backend::Remote { client, base } => self.call(client.get(format!("{base}/api/v1/events?after={after}&limit={limit}"))).await,
        }
    }
}
