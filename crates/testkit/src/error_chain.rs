//! The text of an error and of every `source()` below it, for assertions about error chains.

use std::error::Error;

/// `err`'s text, then that of each source below it, in order.
///
/// ```
/// let io = std::io::Error::other("disk on fire");
/// assert_eq!(rmq_testkit::error_chain(&io), ["disk on fire"]);
/// ```
#[must_use]
pub fn error_chain(err: &dyn Error) -> Vec<String> {
    let mut out = vec![err.to_string()];
    let mut next = err.source();
    while let Some(e) = next {
        out.push(e.to_string());
        next = e.source();
    }
    out
}

/// [`error_chain`] on one line, `: `-separated (as `anyhow`'s `{:#}` prints it).
#[must_use]
pub fn error_line(err: &dyn Error) -> String {
    error_chain(err).join(": ")
}
