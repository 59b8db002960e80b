//! The `ferrolb-controller` binary: flags, logging, signals; the work is in the library.

use std::process::ExitCode;

use clap::Parser;
use ferrolb_controller::cli::{Cli, Command};

fn check_config(path: &std::path::Path) -> ExitCode {
    let (report, ok) = ferrolb_config::check_config_file(path);
    print!("{report}");
    if !report.ends_with('\n') {
        println!();
    }
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// `convert-config FILE`: the CRs on stdout; warnings, notes and errors on stderr.
fn convert_config(path: &std::path::Path) -> ExitCode {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", path.display());
            return ExitCode::FAILURE;
        }
    };
    let source = path.display().to_string();
    match ferrolb_crds::migrate::convert_config_text(&text, &source) {
        Ok(printed) => {
            print!("{}", printed.yaml);
            for n in &printed.notes {
                eprintln!("{n}");
            }
            ExitCode::SUCCESS
        }
        Err(lines) => {
            for l in &lines {
                eprintln!("{l}");
            }
            ExitCode::FAILURE
        }
    }
}

/// One thread is plenty: decisions are serial and the work is waiting on the API server.
/// It also keeps the heap in one malloc arena, which matters for RSS at 10,000 Services.
#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::CheckConfig { file }) => return check_config(file),
        Some(Command::ConvertConfig { file }) => return convert_config(file),
        None => {}
    }
    ferrolb_daemon::init_logging(cli.log_format);
    let mut opts = cli.to_options();
    opts.kubeconfig = cli.cluster.kubeconfig.clone();
    tracing::info!(
        namespace = %opts.namespace,
        config = %opts.config_name,
        lb_class = ?opts.lb_class,
        identity = %opts.identity,
        "starting ferrolb-controller"
    );
    match ferrolb_controller::run(opts, ferrolb_daemon::shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "controller failed");
            ExitCode::FAILURE
        }
    }
}
