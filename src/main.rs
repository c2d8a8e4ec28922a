//! The `meshbridge` binary: CLI and controller wiring. Logic lives in the library crates.

use std::process::ExitCode;

mod appmesh_api;
mod cli;
mod inputs;
mod registry;
mod translate;

fn main() -> ExitCode {
    cli::main()
}
