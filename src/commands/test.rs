//! `cosmocast test --to PHONE [--row N]`: sends one row's messages to a test phone. The send is
//! recorded apart (`test_sends`) and never counts as the contact's own.

use std::path::{Path, PathBuf};

use tokio_util::sync::CancellationToken;

use super::{environment_problems, ledger_path, load};
use crate::api::{self, normalise_phone};
use crate::error::{Exit, Fatal, Problems};
use crate::ledger::Ledger;
use crate::sandbox;
use crate::send::client::Client;
use crate::send::retry::{Verdict, backoff, classify};

pub struct TestArgs<'a> {
    pub campaign: &'a Path,
    pub to: &'a str,
    pub row: u64,
    pub ledger: &'a Option<PathBuf>,
    pub sandbox: bool,
}

pub async fn run(args: TestArgs<'_>, quiet: bool) -> anyhow::Result<Exit> {
    let loaded = load(args.campaign)?;
    let c = &loaded.campaign;
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
    let mut reader = loaded.reader()?;
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
    let rendered = loaded
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
        url,
        (&token, &c.api.token.origin()),
        (&channel, &c.api.channel_id.origin()),
        c.api.timeout,
        1,
    )?;
    let body = bytes::Bytes::from(serde_json::to_vec(&request)?);
    let mut conn = client.connection();
    let mut attempt_no = 0;
    let (status, verdict, http) = loop {
        attempt_no += 1;
        let attempt = conn.send(body.clone()).await;
        let http = match &attempt {
            crate::send::retry::Attempt::Response { status, .. } => Some(*status),
            _ => None,
        };
        let verdict = classify(&attempt);
        match verdict {
            Verdict::Retry { retry_after, .. } if attempt_no <= c.send.retries => {
                tokio::time::sleep(backoff(c.send.backoff, attempt_no, retry_after)).await;
            }
            Verdict::Sent { .. } => break ("sent", verdict, http),
            Verdict::Queued { .. } => break ("queued", verdict, http),
            Verdict::Unknown { .. } => break ("unknown", verdict, http),
            _ => break ("failed", verdict, http),
        }
    };
    if let Some(sb) = server {
        sb.shutdown().await;
    }
    let (ids, error) = match &verdict {
        Verdict::Sent { message_ids, .. } => (message_ids.join(" "), None),
        Verdict::Queued { queue_id } => (queue_id.clone(), None),
        Verdict::Failed { error, .. }
        | Verdict::Unknown { error, .. }
        | Verdict::Unauthorized { error } => (String::new(), Some(error.clone())),
        Verdict::Retry { error, .. } => (
            String::new(),
            Some(format!("{error} (after {attempt_no} attempts)")),
        ),
    };
    let ledger_file = ledger_path(c, args.ledger, args.sandbox);
    let ledger = Ledger::open(&ledger_file)?;
    ledger.ensure_campaign(&c.name)?;
    ledger.record_test(
        &c.name,
        row.number,
        &phone,
        status,
        &ids,
        http,
        error.as_deref(),
    )?;
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
