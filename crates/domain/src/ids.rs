//! Stripe object ids as newtypes that parse at the edge.
//!
//! Stripe ids are a type prefix, an underscore, and an opaque alphanumeric tail. We check
//! the prefix and the character set (so an id can be put into a URL path without
//! escaping) but never the length, which Stripe does not promise.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};

/// Why a string is not a valid id of the expected kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    /// The id does not start with the prefix its kind requires.
    #[error("{kind} id {value:?} must start with \"{prefix}\"")]
    WrongPrefix {
        kind: &'static str,
        prefix: &'static str,
        value: String,
    },
    /// The id has the prefix but nothing after it, or characters Stripe never uses.
    #[error("{kind} id {value:?} must be \"{prefix}\" followed by letters, digits or underscores")]
    BadTail {
        kind: &'static str,
        prefix: &'static str,
        value: String,
    },
}

fn check(kind: &'static str, prefix: &'static str, value: &str) -> Result<(), IdError> {
    let Some(tail) = value.strip_prefix(prefix) else {
        return Err(IdError::WrongPrefix {
            kind,
            prefix,
            value: truncate(value),
        });
    };
    if tail.is_empty()
        || tail.len() > 255
        || !tail.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
    {
        return Err(IdError::BadTail {
            kind,
            prefix,
            value: truncate(value),
        });
    }
    Ok(())
}

/// Error messages quote the offending value; keep them readable when the value is huge.
fn truncate(value: &str) -> String {
    value.chars().take(64).collect()
}

macro_rules! stripe_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// Parses `value`, rejecting ids of another kind or with stray characters.
            pub fn parse(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check($kind, $prefix, &value)?;
                Ok(Self(value))
            }

            /// The id as Stripe writes it.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

stripe_id!(
    /// A Stripe product id (`prod_…`).
    ProductId, "product", "prod_"
);
stripe_id!(
    /// A Stripe price id (`price_…`). Legacy plan ids are not accepted.
    PriceId, "price", "price_"
);
stripe_id!(
    /// A Stripe event id (`evt_…`).
    EventId, "event", "evt_"
);
stripe_id!(
    /// A Stripe customer id (`cus_…`).
    CustomerId, "customer", "cus_"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_shapes() {
        assert_eq!(
            ProductId::parse("prod_NWjs8kKbJWmuuc").unwrap().as_str(),
            "prod_NWjs8kKbJWmuuc"
        );
        assert!(PriceId::parse("price_1MoBy5LkdIwHu7ixZhnattbh").is_ok());
        assert!(EventId::parse("evt_1NG8Du2eZvKYlo2CUI79vXWy").is_ok());
    }

    #[test]
    fn rejects_other_kinds_and_junk_with_a_reason() {
        let err = ProductId::parse("price_123").unwrap_err();
        assert_eq!(
            err.to_string(),
            "product id \"price_123\" must start with \"prod_\""
        );
        assert!(matches!(
            ProductId::parse("prod_"),
            Err(IdError::BadTail { .. })
        ));
        assert!(matches!(
            ProductId::parse("prod_a/b"),
            Err(IdError::BadTail { .. })
        ));
        assert!(matches!(
            ProductId::parse("prod_a b"),
            Err(IdError::BadTail { .. })
        ));
    }

    #[test]
    fn deserialization_parses() {
        let ok: ProductId = serde_json::from_str("\"prod_x1\"").unwrap();
        assert_eq!(ok.to_string(), "prod_x1");
        assert!(serde_json::from_str::<ProductId>("\"cus_1\"").is_err());
    }
}
