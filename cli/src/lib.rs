//! `faxbot plugin new`: writes a provider plugin skeleton that passes the conformance suite as generated
//! (docs/plugins.md, "Starting a plugin"). The skeletons live in `plugin-kit/templates/<kind>/` and are
//! compiled in; generating one is substituting a few names, which [`names`] derives from the plugin id.

use std::path::{Path, PathBuf};

use include_dir::{Dir, include_dir};

static TEMPLATES: Dir<'_> = include_dir!("$CARGO_MANIFEST_DIR/../plugin-kit/templates");

/// What kind of plugin to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// An HTTP plugin manifest (no code).
    Manifest,
    /// A sidecar in Rust.
    Rust,
    /// A sidecar in Python.
    Python,
    /// A sidecar in Node.
    Node,
}

impl Kind {
    /// From its name on the command line.
    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            "manifest" => Some(Kind::Manifest),
            "rust" => Some(Kind::Rust),
            "python" => Some(Kind::Python),
            "node" => Some(Kind::Node),
            _ => None,
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Kind::Manifest => "manifest",
            Kind::Rust => "rust",
            Kind::Python => "python",
            Kind::Node => "node",
        }
    }
}

/// The names a skeleton needs, from the plugin id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Names {
    /// `acme-fax`.
    pub id: String,
    /// `Acme Fax`.
    pub name: String,
    /// `acme_fax` (Python module, Rust crate).
    pub module: String,
    /// `AcmeFax` (Rust type).
    pub type_name: String,
}

/// The names for plugin id `id`, or why it cannot be one (the protocol's id rule, and not a built-in's).
pub fn names(id: &str) -> Result<Names, String> {
    let ok = (2..=63).contains(&id.len())
        && id.starts_with(|c: char| c.is_ascii_lowercase())
        && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !id.ends_with('-')
        && !id.contains("--");
    if !ok {
        return Err(format!(
            "`{id}` cannot be a plugin id: 2–63 lower-case letters, digits and single '-', starting with a letter"
        ));
    }
    if ["test", "phaxio", "sinch", "sip", "external", "local", "s3", "api_keys"].contains(&id) {
        return Err(format!("`{id}` is a built-in plugin's id"));
    }
    let words: Vec<String> = id
        .split('-')
        .map(|w| {
            let mut c = w.chars();
            c.next().map(|f| f.to_ascii_uppercase().to_string() + c.as_str()).unwrap_or_default()
        })
        .collect();
    Ok(Names { id: id.into(), name: words.join(" "), module: id.replace('-', "_"), type_name: words.concat() })
}

fn substitute(text: &str, names: &Names, kit: &str) -> String {
    text.replace("@@ID@@", &names.id)
        .replace("@@NAME@@", &names.name)
        .replace("@@MODULE@@", &names.module)
        .replace("@@TYPE@@", &names.type_name)
        .replace("@@KIT@@", kit)
}

/// Where the kit of `kind` is in this checkout (the skeleton depends on it by path).
pub fn default_kit(kind: Kind) -> Option<PathBuf> {
    let lang = match kind {
        Kind::Manifest => return None,
        Kind::Rust => "rust",
        Kind::Python => "python",
        Kind::Node => "node",
    };
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../plugin-kit").join(lang).canonicalize().ok()
}

/// Writes the skeleton of `kind` for `names` into `out`, which must not exist (nothing is overwritten).
/// Returns the files written.
pub fn generate(kind: Kind, names: &Names, out: &Path, kit: Option<&Path>) -> Result<Vec<PathBuf>, String> {
    if out.exists() {
        return Err(format!("{} exists; choose another directory (nothing is overwritten)", out.display()));
    }
    let template = TEMPLATES.get_dir(kind.dir()).ok_or_else(|| format!("no {} skeleton in this build", kind.dir()))?;
    let kit = match (kind, kit) {
        (Kind::Manifest, _) => String::new(),
        (_, Some(k)) => k.canonicalize().map_err(|e| format!("kit {}: {e}", k.display()))?.display().to_string(),
        (_, None) => default_kit(kind)
            .ok_or("the plugin kit was not found next to this build; pass --kit <path to plugin-kit/LANG>")?
            .display()
            .to_string(),
    };
    let mut files = Vec::new();
    collect(template, &mut files);
    let mut written = Vec::new();
    for file in files {
        let relative = file.path().strip_prefix(kind.dir()).map_err(|e| e.to_string())?;
        let target = out.join(substitute(&relative.to_string_lossy(), names, &kit));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
        let contents = match file.contents_utf8() {
            Some(text) => substitute(text, names, &kit).into_bytes(),
            None => file.contents().to_vec(),
        };
        std::fs::write(&target, contents).map_err(|e| format!("{}: {e}", target.display()))?;
        written.push(target);
    }
    Ok(written)
}

fn collect<'a>(dir: &'a Dir<'a>, out: &mut Vec<&'a include_dir::File<'a>>) {
    for file in dir.files() {
        // Build output and dependencies a developer may have left in the template directory stay out.
        let path = file.path().to_string_lossy();
        if !path.contains("node_modules") && !path.contains("__pycache__") && !path.contains("/target/") {
            out.push(file);
        }
    }
    for sub in dir.dirs() {
        collect(sub, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_id() {
        let n = names("acme-fax").unwrap();
        assert_eq!((n.name.as_str(), n.module.as_str(), n.type_name.as_str()), ("Acme Fax", "acme_fax", "AcmeFax"));
        for bad in ["", "a", "Acme", "1fax", "acme_fax", "acme-", "a--b", "phaxio", "external", &"a".repeat(64)] {
            assert!(names(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_kind_has_a_skeleton_without_leftover_placeholders() {
        let n = names("acme-fax").unwrap();
        for kind in [Kind::Manifest, Kind::Rust, Kind::Python, Kind::Node] {
            let dir = std::env::temp_dir().join(format!("faxbot-cli-{}-{:?}", std::process::id(), kind));
            let _ = std::fs::remove_dir_all(&dir);
            let files = generate(kind, &n, &dir, None).unwrap();
            assert!(!files.is_empty(), "{kind:?}");
            for f in &files {
                let text = std::fs::read_to_string(f).unwrap_or_default();
                assert!(!text.contains("@@") && !f.to_string_lossy().contains("@@"), "{}", f.display());
            }
            assert!(generate(kind, &n, &dir, None).is_err(), "overwrote {kind:?}");
            std::fs::remove_dir_all(&dir).unwrap();
        }
    }
}
