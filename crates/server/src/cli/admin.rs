//! `stripe-manager admin create-user|list|reset-password|unlock|disable|enable`: admin
//! logins for the web UI, and what an operator does for a colleague who is locked out or
//! has left. Every change is audited (actor `cli:$USER`, origin `cli`); an unknown email
//! exits 1 and changes nothing.
//!
//! A password is never an argument (it would stay in shell history and process
//! listings): on a terminal it is asked twice without echo; otherwise one line is read
//! from standard input, so a script can pipe it in.

use std::io::{BufRead, IsTerminal};

use clap::Subcommand;
use serde_json::json;
use sm_store::credits::NewAudit;

use super::{Failure, table};
use crate::admin::{MIN_PASSWORD, hash_password};
use crate::clock::{unix_now, utc, when};
use crate::state::AppState;

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create an admin login; the password is asked on a terminal (twice, not shown) or
    /// read as one line from standard input.
    CreateUser {
        /// The sign-in email (kept in lower case).
        email: String,
    },
    /// List admin logins: email, created, and whether each is active, disabled or
    /// locked by failed sign-ins.
    List {
        /// Print JSON (times as Unix seconds; never a password hash).
        #[arg(long)]
        json: bool,
    },
    /// Set a new password (asked like create-user's); signs the admin out everywhere and
    /// lifts a sign-in lock on the email.
    ResetPassword {
        /// The admin's email.
        email: String,
    },
    /// Lift the sign-in lock that failed attempts put on the admin's email, at once
    /// instead of after 15 minutes.
    Unlock {
        /// The admin's email.
        email: String,
        /// Also lift the lock on this client address (as the audit log's `login locked`
        /// entries name it): the form locks the address as well as the email.
        #[arg(long, value_name = "ADDR")]
        address: Option<String>,
    },
    /// Disable a login: its sessions end at once and it cannot sign in until enabled.
    Disable {
        /// The admin's email.
        email: String,
    },
    /// Enable a disabled login again (its old sessions stay ended).
    Enable {
        /// The admin's email.
        email: String,
    },
}

pub async fn run(state: AppState, command: AdminCommand) -> Result<u8, Failure> {
    match command {
        AdminCommand::CreateUser { email } => create_user(&state, &email).await,
        AdminCommand::List { json } => list(&state, json).await,
        AdminCommand::ResetPassword { email } => reset_password(&state, &email).await,
        AdminCommand::Unlock { email, address } => unlock(&state, &email, address.as_deref()).await,
        AdminCommand::Disable { email } => set_disabled(&state, &email, true).await,
        AdminCommand::Enable { email } => set_disabled(&state, &email, false).await,
    }
}

/// The email as the sign-in form keys it: trimmed, lower case.
fn normalized(email: &str) -> String {
    email.trim().to_ascii_lowercase()
}

/// An audit entry of this CLI run for `email`.
fn audit<'a>(actor: &'a str, action: &'a str, email: &'a str) -> NewAudit<'a> {
    NewAudit {
        actor,
        action,
        target: Some(email),
        detail: None,
        origin: Some("cli"),
        result: "ok",
    }
}

/// Exit 1 for an email no admin has: the operator mistyped it, or it was never created.
fn no_such_admin(email: &str) -> Failure {
    Failure {
        code: 1,
        message: format!(
            "no admin with the email {email}; nothing changed (`stripe-manager admin list` shows them)"
        ),
    }
}

async fn create_user(state: &AppState, email: &str) -> Result<u8, Failure> {
    let email = crate::admin::parse_email(email).map_err(Failure::usage)?;
    let hash = new_password_hash()?;
    let actor = super::actor();
    let created = state
        .store
        .create_admin(
            &email,
            &hash,
            Some(&audit(&actor, "admin.create_user", &email)),
            unix_now(),
        )
        .await?;
    if created.is_none() {
        return Err(Failure::usage(format!(
            "an admin with the email {email} exists"
        )));
    }
    outln!("admin {email} created; sign in at /admin/login");
    Ok(0)
}

async fn list(state: &AppState, json: bool) -> Result<u8, Failure> {
    let admins = state.store.list_admins().await?;
    let now = unix_now();
    // A handful of admins: one lookup each is cheaper than a join the store does not need.
    let mut locks = Vec::with_capacity(admins.len());
    for a in &admins {
        let t = state.store.throttle(&format!("email:{}", a.email)).await?;
        locks.push(t.locked_until.filter(|until| *until > now));
    }
    if json {
        let rows: Vec<_> = admins
            .iter()
            .zip(&locks)
            .map(|(a, locked_until)| {
                json!({
                    "email": a.email,
                    "created_at": a.created_at,
                    "disabled_at": a.disabled_at,
                    "locked_until": locked_until,
                })
            })
            .collect();
        outln!(
            "{}",
            serde_json::to_string_pretty(&json!({ "data": rows })).expect("serializable")
        );
        return Ok(0);
    }
    if admins.is_empty() {
        outln!("no admins; create one with `stripe-manager admin create-user EMAIL`");
        return Ok(0);
    }
    let mut t = table::new(&["EMAIL", "CREATED", "STATUS"]);
    for (a, locked_until) in admins.iter().zip(&locks) {
        let status = match (a.disabled_at, locked_until) {
            (Some(at), _) => format!("disabled since {}", utc(at)),
            (None, Some(until)) => format!("active, locked until {}", when(*until, now)),
            (None, None) => "active".to_owned(),
        };
        t.add_row(vec![a.email.clone(), utc(a.created_at), status]);
    }
    table::print(&t);
    Ok(0)
}

async fn reset_password(state: &AppState, email: &str) -> Result<u8, Failure> {
    let email = normalized(email);
    // Refuse an unknown email before asking for a password that would go nowhere.
    if state.store.admin_by_email(&email).await?.is_none() {
        return Err(no_such_admin(&email));
    }
    let hash = new_password_hash()?;
    let actor = super::actor();
    let done = state
        .store
        .set_admin_password(
            &email,
            &hash,
            Some(&audit(&actor, "admin.reset_password", &email)),
            unix_now(),
        )
        .await?;
    if !done {
        return Err(no_such_admin(&email));
    }
    outln!("password of {email} reset; every session of theirs has ended");
    Ok(0)
}

async fn unlock(state: &AppState, email: &str, address: Option<&str>) -> Result<u8, Failure> {
    let email = normalized(email);
    let address = address.map(str::trim).filter(|a| !a.is_empty());
    let actor = super::actor();
    let Some(lifted) =
        crate::admin::lift_lock(&state.store, &email, address, &actor, "cli", unix_now()).await?
    else {
        return Err(no_such_admin(&email));
    };
    if lifted.is_empty() {
        outln!(
            "{email} unlocked (a lock on a client address they never signed in from stays: see --address)"
        );
    } else {
        outln!(
            "{email} unlocked, and the addresses {}; they can sign in again",
            lifted.join(", ")
        );
    }
    Ok(0)
}

async fn set_disabled(state: &AppState, email: &str, disabled: bool) -> Result<u8, Failure> {
    let email = normalized(email);
    let action = if disabled {
        "admin.disable"
    } else {
        "admin.enable"
    };
    let actor = super::actor();
    let Some(revoked) = state
        .store
        .set_admin_disabled(
            &email,
            disabled,
            Some(&audit(&actor, action, &email)),
            unix_now(),
        )
        .await?
    else {
        return Err(no_such_admin(&email));
    };
    if disabled {
        outln!(
            "{email} disabled; their sessions have ended and the {revoked} API token(s) they created are revoked"
        );
    } else {
        outln!("{email} enabled; they can sign in again");
    }
    Ok(0)
}

/// Asks for a new password (see the module comment), checks it and hashes it.
fn new_password_hash() -> Result<String, Failure> {
    let password = if std::io::stdin().is_terminal() {
        confirmed(|prompt| rpassword::prompt_password(prompt))?
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::usage(format!("could not read the password from stdin: {e}")))?;
        let password = line.trim_end_matches(['\n', '\r']).to_owned();
        long_enough(&password, "the password (read from stdin)")?;
        password
    };
    hash_password(&password).map_err(|e| Failure {
        code: 1,
        message: e,
    })
}

/// A password typed twice through `ask` (which shows its prompt and reads a line without
/// echo): refused when too short, before the second question, or when the two differ (a
/// typo nobody saw would lock the admin out).
fn confirmed(mut ask: impl FnMut(&str) -> std::io::Result<String>) -> Result<String, Failure> {
    let read = |e: std::io::Error| Failure::usage(format!("could not read the password: {e}"));
    let first = ask("New password: ").map_err(read)?;
    long_enough(&first, "the password")?;
    let second = ask("Repeat it: ").map_err(read)?;
    if first != second {
        return Err(Failure::usage(
            "the two passwords differ; nothing changed (run the command again)",
        ));
    }
    Ok(first)
}

fn long_enough(password: &str, what: &str) -> Result<(), Failure> {
    if password.chars().count() < MIN_PASSWORD {
        return Err(Failure::usage(format!(
            "{what} must be at least {MIN_PASSWORD} characters"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::confirmed;

    /// Answers the prompts in order, as a person at the terminal would.
    fn typed(answers: &[&str]) -> impl FnMut(&str) -> std::io::Result<String> {
        let mut answers: Vec<String> = answers.iter().rev().map(|s| s.to_string()).collect();
        move |_prompt| {
            answers
                .pop()
                .ok_or_else(|| std::io::Error::other("asked once too often"))
        }
    }

    #[test]
    fn a_password_typed_twice_alike_is_taken() {
        let p = confirmed(typed(&["a long enough one", "a long enough one"])).unwrap();
        assert_eq!(p, "a long enough one");
    }

    #[test]
    fn two_different_passwords_are_refused() {
        let e = confirmed(typed(&["a long enough one", "a long enough onf"])).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.message.contains("differ"), "{}", e.message);
    }

    #[test]
    fn a_short_password_is_refused_before_it_is_asked_again() {
        let e = confirmed(typed(&["short"])).unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.message.contains("at least 12"), "{}", e.message);
    }

    #[test]
    fn a_closed_terminal_is_an_error_not_an_empty_password() {
        let e = confirmed(typed(&[])).unwrap_err();
        assert!(e.message.contains("could not read"), "{}", e.message);
    }
}
