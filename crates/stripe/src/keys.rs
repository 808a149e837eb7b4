//! Keys and secrets that parse, know their mode, and never print themselves.
//!
//! Every secret is held in a [`SecretString`]; `Debug` shows only the key's kind and
//! mode, and error messages describe what is wrong with a value without quoting it.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use sm_domain::Mode;

/// What a key value is wrong with. Messages never contain the value itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("is empty")]
    Empty,
    #[error("contains whitespace or characters Stripe keys never have")]
    BadCharacters,
    #[error(
        "is a publishable key (pk_…); use a secret key (sk_test_…/sk_live_…) or a restricted key (rk_test_…/rk_live_…)"
    )]
    PublishableGiven,
    #[error("is a secret key; this setting takes a publishable key (pk_test_…/pk_live_…)")]
    SecretGiven,
    #[error("must start with {expected}")]
    WrongPrefix { expected: &'static str },
    #[error("has nothing after its prefix")]
    NoBody,
    #[error("entry {index} of the comma-separated list {problem}")]
    InList {
        index: usize,
        problem: Box<KeyError>,
    },
}

/// Secret (`sk_`) or restricted (`rk_`) API key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    Secret,
    Restricted,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Secret => "secret",
            KeyKind::Restricted => "restricted",
        }
    }
}

fn body_ok(body: &str) -> Result<(), KeyError> {
    if body.is_empty() {
        return Err(KeyError::NoBody);
    }
    if !body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
        return Err(KeyError::BadCharacters);
    }
    Ok(())
}

fn split_mode(rest: &str) -> Option<(Mode, &str)> {
    if let Some(body) = rest.strip_prefix("test_") {
        Some((Mode::Test, body))
    } else {
        rest.strip_prefix("live_").map(|body| (Mode::Live, body))
    }
}

/// A Stripe secret or restricted API key. Cloning is cheap enough (one small string).
#[derive(Clone)]
pub struct ApiKey {
    secret: SecretString,
    kind: KeyKind,
    mode: Mode,
}

impl ApiKey {
    /// Parses `sk_test_…`, `sk_live_…`, `rk_test_…` or `rk_live_…`.
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        if raw.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(KeyError::BadCharacters);
        }
        let (kind, rest) = if let Some(rest) = raw.strip_prefix("sk_") {
            (KeyKind::Secret, rest)
        } else if let Some(rest) = raw.strip_prefix("rk_") {
            (KeyKind::Restricted, rest)
        } else if raw.starts_with("pk_") {
            return Err(KeyError::PublishableGiven);
        } else {
            return Err(KeyError::WrongPrefix {
                expected: "sk_test_, sk_live_, rk_test_ or rk_live_",
            });
        };
        let (mode, body) = split_mode(rest).ok_or(KeyError::WrongPrefix {
            expected: "sk_test_, sk_live_, rk_test_ or rk_live_",
        })?;
        body_ok(body)?;
        Ok(Self {
            secret: SecretString::from(raw.to_owned()),
            kind,
            mode,
        })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The key itself, for the `Authorization` header only.
    pub(crate) fn expose(&self) -> &str {
        self.secret.expose_secret()
    }

    /// A form that is safe to print: the prefix only (`sk_test_…`).
    pub fn redacted(&self) -> String {
        let kind = match self.kind {
            KeyKind::Secret => "sk",
            KeyKind::Restricted => "rk",
        };
        format!("{kind}_{}_…", self.mode)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("kind", &self.kind)
            .field("mode", &self.mode)
            .field("secret", &"[REDACTED]")
            .finish()
    }
}

/// A publishable key (`pk_test_…`/`pk_live_…`). Not secret, but parsed so its mode can be
/// compared with the secret key's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishableKey {
    value: String,
    mode: Mode,
}

impl PublishableKey {
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        if raw.is_empty() {
            return Err(KeyError::Empty);
        }
        if raw.starts_with("sk_") || raw.starts_with("rk_") {
            return Err(KeyError::SecretGiven);
        }
        let rest = raw.strip_prefix("pk_").ok_or(KeyError::WrongPrefix {
            expected: "pk_test_ or pk_live_",
        })?;
        let (mode, body) = split_mode(rest).ok_or(KeyError::WrongPrefix {
            expected: "pk_test_ or pk_live_",
        })?;
        body_ok(body)?;
        Ok(Self {
            value: raw.to_owned(),
            mode,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn as_str(&self) -> &str {
        &self.value
    }
}

/// One or more webhook signing secrets (`whsec_…`). Several are configured while a
/// secret is being rolled: Stripe signs with both for up to 24 hours.
#[derive(Clone)]
pub struct WebhookSecrets {
    secrets: Vec<SecretString>,
}

impl WebhookSecrets {
    /// Parses a comma-separated list; spaces around commas are allowed, empty entries
    /// are not.
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        if raw.trim().is_empty() {
            return Err(KeyError::Empty);
        }
        let mut secrets = Vec::new();
        for (i, part) in raw.split(',').enumerate() {
            let part = part.trim();
            let check = || -> Result<(), KeyError> {
                if part.is_empty() {
                    return Err(KeyError::Empty);
                }
                let body = part
                    .strip_prefix("whsec_")
                    .ok_or(KeyError::WrongPrefix { expected: "whsec_" })?;
                if body.is_empty() {
                    return Err(KeyError::NoBody);
                }
                // Stripe's secrets are base64; accept its alphabet and nothing else.
                if !body.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=' | b'_' | b'-')
                }) {
                    return Err(KeyError::BadCharacters);
                }
                Ok(())
            };
            check().map_err(|problem| KeyError::InList {
                index: i + 1,
                problem: Box::new(problem),
            })?;
            secrets.push(SecretString::from(part.to_owned()));
        }
        Ok(Self { secrets })
    }

    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// The raw secrets, for computing HMACs only.
    pub fn expose_all(&self) -> impl Iterator<Item = &[u8]> {
        self.secrets.iter().map(|s| s.expose_secret().as_bytes())
    }
}

impl fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebhookSecrets([REDACTED; {}])", self.secrets.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "sk_test_51AbCdEfGhIjKlMnOp";

    #[test]
    fn parses_every_kind_and_mode() {
        let k = ApiKey::parse(KEY).unwrap();
        assert_eq!((k.kind(), k.mode()), (KeyKind::Secret, Mode::Test));
        let k = ApiKey::parse("rk_live_abc").unwrap();
        assert_eq!((k.kind(), k.mode()), (KeyKind::Restricted, Mode::Live));
        assert_eq!(k.redacted(), "rk_live_…");
    }

    #[test]
    fn rejects_with_reasons_that_do_not_quote_the_value() {
        for (raw, want) in [
            ("", KeyError::Empty),
            ("pk_test_abc", KeyError::PublishableGiven),
            (
                "sk_prod_abc",
                KeyError::WrongPrefix {
                    expected: "sk_test_, sk_live_, rk_test_ or rk_live_",
                },
            ),
            ("sk_test_", KeyError::NoBody),
            ("sk_test_ab cd", KeyError::BadCharacters),
            ("sk_test_abc\n", KeyError::BadCharacters),
            ("sk_test_ab-cd", KeyError::BadCharacters),
        ] {
            let err = ApiKey::parse(raw).unwrap_err();
            assert_eq!(err, want, "{raw:?}");
            if raw.len() > 8 {
                assert!(!err.to_string().contains(raw.trim()), "{err}");
            }
        }
    }

    #[test]
    fn debug_never_shows_the_key() {
        let k = ApiKey::parse(KEY).unwrap();
        let shown = format!("{k:?}");
        assert!(!shown.contains("51AbCd"), "{shown}");
        assert!(shown.contains("REDACTED"));
        let w = WebhookSecrets::parse("whsec_abc123, whsec_def456").unwrap();
        assert_eq!(w.len(), 2);
        assert!(!format!("{w:?}").contains("abc123"));
    }

    #[test]
    fn publishable_keys_know_their_mode() {
        assert_eq!(
            PublishableKey::parse("pk_live_x").unwrap().mode(),
            Mode::Live
        );
        assert_eq!(
            PublishableKey::parse("sk_test_x").unwrap_err(),
            KeyError::SecretGiven
        );
    }

    #[test]
    fn webhook_secret_lists_name_the_bad_entry() {
        let err = WebhookSecrets::parse("whsec_ok,,whsec_b").unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 2 of the comma-separated list is empty"
        );
        let err = WebhookSecrets::parse("whsec_ok, sk_test_x").unwrap_err();
        assert_eq!(
            err.to_string(),
            "entry 2 of the comma-separated list must start with whsec_"
        );
    }
}
