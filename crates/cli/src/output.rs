//! Writing results to stdout without panicking when the reader goes away
//! (`flightdeck crd | head` closes the pipe early).

use std::io::Write;

use crate::error::CliError;

/// Writes `text` to stdout and flushes it.
pub fn print_stdout(text: &str) -> Result<(), CliError> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        // The consumer stopped reading (`| head`): not our failure.
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => result.map_err(CliError::Stdout),
    }
}
