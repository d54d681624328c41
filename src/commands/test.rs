//! `cosmocast test --to PHONE [--row N]`: sends one row's messages to a test phone, through the
//! same delivery path as `run` (encoder, retry policy, messages). The send is recorded apart
//! (`test_sends`) and never counts as the contact's own.

use std::io::Write;
use std::time::Duration;

use super::endpoint::Endpoint;
use super::environment_problems;
use crate::cli::TestArgs;
use crate::error::{Exit, Fatal, Problems};
use crate::ledger::{Ledger, TestSend};
use crate::phone;
use crate::plan::{Plan, ledger_for};
use crate::printer::Printer;
use crate::send::deliver::{self, Around, Delivery, Policy};
use crate::send::retry::{ConnectError, Verdict};

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
    fn wait_refused(&self, _asked: Duration) {}
}

pub(crate) async fn run(args: &TestArgs, printer: Printer) -> anyhow::Result<Exit> {
    let plan = Plan::load(&args.campaign)?;
    let to = test_phone(&args.to, plan.campaign.contacts.country)?;
    guard_test_phone(&plan, args, &to, printer)?;
    let phone = to.digits;
    let (row_number, request) = request_for(&plan, args.row, &phone)?;
    if !args.sandbox {
        let env = environment_problems(&plan.campaign);
        if !env.is_empty() {
            return Err(Problems { list: env }.into());
        }
    }
    let (verdict, http_status) = match send_once(&plan, args.sandbox, &request).await? {
        Delivery::Done {
            verdict,
            http_status,
        } => (verdict, http_status),
        Delivery::WaitRefused(asked) => {
            let stop = crate::send::Stop::AskedToWait {
                asked,
                max: plan.campaign.send.max_wait,
            };
            printer.important(format_args!(
                "{}: nothing was sent; try again later",
                stop.message()
            ));
            return Ok(Exit::WorkRemains);
        }
        Delivery::Abandoned => return Ok(Exit::WorkRemains),
    };
    let sent = Sent::of(row_number, &phone, &verdict, http_status);
    record(&plan, args, &sent)?;
    match &sent.error {
        None => writeln!(
            printer.stdout(),
            "test send of row {row_number} to {phone}: {} ({}); recorded apart, the contact itself is untouched",
            sent.status,
            sent.ids
        )?,
        Some(e) => printer.info(format_args!(
            "test send of row {row_number} to {phone}: {}: {e}",
            sent.status
        )),
    }
    Ok(match verdict {
        Verdict::Sent { .. } | Verdict::Queued { .. } => Exit::Ok,
        // Refused credentials, or an API that cannot be reached: the campaign cannot run (1).
        Verdict::Unauthorized { .. } => Exit::CannotRun,
        _ if verdict.unconnected().is_some() => Exit::CannotRun,
        _ => Exit::Incomplete,
    })
}

/// Sends the request through the delivery path of `run`, retries included.
async fn send_once(
    plan: &Plan,
    sandbox: bool,
    request: &crate::api::SendRequest,
) -> anyhow::Result<Delivery> {
    let body = bytes::Bytes::from(serde_json::to_vec(request)?);
    let endpoint = Endpoint::start(plan, sandbox, (Duration::ZERO, Duration::ZERO)).await?;
    let delivery = match endpoint.client(plan) {
        Ok(client) => {
            let c = &plan.campaign;
            let policy = Policy {
                retries: c.send.retries,
                backoff: c.send.backoff,
                max_wait: c.send.max_wait,
            };
            Ok(deliver::deliver(&client, &body, policy, &Plain).await)
        }
        Err(e) => Err(e),
    };
    endpoint.stop().await;
    Ok(delivery?)
}

/// The test phone in its normalised form (read with `contacts.country`), or a usage error.
fn test_phone(to: &str, region: Option<phone::Region>) -> Result<phone::Phone, Fatal> {
    phone::normalise(to, region.as_ref())
        .map_err(|e| Fatal::new(Exit::Usage, format!("--to: {e} — {}", e.hint())))
}

/// A test phone on the ledger's suppression list is refused: whoever it is asked not to be
/// messaged. A landline, which the campaign's channel cannot reach, is warned of, as `check`
/// warns of a row's.
fn guard_test_phone(
    plan: &Plan,
    args: &TestArgs,
    to: &phone::Phone,
    printer: Printer,
) -> anyhow::Result<()> {
    let c = &plan.campaign;
    let located = ledger_for(c, &args.ledger.ledger, args.sandbox)?;
    if let Some(ledger) = Ledger::open_read(&located.place)?
        && ledger.is_opted_out(&to.digits)?
    {
        return Err(Fatal::new(
            Exit::CannotRun,
            format!(
                "--to +{} is on the ledger's suppression list ({located}): it asked not to be messaged, so nothing was sent — test with another phone, or `cosmocast optouts remove +{}` if it is yours and wants messages again",
                to.digits, to.digits
            ),
        )
        .into());
    }
    if to.line == phone::LineKind::FixedLine && c.api.channel.requires_phone() {
        printer.important(format_args!(
            "warning: --to +{} is a landline: {} cannot reach it, so the API will likely refuse the test",
            to.digits,
            c.api.channel.name()
        ));
    }
    Ok(())
}

/// Row `row`'s request, readdressed to a fresh contact at the test phone.
fn request_for(
    plan: &Plan,
    row: u64,
    phone: &str,
) -> anyhow::Result<(u64, crate::api::SendRequest)> {
    let mut reader = plan.reader()?;
    let csv = reader.path().to_path_buf();
    let found = reader
        .by_ref()
        .find(|r| r.as_ref().map_or(true, |r| r.number >= row))
        .transpose()
        .map_err(|p| Problems { list: vec![p] })?
        .filter(|r| r.number == row)
        .ok_or_else(|| {
            Fatal::new(
                Exit::CannotRun,
                format!("{} has no row {row}", csv.display()),
            )
        })?;
    if found.blank {
        return Err(Fatal::new(
            Exit::CannotRun,
            format!(
                "{}:{}: row {row} is blank (every cell is empty): nobody, never sent — give --row a row that holds a contact",
                csv.display(),
                found.line
            ),
        )
        .into());
    }
    let rendered = plan
        .audience
        .renderer
        .render(&found, &csv)
        .map_err(|e| Problems { list: e.problems })?;
    let mut request = rendered.request;
    // Never address the real contact: a fresh contact at the test phone, no external id.
    request.contact.id = "new_contact".into();
    request.contact.external_id = None;
    request.contact.mobile_phone = Some(phone.to_string());
    // The row's session is the real contact's conversation: a test starts its own.
    request.session = None;
    Ok((found.number, request))
}

/// A test send's outcome, as the ledger records it.
struct Sent<'a> {
    row_number: u64,
    phone: &'a str,
    /// `sent`, `queued`, `unknown` or `failed`.
    status: &'static str,
    /// The message ids, or the queue id, space-separated.
    ids: String,
    error: Option<String>,
    http_status: Option<u16>,
}

impl Sent<'_> {
    fn of<'a>(
        row_number: u64,
        phone: &'a str,
        verdict: &Verdict,
        http_status: Option<u16>,
    ) -> Sent<'a> {
        let (status, ids, error) = match verdict {
            Verdict::Sent { message_ids, .. } => ("sent", message_ids.join(" "), None),
            Verdict::Queued { queue_id } => ("queued", queue_id.clone(), None),
            Verdict::Unknown { error, .. } => ("unknown", String::new(), Some(error.clone())),
            Verdict::Failed { error, .. }
            | Verdict::Retry { error, .. }
            | Verdict::Unauthorized { error } => ("failed", String::new(), Some(error.clone())),
        };
        Sent {
            row_number,
            phone,
            status,
            ids,
            error,
            http_status,
        }
    }
}

/// Records the test send apart from the contacts' own sends (`test_sends`).
fn record(plan: &Plan, args: &TestArgs, sent: &Sent<'_>) -> anyhow::Result<()> {
    let c = &plan.campaign;
    let located = ledger_for(c, &args.ledger.ledger, args.sandbox)?;
    located.prepare_folder()?;
    let ledger = Ledger::open_write(&located.place)?;
    ledger.ensure_campaign(&c.name)?;
    ledger.record_test(&TestSend {
        campaign: &c.name,
        row_number: sent.row_number,
        phone: sent.phone,
        status: sent.status,
        message_ids: &sent.ids,
        http_status: sent.http_status,
        error: sent.error.as_deref(),
    })
}
