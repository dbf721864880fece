//! Fixtures: a workspace written as one text, files introduced by `//- /path` lines, with
//! cursor markers `$0` … `$9` in place of hand-computed offsets. A marker is removed
//! from the text; its number names the offset (and file) where it stood.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use egress_ide::{AnalysisHost, MemoryVfs};

pub struct Fixture {
    /// Each file's text, markers removed, in the order written.
    pub files: Vec<(PathBuf, String)>,
    /// Each marker's file and offset.
    pub markers: BTreeMap<usize, (PathBuf, usize)>,
    /// What follows `//- expect`, if anything (case files).
    pub expect: String,
}

impl Fixture {
    pub fn parse(text: &str) -> Fixture {
        let mut files: Vec<(PathBuf, String)> = Vec::new();
        let mut markers = BTreeMap::new();
        let mut expect = String::new();
        let mut in_expect = false;
        for line in text.split_inclusive('\n') {
            if let Some(header) = line.strip_prefix("//- ") {
                let header = header.trim();
                if header == "expect" {
                    in_expect = true;
                } else {
                    assert!(header.starts_with('/'), "bad fixture header `{header}`");
                    in_expect = false;
                    files.push((PathBuf::from(header), String::new()));
                }
                continue;
            }
            if in_expect {
                expect.push_str(line);
                continue;
            }
            // Lines before the first header are the case's description.
            let Some((path, out)) = files.last_mut() else {
                continue;
            };
            let mut rest = line;
            while let Some(i) = rest.find('$') {
                // One digit, so a marker may stand right before a number (`port $1443`).
                let digits: String = rest[i + 1..]
                    .chars()
                    .take(1)
                    .filter(char::is_ascii_digit)
                    .collect();
                out.push_str(&rest[..i]);
                if digits.is_empty() {
                    out.push('$');
                    rest = &rest[i + 1..];
                    continue;
                }
                let n: usize = digits.parse().unwrap();
                let previous = markers.insert(n, (path.clone(), out.len()));
                assert!(previous.is_none(), "marker ${n} appears twice");
                rest = &rest[i + 1 + digits.len()..];
            }
            out.push_str(rest);
        }
        Fixture {
            files,
            markers,
            expect,
        }
    }

    /// The text of the file at `path`.
    pub fn text(&self, path: &str) -> &str {
        self.files
            .iter()
            .find(|(p, _)| p == Path::new(path))
            .map(|(_, t)| t.as_str())
            .unwrap_or_else(|| panic!("no file {path} in the fixture"))
    }

    /// The offset of marker `$n`.
    pub fn at(&self, n: usize) -> usize {
        self.marker(n).1
    }

    /// The file and offset of marker `$n`.
    pub fn marker(&self, n: usize) -> (&Path, usize) {
        let (path, offset) = self
            .markers
            .get(&n)
            .unwrap_or_else(|| panic!("no marker ${n} in the fixture"));
        (path, *offset)
    }

    /// An analysis host over the fixture's files, rooted at `/ws`.
    pub fn host(&self) -> (AnalysisHost, MemoryVfs) {
        let vfs = MemoryVfs::new();
        for (path, text) in &self.files {
            vfs.write(path, text.as_str());
        }
        let host = AnalysisHost::new(Arc::new(vfs.clone()), vec![PathBuf::from("/ws")]);
        (host, vfs)
    }
}
