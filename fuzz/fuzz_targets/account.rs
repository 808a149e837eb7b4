//! Account references, as the credit API takes them from the app
//! (`stripe_manager::credits::validate_account`).
//!
//! Input: the reference, any text. Properties: never panics; an accepted reference has
//! 1 to 128 characters, none of them whitespace, a control character, `/`, or one of
//! the zero-width and direction-changing characters listed here independently (issue
//! 15, item 8); a refusal quotes at most 60 characters of the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use stripe_manager::credits::{LedgerError, validate_account};

/// Zero-width and bidirectional formatting characters.
const INVISIBLE: &[char] = &[
    '\u{200B}', '\u{200C}', '\u{200D}', '\u{200E}', '\u{200F}', '\u{202A}', '\u{202B}', '\u{202C}',
    '\u{202D}', '\u{202E}', '\u{2066}', '\u{2067}', '\u{2068}', '\u{2069}', '\u{FEFF}', '\u{061C}',
    '\u{2060}',
];

fuzz_target!(|data: &[u8]| {
    let Ok(account) = std::str::from_utf8(data) else {
        return;
    };
    match validate_account(account) {
        Ok(()) => {
            let n = account.chars().count();
            assert!((1..=128).contains(&n), "{n} characters accepted");
            for c in account.chars() {
                assert!(
                    !c.is_whitespace() && !c.is_control() && c != '/' && !INVISIBLE.contains(&c),
                    "{c:?} accepted in {account:?}"
                );
            }
        }
        Err(LedgerError::InvalidAccount(quoted)) => {
            assert!(quoted.chars().count() <= 60);
            assert!(account.starts_with(&quoted));
        }
        Err(other) => panic!("unexpected error {other:?}"),
    }
});
