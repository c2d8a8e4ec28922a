//! Command-line definition (flags defined once; help generated from them).

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "meshbridge",
    version,
    about = "Mesh-agnostic service-mesh control layer: SMI in, Istio / Linkerd / App Mesh / Gateway API / Envoy out"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Translate SMI objects (and the Kubernetes objects they refer to) into a mesh's objects.
    Translate(crate::translate::TranslateArgs),
    /// Print every CustomResourceDefinition meshbridge serves.
    Crds,
}

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Translate(args) => crate::translate::run(args),
        Command::Crds => {
            print!("{}", meshbridge_core::crd::all_yaml());
            ExitCode::SUCCESS
        }
    }
}
