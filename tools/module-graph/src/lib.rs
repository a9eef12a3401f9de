//! The module dependency graph inside one crate, and its cycles.
//!
//! Each file under `src/` belongs to a top-level module (`src/http/routes/fax.rs` to `http`); every path it
//! uses that starts with `crate::` (or climbs to the crate root with `super::`) is an edge from that module to
//! the top-level module the path names. Code under `#[cfg(test)]` is left out: tests may reach anywhere. Paths
//! inside macro invocations (`tokio::select! { … }`) are not parsed and so not counted; the macros' own
//! paths (`crate::audit!`) are.
//!
//! `cycles` finds the strongly connected components with more than one module: any such component is a set
//! of modules that depend on each other, which the project does not allow (module dependencies point one way).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

use syn::visit::Visit;

/// Edges between top-level modules: `from -> to -> files of `from` that use `to``.
pub type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<PathBuf>>>;

/// Why a source tree could not be read.
#[derive(Debug)]
pub enum Error {
    /// A file or directory could not be read.
    Io(PathBuf, std::io::Error),
    /// A file is not valid Rust.
    Parse(PathBuf, syn::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(path, e) => write!(f, "{}: {e}", path.display()),
            Error::Parse(path, e) => write!(f, "{}: {e}", path.display()),
        }
    }
}

impl std::error::Error for Error {}

/// The graph of the crate whose sources are in `src` (the crate roots `lib.rs` and `main.rs` and `src/bin/`
/// are not modules of the library and are left out).
pub fn graph(src: &Path) -> Result<Graph, Error> {
    let mut files = Vec::new();
    collect(src, &mut files)?;
    let mut graph = Graph::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap_or(&file).to_path_buf();
        let Some(module) = module_path(&relative) else { continue };
        let text = std::fs::read_to_string(&file).map_err(|e| Error::Io(file.clone(), e))?;
        let parsed = syn::parse_file(&text).map_err(|e| Error::Parse(file.clone(), e))?;
        let mut visitor = Uses { module: &module, targets: BTreeSet::new() };
        visitor.visit_file(&parsed);
        for target in visitor.targets {
            if target != module[0] {
                graph.entry(module[0].clone()).or_default().entry(target).or_default().insert(relative.clone());
            }
        }
    }
    Ok(graph)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), Error> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::Io(dir.to_path_buf(), e))?;
    for entry in entries {
        let path = entry.map_err(|e| Error::Io(dir.to_path_buf(), e))?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// The module path of a file relative to `src` (`http/routes/fax.rs` → `[http, routes, fax]`, `http/mod.rs`
/// → `[http]`); `None` for the crate roots and binaries.
fn module_path(relative: &Path) -> Option<Vec<String>> {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if parts.first().is_some_and(|p| p == "bin") || parts == ["lib.rs"] || parts == ["main.rs"] {
        return None;
    }
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if stem != "mod" {
        parts.push(stem.to_string());
    }
    (!parts.is_empty()).then_some(parts)
}

/// Collects the top-level modules a file's paths name.
struct Uses<'a> {
    module: &'a [String],
    targets: BTreeSet<String>,
}

impl Uses<'_> {
    /// The top-level module a path starting with `first`, then `rest`, names, if it leaves this one.
    fn resolve<'s>(&mut self, first: &str, mut rest: impl Iterator<Item = &'s str>) {
        let mut depth = self.module.len();
        let mut next = Some(first);
        loop {
            match next {
                Some("crate") => depth = 0,
                Some("super") => depth = depth.saturating_sub(1),
                Some("self") => {}
                Some(name) if depth == 0 => {
                    self.targets.insert(name.to_string());
                    return;
                }
                // Relative to a module below the root: stays inside this top-level module.
                _ => return,
            }
            next = rest.next();
            if next.is_none() && depth == 0 {
                return;
            }
        }
    }

    fn resolve_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.resolve_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => self.resolve_segments(prefix, &n.ident.to_string()),
            syn::UseTree::Rename(r) => self.resolve_segments(prefix, &r.ident.to_string()),
            syn::UseTree::Glob(_) => self.resolve_segments(prefix, "*"),
            syn::UseTree::Group(g) => {
                for item in &g.items {
                    self.resolve_tree(prefix, item);
                }
            }
        }
    }

    fn resolve_segments(&mut self, prefix: &[String], last: &str) {
        let mut all = prefix.iter().map(String::as_str).chain(std::iter::once(last));
        if let Some(first) = all.next() {
            self.resolve(first, all);
        }
    }
}

fn is_test_only(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .any(|a| a.path().is_ident("cfg") && a.parse_args::<syn::Meta>().is_ok_and(|m| m.path().is_ident("test")))
}

impl<'ast> Visit<'ast> for Uses<'_> {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let attrs: &[syn::Attribute] = match item {
            syn::Item::Mod(i) => &i.attrs,
            syn::Item::Fn(i) => &i.attrs,
            syn::Item::Use(i) => &i.attrs,
            syn::Item::Impl(i) => &i.attrs,
            syn::Item::Struct(i) => &i.attrs,
            syn::Item::Enum(i) => &i.attrs,
            syn::Item::Const(i) => &i.attrs,
            syn::Item::Static(i) => &i.attrs,
            _ => &[],
        };
        if !is_test_only(attrs) {
            syn::visit::visit_item(self, item);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.resolve_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let mut segments = path.segments.iter().map(|s| s.ident.to_string()).collect::<Vec<_>>().into_iter();
        if let Some(first) = segments.next() {
            let rest: Vec<String> = segments.collect();
            self.resolve(&first, rest.iter().map(String::as_str));
        }
        syn::visit::visit_path(self, path);
    }
}

/// The sets of modules that depend on each other (strongly connected components of more than one module),
/// each sorted; empty when dependencies point one way.
pub fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    // Tarjan's algorithm; a crate has a few dozen modules, so recursion depth is no concern.
    struct State<'g> {
        graph: &'g Graph,
        index: BTreeMap<&'g str, usize>,
        low: BTreeMap<&'g str, usize>,
        stack: Vec<&'g str>,
        found: Vec<Vec<String>>,
    }
    fn connect<'g>(s: &mut State<'g>, v: &'g str) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in s.graph.get(v).into_iter().flat_map(|targets| targets.keys()) {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                connect(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut state = State { graph, index: BTreeMap::new(), low: BTreeMap::new(), stack: Vec::new(), found: Vec::new() };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            connect(&mut state, v);
        }
    }
    state.found.sort();
    state.found
}

/// The edges inside `cycle`, one per line with the files that make them, for a failure message.
pub fn explain(graph: &Graph, cycle: &[String]) -> String {
    let mut out = String::new();
    for from in cycle {
        for (to, files) in graph.get(from).into_iter().flatten() {
            if cycle.contains(to) {
                let files: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
                out.push_str(&format!("  {from} -> {to} ({})\n", files.join(", ")));
            }
        }
    }
    out
}
