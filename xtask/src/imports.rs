//! The module import graph of the workspace's crates, read from the sources:
//! which top-level module names which (`crate::x`, `crate::{x, y}`, and
//! `super::x` in a top-level file). The house rule it checks: no two modules
//! import each other, directly or round a longer loop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module of a crate and the modules it names.
pub type ImportGraph = BTreeMap<String, BTreeSet<String>>;

/// Identifiers named right after each `prefix` (`crate::` or `super::`) in
/// `code`, either one path segment or each entry of a `{...}` group.
fn named_after(code: &str, prefix: &str) -> Vec<String> {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(at) = rest.find(prefix) {
        let before = rest[..at].chars().next_back();
        let after = &rest[at + prefix.len()..];
        rest = after;
        if before.is_some_and(is_ident) {
            continue; // `foo_crate::`, not `crate::`
        }
        if let Some(group) = after.strip_prefix('{') {
            let body = &group[..group.find('}').unwrap_or(group.len())];
            let mut depth = 0usize;
            let mut entry_start = true;
            for (i, c) in body.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth = depth.saturating_sub(1),
                    ',' if depth == 0 => entry_start = true,
                    c if entry_start && is_ident(c) => {
                        let end = body[i..]
                            .find(|c| !is_ident(c))
                            .map_or(body.len(), |e| i + e);
                        out.push(body[i..end].to_string());
                        entry_start = false;
                    }
                    c if !c.is_whitespace() => entry_start = false,
                    _ => {}
                }
            }
        } else {
            let end = after.find(|c| !is_ident(c)).unwrap_or(after.len());
            if end > 0 {
                out.push(after[..end].to_string());
            }
        }
    }
    out
}

/// `code` without `//` comments (doc comments included: a doc link is not
/// an import).
fn without_comments(code: &str) -> String {
    code.lines()
        .map(|l| l.find("//").map_or(l, |at| &l[..at]))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The import graph of the crate whose sources are under `src`.
pub fn import_graph(src: &Path) -> Result<ImportGraph, String> {
    let mut files = Vec::new();
    let mut dirs = vec![src.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let path = entry
                .map_err(|e| format!("cannot list {}: {e}", dir.display()))?
                .path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    let mut graph = ImportGraph::new();
    for file in files {
        let rel = file.strip_prefix(src).map_err(|e| e.to_string())?;
        let mut parts: Vec<String> = rel
            .iter()
            .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string())
            .collect();
        let top_level = parts.len() == 1;
        if parts.len() == 1 && matches!(parts[0].as_str(), "lib" | "main") {
            continue; // the crate root declares every module
        }
        let module = parts.swap_remove(0);
        let code = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let code = without_comments(&code);
        let mut named = named_after(&code, "crate::");
        if top_level {
            named.extend(named_after(&code, "super::"));
        }
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(named.into_iter().filter(|n| *n != module));
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for deps in graph.values_mut() {
        deps.retain(|d| modules.contains(d));
    }
    Ok(graph)
}

/// Prints each crate's modules and import loops; an error naming the loops
/// when there is one.
pub fn check(root: &Path) -> Result<(), String> {
    let mut found = Vec::new();
    for krate in ["burn_autogaze", "bevy_burn_autogaze", "xtask"] {
        let graph = import_graph(&root.join(krate).join("src"))?;
        let loops = import_loops(&graph);
        println!(
            "{krate}: {} modules, {} import loop(s){}",
            graph.len(),
            loops.len(),
            loops
                .iter()
                .map(|l| format!("\n  {} -> {}", l.join(" -> "), l[0]))
                .collect::<String>()
        );
        found.extend(
            loops
                .iter()
                .map(|l| format!("{krate}: {}", l.join(" <-> "))),
        );
    }
    if found.is_empty() {
        Ok(())
    } else {
        Err(format!("modules import each other: {}", found.join("; ")))
    }
}

/// Every loop of imports in `graph`, each as its modules in order from the
/// smallest name (none when the graph is a tree of dependencies).
pub fn import_loops(graph: &ImportGraph) -> Vec<Vec<String>> {
    let mut loops = BTreeSet::new();
    for start in graph.keys() {
        // Depth-first from `start`, only through modules named after it, so
        // each loop is found once, from its smallest module.
        let mut stack: Vec<(String, Vec<String>)> = vec![(start.clone(), vec![start.clone()])];
        while let Some((at, path)) = stack.pop() {
            for next in graph.get(&at).into_iter().flatten() {
                if next == start {
                    loops.insert(path.clone());
                } else if next > start && !path.contains(next) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    loops.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn imports_are_read_from_paths_groups_and_top_level_super() {
        let code = "use crate::a::X;\nuse crate::{b::Y, c, d::{e, f}};\n\
                    fn g() { crate::h::go(); my_crate::z(); }\n// crate::commented\n";
        let named = named_after(&without_comments(code), "crate::");
        assert_eq!(named, ["a", "b", "c", "d", "h"]);
    }

    #[test]
    fn loops_are_found_once_whatever_their_length() {
        let graph: ImportGraph = [
            ("a", vec!["b"]),
            ("b", vec!["a", "c"]),
            ("c", vec!["d"]),
            ("d", vec!["b"]),
            ("e", vec!["a"]),
        ]
        .into_iter()
        .map(|(m, d)| (m.to_string(), d.into_iter().map(String::from).collect()))
        .collect();
        let loops = import_loops(&graph);
        assert_eq!(loops, [vec!["a", "b"], vec!["b", "c", "d"]]);
    }

    #[test]
    fn no_two_modules_of_any_crate_import_each_other() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for krate in ["burn_autogaze", "bevy_burn_autogaze", "xtask"] {
            let graph = import_graph(&root.join(krate).join("src")).unwrap();
            assert!(graph.len() > 10, "{krate}: {} modules read", graph.len());
            let loops = import_loops(&graph);
            assert!(loops.is_empty(), "{krate}: import loops {loops:?}");
        }
    }
}
