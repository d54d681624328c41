//! `cosmocast test --to PHONE [--row N]`: sends one row's messages to a test phone, through the
//! same delivery path as `run` (encoder, retry policy, messages). The send is recorded apart
//! (`test_sends`) and never counts as the contact's own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::environment_problems;
use crate::api::{self, normalise_phone};
use crate::error::{Exit, Fatal, Problems};
use crate::ledger::{Ledger, TestSend};
use crate::plan::{Plan, ledger_path};
use crate::sandbox;
use crate::send::client::{Client, Credentials};
use crate::send::deliver::{self, Around, Delivery, Policy};
use crate::send::retry::{ConnectError, Verdict};

pub(crate) struct TestArgs<'a> {
    pub(crate) campaign: &'a Path,
    pub(crate) to: &'a str,
    pub(crate) row: u64,
    pub(crate) ledger: &'a Option<PathBuf>,
    pub(crate) sandbox: bool,
}

/// A test send waits out its retries and nothing else.
struct Plain;

impl Around for Plain {
    async fn before_retry(&self, _next: u32, wait: Duration) -> bool {
        tokio::time::sleep(wait).await;
        true
    }
    fn throttled(&self, _pause: Duration) {}
    fn not_connected(&self, _e: &ConnectError) -> bool {
        true
    }
    fn reached(&self) {}
}

pub(crate) async fn run(args: TestArgs<'_>, quiet: bool) -> anyhow::Result<Exit> {
    let plan = Plan::load(args.campaign)?;
    let c = &plan.campaign;
    let phone = normalise_phone(args.to);
    if !api::PHONE_DIGITS.contains(&phone.len()) {
        return Err(Fatal::new(
            Exit::Usage,
            format!(
                "--to {:?} has {} digits; give a phone with country code, 8 to 15 digits",
                args.to,
                phone.len()
            ),
        )
        .into());
    }
    let mut reader = plan.reader()?;
    let csv = reader.path().to_path_buf();
    let row = reader
        .by_ref()
        .find(|r| r.as_ref().map_or(true, |r| r.number >= args.row))
        .transpose()
        .map_err(|p| Problems { list: vec![p] })?
        .filter(|r| r.number == args.row)
        .ok_or_else(|| {
            Fatal::new(
                Exit::CannotRun,
                format!("{} has no row {}", csv.display(), args.row),
            )
        })?;
    let rendered = plan
        .audience
        .renderer
        .render(&row, &csv)
        .map_err(|e| Problems { list: e.problems })?;
    let mut request = rendered.request;
    // Never address the real contact: a fresh contact at the test phone, no external id.
    request.contact.id = "new_contact".into();
    request.contact.external_id = None;
    request.contact.mobile_phone = Some(phone.clone());
    // The row's session is the real contact's conversation: a test starts its own.
    request.session = None;

    let mut server = None;
    let (url, token, channel) = if args.sandbox {
        let sb = sandbox::start(
            sandbox::Config {
                channel: c.api.channel,
                ..Default::default()
            },
            "127.0.0.1:0".parse()?,
            CancellationToken::new(),
        )
        .await?;
        let url = reqwest::Url::parse(&sb.url())?;
        server = Some(sb);
        (url, "sandbox".to_string(), "sandbox".to_string())
    } else {
        let env = environment_problems(c);
        if !env.is_empty() {
            return Err(Problems { list: env }.into());
        }
        (
            c.api.url.clone(),
            c.api.token.value.clone().unwrap_or_default(),
            c.api.channel_id.value.clone().unwrap_or_default(),
        )
    };
    let client = Client::new(
        &url,
        &Credentials {
            token: &token,
            token_origin: &c.api.token.origin(),
            channel_id: &channel,
            channel_id_origin: &c.api.channel_id.origin(),
        },
        c.api.timeout,
    )?;
    let body = bytes::Bytes::from(serde_json::to_vec(&request)?);
    let policy = Policy {
        retries: c.send.retries,
        backoff: c.send.backoff,
    };
    let delivery = deliver::deliver(&mut client.connection(), &body, policy, &Plain).await;
    if let Some(sb) = server {
        sb.shutdown().await;
    }
    let Delivery::Done {
        verdict,
        http_status,
        ..
    } = delivery
    else {
        return Ok(Exit::WorkRemains);
    };
    let (status, ids, error) = match &verdict {
        Verdict::Sent { message_ids, .. } => ("sent", message_ids.join(" "), None),
        Verdict::Queued { queue_id } => ("queued", queue_id.clone(), None),
        Verdict::Unknown { error, .. } => ("unknown", String::new(), Some(error.clone())),
        Verdict::Failed { error, .. }
        | Verdict::Retry { error, .. }
        | Verdict::Unauthorized { error } => ("failed", String::new(), Some(error.clone())),
    };
    let ledger = Ledger::open_write(&ledger_path(c, args.ledger, args.sandbox))?;
    ledger.ensure_campaign(&c.name)?;
    ledger.record_test(&TestSend {
        campaign: &c.name,
        row_number: row.number,
        phone: &phone,
        status,
        message_ids: &ids,
        http_status,
        error: error.as_deref(),
    })?;
    if !quiet {
        match &error {
            None => println!(
                "test send of row {} to {phone}: {status} ({ids}); recorded apart, the contact itself is untouched",
                row.number
            ),
            Some(e) => eprintln!("test send of row {} to {phone}: {status}: {e}", row.number),
        }
    }
    Ok(match verdict {
        Verdict::Sent { .. } | Verdict::Queued { .. } => Exit::Ok,
        Verdict::Unauthorized { .. } => Exit::CannotRun,
        _ => Exit::Incomplete,
    })
}
