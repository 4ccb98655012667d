//! The reference lives in `docs/` (docs/README.md): every file a comment in the code
//! or a link in the documentation cites exists in the repository, and README links
//! the reference. No servers.

use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Source files whose comments may cite documents: Rust, Lua, the scripts.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs" || x == "lua")
            || p.parent().is_some_and(|d| d.ends_with("scripts"))
        {
            out.push(p);
        }
    }
}

/// Every markdown file name cited in `text` (letters, digits, `_ . / -` before its `.md`).
fn cited_markdown(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find(".md") {
        let at = from + i;
        from = at + 3;
        let after = bytes.get(at + 3).copied().unwrap_or(b' ');
        if after.is_ascii_alphanumeric() || after == b'_' {
            continue;
        }
        let start = text[..at]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || "_./-".contains(c)))
            .map_or(0, |s| s + 1);
        if start < at {
            // A path built with `concat!(.., "/../docs/…")`, or one starting `./`, names
            // the file from the root.
            let path = text[start..at + 3].trim_start_matches(['/', '.']);
            found.push(path.to_owned());
        }
    }
    found
}

/// Where a citation may point: from the repository root, or from `docs/`.
fn exists(cited: &str) -> bool {
    let root = repo();
    root.join(cited).exists() || root.join("docs").join(cited).exists()
}

#[test]
fn every_document_a_source_file_cites_exists() {
    let mut files = Vec::new();
    sources(&repo(), &mut files);
    assert!(files.len() > 50, "found the sources: {}", files.len());
    let mut missing = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap_or_default();
        // This test names a missing file on purpose, below.
        if f.ends_with("docs_are_cited_truly.rs") {
            continue;
        }
        for cited in cited_markdown(&text) {
            if !exists(&cited) {
                missing.push(format!("{}: {cited}", f.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "cited but not in the repository: {missing:#?}"
    );
}

#[test]
fn every_link_of_the_documentation_resolves() {
    let root = repo();
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root.join("docs"))
        .expect("docs/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.push(root.join("README.md"));
    let mut missing = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap_or_default();
        for link in text.split("](").skip(1).filter_map(|s| s.split(')').next()) {
            if link.starts_with("http") || link.starts_with('#') {
                continue;
            }
            let target = link.split('#').next().unwrap_or(link);
            let base = doc.parent().unwrap_or(&root);
            if !base.join(target).exists() {
                missing.push(format!("{}: {link}", doc.display()));
            }
        }
    }
    assert!(missing.is_empty(), "broken links: {missing:#?}");
}

#[test]
fn readme_links_the_reference() {
    let readme = std::fs::read_to_string(repo().join("README.md")).expect("README.md");
    assert!(
        readme.contains("](docs/README.md)"),
        "README links docs/README.md"
    );
}

#[test]
fn the_citation_scan_finds_what_it_should() {
    // The missing name is built, so this file itself cites no missing document.
    let missing = format!("{}.md", "DESIGN");
    let text = format!("see {missing} \"x\", (docs/redis-keys.md) and ./README.md; not .mdx");
    assert_eq!(
        cited_markdown(&text),
        [missing.as_str(), "docs/redis-keys.md", "README.md"]
    );
    assert!(!exists(&missing));
    assert!(exists("docs/redis-keys.md"));
}
