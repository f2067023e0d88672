//! Embeds every file of ../web-client into the binary, so that one file
//! serves the whole UI on a closed network.

use std::fmt::Write as _;
use std::path::Path;

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../web-client");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut out = String::from(
        "/// The web client's files: (name, contents).\npub static ASSETS: &[(&str, &[u8])] = &[\n",
    );
    if let Ok(entries) = std::fs::read_dir(&dir) {
        let mut files: Vec<_> = entries
            .filter_map(Result::ok)
            .filter(|e| e.file_type().map(|t| t.is_file()).unwrap_or(false))
            // Notes for developers stay in the source tree.
            .filter(|e| !e.file_name().to_string_lossy().ends_with(".md"))
            .collect();
        files.sort_by_key(|e| e.file_name());
        for e in files {
            let name = e.file_name().to_string_lossy().into_owned();
            println!("cargo:rerun-if-changed={}", e.path().display());
            let path = e.path().canonicalize().expect("asset path");
            writeln!(
                out,
                "    ({name:?}, include_bytes!({:?})),",
                path.display().to_string()
            )
            .unwrap();
        }
    }
    out.push_str("];\n");
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join("assets.rs");
    std::fs::write(dest, out).unwrap();
}
