//! CustomResourceDefinitions generated from the Rust types: every SMI version served
//! (storage = newest), plus meshbridge.io's own kinds. `meshbridge crds` prints
//! [`all_yaml`]; `crds/` holds the same files (a test keeps them in sync).

use crate::api::{access, meshbridge, specs, split};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, CustomResourceDefinitionVersion, JSONSchemaProps,
};
use kube::CustomResourceExt;
use kube::core::crd::merge_crds;
use schemars::JsonSchema;

/// Schema of a kind whose fields sit at the top level (no `spec`), with kube's structural
/// rewrites and `metadata` reduced to `type: object` as the API server requires.
fn toplevel_schema<T: JsonSchema>() -> JSONSchemaProps {
    let generate = schemars::generate::SchemaSettings::openapi3()
        .with(|s| {
            s.inline_subschemas = true;
            s.meta_schema = None;
        })
        .with_transform(schemars::transform::AddNullable::default())
        .with_transform(kube::core::schema::StructuralSchemaRewriter)
        .with_transform(kube::core::schema::OptionalEnum)
        .with_transform(kube::core::schema::OptionalIntOrString)
        .into_generator();
    let mut v = serde_json::to_value(generate.into_root_schema_for::<T>()).unwrap_or_default();
    if let Some(props) = v.get_mut("properties").and_then(|p| p.as_object_mut()) {
        props.insert("metadata".into(), serde_json::json!({"type": "object"}));
    }
    if let Some(o) = v.as_object_mut() {
        o.remove("title");
    }
    serde_json::from_value(v).unwrap_or_default()
}

/// A version entry for a top-level kind, modelled on `base` (printer columns, status
/// subresource) with its own name and schema.
fn toplevel_version<T: JsonSchema>(
    base: &CustomResourceDefinition,
    name: &str,
) -> CustomResourceDefinition {
    let mut crd = base.clone();
    let mut v: CustomResourceDefinitionVersion = crd.spec.versions[0].clone();
    v.name = name.to_string();
    v.schema = Some(k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceValidation {
        open_api_v3_schema: Some(toplevel_schema::<T>()),
    });
    v.additional_printer_columns = None;
    crd.spec.versions = vec![v];
    crd
}

fn merged(crds: Vec<CustomResourceDefinition>, storage: &str) -> CustomResourceDefinition {
    let mut crd = merge_crds(crds, storage).expect("CRD versions of one kind merge");
    crd.spec.versions.sort_by(|a, b| a.name.cmp(&b.name));
    crd
}

/// A `specs.smi-spec.io` route kind: top-level `V1` (v1alpha1) and `V2` (v1alpha2) modelled on
/// the v1alpha3 CRD, then v1alpha3 and v1alpha4 (storage).
fn route_kind<V1: JsonSchema, V2: JsonSchema>(
    v1alpha3: CustomResourceDefinition,
    v1alpha4: CustomResourceDefinition,
) -> CustomResourceDefinition {
    merged(
        vec![
            toplevel_version::<V1>(&v1alpha3, "v1alpha1"),
            toplevel_version::<V2>(&v1alpha3, "v1alpha2"),
            v1alpha3,
            v1alpha4,
        ],
        "v1alpha4",
    )
}

/// Every CRD meshbridge serves, sorted by name.
pub fn all() -> Vec<CustomResourceDefinition> {
    let ts = merged(
        vec![
            split::v1alpha1::TrafficSplit::crd(),
            split::v1alpha2::TrafficSplit::crd(),
            split::v1alpha3::TrafficSplit::crd(),
            split::v1alpha4::TrafficSplit::crd(),
        ],
        "v1alpha4",
    );
    let tt_base = access::v1alpha2::TrafficTarget::crd();
    let tt = merged(
        vec![
            toplevel_version::<access::v1alpha1::TrafficTarget>(&tt_base, "v1alpha1"),
            tt_base.clone(),
            access::v1alpha3::TrafficTarget::crd(),
        ],
        "v1alpha3",
    );
    let htr = route_kind::<specs::v1alpha1::HTTPRouteGroup, specs::v1alpha2::HTTPRouteGroup>(
        specs::v1alpha3::HTTPRouteGroup::crd(),
        specs::v1alpha4::HTTPRouteGroup::crd(),
    );
    let tr = route_kind::<specs::v1alpha1::TCPRoute, specs::v1alpha2::TCPRoute>(
        specs::v1alpha3::TCPRoute::crd(),
        specs::v1alpha4::TCPRoute::crd(),
    );
    let ur = specs::v1alpha4::UDPRoute::crd();
    let mut out = vec![
        ts,
        tt,
        htr,
        tr,
        ur,
        meshbridge::Mesh::crd(),
        meshbridge::Install::crd(),
    ];
    out.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
    out
}

/// File name under `crds/` for a CRD.
pub fn file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default())
}

/// One CRD as YAML.
pub fn to_yaml(crd: &CustomResourceDefinition) -> String {
    crate::yaml::to_yaml(&serde_json::to_value(crd).unwrap_or_default())
}

/// Every CRD as one multi-document YAML stream.
pub fn all_yaml() -> String {
    all().iter().map(to_yaml).collect::<Vec<_>>().join("---\n")
}

/// The `openAPIV3Schema` of one served version, as JSON (for validators).
pub fn version_schema(crd: &CustomResourceDefinition, version: &str) -> Option<serde_json::Value> {
    let v = crd.spec.versions.iter().find(|v| v.name == version)?;
    serde_json::to_value(v.schema.as_ref()?.open_api_v3_schema.as_ref()?).ok()
}
