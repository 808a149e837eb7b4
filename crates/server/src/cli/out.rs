//! Everything a command prints goes through [`outln!`] (stdout) and [`errln!`]
//! (stderr), never `println!`/`eprintln!`, which panic (exit 101) when their stream is
//! closed: `stripe-manager credits balance X | head -1`. Clippy's `print_stdout` and
//! `print_stderr` lints, denied in `cli`, keep it so.
//!
//! A reader that stops reading is not the command's failure: after the first broken
//! pipe, output is dropped quietly and the command finishes its work and exits with its
//! own documented code (a grant still grants, a sync still syncs). Any other write error
//! (a full disk under `> file`) is reported on stderr once, and turns a success into
//! exit 1 ([`finish`]), because the output the caller asked for is incomplete.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

/// What the writes so far have met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// The reader went away: nothing more is written, nothing is reported.
    Closed,
    /// Another error: nothing more is written, and the exit code says so.
    Failed,
}

static STATE: Mutex<State> = Mutex::new(State::Open);

/// Writes `args` to stdout, flushed; see the module's doc for what a failure does.
pub fn write(args: fmt::Arguments<'_>) {
    let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
    if *state != State::Open {
        return;
    }
    let mut stdout = io::stdout().lock();
    let Err(e) = stdout.write_fmt(args).and_then(|()| stdout.flush()) else {
        return;
    };
    if e.kind() == io::ErrorKind::BrokenPipe {
        *state = State::Closed;
    } else {
        *state = State::Failed;
        // stderr may be closed too; nothing is left to tell then.
        let _ = writeln!(io::stderr(), "error: cannot write to stdout: {e}");
    }
}

/// The exit code of a command that returned `code`: a success whose output could not
/// be written (other than to a closed pipe) is exit 1.
pub fn finish(code: u8) -> u8 {
    let state = *STATE.lock().unwrap_or_else(|e| e.into_inner());
    if state == State::Failed && code == 0 {
        1
    } else {
        code
    }
}

/// `println!` for the CLI: through [`write`].
macro_rules! outln {
    () => {
        $crate::cli::out::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::out::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `eprintln!` for the CLI: a closed stderr loses the message rather than the exit code.
macro_rules! errln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}
