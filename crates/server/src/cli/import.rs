//! `stripe-manager credits import FILE.csv [--dry-run] [--json]`: credit balances carried
//! over from another system (the ledger's side is `crate::credits::import`).
//!
//! The file is read as a stream with bounded memory: a physical line longer than
//! [`MAX_LINE`] bytes, a file larger than [`MAX_BYTES`] or with more than [`MAX_ROWS`]
//! rows stops the command before anything is written. Every row is then checked — its
//! fields, its reference against the other lines and against the ledger — and only a
//! file whose every row is valid is written: one invalid row imports nothing, so the
//! operator fixes the file and runs it again rather than untangling half an import.
//! Exit 0 when every row is imported or was imported before, 1 when the file or a row
//! is refused (nothing written), 2 for usage (the file cannot be opened).

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use serde::Serialize;
use sm_domain::credits::Credits;

use super::Failure;
use crate::clock::{unix_now, utc};
use crate::credits::import::{Checked, ImportRow};
use crate::state::AppState;

/// The longest physical line: far more than a row needs (account ≤ 128 characters,
/// reference ≤ 255 bytes, reason ≤ 500 characters), short enough that a binary file
/// is refused at once.
pub const MAX_LINE: usize = 4096;

/// The most rows one file may have; split a larger export (references make the parts
/// independent, and importing one twice changes nothing).
pub const MAX_ROWS: usize = 100_000;

/// The largest file (every row at the line cap would not fit: a bound on memory,
/// whatever the quoting does).
pub const MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Columns, by header name (case-insensitive).
const COLUMNS: [&str; 5] = ["account", "amount", "expires_at", "reason", "reference"];

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// The CSV file: a header row naming `account`, `amount`, `reference` and optionally
    /// `expires_at`, `reason` (docs/USER_GUIDE.md, "Importing balances").
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Check every row and report what would be imported; write nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print JSON (times as Unix seconds).
    #[arg(long)]
    json: bool,
}

/// What became, or would become, of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    /// Written by this run.
    Imported,
    /// Its reference was imported before (an earlier run, or an earlier line of this
    /// file) with the same account, amount and expiry: nothing to do.
    AlreadyImported,
    /// Valid and new, not written: a dry run, or a file with invalid rows.
    WouldImport,
    /// Refused; `error` says why.
    Invalid,
}

/// One row of the report.
#[derive(Debug, Clone, Serialize)]
struct RowReport {
    line: u64,
    status: Status,
    account: String,
    reference: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    amount: Option<Credits>,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    /// For a repeat within the file: the line it repeats.
    #[serde(skip_serializing_if = "Option::is_none")]
    same_as_line: Option<u64>,
}

/// The whole report (`--json`).
#[derive(Debug, Serialize)]
struct Report {
    file: String,
    dry_run: bool,
    /// Whether anything was written.
    written: bool,
    imported: usize,
    already_imported: usize,
    would_import: usize,
    invalid: usize,
    /// Credits in the rows imported (or that would be).
    credits: Credits,
    rows: Vec<RowReport>,
}

/// A reader that refuses long lines and large files as the bytes go through it, so
/// the CSV parser never buffers more than a line past the caps.
struct Capped<R> {
    inner: R,
    line: u64,
    line_len: usize,
    total: u64,
}

impl<R: BufRead> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.total += n as u64;
        if self.total > MAX_BYTES {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the file is larger than {} MiB: split it", MAX_BYTES >> 20),
            ));
        }
        for &b in &buf[..n] {
            if b == b'\n' {
                self.line += 1;
                self.line_len = 0;
            } else {
                self.line_len += 1;
                if self.line_len > MAX_LINE {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        format!(
                            "line {} is longer than {MAX_LINE} bytes: is this the CSV file?",
                            self.line + 1
                        ),
                    ));
                }
            }
        }
        Ok(n)
    }
}

/// The ledger refused or failed: exit 1 (nothing of the batch that failed is written).
fn ledger_failure(e: crate::credits::LedgerError) -> Failure {
    refused(crate::error_chain(&e))
}

/// A problem with the file as a whole: exit 1, nothing written.
fn refused(message: impl Into<String>) -> Failure {
    Failure {
        code: 1,
        message: message.into(),
    }
}

fn csv_failure(e: csv::Error) -> Failure {
    match e.kind() {
        csv::ErrorKind::Io(io) => refused(io.to_string()),
        _ => refused(format!("the file is not valid CSV: {e}")),
    }
}

/// `1735689600`, `2027-01-31T12:00:00Z` or `2027-01-31` (midnight UTC) as Unix seconds.
fn parse_expiry(text: &str) -> Result<i64, String> {
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text
            .parse()
            .map_err(|_| format!("expires_at {text:?} is too large"));
    }
    super::credits::unix_of(text).ok_or_else(|| {
        format!(
            "expires_at {:?} is neither Unix seconds, an RFC 3339 time (2027-01-31T12:00:00Z) nor a date (2027-01-31)",
            text.chars().take(40).collect::<String>()
        )
    })
}

/// Where each column is in the file.
struct Layout {
    width: usize,
    at: HashMap<&'static str, usize>,
}

fn layout(header: &csv::ByteRecord) -> Result<Layout, Failure> {
    let mut at = HashMap::new();
    for (i, raw) in header.iter().enumerate() {
        let name = std::str::from_utf8(raw).map_err(|_| {
            refused("line 1 (the header) is not UTF-8 text: save the file as UTF-8")
        })?;
        // A spreadsheet's UTF-8 export may start with a byte-order mark.
        let name = name
            .trim_start_matches('\u{feff}')
            .trim()
            .to_ascii_lowercase();
        let Some(column) = COLUMNS.iter().find(|c| **c == name) else {
            return Err(refused(format!(
                "line 1 (the header): unknown column {:?}; the columns are {}",
                name.chars().take(40).collect::<String>(),
                COLUMNS.join(", ")
            )));
        };
        if at.insert(*column, i).is_some() {
            return Err(refused(format!(
                "line 1 (the header): column {column} is named twice"
            )));
        }
    }
    let missing: Vec<&str> = ["account", "amount", "reference"]
        .into_iter()
        .filter(|c| !at.contains_key(c))
        .collect();
    if !missing.is_empty() {
        return Err(refused(format!(
            "line 1 (the header) lacks {}: the header names the columns (account,amount,reference[,expires_at][,reason])",
            missing.join(", ")
        )));
    }
    Ok(Layout {
        width: header.len(),
        at,
    })
}

/// A row's fields as text, or why not.
fn row_of(layout: &Layout, record: &csv::ByteRecord, line: u64) -> (RowReport, Option<ImportRow>) {
    let field = |name: &str| -> Option<&[u8]> { layout.at.get(name).and_then(|i| record.get(*i)) };
    let text = |name: &str| -> Result<String, String> {
        match field(name) {
            None => Ok(String::new()),
            Some(raw) => std::str::from_utf8(raw)
                .map(str::to_owned)
                .map_err(|_| format!("{name} is not UTF-8 text: save the file as UTF-8")),
        }
    };
    let lossy = |name: &str| -> String {
        field(name)
            .map(|raw| String::from_utf8_lossy(raw).chars().take(128).collect())
            .unwrap_or_default()
    };
    let mut report = RowReport {
        line,
        status: Status::Invalid,
        account: lossy("account"),
        reference: lossy("reference"),
        amount: None,
        expires_at: None,
        error: None,
        same_as_line: None,
    };
    let parsed = (|| -> Result<ImportRow, String> {
        if record.len() != layout.width {
            return Err(format!(
                "{} fields, the header has {}",
                record.len(),
                layout.width
            ));
        }
        let account = text("account")?;
        if account.is_empty() {
            return Err("account is empty".into());
        }
        let reference = text("reference")?;
        if reference.is_empty() {
            return Err("reference is empty: every row needs the identity it has in the system it comes from".into());
        }
        let amount = text("amount")?;
        if amount.is_empty() {
            return Err("amount is empty".into());
        }
        let amount = Credits::parse(&amount).map_err(|e| format!("amount: {e}"))?;
        let expires_at = match text("expires_at")? {
            e if e.is_empty() => None,
            e => Some(parse_expiry(&e)?),
        };
        let reason = Some(text("reason")?).filter(|r| !r.is_empty());
        Ok(ImportRow {
            line,
            account,
            amount,
            expires_at,
            reason,
            reference,
        })
    })();
    match parsed {
        Ok(row) => {
            report.amount = Some(row.amount);
            report.expires_at = row.expires_at;
            (report, Some(row))
        }
        Err(e) => {
            report.error = Some(e);
            (report, None)
        }
    }
}

/// The file's rows, each with its report (invalid ones without a row).
fn read_rows(path: &Path) -> Result<Vec<(RowReport, Option<ImportRow>)>, Failure> {
    let file = std::fs::File::open(path)
        .map_err(|e| Failure::usage(format!("cannot open {}: {e}", path.display())))?;
    let capped = Capped {
        inner: BufReader::new(file),
        line: 0,
        line_len: 0,
        total: 0,
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(capped);
    let mut record = csv::ByteRecord::new();
    if !reader.read_byte_record(&mut record).map_err(csv_failure)? {
        return Err(refused(
            "the file is empty: a header row (account,amount,reference[,expires_at][,reason]) comes first",
        ));
    }
    let layout = layout(&record)?;
    let mut rows = Vec::new();
    while reader.read_byte_record(&mut record).map_err(csv_failure)? {
        if rows.len() == MAX_ROWS {
            return Err(refused(format!(
                "more than {MAX_ROWS} rows: split the file (each part can be imported on its own; a row imported twice is imported once)"
            )));
        }
        let line = record.position().map_or(0, csv::Position::line);
        rows.push(row_of(&layout, &record, line));
    }
    Ok(rows)
}

pub async fn run(state: &AppState, args: &ImportArgs) -> Result<u8, Failure> {
    let now = unix_now();
    let file = args.file.file_name().map_or_else(
        || args.file.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let mut rows = read_rows(&args.file)?;

    // Within the file: a reference names one row; a repeat of the very same row is
    // covered by the first, a repeat with other values is refused.
    let mut seen: HashMap<String, (u64, String, i64, Option<i64>)> = HashMap::new();
    for (report, row) in &mut rows {
        let Some(r) = row else { continue };
        let values = (r.account.clone(), r.amount.hundredths(), r.expires_at);
        match seen.get(&r.reference) {
            Some((first, account, amount, expires)) => {
                if (account, *amount, *expires) == (&values.0, values.1, values.2) {
                    report.status = Status::AlreadyImported;
                    report.same_as_line = Some(*first);
                } else {
                    report.error = Some(format!(
                        "reference {:?} is also on line {first} with another account, amount or expiry",
                        r.reference
                    ));
                }
                *row = None;
            }
            None => {
                seen.insert(r.reference.clone(), (r.line, values.0, values.1, values.2));
            }
        }
    }
    drop(seen);

    // Against the ledger.
    for (report, row) in &mut rows {
        let Some(r) = row else { continue };
        match state
            .ledger
            .check_import(r, now)
            .await
            .map_err(ledger_failure)?
        {
            Ok(Checked::New) => report.status = Status::WouldImport,
            Ok(Checked::AlreadyImported) => {
                report.status = Status::AlreadyImported;
                *row = None;
            }
            Err(why) => {
                report.error = Some(why);
                *row = None;
            }
        }
    }

    let invalid = rows
        .iter()
        .filter(|(r, _)| r.status == Status::Invalid)
        .count();
    let new: Vec<ImportRow> = rows.iter().filter_map(|(_, r)| r.clone()).collect();
    let write = invalid == 0 && !args.dry_run && !new.is_empty();
    if write {
        let imported = state
            .ledger
            .import(&new, &file, &super::actor(), "cli", now)
            .await
            .map_err(ledger_failure)?;
        let mut imported = imported.into_iter();
        for (report, row) in &mut rows {
            if row.is_some() {
                report.status = if imported.next().unwrap_or(false) {
                    Status::Imported
                } else {
                    Status::AlreadyImported
                };
            }
        }
    }

    let rows: Vec<RowReport> = rows.into_iter().map(|(r, _)| r).collect();
    let count = |s: Status| rows.iter().filter(|r| r.status == s).count();
    let counted = if write {
        Status::Imported
    } else {
        Status::WouldImport
    };
    let credits = Credits(
        rows.iter()
            .filter(|r| r.status == counted)
            .filter_map(|r| r.amount.map(Credits::hundredths))
            // 100,000 rows near the per-row maximum pass i64: the report saturates.
            .fold(0, i64::saturating_add),
    );
    let accounts = {
        let mut a: Vec<&str> = rows
            .iter()
            .filter(|r| r.status == counted)
            .map(|r| r.account.as_str())
            .collect();
        a.sort_unstable();
        a.dedup();
        a.len()
    };
    let report = Report {
        file: args.file.display().to_string(),
        dry_run: args.dry_run,
        written: write,
        imported: count(Status::Imported),
        already_imported: count(Status::AlreadyImported),
        would_import: count(Status::WouldImport),
        invalid,
        credits,
        rows,
    };
    if args.json {
        outln!(
            "{}",
            serde_json::to_string_pretty(&report).expect("reports serialize")
        );
    } else {
        print_text(&report, accounts);
    }
    if invalid > 0 {
        return Err(refused(format!(
            "{} of {} rows are invalid (each is named above with its line); nothing was imported",
            invalid,
            report.rows.len()
        )));
    }
    Ok(0)
}

fn print_text(report: &Report, accounts: usize) {
    let invalid = report.invalid > 0;
    for r in &report.rows {
        // A refused file lists only what must be fixed.
        if invalid && r.status != Status::Invalid {
            continue;
        }
        let what = match r.status {
            Status::Imported => "imported",
            Status::AlreadyImported => "already imported",
            Status::WouldImport => "would import",
            Status::Invalid => "invalid",
        };
        let mut text = format!("line {}: {what}", r.line);
        if let Some(e) = &r.error {
            text.push_str(&format!(": {e}"));
        } else {
            if let Some(a) = r.amount {
                text.push_str(&format!(" {a} credits to {}", r.account));
            }
            text.push_str(&format!(" (reference {}", r.reference));
            if let Some(at) = r.expires_at {
                text.push_str(&format!(", expiring {}", utc(at)));
            }
            if let Some(first) = r.same_as_line {
                text.push_str(&format!(", same row as line {first}"));
            }
            text.push(')');
        }
        outln!("{text}");
    }
    if invalid {
        return;
    }
    let rows = report.rows.len();
    if rows == 0 {
        outln!("{}: no rows to import", report.file);
    } else if report.written {
        outln!(
            "imported {} of {} rows ({} credits to {}); {} already imported",
            report.imported,
            rows,
            report.credits,
            super::count(accounts as u64, "account"),
            report.already_imported
        );
    } else if report.would_import > 0 {
        outln!(
            "dry run: {} of {} rows would be imported ({} credits to {}); {} already imported; nothing was written",
            report.would_import,
            rows,
            report.credits,
            super::count(accounts as u64, "account"),
            report.already_imported
        );
    } else {
        outln!("nothing to import: all {rows} rows were imported before");
    }
}
