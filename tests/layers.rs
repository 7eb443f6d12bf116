//! The crate's modules import one way: each layer uses only the layers below it, so no circle
//! runs through the core (ARCHITECTURE.md, "Layers"). Reads the sources and checks every
//! `crate::…` path outside comments against the table below.

use std::collections::BTreeSet;
use std::path::Path;

/// Top-level modules by layer, bottom first. `lib.rs` (the public surface) may use anything.
const LAYERS: &[&[&str]] = &[
    &["error"],
    &["shape", "random"],
    &["ir", "config"],
    &["program"],
    &["schedule"],
    &["codegen"],
    &["backend"],
    &["device"],
    &["graph"],
    &["tensor", "ops"],
    &["autodiff"],
    &["js"],
];

/// Names re-exported at the crate root, and the module that defines them.
const REEXPORTS: &[(&str, &str)] = &[
    ("Tensor", "graph"),
    ("Device", "device"),
    ("Error", "error"),
    ("Result", "error"),
    ("JitMode", "config"),
    ("Stats", "config"),
    ("eval", "lib"),
    ("eval_async", "lib"),
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).expect("read src") {
        let p = e.expect("entry").path();
        if p.is_dir() {
            if p.file_name().is_some_and(|n| n != "bin") {
                sources(&p, out);
            }
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn imports_run_one_way() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = vec![];
    sources(&src, &mut files);
    assert!(files.len() > 20, "found only {} sources", files.len());
    let mut violations = BTreeSet::new();
    let mut checked = 0;
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_string();
        if top == "lib" {
            continue;
        }
        let own =
            layer(&top).unwrap_or_else(|| panic!("{top} (src/{}) has no layer", rel.display()));
        let text = std::fs::read_to_string(f).unwrap();
        for line in text.lines() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let rest = &code[i + "crate::".len()..];
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if name.is_empty() {
                    continue;
                }
                let target = REEXPORTS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(name.as_str(), |(_, m)| m);
                checked += 1;
                if target == top {
                    continue;
                }
                let ok = layer(target).is_some_and(|l| l < own);
                if !ok {
                    violations.insert(format!(
                        "src/{} ({top}, layer {own}) uses crate::{name} ({target}, layer {:?})",
                        rel.display(),
                        layer(target)
                    ));
                }
            }
        }
    }
    assert!(checked > 100, "only {checked} crate paths found");
    assert!(
        violations.is_empty(),
        "imports against the layers:\n{}",
        violations.into_iter().collect::<Vec<_>>().join("\n")
    );
}
