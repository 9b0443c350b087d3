//! Service skeleton (excluded from the workspace). See Cargo.toml.

const MARKER: &str = "template-1";

fn main() {
    println!("service template {MARKER}: copy me to services/<name>");
}
