//! `stripe-manager admin create-user EMAIL`: an admin login. The password is read from
//! standard input (one line), never from an argument, so it stays out of shell history
//! and process listings.

use std::io::BufRead;

use clap::Subcommand;
use sm_store::credits::NewAudit;

use super::Failure;
use crate::admin::{MIN_PASSWORD, hash_password};
use crate::clock::unix_now;
use crate::state::AppState;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin user; the password is read from standard input.
    CreateUser { email: String },
}

pub async fn run(state: AppState, command: AdminCommand) -> Result<u8, Failure> {
    let AdminCommand::CreateUser { email } = command;
    let email = email.trim().to_ascii_lowercase();
    let valid = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(user, domain)| !user.is_empty() && domain.contains('.'))
        && !email.chars().any(char::is_whitespace);
    if !valid {
        return Err(Failure::usage(format!("{email:?} is not an email address")));
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| Failure::usage(format!("could not read the password from stdin: {e}")))?;
    let password = line.trim_end_matches(['\n', '\r']);
    if password.chars().count() < MIN_PASSWORD {
        return Err(Failure::usage(format!(
            "the password (read from stdin) must be at least {MIN_PASSWORD} characters"
        )));
    }
    let hash = hash_password(password).map_err(|e| Failure {
        code: 1,
        message: e,
    })?;
    let now = unix_now();
    let actor = super::actor();
    let audit = NewAudit {
        actor: &actor,
        action: "admin.create_user",
        target: Some(&email),
        detail: None,
        origin: Some("cli"),
        result: "ok",
    };
    let created = state
        .store
        .create_admin(&email, &hash, Some(&audit), now)
        .await?;
    if created.is_none() {
        return Err(Failure::usage(format!(
            "an admin with the email {email} exists"
        )));
    }
    println!("admin {email} created; sign in at /admin/login");
    Ok(0)
}
