//! Test fixtures the adapters' tests share: SMI YAML → IR through core's loader and builder,
//! as `meshbridge translate` builds it.

use meshbridge_core::{Ir, Snapshot};

/// YAML → IR, asserting every document loads without problems (the IR may still report
/// invalid or unresolved objects: tests of those read `Ir::problems`).
pub fn ir_of(yaml: &str) -> Ir {
    let loaded = meshbridge_core::load::load_str("test.yaml", yaml);
    assert!(
        loaded.problems.is_empty(),
        "load problems: {:?}",
        loaded.problems
    );
    meshbridge_core::build::build(&Snapshot::from_objects(loaded.objects))
}

/// [`ir_of`], also asserting the IR reports no error: the input is valid and resolved.
pub fn valid_ir_of(yaml: &str) -> Ir {
    let ir = ir_of(yaml);
    let errors: Vec<String> = ir
        .problems()
        .iter()
        .filter(|p| p.is_error())
        .map(|p| p.to_string())
        .collect();
    assert!(errors.is_empty(), "invalid test input: {errors:#?}");
    ir
}
