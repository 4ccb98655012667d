use clap::Parser;
use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    taskfleet_producer::cli::run(taskfleet_producer::cli::Args::parse()).await
}
