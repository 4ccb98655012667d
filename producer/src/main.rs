use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    let args = match taskfleet_producer::cli::Args::try_parse() {
        Ok(a) => a,
        // Usage errors are one line naming the problem, exit 2; --help and --version print as usual.
        Err(e) if e.use_stderr() => {
            let text = e.to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("bad usage")
                .trim_start_matches("error: ");
            eprintln!("taskfleet: {first} (see taskfleet --help)");
            return ExitCode::from(2);
        }
        Err(e) => e.exit(),
    };
    taskfleet_producer::cli::run(args).await
}
