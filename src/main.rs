//! The `meshbridge` binary: CLI, the async runtime and signals (src/runtime.rs: the only
//! place a runtime is built), and the wiring of sources, engines and sinks. Logic lives in
//! the library crates.

use std::process::ExitCode;

mod appmesh_api;
mod cli;
mod convert;
mod initnet;
mod inject;
mod inputs;
mod registry;
mod runtime;
mod top;
mod translate;

fn main() -> ExitCode {
    cli::main()
}
