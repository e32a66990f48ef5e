//! `cargo xtask layers`: the core's modules form layers, and a module may
//! only import its own layer or the ones below it.
//!
//! Why a check: a layering that is only documented erodes with the first
//! convenient shortcut (the core once was a single import cycle). The check
//! reads every `crate::` path in `core/src` (comments stripped) and maps it to
//! the top-level module it names; a path through a name re-exported at the
//! crate root (`crate::Net`) is mapped through `lib.rs`'s `pub use` lines.
//! `lib.rs` itself assembles the crate and is not checked. Paths through
//! `super::super::` are not followed (the core has none).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

/// The layers of `core/src`, lowest first: a module may import modules of
/// its own layer and of the layers before it, never after. A new top-level
/// module must be added here (the check rejects unknown ones).
pub const LAYERS: &[(&str, &[&str])] = &[
    // The ABI boundary: traits and types mirroring the UEFI protocols.
    ("firmware", &["firmware", "raw"]),
    // Vocabulary every layer uses: errno table, addresses, deadlines,
    // configuration, Poll strategies, the test-only deliberate bugs.
    (
        "vocabulary",
        &["error", "addr", "time", "config", "strategy", "deliberate"],
    ),
    // Across the boundary: traced calls out, the completion queue in.
    ("calls", &["calls"]),
    // Token slots in pool memory and their checked states.
    ("slots", &["slots"]),
    // The per-socket state machine, the socket table, the graveyard.
    ("socket", &["socket"]),
    // `Net`: the shared state and the one wait loop.
    ("net", &["net"]),
    // The public API: Socket calls, select, Poller, IP configuration, io;
    // and the manual (documentation only).
    ("api", &["api", "manual"]),
];

/// One import of a higher layer (or of an unknown module).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// File relative to `core/src`.
    pub file: String,
    /// 1-based line of the path.
    pub line: usize,
    /// The path as written (`crate::net::Inner`).
    pub path: String,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "core/src/{}:{}: `{}`: {}",
            self.file, self.line, self.path, self.reason
        )
    }
}

/// Layer index of a top-level module.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

/// Top-level module of a file path relative to `core/src` (`socket/mod.rs`
/// and `socket.rs` are both `socket`); None for `lib.rs`.
fn module_of_file(rel: &str) -> Option<&str> {
    let rel = rel.strip_suffix(".rs").unwrap_or(rel);
    let first = rel.split('/').next()?;
    (first != "lib").then_some(first)
}

/// Removes `//` comments (doc comments included) and the contents of string
/// literals, keeping line numbers.
fn strip(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let mut in_str = false;
        let mut escaped = false;
        let mut prev = '\0';
        for c in line.chars() {
            if in_str {
                if escaped {
                    escaped = false;
                } else if c == '\\' {
                    escaped = true;
                } else if c == '"' {
                    in_str = false;
                    out.push('"');
                }
                prev = c;
                continue;
            }
            if c == '/' && prev == '/' {
                out.pop();
                break;
            }
            if c == '"' {
                in_str = true;
            }
            out.push(c);
            prev = c;
        }
        out.push('\n');
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// The names `lib.rs` re-exports at the crate root, with the top-level
/// module each comes from (`Net` -> `net`, `strategy_by_name` -> `strategy`).
pub fn root_reexports(lib_rs: &str) -> BTreeMap<String, String> {
    let src = strip(lib_rs);
    let mut map = BTreeMap::new();
    for stmt in src.split(';') {
        let Some(at) = stmt.find("pub use ") else {
            continue;
        };
        let body = stmt[at + "pub use ".len()..].trim();
        let body = body.strip_prefix("crate::").unwrap_or(body);
        let module: String = body.chars().take_while(|c| is_ident(*c)).collect();
        if module.is_empty() {
            continue;
        }
        // Every identifier after the module that ends an item path: the last
        // segment of each comma-separated entry, or its `as` alias.
        let rest = &body[module.len()..];
        let inner = match (rest.find('{'), rest.rfind('}')) {
            (Some(a), Some(b)) if a < b => &rest[a + 1..b],
            _ => rest,
        };
        for entry in inner.split(',') {
            let entry = entry.trim();
            let name = match entry.split(" as ").nth(1) {
                Some(alias) => alias.trim(),
                None => entry.rsplit("::").next().unwrap_or(entry).trim(),
            };
            let name: String = name.chars().filter(|c| is_ident(*c)).collect();
            if !name.is_empty() {
                map.insert(name, module.clone());
            }
        }
    }
    map
}

/// Every `crate::` path in `src`: (line, first segment, the path as written).
/// A grouped `crate::{a::X, b}` yields one entry per group member.
fn crate_paths(src: &str) -> Vec<(usize, String, String)> {
    let mut found = Vec::new();
    let bytes: Vec<char> = src.chars().collect();
    let mut line = 1;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == '\n' {
            line += 1;
            i += 1;
            continue;
        }
        let starts = bytes[i..].starts_with(&['c', 'r', 'a', 't', 'e', ':', ':'])
            && (i == 0 || !(is_ident(bytes[i - 1]) || bytes[i - 1] == '$'));
        if !starts {
            i += 1;
            continue;
        }
        let mut j = i + "crate::".len();
        if bytes.get(j) == Some(&'{') {
            // Grouped import: the first segment of each top-level entry.
            let mut depth = 0;
            let mut entry_start = true;
            let mut k = j;
            let mut entry_line = line;
            while k < bytes.len() {
                let c = bytes[k];
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => entry_start = true,
                    '\n' => entry_line += 1,
                    c if entry_start && depth == 1 && is_ident(c) => {
                        let seg: String = bytes[k..].iter().take_while(|c| is_ident(**c)).collect();
                        k += seg.len();
                        found.push((entry_line, seg.clone(), format!("crate::{{{seg}..}}")));
                        entry_start = false;
                        continue;
                    }
                    _ => {}
                }
                k += 1;
            }
            i = k;
            continue;
        }
        let seg: String = bytes[j..].iter().take_while(|c| is_ident(**c)).collect();
        j += seg.len();
        let mut end = j;
        while end < bytes.len() && (is_ident(bytes[end]) || bytes[end] == ':') {
            end += 1;
        }
        let path: String = bytes[i..end].iter().collect();
        found.push((line, seg, path.trim_end_matches(':').to_string()));
        i = end;
    }
    found
}

/// Checks in-memory sources: `files` are (path relative to `core/src`,
/// contents), `reexports` the crate-root names (see [`root_reexports`]).
pub fn check_sources(
    files: &[(String, String)],
    reexports: &BTreeMap<String, String>,
) -> Vec<Violation> {
    let mut out = Vec::new();
    for (rel, content) in files {
        let Some(module) = module_of_file(rel) else {
            continue;
        };
        let Some(own) = layer_of(module) else {
            out.push(Violation {
                file: rel.clone(),
                line: 1,
                path: module.to_string(),
                reason: format!(
                    "module `{module}` is in no layer (add it to LAYERS in xtask/src/layers.rs)"
                ),
            });
            continue;
        };
        for (line, seg, path) in crate_paths(&strip(content)) {
            let target = if layer_of(&seg).is_some() {
                seg.clone()
            } else if let Some(m) = reexports.get(&seg) {
                m.clone()
            } else {
                out.push(Violation {
                    file: rel.clone(),
                    line,
                    path,
                    reason: format!("`{seg}` is neither a layered module nor a root re-export"),
                });
                continue;
            };
            let Some(theirs) = layer_of(&target) else {
                continue;
            };
            if theirs > own {
                out.push(Violation {
                    file: rel.clone(),
                    line,
                    path,
                    reason: format!(
                        "`{module}` (layer {own}, {}) imports `{target}` (layer {theirs}, {})",
                        LAYERS[own].0, LAYERS[theirs].0
                    ),
                });
            }
        }
    }
    out
}

fn collect(dir: &Path, base: &Path, out: &mut Vec<(String, String)>) -> Result<(), String> {
    let entries = std::fs::read_dir(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    paths.sort();
    for p in paths {
        if p.is_dir() {
            collect(&p, base, out)?;
        } else if p.extension().is_some_and(|e| e == "rs") {
            let rel = p
                .strip_prefix(base)
                .map_err(|e| e.to_string())?
                .to_string_lossy()
                .replace('\\', "/");
            let text = std::fs::read_to_string(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            out.push((rel, text));
        }
    }
    Ok(())
}

/// Checks `core/src` under the workspace `root`; Err lists the violations.
pub fn check(root: &Path) -> Result<(), String> {
    let src = root.join("core/src");
    let mut files = Vec::new();
    collect(&src, &src, &mut files)?;
    let lib = files
        .iter()
        .find(|(rel, _)| rel == "lib.rs")
        .map(|(_, t)| t.clone())
        .ok_or("core/src/lib.rs not found")?;
    let violations = check_sources(&files, &root_reexports(&lib));
    if violations.is_empty() {
        println!(
            "    {} files, layers: {}",
            files.len(),
            LAYERS
                .iter()
                .map(|(name, _)| *name)
                .collect::<Vec<_>>()
                .join(" < ")
        );
        Ok(())
    } else {
        let list: Vec<String> = violations.iter().map(|v| v.to_string()).collect();
        Err(format!(
            "{} layering violation(s):\n{}",
            list.len(),
            list.join("\n")
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    const LIB: &str = "pub use net::{Net, NetStats};\npub use strategy::{PollStrategy, by_name as strategy_by_name};\npub use api::socket::Socket;\n";

    #[test]
    fn a_lower_layer_importing_a_higher_one_is_reported() {
        let v = check_sources(
            &files(&[(
                "socket/mod.rs",
                "use crate::error::Error;\nuse crate::net::Inner;\n",
            )]),
            &root_reexports(LIB),
        );
        assert_eq!(v.len(), 1, "{v:?}");
        assert_eq!(v[0].line, 2);
        assert_eq!(v[0].path, "crate::net::Inner");
    }

    #[test]
    fn imports_downwards_and_within_a_layer_are_fine() {
        let v = check_sources(
            &files(&[
                (
                    "net/mod.rs",
                    "use crate::socket::table::State;\nuse crate::slots::SlotTable;\n",
                ),
                (
                    "socket/stream.rs",
                    "use crate::socket::Sock;\nfn f() { crate::time::nanos(x) }\n",
                ),
                ("api/select.rs", "use crate::Net;\n"),
            ]),
            &root_reexports(LIB),
        );
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn root_reexports_and_grouped_imports_are_followed() {
        let v = check_sources(
            &files(&[
                ("slots/mod.rs", "use crate::{error::Error,\n    Socket};\n"),
                (
                    "calls/mod.rs",
                    "let n: crate::Net<P>;\nlet s = crate::strategy_by_name(x);\n",
                ),
            ]),
            &root_reexports(LIB),
        );
        let paths: Vec<_> = v.iter().map(|v| (v.file.as_str(), v.line)).collect();
        assert_eq!(paths, [("slots/mod.rs", 2), ("calls/mod.rs", 1)], "{v:?}");
    }

    #[test]
    fn comments_and_strings_are_not_imports() {
        let v = check_sources(
            &files(&[(
                "calls/mod.rs",
                "/// See [`crate::Net`].\n// crate::api::x\nlet s = \"crate::api\";\n",
            )]),
            &root_reexports(LIB),
        );
        assert!(v.is_empty(), "{v:?}");
    }

    #[test]
    fn unknown_modules_are_reported() {
        let v = check_sources(
            &files(&[
                ("newthing.rs", ""),
                ("net/mod.rs", "use crate::mystery::X;\n"),
            ]),
            &root_reexports(LIB),
        );
        assert_eq!(v.len(), 2, "{v:?}");
    }

    #[test]
    fn the_core_is_layered() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        check(root).unwrap();
    }
}
