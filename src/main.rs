//! The `gammainfra` binary: parses flags, sets up logging and tracing, runs the library.

use clap::Parser;

mod cli;

fn main() {
    gammainfra::telemetry::init_logs();
    let cli = cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("gammainfra: cannot start the async runtime: {e}");
            std::process::exit(2);
        }
    };
    let code = runtime.block_on(async {
        // Traces are exported while the command runs, and the last ones before exit.
        let traces = gammainfra::telemetry::Traces::start();
        let code = cli::run(cli).await;
        traces.shutdown().await;
        code
    });
    std::process::exit(code);
}
