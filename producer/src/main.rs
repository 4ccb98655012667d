use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match taskfleet_producer::cli::Args::try_parse() {
        Ok(a) => a,
        // Usage errors are one line naming the problem, exit 2; --help and --version print as usual.
        Err(e) if e.use_stderr() => {
            eprintln!(
                "{}",
                taskfleet_common::usage_error_line("taskfleet", &e.to_string())
            );
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    taskfleet_producer::cli::run(args).await
}
