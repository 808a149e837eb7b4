//! The command line: `stripe-manager <command>`. Exit codes are part of the contract:
//! 0 success, 1 finished with some items failed or invalid, 2 configuration or usage
//! error, 3 Stripe unavailable, whether or not whoever reads the output reads it all.

// Output goes through `out` (see there why).
#![deny(clippy::print_stdout, clippy::print_stderr)]

#[macro_use]
mod out;

mod accounts;
mod admin;
mod app_events;
mod check;
mod credits;
mod events;
mod import;
mod maintenance;
mod migrate;
mod products;
mod serve;
mod sync;
mod table;
mod token;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::{Config, ConfigError, Sources};
use crate::manager::Unavailable;

/// The heading of the flags every command takes.
const GLOBAL_OPTIONS: &str = "Global options";

/// The binary's command line: the global flags and one command (see [`main`]).
#[derive(Debug, Parser)]
#[command(
    name = "stripe-manager",
    version = crate::VERSION,
    about = "Stripe as the single source of truth for a SaaS catalog and its credits"
)]
pub struct Cli {
    // The global flags are shown under their own heading in every subcommand's help, so
    // the command's own options come first and read alone.
    /// Read configuration from this file as well as the environment (default: .env if present).
    #[arg(long, global = true, value_name = "PATH", help_heading = GLOBAL_OPTIONS)]
    env_file: Option<PathBuf>,
    /// Overrides DATABASE_URL.
    #[arg(long, global = true, value_name = "URL", help_heading = GLOBAL_OPTIONS)]
    database_url: Option<String>,
    /// Overrides BIND.
    #[arg(long, global = true, value_name = "ADDR", help_heading = GLOBAL_OPTIONS)]
    bind: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the HTTP server and the background workers (migrates the database first).
    Serve,
    /// Apply database migrations and exit (forward only; refuses a database a newer
    /// release migrated).
    Migrate {
        /// List applied and pending migrations instead; exit 1 if some are pending, 2 if
        /// the database is newer than this binary.
        #[arg(long)]
        status: bool,
        /// Print JSON (times as Unix seconds).
        #[arg(long)]
        json: bool,
    },
    /// Delete what the retention settings let go (WEBHOOK_RETENTION_DAYS and the rest);
    /// the running service does the same every PRUNE_INTERVAL_SECS.
    Prune {
        /// Count what would be deleted; delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Copy the SQLite database to PATH while the service runs (a consistent snapshot);
    /// PostgreSQL is backed up with pg_dump (docs/USER_GUIDE.md).
    Backup {
        /// Where to write the copy; must not exist.
        #[arg(value_name = "PATH")]
        path: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the HTTP API's OpenAPI 3.1 document (the one `GET /api/v1/openapi.json`
    /// serves; clients are generated from it). Needs no configuration.
    Openapi,
    /// Validate the configuration, probe Stripe, report mode and API version.
    Check {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Sync the given products, or the whole catalog, from Stripe (never the other way).
    Sync {
        /// Product ids (prod_…); none means every product and price.
        #[arg(value_name = "PRODUCT_ID")]
        products: Vec<String>,
        /// What to sync: `catalog` (the default), `customers`, `subscriptions`,
        /// `invoices`, `charges`, comma-separated, or `all`.
        #[arg(long, value_name = "LIST")]
        objects: Option<String>,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and replay stored webhook events.
    Events {
        #[command(subcommand)]
        command: events::EventsCommand,
    },
    /// Events sent to the app (APP_WEBHOOK_URL): list them, send them again.
    AppEvents {
        #[command(subcommand)]
        command: app_events::AppEventsCommand,
    },
    /// The credit ledger: balances, history, grants, deductions and imports.
    Credits {
        #[command(subcommand)]
        command: credits::CreditsCommand,
    },
    /// Accounts: customer, subscriptions, entitlement (local data).
    Accounts {
        #[command(subcommand)]
        command: accounts::AccountsCommand,
    },
    /// Billing actions on an account's subscription (they call Stripe; audited).
    Subscription {
        #[command(subcommand)]
        command: accounts::SubscriptionCommand,
    },
    /// An account's payments, and staff refunds (they call Stripe; audited).
    Payments {
        #[command(subcommand)]
        command: accounts::PaymentsCommand,
    },
    /// Admin logins for the web UI.
    Admin {
        #[command(subcommand)]
        command: admin::AdminCommand,
    },
    /// API tokens for /api/v1.
    Token {
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// List the local catalog (active products unless --all).
    Products {
        /// Include archived and deleted products.
        #[arg(long)]
        all: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// The outcome of a command that did not succeed: what to print and the exit code.
#[derive(Debug)]
pub struct Failure {
    /// The process's exit code: 2 for a usage or configuration error (retrying will not help),
    /// 3 when Stripe is unreachable (retry later), 1 for anything else.
    pub code: u8,
    /// What is printed to stderr after `error: `.
    pub message: String,
}

impl Failure {
    /// A usage or configuration error: exit code 2.
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }

    /// Stripe not usable: exit code 2 when it is disabled by configuration, 3 when it is
    /// unreachable (a retry may succeed).
    pub fn stripe(e: &Unavailable) -> Self {
        let code = match e {
            Unavailable::Disabled { .. } => 2,
            _ => 3,
        };
        Self {
            code,
            message: e.to_string(),
        }
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Self {
        Failure::usage(e.to_string())
    }
}

impl From<sm_store::StoreError> for Failure {
    fn from(e: sm_store::StoreError) -> Self {
        Failure {
            // A database newer than the binary is fixed by running the newer binary,
            // not by retrying (systemd does not restart on 2).
            code: if matches!(e, sm_store::StoreError::NewerSchema { .. }) {
                2
            } else {
                1
            },
            message: e.to_string(),
        }
    }
}

impl From<crate::state::StartError> for Failure {
    fn from(e: crate::state::StartError) -> Self {
        let code = match e {
            crate::state::StartError::Bind { .. }
            | crate::state::StartError::Store(sm_store::StoreError::NewerSchema { .. }) => 2,
            _ => 1,
        };
        Failure {
            code,
            message: error_chain(&e),
        }
    }
}

pub use crate::error_chain;

/// `1 request`, `2 requests`: a count with its noun.
pub fn count(n: impl Into<u64>, noun: &str) -> String {
    let n = n.into();
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// Who runs a CLI action, for the audit log: `cli:` and the login name — `$USER`, else
/// `$LOGNAME`, else the name of this process's user id in `/etc/passwd` (cron and
/// systemd start commands without `$USER`), else `uid:N`.
pub fn actor() -> String {
    let name = ["USER", "LOGNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|n| !n.trim().is_empty()))
        .or_else(login_name)
        .unwrap_or_else(|| "unknown".into());
    format!("cli:{name}")
}

fn login_name() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let uid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))?
        .split_whitespace()
        .next()?
        .to_owned();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    Some(
        passwd
            .lines()
            .map(|l| l.split(':').collect::<Vec<_>>())
            .find(|f| f.len() > 2 && f[2] == uid)
            .map(|f| f[0].to_owned())
            .unwrap_or_else(|| format!("uid:{uid}")),
    )
}

impl Cli {
    fn sources(&self) -> Result<Sources, ConfigError> {
        let (path, required) = match &self.env_file {
            Some(p) => (p.clone(), true),
            None => (PathBuf::from(".env"), false),
        };
        let mut sources = Sources::from_process(&path, required)?;
        let mut flags = HashMap::new();
        if let Some(url) = &self.database_url {
            flags.insert("DATABASE_URL", url.clone());
        }
        if let Some(bind) = &self.bind {
            flags.insert("BIND", bind.clone());
        }
        sources.flags = flags;
        Ok(sources)
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            errln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => ExitCode::from(out::finish(code)),
        Err(failure) => {
            errln!("error: {}", failure.message);
            ExitCode::from(failure.code)
        }
    }
}

async fn run(cli: Cli) -> Result<u8, Failure> {
    if let Command::Openapi = cli.command {
        out::write(format_args!("{}", *crate::http::openapi::DOCUMENT));
        return Ok(0);
    }
    let sources = cli.sources()?;
    // `check` reports configuration problems itself, in its own format.
    if let Command::Check { json } = cli.command {
        return check::run(&sources, json).await;
    }
    let config = Config::load(&sources)?;
    if matches!(cli.command, Command::Serve) {
        crate::telemetry::init_logging(config.log_format);
    } else {
        crate::telemetry::init_command_logging(config.log_format);
    }
    match cli.command {
        Command::Serve => serve::run(config).await,
        Command::Migrate { json, status } => migrate::run(config, json, status).await,
        Command::Prune { dry_run, json } => {
            maintenance::prune(open_as_is(config).await?, dry_run, json).await
        }
        Command::Backup { path, json } => maintenance::backup(&config, &path, json).await,
        Command::Sync {
            products,
            objects,
            json,
        } => sync::run(open(config).await?, products, objects, json).await,
        Command::Products { all, json } => products::run(open(config).await?, all, json).await,
        Command::Events { command } => events::run(open(config).await?, command).await,
        Command::Credits { command } => credits::run(open(config).await?, command).await,
        Command::AppEvents { command } => app_events::run(open(config).await?, command).await,
        Command::Token { command } => token::run(open(config).await?, command).await,
        Command::Admin { command } => admin::run(open(config).await?, command).await,
        Command::Accounts { command } => accounts::run_accounts(open(config).await?, command).await,
        Command::Subscription { command } => {
            accounts::run_subscription(open(config).await?, command).await
        }
        Command::Payments { command } => accounts::run_payments(open(config).await?, command).await,
        Command::Check { .. } | Command::Openapi => unreachable!("handled above"),
    }
}

/// The state for `prune`, which must not change the schema under running instances (an
/// upgrade's new binary run next to the old ones). Refuses a database with pending
/// migrations or a newer one, rather than guessing at its tables.
async fn open_as_is(config: Config) -> Result<crate::state::AppState, Failure> {
    let options = sm_store::ConnectOptions {
        max_connections: 4,
        create_if_missing: false,
        ..Default::default()
    };
    let state = crate::state::AppState::build(config, &options).await?;
    let applied = state.store.applied_migrations().await?;
    state.store.refuse_newer(&applied)?;
    if !state.store.is_migrated().await? {
        state.store.close().await;
        return Err(Failure::usage(
            "the database has pending migrations (`stripe-manager migrate --status`): this binary \
             is newer than the database. Prune with the binary that runs it, or migrate first",
        ));
    }
    Ok(state)
}

/// The state a one-shot command needs, on a migrated database.
async fn open(config: Config) -> Result<crate::state::AppState, Failure> {
    let options = sm_store::ConnectOptions {
        max_connections: 4,
        ..Default::default()
    };
    let state = crate::state::AppState::build(config, &options).await?;
    state.store.migrate().await?;
    Ok(state)
}
