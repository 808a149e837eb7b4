//! Stripe's two worlds: test mode and live mode. Every key carries its mode in its
//! prefix (`sk_test_…`, `pk_live_…`), and mixing modes is a configuration error.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Whether a key (and everything done with it) lives in Stripe's test or live mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Sandbox data; no money moves.
    Test,
    /// Real customers and real money.
    Live,
}

impl Mode {
    /// The word Stripe uses in key prefixes and that we print in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Test => "test",
            Mode::Live => "live",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
