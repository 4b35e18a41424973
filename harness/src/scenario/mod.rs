//! Scenario files: reading TOML and turning it into a validated [`Plan`](crate::plan::Plan).
//!
//! Every problem is reported with its position (`file:line:col: message`), all of them at once
//! where the file parses; contradictions between fields are problems too.

mod diagnostic;
mod entry;
mod file;
mod reference;
mod validate;

pub use reference::reference;

pub use diagnostic::Diagnostic;

#[cfg(test)]
mod tests;

use crate::plan::Plan;
use diagnostic::Diagnostics;
use std::path::{Path, PathBuf};
use toml::de::DeTable;

/// Reads and validates one scenario file.
pub fn load(path: &Path) -> Result<Plan, Vec<Diagnostic>> {
    let source = std::fs::read_to_string(path).map_err(|e| {
        vec![Diagnostic {
            path: path.to_owned(),
            line: 1,
            column: 1,
            message: format!("cannot read the file: {e}"),
        }]
    })?;
    parse(path, &source)
}

/// Validates scenario text as if read from `path`.
pub fn parse(path: &Path, source: &str) -> Result<Plan, Vec<Diagnostic>> {
    let mut diags = Diagnostics::new(path, source);
    let document = match DeTable::parse(source) {
        Ok(document) => document,
        Err(e) => {
            diags.error(e.span().unwrap_or(0..0), e.message().trim().to_owned());
            return Err(diags.items);
        }
    };
    let span = document.span();
    let mut table = document.into_inner();
    let faults = entry::take(&mut table, "fault", &mut diags);
    let infra = entry::take(&mut table, "infra", &mut diags);
    let Some(raw) = file::ScenarioFile::read(table, span, &mut diags) else {
        return Err(diags.items);
    };
    let plan = validate::validate(path, raw, &faults, &infra, &mut diags);
    match plan {
        Some(plan) if diags.items.is_empty() => Ok(plan),
        _ => Err(diags.items),
    }
}

/// Expands paths (files, or folders searched recursively for `*.toml`, sorted) into scenario files.
pub fn discover(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Diagnostic> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found = Vec::new();
            collect_toml(path, &mut found)?;
            found.sort();
            files.extend(found);
        } else if path.exists() {
            files.push(path.clone());
        } else {
            return Err(Diagnostic {
                path: path.clone(),
                line: 1,
                column: 1,
                message: "no such file or folder".into(),
            });
        }
    }
    Ok(files)
}

fn collect_toml(dir: &Path, found: &mut Vec<PathBuf>) -> Result<(), Diagnostic> {
    for entry in std::fs::read_dir(dir).map_err(|e| io_diagnostic(dir, &e))? {
        let path = entry.map_err(|e| io_diagnostic(dir, &e))?.path();
        if path.is_dir() {
            collect_toml(&path, found)?;
        } else if path.extension().is_some_and(|x| x == "toml") {
            found.push(path);
        }
    }
    Ok(())
}

/// Loads every scenario under `paths`; reports all problems of all files, plus duplicate names.
pub fn load_all(paths: &[PathBuf]) -> Result<Vec<Plan>, Vec<Diagnostic>> {
    let files = discover(paths).map_err(|d| vec![d])?;
    if files.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        return Err(vec![Diagnostic {
            path: paths.first().cloned().unwrap_or_default(),
            line: 1,
            column: 1,
            message: format!("no scenario files (*.toml) found in {}", shown.join(", ")),
        }]);
    }
    let mut plans: Vec<Plan> = Vec::new();
    let mut problems = Vec::new();
    for file in files {
        match load(&file) {
            Ok(plan) => {
                if let Some(first) = plans.iter().find(|p| p.name == plan.name) {
                    problems.push(Diagnostic {
                        path: file.clone(),
                        line: 1,
                        column: 1,
                        message: format!(
                            "scenario name `{}` is already used by {}; names must be unique in a run",
                            plan.name,
                            first.source.display()
                        ),
                    });
                }
                plans.push(plan);
            }
            Err(mut d) => problems.append(&mut d),
        }
    }
    if problems.is_empty() { Ok(plans) } else { Err(problems) }
}

fn io_diagnostic(path: &Path, e: &std::io::Error) -> Diagnostic {
    Diagnostic {
        path: path.to_owned(),
        line: 1,
        column: 1,
        message: format!("cannot read: {e}"),
    }
}
