//! `stripe-manager credits balance|history|holds|grant|deduct|import|forgive`: the ledger
//! for operators (`import` lives in `cli::import`).
//! Grants and deductions need a reason and are written to the journal and the audit
//! log (actor `cli:$USER`) in one transaction. Exit 1 when a deduction is refused for
//! insufficient credits, 2 for bad arguments.

use clap::Subcommand;
use sm_domain::credits::Credits;

use super::{Failure, table};
use crate::clock::{unix_now, utc, when};
use crate::credits::{AdjustRequest, Adjustment, LedgerError};
use crate::state::AppState;

#[derive(Debug, Subcommand)]
pub enum CreditsCommand {
    /// Available balance (subscription and pay-as-you-go), expired, debt, and lots.
    Balance {
        /// The account id.
        account: String,
        /// Print JSON (times as Unix seconds).
        #[arg(long)]
        json: bool,
    },
    /// The account's journal, newest first.
    History {
        /// The account id.
        account: String,
        /// How many entries, newest first.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        /// Print JSON (times as Unix seconds).
        #[arg(long)]
        json: bool,
    },
    /// The account's holds (credits reserved by the app), newest first: open ones, or
    /// every one with --all.
    Holds {
        /// The account id.
        account: String,
        /// Captured, released and expired holds too.
        #[arg(long)]
        all: bool,
        /// How many, newest first (1 to 100).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=100))]
        limit: u32,
        /// Print JSON (times as Unix seconds).
        #[arg(long)]
        json: bool,
    },
    /// Grant credits (a lot of their own that never expires; with --promotional, a
    /// promotional lot, spent first, never taken by a refund, that may expire).
    Grant(GrantArgs),
    /// Deduct credits (spent like a consumption; refused when the balance is short).
    Deduct(AdjustArgs),
    /// Import credit balances from another system: a CSV file with a header row
    /// (account, amount, reference[, expires_at][, reason]), one lot per row, once per
    /// reference; a file with an invalid row imports nothing.
    Import(super::import::ImportArgs),
    /// Forgive all of the account's debt (credits refunds took back that were already
    /// spent); audited.
    Forgive {
        /// The account id.
        account: String,
        /// Why (kept in the journal and the audit log).
        #[arg(long)]
        reason: String,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, clap::Args)]
pub struct AdjustArgs {
    /// The account id.
    account: String,
    /// Credits, up to two decimals: 10, 2.50.
    amount: String,
    /// Why (kept in the journal and the audit log).
    #[arg(long)]
    reason: String,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub struct GrantArgs {
    #[command(flatten)]
    adjust: AdjustArgs,
    /// A promotional grant (as the app's POST …/credits/grants makes): spent before
    /// paid credits of the same or a later expiry, never taken by a refund.
    #[arg(long)]
    promotional: bool,
    /// When the promotional credits expire: an RFC 3339 time or a date (midnight UTC).
    #[arg(long, requires = "promotional", value_name = "WHEN")]
    expires: Option<String>,
}

/// `2027-01-31` (midnight UTC) or `2027-01-31T12:00:00Z` as Unix seconds.
pub(super) fn unix_of(text: &str) -> Option<i64> {
    if let Ok(t) = text.parse::<jiff::Timestamp>() {
        return Some(t.as_second());
    }
    text.parse::<jiff::civil::Date>()
        .ok()
        .and_then(|d| d.to_zoned(jiff::tz::TimeZone::UTC).ok())
        .map(|z| z.timestamp().as_second())
}

/// `--expires`: see [`unix_of`].
fn parse_when(text: &str) -> Result<i64, Failure> {
    unix_of(text).ok_or_else(|| {
        Failure::usage(format!(
            "--expires {text:?} is neither a date (2027-01-31) nor an RFC 3339 time (2027-01-31T12:00:00Z)"
        ))
    })
}

async fn promotional(state: &AppState, args: &GrantArgs) -> Result<u8, Failure> {
    let AdjustArgs {
        account,
        amount,
        reason,
        json,
    } = &args.adjust;
    let amount = Credits::parse(amount).map_err(|e| Failure::usage(e.to_string()))?;
    let expires_at = args.expires.as_deref().map(parse_when).transpose()?;
    let actor = super::actor();
    let req = crate::credits::PromotionalRequest {
        amount,
        idempotency_key: format!("cli:{}", uuid::Uuid::new_v4()),
        reason: reason.clone(),
        expires_at,
    };
    let done = state
        .ledger
        .grant_promotional(account, &req, &actor, unix_now())
        .await
        .map_err(failure)?;
    if *json {
        print_json(&done);
    } else {
        outln!(
            "{} promotional credits granted to {}{}; balance {}",
            done.amount,
            done.account,
            done.expires_at
                .map(|e| format!(", expiring {}", utc(e)))
                .unwrap_or_default(),
            done.balance
        );
    }
    Ok(0)
}

fn failure(e: LedgerError) -> Failure {
    let code = match e {
        LedgerError::InvalidAccount(_)
        | LedgerError::Invalid(_)
        | LedgerError::KeyReused(_)
        | LedgerError::HoldNotFound(_)
        | LedgerError::TooManyHolds(_)
        | LedgerError::HoldSettled { .. } => 2,
        LedgerError::Insufficient { .. } | LedgerError::Store(_) => 1,
    };
    Failure {
        code,
        message: crate::error_chain(&e),
    }
}

fn print_json(value: &impl serde::Serialize) {
    outln!(
        "{}",
        serde_json::to_string_pretty(value).expect("views serialize")
    );
}

pub async fn run(state: AppState, command: CreditsCommand) -> Result<u8, Failure> {
    let ledger = &state.ledger;
    let now = unix_now();
    match command {
        CreditsCommand::Balance { account, json } => {
            let b = ledger.balance(&account, now).await.map_err(failure)?;
            if json {
                print_json(&b);
                return Ok(0);
            }
            outln!(
                "{}: {} available ({} subscription, {} pay-as-you-go, {} promotional); {} held; {} expired; {} debt",
                b.account,
                b.available,
                b.subscription,
                b.pay_as_you_go,
                b.promotional,
                b.held,
                b.expired,
                b.debt
            );
            if b.lots.is_empty() {
                return Ok(0);
            }
            outln!();
            let mut t = table::new(&["LOT", "SOURCE", "REF", "REMAINING", "OF", "EXPIRES"]);
            table::right(&mut t, &[0, 3, 4]);
            for l in &b.lots {
                t.add_row(vec![
                    l.id.to_string(),
                    l.source.clone(),
                    l.source_ref.clone(),
                    l.remaining.to_string(),
                    l.amount.to_string(),
                    match (l.expired, l.expires_at) {
                        (true, Some(e)) => format!("expired {}", utc(e)),
                        (true, None) => "expired".to_owned(),
                        (false, Some(e)) => when(e, now),
                        (false, None) => "never".to_owned(),
                    },
                ]);
            }
            table::print(&t);
        }
        CreditsCommand::History {
            account,
            limit,
            json,
        } => {
            let entries = ledger.history(&account, limit).await.map_err(failure)?;
            if json {
                print_json(&entries);
                return Ok(0);
            }
            if entries.is_empty() {
                outln!("no journal entries for {account}");
                return Ok(0);
            }
            let mut t = table::new(&["ID", "AT", "KIND", "AMOUNT", "REF", "DESCRIPTION"]);
            table::right(&mut t, &[0, 3]);
            for e in entries {
                let amount = if e.kind == "debt" {
                    format!("debt {}", e.shortfall)
                } else {
                    e.amount.to_string()
                };
                t.add_row(vec![
                    e.id.to_string(),
                    utc(e.created_at),
                    e.kind,
                    amount,
                    e.reference,
                    e.description.unwrap_or_default(),
                ]);
            }
            table::print(&t);
        }
        CreditsCommand::Holds {
            account,
            all,
            limit,
            json,
        } => {
            let holds = ledger
                .holds(&account, !all, now, limit)
                .await
                .map_err(failure)?;
            if json {
                print_json(&holds);
                return Ok(0);
            }
            if holds.is_empty() {
                let which = if all { "" } else { "open " };
                outln!("no {which}holds for {account}");
                return Ok(0);
            }
            let mut t = table::new(&[
                "HOLD",
                "STATUS",
                "AMOUNT",
                "CAPTURED",
                "CREATED",
                "EXPIRES",
                "DESCRIPTION",
            ]);
            table::right(&mut t, &[2, 3]);
            for h in holds {
                t.add_row(vec![
                    h.id,
                    h.status.to_owned(),
                    h.amount.to_string(),
                    h.captured.map(|c| c.to_string()).unwrap_or_default(),
                    utc(h.created_at),
                    if h.status == "held" {
                        when(h.expires_at, now)
                    } else {
                        utc(h.expires_at)
                    },
                    h.description.unwrap_or_default(),
                ]);
            }
            table::print(&t);
        }
        CreditsCommand::Grant(args) if args.promotional => {
            return promotional(&state, &args).await;
        }
        CreditsCommand::Grant(args) => {
            return adjust(&state, Adjustment::Grant, &args.adjust).await;
        }
        CreditsCommand::Deduct(args) => return adjust(&state, Adjustment::Deduct, &args).await,
        CreditsCommand::Import(args) => return super::import::run(&state, &args).await,
        CreditsCommand::Forgive {
            account,
            reason,
            json,
        } => {
            let actor = super::actor();
            let done = ledger
                .forgive(&account, &reason, &actor, "cli", now)
                .await
                .map_err(failure)?;
            if json {
                print_json(&done);
            } else {
                outln!(
                    "{}: {} credits of debt forgiven; available {}",
                    done.account,
                    done.amount,
                    done.balance
                );
            }
        }
    }
    Ok(0)
}

async fn adjust(state: &AppState, kind: Adjustment, args: &AdjustArgs) -> Result<u8, Failure> {
    let AdjustArgs {
        account,
        amount,
        reason,
        json,
    } = args;
    let amount = Credits::parse(amount).map_err(|e| Failure::usage(e.to_string()))?;
    let actor = super::actor();
    let done = state
        .ledger
        .adjust(
            account,
            &AdjustRequest {
                kind,
                amount,
                reason,
                actor: &actor,
                origin: "cli",
            },
            unix_now(),
        )
        .await
        .map_err(failure)?;
    if *json {
        print_json(&done);
    } else {
        let verb = match kind {
            Adjustment::Grant => "granted to",
            Adjustment::Deduct => "deducted from",
        };
        outln!(
            "{} credits {verb} {} ({}); balance {}",
            done.amount,
            done.account,
            done.reference,
            done.balance
        );
    }
    Ok(0)
}
