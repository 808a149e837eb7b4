//! `stripe-manager credits balance|history|grant|deduct`: the ledger for operators.
//! Grants and deductions need a reason and are written to the journal and the audit
//! log (actor `cli:$USER`) in one transaction. Exit 1 when a deduction is refused for
//! insufficient credits, 2 for bad arguments.

use clap::Subcommand;
use sm_domain::credits::Credits;

use super::Failure;
use crate::clock::unix_now;
use crate::credits::{AdjustRequest, Adjustment, LedgerError};
use crate::state::AppState;

#[derive(Debug, Subcommand)]
pub enum CreditsCommand {
    /// Available balance (subscription and pay-as-you-go), expired, debt, and lots.
    Balance {
        account: String,
        #[arg(long)]
        json: bool,
    },
    /// The account's journal, newest first.
    History {
        account: String,
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[arg(long)]
        json: bool,
    },
    /// Grant credits (a lot of their own that never expires).
    Grant(AdjustArgs),
    /// Deduct credits (spent like a consumption; refused when the balance is short).
    Deduct(AdjustArgs),
}

#[derive(Debug, clap::Args)]
pub struct AdjustArgs {
    account: String,
    /// Credits, up to two decimals: 10, 2.50.
    amount: String,
    #[arg(long)]
    reason: String,
    #[arg(long)]
    json: bool,
}

fn failure(e: LedgerError) -> Failure {
    let code = match e {
        LedgerError::InvalidAccount(_) | LedgerError::Invalid(_) | LedgerError::KeyReused(_) => 2,
        LedgerError::Insufficient { .. } | LedgerError::Store(_) => 1,
    };
    Failure {
        code,
        message: crate::error_chain(&e),
    }
}

fn print_json(value: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(value).expect("views serialize")
    );
}

fn date(secs: i64) -> String {
    // Seconds are enough for an operator; a calendar date would need a time crate.
    secs.to_string()
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
            println!(
                "{}: {} available ({} subscription, {} pay-as-you-go); {} expired; {} debt",
                b.account, b.available, b.subscription, b.pay_as_you_go, b.expired, b.debt
            );
            for l in &b.lots {
                println!(
                    "  lot {:<6} {:<12} {:<40} {:>12} of {:>12} {}",
                    l.id,
                    l.source,
                    l.source_ref,
                    l.remaining,
                    l.amount,
                    match (l.expired, l.expires_at) {
                        (true, _) => "expired".to_owned(),
                        (false, Some(e)) => format!("expires {}", date(e)),
                        (false, None) => String::new(),
                    }
                );
            }
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
            for e in entries {
                let amount = if e.kind == "debt" {
                    format!("debt {}", e.shortfall)
                } else {
                    e.amount.to_string()
                };
                println!(
                    "{:<8} {:>12} {:<9} {:>14} {:<40} {}",
                    e.id,
                    date(e.created_at),
                    e.kind,
                    amount,
                    e.reference,
                    e.description.as_deref().unwrap_or("")
                );
            }
        }
        CreditsCommand::Grant(args) => return adjust(&state, Adjustment::Grant, &args).await,
        CreditsCommand::Deduct(args) => return adjust(&state, Adjustment::Deduct, &args).await,
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
        println!(
            "{} credits {verb} {} ({}); balance {}",
            done.amount, done.account, done.reference, done.balance
        );
    }
    Ok(0)
}
