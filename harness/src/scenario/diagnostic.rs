//! Positioned problems in scenario files, printed as `file:line:col: message`.

use std::{fmt, ops::Range, path::PathBuf};

/// One problem in a scenario file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file.
    pub path: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, and where possible how to fix it.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}",
            self.path.display(),
            self.line,
            self.column,
            self.message
        )
    }
}

/// Problems of one file, collected so that all of them are reported at once.
#[derive(Debug)]
pub(crate) struct Diagnostics<'a> {
    path: &'a std::path::Path,
    source: &'a str,
    pub(crate) items: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    pub(crate) fn new(path: &'a std::path::Path, source: &'a str) -> Self {
        Self {
            path,
            source,
            items: Vec::new(),
        }
    }

    /// Records a problem at a byte span of the source.
    pub(crate) fn error(&mut self, span: Range<usize>, message: impl Into<String>) {
        let (line, column) = line_col(self.source, span.start);
        self.items.push(Diagnostic {
            path: self.path.to_owned(),
            line,
            column,
            message: message.into(),
        });
    }
}

/// 1-based line and character column of a byte offset.
fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source[..offset.min(source.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    #[test]
    fn positions_are_one_based_in_characters() {
        let src = "a = 1\nbé = 2\n";
        assert_eq!(super::line_col(src, 0), (1, 1));
        assert_eq!(super::line_col(src, 6), (2, 1));
        assert_eq!(super::line_col(src, "a = 1\nbé".len()), (2, 3));
    }
}
