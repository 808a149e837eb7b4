//! `stripe-manager credits import FILE.csv`: the real binary on SQLite and PostgreSQL.
//! Balances from another system become one lot and one journal entry per row, once
//! per reference; a file with an invalid row, a dry run, or a file that is not a CSV of
//! balances writes nothing.

mod common;

use std::path::PathBuf;

use common::*;
use sm_store::testing::TestDb;
use stripe_manager::credits::{Balance, Ledger};

/// A file of its own in the temp directory, removed when dropped.
struct Csv(PathBuf);

impl Csv {
    fn new(content: impl AsRef<[u8]>) -> Self {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "sm-import-{}-{}-{}.csv",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed),
            unix_now()
        ));
        std::fs::write(&path, content).expect("temp file");
        Self(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().expect("utf-8 temp path")
    }
}

impl Drop for Csv {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

async fn balance(db: &TestDb, account: &str) -> Balance {
    Ledger::new(db.store.clone())
        .balance(account, unix_now())
        .await
        .expect("balance")
}

async fn import(db: &TestDb, csv: &Csv, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["credits", "import", csv.path()];
    args.extend_from_slice(extra);
    run_cli(&env_for(None, db), &args).await
}

/// Nothing of an import is in the ledger: no lot, no journal entry, no audit record.
async fn assert_nothing_written(db: &TestDb, accounts: &[&str]) {
    for a in accounts {
        assert!(
            db.store.credit_lots(a).await.unwrap().is_empty(),
            "{a} has lots"
        );
        assert!(
            db.store.credit_entries(a, 10).await.unwrap().is_empty(),
            "{a} has journal entries"
        );
    }
    let audit = db
        .store
        .audit_log(Some("credits.import"), 10)
        .await
        .unwrap();
    assert!(audit.is_empty(), "{audit:?}");
}

async fn a_good_file_imports_once_and_a_second_run_changes_nothing(db: TestDb) {
    let csv = Csv::new(
        "account,amount,reference,reason\n\
         user_1,100,qs:1,carried over from QuickScale\n\
         user_2,12.5,qs:2,\n\
         user_1,0.75,qs:3,\"bonus, kept\"\n",
    );

    // A dry run checks and writes nothing.
    let (code, out, err) = import(&db, &csv, &["--dry-run"]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("line 2: would import 100.00 credits to user_1 (reference qs:1)"),
        "{out}"
    );
    assert!(
        out.contains("dry run: 3 of 3 rows would be imported (113.25 credits to 2 accounts); 0 already imported; nothing was written"),
        "{out}"
    );
    assert_nothing_written(&db, &["user_1", "user_2"]).await;

    let (code, out, err) = import(&db, &csv, &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("line 3: imported 12.50 credits to user_2 (reference qs:2)"),
        "{out}"
    );
    assert!(
        out.contains("imported 3 of 3 rows (113.25 credits to 2 accounts); 0 already imported"),
        "{out}"
    );
    let b1 = balance(&db, "user_1").await;
    assert_eq!(b1.available.to_string(), "100.75");
    assert_eq!(b1.pay_as_you_go.to_string(), "100.75");
    assert_eq!(b1.lots.len(), 2, "one lot per row");
    assert!(
        b1.lots
            .iter()
            .all(|l| l.source == "admin" && l.expires_at.is_none())
    );
    assert_eq!(b1.lots[0].source_ref, "import:qs:1");
    assert_eq!(balance(&db, "user_2").await.available.to_string(), "12.50");
    // One journal entry per row, with the operator and the reason (or the file).
    let journal = db.store.credit_entries("user_1", 10).await.unwrap();
    assert_eq!(journal.len(), 2);
    let first = journal
        .iter()
        .find(|e| e.reference == "import:qs:1")
        .unwrap();
    assert_eq!((first.kind.as_str(), first.amount), ("adjust", 10_000));
    assert_eq!(
        first.description.as_deref(),
        Some("carried over from QuickScale")
    );
    assert!(first.actor.as_deref().unwrap_or("").starts_with("cli:"));
    let e2 = db.store.credit_entries("user_2", 10).await.unwrap();
    assert!(
        e2[0]
            .description
            .as_deref()
            .unwrap_or("")
            .starts_with("imported from sm-import-"),
        "{:?}",
        e2[0].description
    );
    for a in ["user_1", "user_2"] {
        let (journal, lots, _) = db.store.credit_totals(a).await.unwrap();
        assert_eq!(journal, lots, "the journal sums to the lots of {a}");
    }
    // Audited like other operator actions.
    let audit = db
        .store
        .audit_log(Some("credits.import"), 10)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1, "{audit:?}");
    assert!(audit[0].actor.starts_with("cli:"));
    assert_eq!(audit[0].origin.as_deref(), Some("cli"));
    assert_eq!(
        audit[0].detail.as_deref(),
        Some("3 rows, 113.25 credits (lines 2-4)")
    );

    // The same file again: every row says so, nothing changes.
    let (code, out, err) = import(&db, &csv, &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("line 2: already imported 100.00 credits to user_1 (reference qs:1)"),
        "{out}"
    );
    assert!(
        out.contains("nothing to import: all 3 rows were imported before"),
        "{out}"
    );
    assert_eq!(balance(&db, "user_1").await.lots.len(), 2);
    assert_eq!(balance(&db, "user_1").await.available.to_string(), "100.75");
    assert_eq!(
        db.store.credit_entries("user_1", 10).await.unwrap().len(),
        2
    );
    assert_eq!(
        db.store
            .audit_log(Some("credits.import"), 10)
            .await
            .unwrap()
            .len(),
        1
    );

    // JSON, for scripts: a file with one new row among imported ones.
    let more =
        Csv::new("reference,account,amount\nqs:1,user_1,100\nqs:4,user_3,5\nqs:4,user_3,5.00\n");
    let (code, out, err) = import(&db, &more, &["--json"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(v["written"], true);
    assert_eq!(v["imported"], 1);
    assert_eq!(v["already_imported"], 2);
    assert_eq!(v["invalid"], 0);
    assert_eq!(v["credits"], "5.00");
    assert_eq!(v["rows"][0]["status"], "already_imported");
    assert_eq!(v["rows"][1]["status"], "imported");
    assert_eq!(v["rows"][1]["line"], 3);
    assert_eq!(v["rows"][2]["status"], "already_imported");
    assert_eq!(v["rows"][2]["same_as_line"], 3);
    assert_eq!(balance(&db, "user_3").await.available.to_string(), "5.00");
}

async fn a_bad_row_names_its_line_and_nothing_is_written(db: TestDb) {
    let csv = Csv::new(
        "account,amount,reference\n\
         user_a,10,r1\n\
         user_b,ten,r2\n\
         ,5,r3\n\
         user c,5,r4\n\
         user_d,1.234,r5\n\
         user_e,5,\n\
         user_f,5,r1\n\
         user_g,0,r7\n\
         user_h,5\n",
    );
    let (code, out, err) = import(&db, &csv, &[]).await;
    assert_eq!(code, 1, "{out}{err}");
    for (line, says) in [
        (3, "amount: "),
        (4, "account is empty"),
        (5, "account: \"user c\" is not an account reference"),
        (6, "amount: "),
        (7, "reference is empty"),
        (
            8,
            "reference \"r1\" is also on line 2 with another account, amount or expiry",
        ),
        (9, "must be greater than zero"),
        (10, "2 fields, the header has 3"),
    ] {
        let expected = format!("line {line}: invalid: ");
        let row = out
            .lines()
            .find(|l| l.starts_with(&expected))
            .unwrap_or_else(|| panic!("no report for line {line}: {out}"));
        assert!(row.contains(says), "line {line}: {row}");
    }
    assert!(!out.contains("line 2:"), "a valid row is not listed: {out}");
    assert!(
        err.contains(
            "8 of 9 rows are invalid (each is named above with its line); nothing was imported"
        ),
        "{err}"
    );
    assert_nothing_written(&db, &["user_a", "user_f"]).await;

    // The same with --json: every row with its status, and still nothing written.
    let (code, out, _) = import(&db, &csv, &["--json"]).await;
    assert_eq!(code, 1);
    let v: serde_json::Value = serde_json::from_str(&out).expect("one JSON document");
    assert_eq!(v["written"], false);
    assert_eq!(v["invalid"], 8);
    assert_eq!(v["would_import"], 1);
    assert_eq!(v["rows"][0]["status"], "would_import");
    assert_eq!(v["rows"][1]["status"], "invalid");
    assert!(
        v["rows"][1]["error"]
            .as_str()
            .unwrap()
            .starts_with("amount: ")
    );
    assert_nothing_written(&db, &["user_a", "user_f"]).await;

    // A reference imported before with other values is refused, naming both.
    let good = Csv::new("account,amount,reference\nuser_a,10,r1\n");
    assert_eq!(import(&db, &good, &[]).await.0, 0);
    let other = Csv::new("account,amount,reference\nuser_z,3,new\nuser_a,11,r1\n");
    let (code, out, err) = import(&db, &other, &[]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains(
            "line 3: invalid: reference \"r1\" was imported before with other values (lot "
        ),
        "{out}"
    );
    assert!(
        out.contains(
            "10.00 credits to user_a, expiring never); this row says 11.00 credits to user_a"
        ),
        "{out}"
    );
    assert!(db.store.credit_lots("user_z").await.unwrap().is_empty());
    assert_eq!(balance(&db, "user_a").await.available.to_string(), "10.00");
}

async fn expiry_is_honoured(db: TestDb) {
    let now = unix_now();
    // Far enough ahead that the binary (on a busy machine) still finds it in the future.
    let soon = now + 8;
    let csv = Csv::new(format!(
        "account,amount,reference,expires_at\n\
         user_x,10,e1,{soon}\n\
         user_x,20,e2,2030-01-31T12:00:00Z\n\
         user_x,30,e3,2030-02-01\n\
         user_x,40,e4,\n"
    ));
    let (code, out, err) = import(&db, &csv, &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("(reference e2, expiring 2030-01-31 12:00 UTC)"),
        "{out}"
    );
    let b = balance(&db, "user_x").await;
    assert_eq!(b.available.to_string(), "100.00");
    let expiry: Vec<Option<i64>> = b.lots.iter().map(|l| l.expires_at).collect();
    assert_eq!(
        expiry,
        [Some(soon), Some(1_896_091_200), Some(1_896_134_400), None]
    );
    // The earliest expiry is spent first, as for any lot.
    let spent = Ledger::new(db.store.clone())
        .consume(
            "user_x",
            &serde_json::from_value(serde_json::json!({"amount": "4", "idempotency_key": "k1"}))
                .unwrap(),
            unix_now(),
        )
        .await
        .unwrap();
    assert_eq!(spent.balance.to_string(), "96.00");
    assert_eq!(
        balance(&db, "user_x").await.lots[0].remaining.to_string(),
        "6.00"
    );

    // Once the first lot has expired it is not available; importing the file again
    // still finds it imported (its date has passed, its reference has not changed).
    let wait = u64::try_from(soon + 1 - unix_now()).unwrap_or(0);
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    let b = balance(&db, "user_x").await;
    assert_eq!(b.available.to_string(), "90.00");
    assert_eq!(b.expired.to_string(), "6.00");
    let (code, out, err) = import(&db, &csv, &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("nothing to import: all 4 rows were imported before"),
        "{out}"
    );

    // A new row whose date has passed, or that is too far ahead, is refused.
    let late = Csv::new(format!(
        "account,amount,reference,expires_at\n\
         user_y,10,p1,{}\n\
         user_y,10,p2,{}\n\
         user_y,10,p3,soon\n",
        now - 60,
        (now + 100) * 1000
    ));
    let (code, out, err) = import(&db, &late, &[]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("line 2: invalid: expires_at "), "{out}");
    assert!(out.contains("is not in the future"), "{out}");
    assert!(out.contains("line 3: invalid: expires_at "), "{out}");
    assert!(out.contains("more than ten years ahead"), "{out}");
    assert!(
        out.contains("line 4: invalid: expires_at \"soon\" is neither Unix seconds"),
        "{out}"
    );
    assert!(db.store.credit_lots("user_y").await.unwrap().is_empty());
}

async fn a_huge_or_garbage_file_fails_cleanly(db: TestDb) {
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // Binary garbage: a "line" far longer than any row.
        (
            (0..20_000u32)
                .map(|i| (i * 7 % 251) as u8 | 1)
                .filter(|b| *b != b'\n')
                .collect(),
            "line 1 is longer than 4096 bytes: is this the CSV file?",
        ),
        (Vec::new(), "the file is empty: a header row"),
        (
            b"name,balance\nuser_1,10\n".to_vec(),
            "line 1 (the header): unknown column \"name\"",
        ),
        (
            b"account,amount\nuser_1,10\n".to_vec(),
            "line 1 (the header) lacks reference",
        ),
        (
            format!("account,amount,reference\nuser_1,10,{}\n", "r".repeat(5000)).into_bytes(),
            "line 2 is longer than 4096 bytes",
        ),
        (
            {
                let mut f = b"account,amount,reference\n".to_vec();
                for i in 0..100_001 {
                    f.extend_from_slice(format!("user_{i},1,r{i}\n").as_bytes());
                }
                f
            },
            "more than 100000 rows: split the file",
        ),
    ];
    for (content, says) in cases {
        let csv = Csv::new(&content);
        let (code, out, err) = import(&db, &csv, &["--json"]).await;
        assert_eq!(code, 1, "{says}: {out}{err}");
        assert!(err.contains(says), "{says}: {err}");
        assert!(out.is_empty(), "{out}");
        assert!(!err.contains("panicked"), "{err}");
    }

    // Not UTF-8 (Latin-1 from an old export): the row says so, nothing is written.
    let csv = Csv::new(b"account,amount,reference,reason\nuser_1,10,r1,caf\xe9\nuser_2,1,r2,ok\n");
    let (code, out, err) = import(&db, &csv, &[]).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(
        out.contains("line 2: invalid: reason is not UTF-8 text: save the file as UTF-8"),
        "{out}"
    );
    assert_nothing_written(&db, &["user_1", "user_2"]).await;

    // A file that is not there is a usage error.
    let (code, _, err) = run_cli(
        &env_for(None, &db),
        &["credits", "import", "/nonexistent/balances.csv"],
    )
    .await;
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("cannot open /nonexistent/balances.csv"),
        "{err}"
    );

    // A UTF-8 byte-order mark (a spreadsheet's export) and CRLF line ends are fine.
    let csv = Csv::new(b"\xef\xbb\xbfAccount,Amount,Reference\r\nuser_1,10,r1\r\n");
    let (code, out, err) = import(&db, &csv, &[]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(balance(&db, "user_1").await.available.to_string(), "10.00");
}

sm_store::contract_tests!(
    a_good_file_imports_once_and_a_second_run_changes_nothing,
    a_bad_row_names_its_line_and_nothing_is_written,
    expiry_is_honoured,
    a_huge_or_garbage_file_fails_cleanly,
    two_runs_of_one_file_at_once_import_each_row_once,
);

/// Two operators (two processes, one database) import the same file at the same time:
/// each row's lot is claimed by its insert (the unique reference), so every row is
/// imported once, by one run or the other, and both runs succeed.
async fn two_runs_of_one_file_at_once_import_each_row_once(db: TestDb) {
    let mut content = String::from("account,amount,reference\n");
    for i in 0..600 {
        content.push_str(&format!("user_{},1,race:{i}\n", i % 7));
    }
    let csv = Csv::new(content);
    let (a, b) = tokio::join!(import(&db, &csv, &[]), import(&db, &csv, &[]));
    for (code, out, err) in [&a, &b] {
        assert_eq!(*code, 0, "{out}{err}");
    }
    let imported = |out: &str| -> usize {
        out.lines()
            .filter(|l| l.contains(": imported ") && l.contains("(reference race:"))
            .count()
    };
    assert_eq!(imported(&a.1) + imported(&b.1), 600, "{}\n{}", a.1, b.1);
    let mut total = 0;
    for i in 0..7 {
        let account = format!("user_{i}");
        let lots = db.store.credit_lots(&account).await.unwrap();
        let expected = (0..600).filter(|n| n % 7 == i).count();
        assert_eq!(lots.len(), expected, "{account}: one lot per row");
        total += lots.len();
        let entries = db.store.credit_entries(&account, 1000).await.unwrap();
        assert_eq!(
            entries.len(),
            expected,
            "{account}: one journal entry per row"
        );
    }
    assert_eq!(total, 600);
}
