//! The library's import graph has no circle and no arrow that points up a layer.
//!
//! Reads every module of the `weir` library (from `runner/src/lib.rs` down its `mod`
//! declarations), collects the modules each one names (`use` trees, `crate::`/`super::`/`self::`
//! paths, names brought in by `use`, and a parent's references to its own children), and checks
//! them against the layer table in docs/architecture.md. A parent's `mod` and `pub use` of its
//! own descendants is containment, not use: names re-exported that way resolve to the module that
//! defines them. Inline modules (`mod tests { .. }`) are modules of their own, as in Rust: a test
//! module may use its file's parent without the file doing so, but it obeys the layers like any
//! other module.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

type ModPath = Vec<String>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// One module file: its path in the crate and its text without comments and literals.
struct ModuleFile {
    path: ModPath,
    text: String,
}

/// Source text with comments, string literals and char literals blanked, so braces and `::`
/// inside them do not count.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let rest = &src[i..];
        if rest.starts_with("//") {
            let end = rest.find('\n').unwrap_or(rest.len());
            i += end;
        } else if rest.starts_with("/*") {
            let end = rest.find("*/").map_or(rest.len(), |e| e + 2);
            i += end;
            out.push(' ');
        } else if rest.starts_with("r#\"") || rest.starts_with("r\"") || rest.starts_with("br\"") {
            let open = rest.find('"').unwrap();
            let hashes = &rest[..open].chars().filter(|&c| c == '#').count();
            let close = format!("\"{}", "#".repeat(*hashes));
            let end = rest[open + 1..]
                .find(&close)
                .map_or(rest.len(), |e| open + 1 + e + close.len());
            i += end;
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            let mut j = i + 1;
            while j < b.len() && b[j] != b'"' {
                j += if b[j] == b'\\' { 2 } else { 1 };
            }
            i = j + 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' {
            // A char literal ('x', '\n', '\u{..}') or a lifetime ('a).
            let lit = rest
                .char_indices()
                .skip(1)
                .take(12)
                .find(|&(_, c)| c == '\'')
                .map(|(e, _)| e);
            match lit {
                Some(e)
                    if e == 2 || rest[1..].starts_with('\\') || rest[1..e].chars().count() == 1 =>
                {
                    i += e + 1;
                    out.push_str("' '");
                }
                _ => {
                    out.push('\'');
                    i += 1;
                }
            }
        } else {
            let c = rest.chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// `mod NAME;` declarations (file modules) in `text`.
fn file_mods(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    for (at, _) in text.match_indices("mod ") {
        if at > 0 && is_ident(text[..at].chars().last().unwrap()) {
            continue;
        }
        let after = &text[at + 4..];
        let name: String = after.chars().take_while(|&c| is_ident(c)).collect();
        if !name.is_empty() && after[name.len()..].trim_start().starts_with(';') {
            names.push(name);
        }
    }
    names
}

fn load_modules() -> Vec<ModuleFile> {
    let src = root().join("runner/src");
    let mut out = Vec::new();
    let mut queue = vec![(Vec::new(), src.join("lib.rs"))];
    while let Some((path, file)) = queue.pop() {
        let raw =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        assert!(
            !raw.contains("#[path"),
            "{}: `#[path]` module includes are not used here (unit tests live in the file's own `mod tests`)",
            file.display()
        );
        let text = code_only(&raw);
        let name = file.file_name().unwrap().to_str().unwrap();
        let owns_dir = matches!(name, "lib.rs" | "mod.rs");
        let dir = if owns_dir {
            file.parent().unwrap().to_path_buf()
        } else {
            file.with_extension("")
        };
        for child in file_mods(&text) {
            let mut child_path = path.clone();
            child_path.push(child.clone());
            let flat = dir.join(format!("{child}.rs"));
            let nested = dir.join(&child).join("mod.rs");
            let child_file = if flat.exists() { flat } else { nested };
            assert!(
                child_file.exists(),
                "{}: mod {child} has no file",
                file.display()
            );
            queue.push((child_path, child_file));
        }
        out.push(ModuleFile { path, text });
    }
    out
}

/// Splits a `use` tree into its full paths (`a::{b, c::d}` → `a::b`, `a::c::d`).
fn expand_use(prefix: &[String], tree: &str) -> Vec<ModPath> {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head: ModPath = tree[..open]
            .split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let inner = &tree[open + 1..tree.rfind('}').expect("closed use group")];
        let mut base = prefix.to_vec();
        base.extend(head);
        let mut depth = 0;
        let mut start = 0;
        let mut paths = Vec::new();
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    paths.extend(expand_use(&base, &inner[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
        }
        paths.extend(expand_use(&base, &inner[start..]));
        return paths;
    }
    if tree.is_empty() {
        return Vec::new();
    }
    let tree = tree.split(" as ").next().unwrap().trim();
    let mut path = prefix.to_vec();
    path.extend(
        tree.split("::")
            .map(str::trim)
            .filter(|s| !s.is_empty() && *s != "self")
            .map(String::from),
    );
    vec![path]
}

/// A reference found in a module: the path as written, where it was written, and whether it is
/// a `pub use` (a re-export).
struct Reference {
    scope: ModPath,
    path: ModPath,
    reexport: bool,
}

/// The inline module (`mod name { .. }`) path at each byte of `text`, relative to the file.
fn inline_scopes(text: &str) -> Vec<(usize, usize, ModPath)> {
    let mut scopes = Vec::new();
    // The inline modules open around the current position, innermost last.
    let mut names: ModPath = Vec::new();
    // For every open brace: where it opened, if it opened an inline module.
    let mut braces: Vec<Option<usize>> = Vec::new();
    let mut pending: Option<String> = None;
    for (i, c) in text.char_indices() {
        match c {
            'm' if text[i..].starts_with("mod ")
                && !text[..i].chars().next_back().is_some_and(is_ident) =>
            {
                let name: String = text[i + 4..].chars().take_while(|&c| is_ident(c)).collect();
                if text[i + 4 + name.len()..].trim_start().starts_with('{') {
                    pending = Some(name);
                }
            }
            '{' => braces.push(pending.take().map(|name| {
                names.push(name);
                i
            })),
            '}' => {
                if let Some(Some(start)) = braces.pop() {
                    scopes.push((start, i, names.clone()));
                    names.pop();
                }
            }
            _ => {}
        }
    }
    scopes
}

fn scope_at(scopes: &[(usize, usize, ModPath)], at: usize) -> ModPath {
    scopes
        .iter()
        .filter(|(s, e, _)| *s <= at && at <= *e)
        .max_by_key(|(_, _, p)| p.len())
        .map(|(_, _, p)| p.clone())
        .unwrap_or_default()
}

fn references(module: &ModuleFile) -> Vec<Reference> {
    let text = &module.text;
    let scopes = inline_scopes(text);
    let children = file_mods(text);
    let mut refs = Vec::new();
    let scope_of = |at: usize| {
        let mut scope = module.path.clone();
        scope.extend(scope_at(&scopes, at));
        scope
    };
    // `use` trees; the names they bring into scope (`use crate::sources;` makes `sources::csv`
    // in code name `crate::sources::csv`).
    let mut imported: Vec<(ModPath, String, ModPath)> = Vec::new();
    let mut use_spans = Vec::new();
    for (at, _) in text.match_indices("use ") {
        if at > 0 && is_ident(text[..at].chars().last().unwrap()) {
            continue;
        }
        let before = text[..at].trim_end();
        let reexport = before.ends_with("pub") || before.ends_with(')') && before.contains("pub(");
        let end = at + text[at..].find(';').unwrap_or(text.len() - at);
        use_spans.push((at, end));
        let scope = scope_of(at);
        for path in expand_use(&[], &text[at + 4..end]) {
            // `use child::X` in a parent names its own child module.
            let path: ModPath = match path.first() {
                Some(first) if children.contains(first) => {
                    std::iter::once("self".to_string()).chain(path).collect()
                }
                _ => path,
            };
            if let (Some(last), Some(abs)) = (path.last(), absolute(&scope, &path)) {
                imported.push((scope.clone(), last.clone(), abs));
            }
            refs.push(Reference {
                scope: scope.clone(),
                path,
                reexport,
            });
        }
    }
    let mut code = text.clone();
    for (start, end) in use_spans {
        code.replace_range(start..end, &" ".repeat(end - start));
    }
    let text = &code;
    // Paths in code.
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    for (k, &(at, c)) in chars.iter().enumerate() {
        if !is_ident(c) || (k > 0 && (is_ident(chars[k - 1].1) || chars[k - 1].1 == ':')) {
            continue;
        }
        let word: String = text[at..]
            .chars()
            .take_while(|&c| is_ident(c) || c == ':')
            .collect();
        let first = word.split("::").next().unwrap_or("");
        if !word.contains("::") {
            continue;
        }
        let path: ModPath = word
            .split("::")
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect();
        let scope = scope_of(at);
        let through_import = imported
            .iter()
            .filter(|(s, name, _)| name == first && scope.starts_with(s))
            .max_by_key(|(s, _, _)| s.len())
            .map(|(_, _, abs)| abs.clone());
        let path: ModPath = if matches!(first, "crate" | "super" | "self") {
            path
        } else if let Some(abs) = through_import {
            std::iter::once("crate".to_string())
                .chain(abs)
                .chain(path.into_iter().skip(1))
                .collect()
        } else if children.contains(&first.to_string()) {
            std::iter::once("self".to_string()).chain(path).collect()
        } else {
            continue;
        };
        refs.push(Reference {
            scope,
            path,
            reexport: false,
        });
    }
    refs
}

/// Turns a written path into an absolute one, from the inline or file module it is written in.
fn absolute(scope: &ModPath, path: &ModPath) -> Option<ModPath> {
    let mut segments = path.iter().peekable();
    let mut base = match segments.peek().map(|s| s.as_str()) {
        Some("crate") => {
            segments.next();
            Vec::new()
        }
        Some("super") | Some("self") => scope.clone(),
        _ => return None,
    };
    while let Some(s) = segments.peek() {
        match s.as_str() {
            "super" => {
                base.pop();
            }
            "self" => {}
            _ => break,
        }
        segments.next();
    }
    base.extend(segments.cloned());
    Some(base)
}

struct Crate {
    files: BTreeSet<ModPath>,
    /// Names a module re-exports from its descendants: module → name → absolute path.
    reexports: BTreeMap<ModPath, BTreeMap<String, ModPath>>,
}

impl Crate {
    /// The module file that defines what `path` names (following re-exports).
    fn resolve(&self, path: &ModPath) -> ModPath {
        let mut path = path.clone();
        for _ in 0..16 {
            let prefix = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| self.files.contains(p))
                .unwrap_or_default();
            let Some(next) = path.get(prefix.len()) else {
                return prefix;
            };
            match self
                .reexports
                .get(&prefix)
                .and_then(|names| names.get(next))
            {
                Some(target) => {
                    let mut resolved = target.clone();
                    resolved.extend(path[prefix.len() + 1..].iter().cloned());
                    if resolved == path {
                        return prefix;
                    }
                    path = resolved;
                }
                None => return prefix,
            }
        }
        path
    }
}

fn name(path: &ModPath) -> String {
    if path.is_empty() {
        "crate".into()
    } else {
        path.join("::")
    }
}

/// Module → modules it uses.
fn import_graph() -> BTreeMap<ModPath, BTreeSet<ModPath>> {
    let modules = load_modules();
    let files: BTreeSet<ModPath> = modules.iter().map(|m| m.path.clone()).collect();
    let mut all_refs = Vec::new();
    let mut reexports: BTreeMap<ModPath, BTreeMap<String, ModPath>> = BTreeMap::new();
    for module in &modules {
        for r in references(module) {
            let Some(abs) = absolute(&r.scope, &r.path) else {
                continue;
            };
            if r.reexport && abs.starts_with(&module.path) && abs.len() > module.path.len() {
                let last = abs.last().unwrap().clone();
                reexports
                    .entry(module.path.clone())
                    .or_default()
                    .insert(last, abs);
                continue;
            }
            all_refs.push((r.scope.clone(), abs));
        }
    }
    let krate = Crate { files, reexports };
    let mut graph: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    for m in &krate.files {
        graph.entry(m.clone()).or_default();
    }
    for (from, abs) in all_refs {
        let to = krate.resolve(&abs);
        if to != from && !to.is_empty() {
            graph.entry(from).or_default().insert(to);
        }
    }
    graph
}

/// Strongly connected components with more than one module.
fn circles(graph: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Vec<Vec<ModPath>> {
    // Two nodes share a circle when each reaches the other.
    let reach = |from: &ModPath| {
        let mut seen = BTreeSet::new();
        let mut stack = vec![from.clone()];
        while let Some(m) = stack.pop() {
            for next in graph.get(&m).into_iter().flatten() {
                if seen.insert(next.clone()) {
                    stack.push(next.clone());
                }
            }
        }
        seen
    };
    let reachable: BTreeMap<&ModPath, BTreeSet<ModPath>> =
        graph.keys().map(|m| (m, reach(m))).collect();
    let mut done = BTreeSet::new();
    let mut out = Vec::new();
    for m in graph.keys() {
        if done.contains(m) || !reachable[m].contains(m) {
            continue;
        }
        let members: Vec<ModPath> = graph
            .keys()
            .filter(|n| reachable[m].contains(*n) && reachable[*n].contains(m))
            .cloned()
            .collect();
        done.extend(members.iter().cloned());
        out.push(members);
    }
    out
}

/// The layer table of docs/architecture.md: top-level module → layer number.
fn documented_layers() -> BTreeMap<String, u32> {
    let doc = std::fs::read_to_string(root().join("docs/architecture.md")).unwrap();
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("Layers"))
        .expect("docs/architecture.md has a `## Layers` section");
    let mut layers = BTreeMap::new();
    for line in section.lines().filter(|l| l.starts_with('|')) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let Ok(layer) = cells[1].parse::<u32>() else {
            continue;
        };
        for module in cells[2].split(',') {
            let module = module.trim().trim_matches('`').trim_end_matches('/');
            assert!(
                layers.insert(module.to_string(), layer).is_none(),
                "`{module}` is in two layers of docs/architecture.md"
            );
        }
    }
    layers
}

#[test]
fn the_library_has_no_import_circle() {
    let graph = import_graph();
    assert!(graph.len() > 50, "found only {} modules", graph.len());
    let found = circles(&graph);
    let text: Vec<String> = found
        .iter()
        .map(|c| c.iter().map(name).collect::<Vec<_>>().join(" ↔ "))
        .collect();
    assert!(found.is_empty(), "import circles:\n{}", text.join("\n"));
}

#[test]
fn every_import_points_down_the_documented_layers() {
    let graph = import_graph();
    let layers = documented_layers();
    let top: BTreeSet<String> = graph.keys().filter_map(|m| m.first().cloned()).collect();
    for module in &top {
        assert!(
            layers.contains_key(module),
            "module `{module}` is in no layer of docs/architecture.md"
        );
    }
    for module in layers.keys() {
        assert!(
            top.contains(module),
            "docs/architecture.md lists `{module}`, which is not a module of the library"
        );
    }
    let mut upward = Vec::new();
    for (from, tos) in &graph {
        for to in tos {
            let (Some(a), Some(b)) = (from.first(), to.first()) else {
                continue;
            };
            if layers[a] < layers[b] {
                upward.push(format!(
                    "{} (layer {}) uses {} (layer {})",
                    name(from),
                    layers[a],
                    name(to),
                    layers[b]
                ));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports that point up:\n{}",
        upward.join("\n")
    );
}

#[test]
fn the_checker_sees_a_circle_and_an_upward_arrow() {
    // The checks above must be able to fail: a graph with a circle and one with an arrow up.
    let m = |s: &str| -> ModPath { s.split("::").map(String::from).collect() };
    let mut graph: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
    graph.insert(m("a"), [m("b")].into());
    graph.insert(m("b"), [m("c::d")].into());
    graph.insert(m("c::d"), [m("a")].into());
    graph.insert(m("e"), [m("a")].into());
    assert_eq!(circles(&graph), vec![vec![m("a"), m("b"), m("c::d")]]);
    // And the real graph has the edges the layers rest on.
    let real = import_graph();
    assert!(
        real[&m("builtins")]
            .iter()
            .any(|t| t.starts_with(&m("sources::csv")))
    );
    assert!(
        real[&m("sources::csv")]
            .iter()
            .any(|t| t.first().map(String::as_str) == Some("stage"))
    );
    assert!(real[&m("topology::plan")].contains(&m("registry")));
}
