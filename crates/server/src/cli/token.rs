//! `stripe-manager token create|list|revoke`: API tokens for `/api/v1`. A new token is
//! printed once; only its hash is stored. Creation and revocation are audited.

use clap::Subcommand;
use serde_json::json;
use sm_store::credits::NewAudit;

use super::{Failure, table};
use crate::auth::{IssueError, issue_token};
use crate::clock::{unix_now, utc, when};
use crate::state::AppState;

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print it (once).
    Create {
        /// A unique name saying who uses it, e.g. web-app.
        name: String,
        /// catalog:read, sync:write, credits:read, credits:write, checkout:write,
        /// accounts:read, billing:write, credits:grant, entitlements:read, or all;
        /// repeat or separate with commas.
        #[arg(long = "scope", required = true, value_name = "SCOPE")]
        scopes: Vec<String>,
        /// Print JSON (with the token).
        #[arg(long)]
        json: bool,
    },
    /// List tokens (never the tokens themselves).
    List {
        /// Print JSON (times as Unix seconds).
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by name; it stops working at once, on every instance.
    Revoke {
        /// The token's name, as `token list` shows it.
        name: String,
    },
}

fn actor() -> String {
    super::actor()
}

pub async fn run(state: AppState, command: TokenCommand) -> Result<u8, Failure> {
    let store = &state.store;
    let now = unix_now();
    match command {
        TokenCommand::Create { name, scopes, json } => {
            let actor = actor();
            let issued = match issue_token(
                store,
                &name,
                scopes.iter().map(String::as_str),
                &actor,
                "cli",
                now,
            )
            .await
            {
                Ok(issued) => issued,
                Err(IssueError::Store(e)) => return Err(e.into()),
                Err(e) => return Err(Failure::usage(e.to_string())),
            };
            let (id, token, scopes) = (issued.id, issued.token, issued.scopes);
            let name = name.trim();
            let scope_list = scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            if json {
                outln!(
                    "{}",
                    json!({"id": id, "name": name, "scopes": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(), "token": token})
                );
            } else {
                outln!("{token}");
                errln!(
                    "token {name:?} created with {scope_list}; it is shown only now: store it as a secret"
                );
            }
        }
        TokenCommand::List { json } => {
            let tokens = store.list_tokens().await?;
            if json {
                outln!(
                    "{}",
                    serde_json::to_string_pretty(&tokens).expect("rows serialize")
                );
                return Ok(0);
            }
            if tokens.is_empty() {
                outln!("no tokens; create one with `stripe-manager token create NAME --scope …`");
                return Ok(0);
            }
            let mut table =
                table::new(&["ID", "NAME", "PREFIX", "SCOPES", "CREATED", "BY", "STATE"]);
            table::right(&mut table, &[0]);
            for t in tokens {
                let state = match (t.revoked_at, t.last_used_at) {
                    (Some(r), _) => format!("revoked {}", when(r, now)),
                    (None, Some(u)) => format!("last used {}", when(u, now)),
                    (None, None) => "never used".to_owned(),
                };
                table.add_row(vec![
                    t.id.to_string(),
                    t.name,
                    format!("{}…", t.prefix),
                    t.scopes,
                    utc(t.created_at),
                    t.created_by.unwrap_or_else(|| "unknown".to_owned()),
                    state,
                ]);
            }
            table::print(&table);
        }
        TokenCommand::Revoke { name } => {
            let revoked = store.revoke_token(&name, now).await?;
            store
                .audit(
                    &NewAudit {
                        actor: &actor(),
                        action: "token.revoke",
                        target: Some(&name),
                        detail: None,
                        origin: Some("cli"),
                        result: if revoked { "ok" } else { "not_found" },
                    },
                    now,
                )
                .await?;
            if !revoked {
                return Err(Failure {
                    code: 1,
                    message: format!("no live token named {name:?}"),
                });
            }
            outln!("token {name:?} revoked");
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use crate::auth::Scope;
    use crate::cli::Cli;

    /// The help names every scope there is (it once missed `entitlements:read`).
    #[test]
    fn create_s_help_names_every_scope() {
        let mut cli = Cli::command();
        let help = cli
            .find_subcommand_mut("token")
            .and_then(|t| t.find_subcommand_mut("create"))
            .expect("token create")
            .render_long_help()
            .to_string();
        for scope in Scope::ALL {
            assert!(
                help.contains(scope.as_str()),
                "{scope} missing from:\n{help}"
            );
        }
    }
}
