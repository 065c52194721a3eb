use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = rekindle::cli::Cli::parse();
    rekindle::cli::init_logging(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(rekindle::cli::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(rekindle::cli::exit_code(&err))
        }
    }
}
