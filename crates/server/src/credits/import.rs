//! Balances carried over from another system (`stripe-manager credits import`): one lot
//! and one journal entry per row, exactly once per row's reference.
//!
//! An imported lot is an operator grant with a reference of its own: `source` `admin`
//! (pay-as-you-go in the balance, never taken back by a refund, settling no debt, as
//! `credits grant` makes), `source_ref` `import:<reference>` instead of `admin:<uuid>`,
//! and a journal entry of kind `adjust` whose actor is the operator. Reusing the admin
//! source keeps every rule of the ledger as it is (no new kind of lot for the spending
//! order, the balance or the app's events to learn); the `import:` prefix is what tells
//! an imported lot from a hand-made one, in the balance's lots and in the journal.
//!
//! Exactly once: the reference is the lot's unique `source_ref`, so inserting the lot
//! is the claim (as for every grant). A row whose reference was imported before with the
//! same account, amount and expiry is *already imported*; with others it is refused.
//! Nothing is written until every row has been checked ([`Ledger::check_import`]); the
//! rows are then written in transactions of [`BATCH`] rows, each audited.

use sm_domain::credits::{Credits, LotSource};
use sm_store::StoreError;
use sm_store::credits::{LotRow, NewAudit, NewEntry, NewLot};

use super::{Ledger, LedgerError, validate_account};

/// What an imported lot's `source_ref` starts with.
pub const REFERENCE_PREFIX: &str = "import:";

/// Rows written per transaction: one fsync for many rows, and short enough that the
/// service's other writers (one at a time on SQLite) wait a few milliseconds at most.
pub const BATCH: usize = 500;

/// The most one row may grant, as for promotional grants: a larger number is a mistake
/// (cents taken for credits), not a balance.
const MAX_AMOUNT: i64 = 100_000_000_000_000;

/// Imported credits expire at most ten years ahead: a later date is a unit mistake
/// (milliseconds taken for seconds).
const MAX_EXPIRY_SECS: i64 = 10 * 366 * 86_400;

/// One row of an import, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportRow {
    /// Where it is in the file (1 is the header), for messages.
    pub line: u64,
    /// The account to credit.
    pub account: String,
    /// Credits to grant (more than zero).
    pub amount: Credits,
    /// Unix seconds; never when absent.
    pub expires_at: Option<i64>,
    /// The journal entry's description; `imported from <file>` when absent.
    pub reason: Option<String>,
    /// The row's identity in the system it comes from: imported once.
    pub reference: String,
}

impl ImportRow {
    /// The `source_ref` of the row's lot.
    pub fn source_ref(&self) -> String {
        format!("{REFERENCE_PREFIX}{}", self.reference)
    }

    /// Whether `lot` is what this row makes: same account, amount and expiry.
    fn made(&self, lot: &LotRow) -> bool {
        (lot.account.as_str(), lot.amount, lot.expires_at)
            == (
                self.account.as_str(),
                self.amount.hundredths(),
                self.expires_at,
            )
    }

    /// The rules a row meets on its own (the expiry's lower bound aside, which only a
    /// new row must meet); the message names the field.
    fn check(&self, now: i64) -> Result<(), String> {
        validate_account(&self.account).map_err(|e| format!("account: {e}"))?;
        let reference = &self.reference;
        if reference.is_empty() || reference.len() > 255 {
            return Err("reference must be 1 to 255 bytes".into());
        }
        if reference.chars().any(char::is_control) {
            return Err("reference must not contain control characters".into());
        }
        let amount = self.amount.hundredths();
        if amount <= 0 || amount > MAX_AMOUNT {
            return Err(format!(
                "amount {} must be greater than zero and at most 1000000000000",
                self.amount
            ));
        }
        if let Some(reason) = &self.reason
            && (reason.chars().count() > 500 || reason.chars().any(char::is_control))
        {
            return Err("reason must be at most 500 characters, without control characters".into());
        }
        if let Some(at) = self.expires_at
            && at > now + MAX_EXPIRY_SECS
        {
            return Err(format!(
                "expires_at {} is more than ten years ahead (Unix seconds, not milliseconds?)",
                crate::clock::utc(at)
            ));
        }
        Ok(())
    }
}

/// What importing a valid row would do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checked {
    /// Not imported yet: importing grants it.
    New,
    /// Imported before with the same account, amount and expiry: importing skips it.
    AlreadyImported,
}

impl Ledger {
    /// What importing `row` would do, read without writing: new, imported before
    /// (same account, amount and expiry), or refused with the reason (`Ok(Err(…))`).
    /// The ledger's own failures are the outer error.
    pub async fn check_import(
        &self,
        row: &ImportRow,
        now: i64,
    ) -> Result<Result<Checked, String>, LedgerError> {
        if let Err(why) = row.check(now) {
            return Ok(Err(why));
        }
        if let Some(lot) = self.store.lot_by_ref(&row.source_ref()).await? {
            return Ok(if row.made(&lot) {
                Ok(Checked::AlreadyImported)
            } else {
                Err(conflict(row, &lot))
            });
        }
        // Only a new row must be spendable: a row imported while its date was ahead is
        // still "already imported" once the date has passed.
        if let Some(at) = row.expires_at
            && at <= now
        {
            return Ok(Err(format!(
                "expires_at {} is not in the future: the credits would be born expired (leave the row out)",
                crate::clock::utc(at)
            )));
        }
        Ok(Ok(Checked::New))
    }

    /// Writes `rows` (each checked by [`Ledger::check_import`] as new), [`BATCH`] rows
    /// per transaction: per row a lot (`admin`, `import:<reference>`) and its `adjust`
    /// entry; per transaction one audit record (`credits.import`, `file` as target).
    /// Returns, per row, whether this call imported it (`false`: the same lot was
    /// imported meanwhile, by another run). A row whose reference was imported
    /// meanwhile with other values stops the import at its batch: the batches before it
    /// stay imported, and running the same file again imports nothing twice.
    pub async fn import(
        &self,
        rows: &[ImportRow],
        file: &str,
        actor: &str,
        origin: &str,
        now: i64,
    ) -> Result<Vec<bool>, LedgerError> {
        let mut done = Vec::with_capacity(rows.len());
        let default_reason = format!("imported from {file}");
        for batch in rows.chunks(BATCH) {
            let mut tx = self.store.begin().await?;
            // Every account of the batch at once, in one order (sorted), as a
            // consumption group locks them: two writers never wait on each other.
            let accounts: Vec<&str> = batch.iter().map(|r| r.account.as_str()).collect();
            tx.lock_accounts(&accounts, now).await?;
            let mut credits = 0i64;
            let mut imported = 0usize;
            for row in batch {
                let reference = row.source_ref();
                let lot = tx
                    .insert_lot(
                        &NewLot {
                            account: row.account.clone(),
                            source: Some(LotSource::Admin),
                            source_ref: reference.clone(),
                            amount: row.amount.hundredths(),
                            expires_at: row.expires_at,
                            ..Default::default()
                        },
                        now,
                    )
                    .await?;
                let Some(lot) = lot else {
                    let existing = tx.lot_by_ref(&reference).await?.ok_or_else(|| {
                        StoreError::Corrupt(format!("lot {reference} exists and cannot be read"))
                    })?;
                    if !row.made(&existing) {
                        tx.rollback().await?;
                        return Err(LedgerError::Invalid(format!(
                            "line {}: {} (imported meanwhile by another run; nothing from line {} on was written)",
                            row.line,
                            conflict(row, &existing),
                            batch[0].line
                        )));
                    }
                    done.push(false);
                    continue;
                };
                tx.insert_entry(
                    &NewEntry {
                        account: &row.account,
                        lot: Some(lot),
                        kind: "adjust",
                        amount: row.amount.hundredths(),
                        reference: &reference,
                        description: Some(row.reason.as_deref().unwrap_or(&default_reason)),
                        actor: Some(actor),
                        ..Default::default()
                    },
                    now,
                )
                .await?;
                credits += row.amount.hundredths();
                imported += 1;
                done.push(true);
            }
            if imported > 0 {
                let (first, last) = (batch[0].line, batch[batch.len() - 1].line);
                let detail = format!(
                    "{imported} rows, {} credits (lines {first}-{last})",
                    Credits(credits)
                );
                tx.audit(
                    &NewAudit {
                        actor,
                        action: "credits.import",
                        target: Some(file),
                        detail: Some(&detail),
                        origin: Some(origin),
                        result: "ok",
                    },
                    now,
                )
                .await?;
            }
            crate::outbox::announce(&mut tx, now, &Default::default()).await?;
            tx.commit().await?;
        }
        Ok(done)
    }
}

/// Why `row` cannot be imported over the lot its reference made before.
fn conflict(row: &ImportRow, lot: &LotRow) -> String {
    let expiry = |at: Option<i64>| at.map_or("never".to_owned(), crate::clock::utc);
    format!(
        "reference {:?} was imported before with other values (lot {}: {} credits to {}, expiring {}); this row says {} credits to {}, expiring {}",
        row.reference,
        lot.id,
        Credits(lot.amount),
        lot.account,
        expiry(lot.expires_at),
        row.amount,
        row.account,
        expiry(row.expires_at)
    )
}
