//! Where requests go: the campaign's API with its credentials, or a sandbox started in-process
//! for a rehearsal (which never receives the real credentials).

use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::plan::Plan;
use crate::sandbox;
use crate::send::client::{Client, Credentials};

/// The token and channel id the built-in sandbox accepts.
const SANDBOX_SECRET: &str = "sandbox";

/// Where requests go: the campaign's API, or a sandbox started for the run.
pub(crate) struct Endpoint {
    pub(crate) url: url::Url,
    pub(crate) token: String,
    pub(crate) channel_id: String,
    sandbox: Option<sandbox::Sandbox>,
}

impl Endpoint {
    /// `latency`: the sandbox's fixed delay and random extra.
    pub(crate) async fn start(
        plan: &Plan,
        sandbox: bool,
        latency: (Duration, Duration),
    ) -> anyhow::Result<Endpoint> {
        let c = &plan.campaign;
        if !sandbox {
            return Ok(Endpoint {
                url: c.api.url.clone(),
                token: c.api.token.value.clone().unwrap_or_default(),
                channel_id: c.api.channel_id.value.clone().unwrap_or_default(),
                sandbox: None,
            });
        }
        let cfg = sandbox::Config {
            channel: c.api.channel,
            latency: latency.0,
            jitter: latency.1,
            ..Default::default()
        };
        let sb = sandbox::start(cfg, "127.0.0.1:0".parse()?, CancellationToken::new()).await?;
        Ok(Endpoint {
            url: url::Url::parse(&sb.url())?,
            token: SANDBOX_SECRET.into(),
            channel_id: SANDBOX_SECRET.into(),
            sandbox: Some(sb),
        })
    }

    pub(crate) async fn stop(self) {
        if let Some(sb) = self.sandbox {
            sb.shutdown().await;
        }
    }

    /// The client that sends there, with the campaign's timeout and a connection for each sender.
    pub(crate) fn client(&self, plan: &Plan) -> Result<Client, crate::error::Fatal> {
        let c = &plan.campaign;
        Client::new(
            &self.url,
            &Credentials {
                token: &self.token,
                token_origin: &c.api.token.origin(),
                channel_id: &self.channel_id,
                channel_id_origin: &c.api.channel_id.origin(),
            },
            c.api.timeout,
            c.send.concurrency,
        )
    }
}
