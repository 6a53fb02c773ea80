//! ipvsadm 1.31's command line and output, as a pure library.
//!
//! `rvsadm` (symlinked or copied as `ipvsadm`) parses its arguments with
//! [`parse`], sends the [`Command`] to rvsd, and renders the answer with
//! [`render`]: the same command lines are accepted, the same output is
//! printed byte for byte, and invalid command lines get ipvsadm's message
//! and exit status. Nothing here does I/O: host and service names come from
//! the caller ([`Resolve`], [`Names`]).

mod cli;
mod model;
mod render;

pub use cli::{CliError, NoResolve, Parsed, Resolve, help_text, inet_aton, parse, version_text};
pub use model::*;
pub use render::{Names, Numeric, cmp_dests, cmp_services, render};

/// Parses the lines of `ipvsadm -R` input (what `-S` prints): each line is
/// one command line without the program name; blank lines and lines
/// starting with '#' are skipped. The whole input is parsed before anything
/// is applied, and the first bad line is reported with its number.
pub fn parse_restore(
    program: &str,
    input: &str,
    res: &dyn Resolve,
) -> Result<Vec<Invocation>, CliError> {
    let mut out = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let t = line.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let mut argv = vec![program.to_string()];
        argv.extend(t.split_whitespace().map(str::to_string));
        match parse(&argv, res) {
            Ok(Parsed::Run(inv)) if !matches!(inv.command, Command::Restore) => out.push(inv),
            Ok(_) => {
                return Err(CliError {
                    message: format!("line {}: not a table command: {t}", n + 1),
                    exit_code: 2,
                });
            }
            Err(e) => {
                return Err(CliError {
                    message: format!("line {}: {}", n + 1, e.message),
                    exit_code: e.exit_code,
                });
            }
        }
    }
    Ok(out)
}
