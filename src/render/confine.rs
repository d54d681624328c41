//! Templates come from the templates folder only. A name is refused when it is absolute, climbs
//! out with `..`, or resolves (through a symbolic link) to a file outside the folder. The same
//! rule serves `template:` and minijinja's loader, which every `{% include %}`, `{% import %}`,
//! `{% from %}` and `{% extends %}` goes through, so templates in the folder can use one another
//! and nothing else.

use std::io;
use std::path::{Component, Path, PathBuf};

use super::tags::{self, Lex, Lexeme};

/// Why a template is not read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum Refusal {
    #[error(
        "template {name:?} is an absolute path; templates are read from the templates folder only"
    )]
    Absolute { name: String },
    #[error("template {name:?} leads out of the templates folder with `..`")]
    Parent { name: String },
    #[error("template {name:?} is a symbolic link leading out of the templates folder")]
    Outside { name: String },
    #[error("cannot read template {}: {}", path.display(), why(source))]
    Unreadable { path: PathBuf, source: io::Error },
}

/// An I/O error in words: "there is no such file" for the common one, the system's else.
fn why(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::NotFound => "there is no such file".into(),
        _ => e.to_string(),
    }
}

impl Refusal {
    /// What to do, given the templates folder.
    pub(crate) fn hint(&self, dir: &Path) -> String {
        match self {
            Refusal::Absolute { .. } | Refusal::Parent { .. } => format!(
                "put the file in `{}/` and name it relative to that folder (e.g. `renewal.txt.j2`)",
                dir.display()
            ),
            Refusal::Outside { .. } => format!(
                "copy the file into `{}/` instead of linking to it",
                dir.display()
            ),
            Refusal::Unreadable { path, .. } if path.is_dir() => {
                let inside = std::fs::read_dir(path)
                    .ok()
                    .and_then(|mut d| d.find_map(|e| e.ok().filter(|e| e.path().is_file())))
                    .and_then(|e| e.path().strip_prefix(dir).ok().map(Path::to_path_buf));
                match inside {
                    Some(file) => format!(
                        "a template is a file: name one in that folder, such as `{}`",
                        file.display()
                    ),
                    None => "a template is a file: name the file, not its folder".into(),
                }
            }
            Refusal::Unreadable { path, .. } => match near(dir, path) {
                Some(name) => format!(
                    "did you mean `{name}`? Template names are relative to the templates folder `{}/`",
                    dir.display()
                ),
                None => format!(
                    "check the file name; templates are named relative to the templates folder `{}/`",
                    dir.display()
                ),
            },
        }
    }

    /// The file is simply not there (minijinja then says the template does not exist).
    pub(crate) fn is_missing(&self) -> bool {
        matches!(self, Refusal::Unreadable { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

/// The template in `dir` that the missing `path` (inside `dir`) most likely meant: the name
/// without the folder's own name before it (`templates/renewal.txt.j2` written for
/// `renewal.txt.j2`), else a file of the folder or its subfolders spelt the same but for case,
/// with the same file name in a subfolder (`footer.txt` for `parts/footer.txt`), or within a
/// letter or two.
fn near(dir: &Path, path: &Path) -> Option<String> {
    let name = path.strip_prefix(dir).ok()?;
    let folder = dir.file_name()?;
    if let Ok(rest) = name.strip_prefix(folder)
        && dir.join(rest).is_file()
    {
        return Some(rest.to_string_lossy().into_owned());
    }
    let wanted = name.to_string_lossy().to_lowercase();
    let files = files_in(dir);
    let file_name = |f: &String| f.rsplit('/').next().unwrap_or(f).to_lowercase();
    if let Some(f) = files
        .iter()
        .find(|f| f.to_lowercase() == wanted)
        .or_else(|| files.iter().find(|f| file_name(f) == wanted))
    {
        return Some(f.clone());
    }
    // A file name is a word of its own: only a slip of a letter or two is a likely mistake.
    let (d, file) = files
        .into_iter()
        .map(|f| (strsim::levenshtein(&wanted, &f.to_lowercase()), f))
        .min()?;
    (d <= (wanted.chars().count() / 4).max(2)).then_some(file)
}

/// The files in `dir` and its subfolders, as template names (`parts/footer.txt`): a few
/// hundred at most, three folders deep.
fn files_in(dir: &Path) -> Vec<String> {
    const MOST: usize = 500;
    let mut out = Vec::new();
    let mut folders = vec![(dir.to_path_buf(), 0)];
    while let Some((folder, depth)) = folders.pop() {
        let Ok(entries) = std::fs::read_dir(&folder) else {
            continue;
        };
        for e in entries.filter_map(Result::ok).take(MOST) {
            let Ok(kind) = e.file_type() else { continue };
            let path = e.path();
            if kind.is_dir() && depth < 3 {
                folders.push((path, depth + 1));
            } else if kind.is_file()
                && let Ok(rel) = path.strip_prefix(dir)
            {
                out.push(rel.to_string_lossy().into_owned());
            }
            if out.len() >= MOST {
                return out;
            }
        }
    }
    out
}

/// The templates folder: as the user names it (for messages), and its real path (to compare
/// resolved names against).
#[derive(Debug, Clone)]
pub(crate) struct Folder {
    dir: PathBuf,
    real: Option<PathBuf>,
}

impl Folder {
    pub(crate) fn new(dir: &Path) -> Folder {
        Folder {
            dir: dir.to_path_buf(),
            real: std::fs::canonicalize(dir).ok(),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file a template name stands for, as messages show it (`templates/renewal.txt.j2`).
    pub(crate) fn shown(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// The real path of template `name`, once it is known to lie inside the folder.
    pub(crate) fn resolve(&self, name: &str) -> Result<PathBuf, Refusal> {
        for part in Path::new(name).components() {
            match part {
                Component::Prefix(_) | Component::RootDir => {
                    return Err(Refusal::Absolute { name: name.into() });
                }
                Component::ParentDir => return Err(Refusal::Parent { name: name.into() }),
                Component::CurDir | Component::Normal(_) => {}
            }
        }
        let shown = self.shown(name);
        let unreadable = |source| Refusal::Unreadable {
            path: shown.clone(),
            source,
        };
        let real = std::fs::canonicalize(&shown).map_err(unreadable)?;
        let Some(root) = &self.real else {
            return Err(unreadable(io::Error::new(
                io::ErrorKind::NotFound,
                "the templates folder does not exist",
            )));
        };
        if !real.starts_with(root) {
            return Err(Refusal::Outside { name: name.into() });
        }
        // A folder is no template, and a pipe would block the reading forever.
        if let Some(why) = crate::campaign::system::not_a_file(&real) {
            return Err(unreadable(io::Error::other(format!("it {why}"))));
        }
        Ok(real)
    }

    /// The text of template `name`, read from inside the folder.
    fn read(&self, name: &str) -> Result<String, Refusal> {
        let real = self.resolve(name)?;
        std::fs::read_to_string(real).map_err(|source| Refusal::Unreadable {
            path: self.shown(name),
            source,
        })
    }

    /// minijinja's loader over this folder. A refused name is an error that carries its
    /// `Refusal` (see [`refusal`]); a missing file is none, which minijinja reports as a
    /// template that does not exist.
    pub(crate) fn loader(
        self,
    ) -> impl Fn(&str) -> Result<Option<String>, minijinja::Error> + Send + Sync + 'static {
        move |name| match self.read(name) {
            Ok(source) => Ok(Some(source)),
            Err(r) if r.is_missing() => Ok(None),
            Err(r) => Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                r.to_string(),
            )
            .with_source(r)),
        }
    }
}

/// The refusal behind an error the loader raised, if that is what the error is.
pub(crate) fn refusal(e: &minijinja::Error) -> Option<&Refusal> {
    std::error::Error::source(e)?.downcast_ref::<Refusal>()
}

/// A template another names with a literal, in an `include`, `import`, `from` or `extends` tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Reference {
    pub(crate) keyword: &'static str,
    pub(crate) name: String,
    /// The line of the tag, 1-based.
    pub(crate) line: usize,
    /// `{% include ... ignore missing %}`: a missing file is not an error.
    pub(crate) optional: bool,
    /// The other names of a list (`{% include ["a.j2", "b.j2"] %}`), of which the first that
    /// exists is used: one missing is no error while another exists.
    pub(crate) others: Vec<String>,
}

/// The templates `source` names with literals, so that they are loaded, and checked, before
/// any row is rendered. A name computed at render time (`{% include plan ~ '.j2' %}`) is left
/// to the loader, which holds it to the same rule then.
pub(crate) fn references(source: &str) -> Vec<Reference> {
    let read = tags::read(source);
    let mut out = Vec::new();
    for tag in read.tags().filter(|t| t.block) {
        let Some((first, args)) = tag.tokens.split_first() else {
            continue;
        };
        let keyword = match first.kind {
            Lex::Ident("include") => "include",
            Lex::Ident("import") => "import",
            Lex::Ident("from") => "from",
            Lex::Ident("extends") => "extends",
            _ => continue,
        };
        let line = read.line(tag.at.start);
        let optional = keyword == "include"
            && args.windows(2).any(|w| {
                matches!(
                    (&w[0].kind, &w[1].kind),
                    (Lex::Ident("ignore"), Lex::Ident("missing"))
                )
            });
        let names = literal_names(args);
        for name in &names {
            out.push(Reference {
                keyword,
                name: name.clone(),
                line,
                optional,
                others: names.iter().filter(|n| *n != name).cloned().collect(),
            });
        }
    }
    out
}

/// The names of `"a.j2"` or `["a.j2", 'b.j2']` opening a tag's arguments, when that is all
/// the expression is (a keyword such as `ignore missing`, `as` or `import` may follow).
fn literal_names(args: &[Lexeme<'_>]) -> Vec<String> {
    let (names, rest) = match args.split_first().map(|(t, rest)| (&t.kind, rest)) {
        Some((Lex::Str(name), rest)) => (vec![name.to_string()], rest),
        Some((Lex::BracketOpen, rest)) => {
            let Some(close) = rest.iter().position(|t| t.kind == Lex::BracketClose) else {
                return Vec::new();
            };
            let mut names = Vec::new();
            for item in rest[..close].split(|t| t.kind == Lex::Comma) {
                match item {
                    [] => {}
                    [
                        Lexeme {
                            kind: Lex::Str(name),
                            ..
                        },
                    ] => names.push(name.to_string()),
                    _ => return Vec::new(),
                }
            }
            (names, &rest[close + 1..])
        }
        _ => return Vec::new(),
    };
    match rest.first().map(|t| &t.kind) {
        None | Some(Lex::Ident(_)) => names,
        Some(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(source: &str) -> Vec<String> {
        references(source)
            .into_iter()
            .map(|r| {
                format!(
                    "{}:{} {}{}",
                    r.line,
                    r.keyword,
                    r.name,
                    if r.optional { "?" } else { "" }
                )
            })
            .collect()
    }

    #[test]
    fn literal_references_are_found_and_computed_ones_left_alone() {
        let source = "{% extends \"base.j2\" %}\n{% include 'a.j2' %}{%- include \"b.j2\" ignore missing -%}\n\
                      {% import \"m.j2\" as m %}{% from 'f.j2' import x %}\n\
                      {% include ['c.j2', \"d.j2\"] %}{% include plan ~ '.j2' %}{% include 'p' ~ x %}\n\
                      {# {% include 'comment.j2' %} #}{% raw %}{% include 'raw.j2' %}{% endraw %}\n\
                      {{ 'include' }}{% if x %}{% include \"e\\\"q.j2\" with context %}{% endif %}";
        assert_eq!(
            names(source),
            [
                "1:extends base.j2",
                "2:include a.j2",
                "2:include b.j2?",
                "3:import m.j2",
                "3:from f.j2",
                "4:include c.j2",
                "4:include d.j2",
                "6:include e\"q.j2",
            ]
        );
        assert!(names("{% include 'unterminated %}{% include").is_empty());
    }

    #[test]
    fn a_missing_template_hints_at_the_name_meant() {
        let outer = tempfile::tempdir().unwrap();
        let dir = outer.path().join("templates");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("renewal.txt.j2"), "a").unwrap();
        let folder = Folder::new(&dir);
        let hint = |name: &str| {
            let e = folder.read(name).unwrap_err();
            assert!(e.to_string().ends_with(": there is no such file"), "{e}");
            e.hint(&dir)
        };
        let meant = format!(
            "did you mean `renewal.txt.j2`? Template names are relative to the templates folder `{}/`",
            dir.display()
        );
        assert_eq!(hint("templates/renewal.txt.j2"), meant);
        assert_eq!(hint("renewel.txt.j2"), meant);
        assert!(hint("welcome.txt").starts_with("check the file name"));
        assert_eq!(hint("RENEWAL.TXT.J2"), meant);
        std::fs::create_dir_all(dir.join("parts")).unwrap();
        std::fs::write(dir.join("parts/footer.txt"), "f").unwrap();
        for wrong in ["footer.txt", "parts/foter.txt", "Parts/Footer.txt"] {
            assert!(
                hint(wrong).starts_with("did you mean `parts/footer.txt`?"),
                "{wrong}: {}",
                hint(wrong)
            );
        }
        let e = folder.read("parts").unwrap_err();
        assert!(e.to_string().ends_with(": it is a folder"), "{e}");
        assert_eq!(
            e.hint(&dir),
            "a template is a file: name one in that folder, such as `parts/footer.txt`"
        );
    }

    #[test]
    fn names_outside_the_folder_are_refused() {
        let outer = tempfile::tempdir().unwrap();
        let dir = outer.path().join("templates");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("sub/a.j2"), "a").unwrap();
        std::fs::write(outer.path().join("secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(outer.path().join("secret.txt"), dir.join("link.j2")).unwrap();
        std::os::unix::fs::symlink(dir.join("sub/a.j2"), dir.join("inside.j2")).unwrap();
        let folder = Folder::new(&dir);
        assert_eq!(folder.read("sub/a.j2").unwrap(), "a");
        assert_eq!(folder.read("./sub/a.j2").unwrap(), "a");
        assert_eq!(folder.read("inside.j2").unwrap(), "a");
        let refused = |name: &str| folder.read(name).unwrap_err().to_string();
        assert_eq!(
            refused("../secret.txt"),
            "template \"../secret.txt\" leads out of the templates folder with `..`"
        );
        assert_eq!(
            refused("sub/../../secret.txt"),
            "template \"sub/../../secret.txt\" leads out of the templates folder with `..`"
        );
        assert_eq!(
            refused("/etc/passwd"),
            "template \"/etc/passwd\" is an absolute path; templates are read from the templates folder only"
        );
        assert_eq!(
            refused("link.j2"),
            "template \"link.j2\" is a symbolic link leading out of the templates folder"
        );
        assert!(refused("missing.j2").starts_with("cannot read template "));
        assert!(folder.read("missing.j2").unwrap_err().is_missing());

        let load = folder.loader();
        assert_eq!(load("sub/a.j2").unwrap().as_deref(), Some("a"));
        assert_eq!(load("missing.j2").unwrap(), None);
        let e = load("link.j2").unwrap_err();
        assert!(matches!(refusal(&e), Some(Refusal::Outside { .. })), "{e}");
    }
}
