//! `DATABASE_URL`: which backend, and a form of the URL that is safe to print.

use std::fmt;

use crate::Backend;

/// A database URL whose backend we know. `Debug`/`Display` hide any password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl {
    raw: String,
    backend: Backend,
}

impl DatabaseUrl {
    /// Accepts `sqlite://PATH`, `sqlite::memory:`, `postgres://…` and `postgresql://…`.
    /// The error says what is wrong without repeating the URL (it may hold a password).
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("is empty; use sqlite://PATH or postgres://USER@HOST/DB".into());
        }
        let backend = if raw.starts_with("sqlite:") {
            let rest = raw.trim_start_matches("sqlite:").trim_start_matches("//");
            if rest.is_empty() || rest.starts_with('?') {
                return Err(
                    "names no file; use sqlite://PATH (e.g. sqlite://stripe-manager.db)".into(),
                );
            }
            Backend::Sqlite
        } else if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            let rest = raw.split_once("://").map(|(_, r)| r).unwrap_or_default();
            if rest.is_empty() || rest.starts_with('/') && rest.len() == 1 {
                return Err("names no host; use postgres://USER@HOST:PORT/DB".into());
            }
            Backend::Postgres
        } else {
            let scheme = raw.split(':').next().unwrap_or_default();
            return Err(format!(
                "has unsupported scheme {:?}; use sqlite://PATH or postgres://USER@HOST/DB",
                scheme.chars().take(20).collect::<String>()
            ));
        };
        Ok(Self {
            raw: raw.to_owned(),
            backend,
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The file of a SQLite URL (`None` for PostgreSQL and in-memory databases).
    pub fn sqlite_path(&self) -> Option<std::path::PathBuf> {
        if self.backend != Backend::Sqlite || self.raw.contains(":memory:") {
            return None;
        }
        let rest = self
            .raw
            .trim_start_matches("sqlite:")
            .trim_start_matches("//");
        let path = rest.split('?').next().unwrap_or_default();
        Some(std::path::PathBuf::from(path))
    }

    /// The URL itself, for the driver only.
    pub fn expose(&self) -> &str {
        &self.raw
    }

    /// The URL with any password replaced by `***`.
    pub fn redacted(&self) -> String {
        let Some((scheme, rest)) = self.raw.split_once("://") else {
            return self.raw.clone();
        };
        let (authority, tail) = match rest.find(['/', '?']) {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let authority = match authority.rsplit_once('@') {
            Some((userinfo, host)) => match userinfo.split_once(':') {
                Some((user, _password)) => format!("{user}:***@{host}"),
                None => format!("{userinfo}@{host}"),
            },
            None => authority.to_owned(),
        };
        // Query strings may carry `password=`; drop them from what we print.
        let tail = tail.split('?').next().unwrap_or_default();
        format!("{scheme}://{authority}{tail}")
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backends_and_redaction() {
        let u = DatabaseUrl::parse("postgres://app:s3cret@db:5432/main?sslmode=require&password=x")
            .unwrap();
        assert_eq!(u.backend(), Backend::Postgres);
        assert_eq!(u.redacted(), "postgres://app:***@db:5432/main");
        assert!(!format!("{u:?} {u}").contains("s3cret"));
        assert_eq!(
            DatabaseUrl::parse("sqlite://stripe-manager.db")
                .unwrap()
                .backend(),
            Backend::Sqlite
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite::memory:").unwrap().backend(),
            Backend::Sqlite
        );
    }

    #[test]
    fn errors_name_the_problem() {
        assert!(
            DatabaseUrl::parse("mysql://x")
                .unwrap_err()
                .contains("unsupported scheme \"mysql\"")
        );
        assert!(
            DatabaseUrl::parse("sqlite://")
                .unwrap_err()
                .contains("names no file")
        );
        assert!(DatabaseUrl::parse("").unwrap_err().contains("is empty"));
    }
}
