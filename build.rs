//! Build-time work for the embedded default catalogue.
//!
//! `prompts/routes.toml` is what people read and edit; the binary embeds the same document as
//! JSON, converted here, because a cold start then skips the TOML parser's whole-document tree
//! (about a quarter of the catalogue's load; see DESIGN.md, "Start-up"). The router still
//! validates the embedded catalogue at start-up like any routes file, and a unit test checks that
//! the JSON gives the same catalogue as the TOML it came from.

use std::path::Path;

fn main() {
    let source = "prompts/routes.toml";
    println!("cargo::rerun-if-changed={source}");
    let text =
        std::fs::read_to_string(source).unwrap_or_else(|e| panic!("cannot read {source}: {e}"));
    let document: toml::Table =
        toml::from_str(&text).unwrap_or_else(|e| panic!("{source} is not valid TOML: {e}"));
    let json = serde_json::to_string(&document).expect("a TOML table is representable as JSON");
    let out = std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR for build scripts");
    let target = Path::new(&out).join("routes.json");
    std::fs::write(&target, json)
        .unwrap_or_else(|e| panic!("cannot write {}: {e}", target.display()));
}
