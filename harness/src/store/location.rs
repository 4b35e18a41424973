//! Where the run store is: `--store URL` (`CHAOS_STORE_URL`) and `--store-database`, checked
//! before anything runs.

use super::StoreError;
use sqlx::postgres::PgConnectOptions;
use std::{
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
};

/// A store's location, parsed and checked, not yet opened.
#[derive(Debug, Clone)]
pub enum Location {
    /// An SQLite file, created with its folder when missing.
    Sqlite(PathBuf),
    /// A PostgreSQL database.
    Postgres {
        /// How to reach the server, and the database of the URL.
        server: Box<PgConnectOptions>,
        /// The database the runs go in when it is not the URL's (`--store-database`), created
        /// when missing.
        database: Option<String>,
    },
}

/// The SQLite file a run store defaults to: `<reports>/runs.sqlite`.
pub const DEFAULT_FILE: &str = "runs.sqlite";

impl Location {
    /// The location `url` names (`None`: the default, `<reports>/runs.sqlite`; `off`: no store),
    /// with `database` on a PostgreSQL server.
    pub fn parse(url: Option<&str>, database: Option<&str>, reports: &Path) -> Result<Option<Self>, StoreError> {
        let url = url.map(str::trim).filter(|u| !u.is_empty());
        let bad = |why: String| StoreError::BadUrl {
            url: url.map(redact).unwrap_or_default(),
            why,
        };
        let database = database.map(str::trim).filter(|d| !d.is_empty());
        if let Some(name) = database
            && !(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_'))
        {
            return Err(StoreError::BadDatabase(name.to_owned()));
        }
        let location = match url {
            None => Self::Sqlite(reports.join(DEFAULT_FILE)),
            Some("off") => return Ok(None),
            Some(u) if u.starts_with("sqlite:") => {
                let path = u.trim_start_matches("sqlite:").trim_start_matches("//");
                let path = path.split('?').next().unwrap_or_default();
                if path.is_empty() {
                    return Err(bad(
                        "no file: write sqlite://PATH, e.g. sqlite://reports/runs.sqlite".into()
                    ));
                }
                Self::Sqlite(PathBuf::from(path))
            }
            Some(u) if u.starts_with("postgres://") || u.starts_with("postgresql://") => Self::Postgres {
                server: Box::new(PgConnectOptions::from_str(u).map_err(|e| bad(e.to_string()))?),
                database: database.map(str::to_owned),
            },
            Some(u) => {
                let scheme = u.split(':').next().unwrap_or(u);
                return Err(bad(format!(
                    "unknown kind of store `{scheme}`: use sqlite://PATH, postgres://USER:PASSWORD@HOST:PORT/DATABASE or off"
                )));
            }
        };
        if database.is_some() && matches!(location, Self::Sqlite(_)) {
            return Err(bad("--store-database only applies to a PostgreSQL store".into()));
        }
        Ok(Some(location))
    }

    /// The command that records the run folder `dir` into this store (a PostgreSQL store's
    /// password left for the caller to give, as `CHAOS_STORE_URL` or in `--store`).
    pub fn push_command(&self, dir: &Path) -> String {
        match self {
            Self::Sqlite(path) => format!("chaos store push {} --store sqlite://{}", dir.display(), path.display()),
            Self::Postgres { database, .. } => format!(
                "CHAOS_STORE_URL=<the --store URL> chaos store push {}{}",
                dir.display(),
                database
                    .as_deref()
                    .map(|d| format!(" --store-database {d}"))
                    .unwrap_or_default()
            ),
        }
    }

    /// The options of the database the runs are kept in.
    pub(super) fn postgres_options(server: &PgConnectOptions, database: Option<&str>) -> PgConnectOptions {
        match database {
            Some(name) => server.clone().database(name),
            None => server.clone(),
        }
    }
}

impl fmt::Display for Location {
    /// The location as people read it, never with its password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            Self::Postgres { server, database } => write!(
                f,
                "postgres://{}@{}:{}/{}",
                server.get_username(),
                server.get_host(),
                server.get_port(),
                database
                    .as_deref()
                    .or(server.get_database())
                    .unwrap_or(server.get_username())
            ),
        }
    }
}

/// `url` with any password replaced by `***`.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.find(':') {
                Some(colon) => format!("{}{}:***{}", &url[..scheme + 3], &credentials[..colon], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: Option<&str>, database: Option<&str>) -> Result<Option<Location>, StoreError> {
        Location::parse(url, database, Path::new("reports"))
    }

    #[test]
    fn the_default_is_an_sqlite_file_under_the_reports_folder() {
        let location = parse(None, None).unwrap().unwrap();
        assert_eq!(location.to_string(), "sqlite://reports/runs.sqlite");
        assert_eq!(
            parse(Some("  "), None).unwrap().unwrap().to_string(),
            "sqlite://reports/runs.sqlite"
        );
        assert!(parse(Some("off"), None).unwrap().is_none());
        assert_eq!(
            parse(Some("sqlite:///tmp/x/runs.db"), None)
                .unwrap()
                .unwrap()
                .to_string(),
            "sqlite:///tmp/x/runs.db"
        );
    }

    #[test]
    fn a_postgres_url_is_shown_without_its_password() {
        let location = parse(
            Some("postgresql://chaos:s3cret@db.internal:6543/temporal"),
            Some("chaos"),
        )
        .unwrap()
        .unwrap();
        assert_eq!(location.to_string(), "postgres://chaos@db.internal:6543/chaos");
        let e = parse(Some("mysql://root:s3cret@h/db"), None).unwrap_err().to_string();
        assert!(
            e.contains("mysql://root:***@h/db") && e.contains("unknown kind of store `mysql`"),
            "{e}"
        );
        assert!(!e.contains("s3cret"));
    }

    #[test]
    fn a_database_name_must_be_an_identifier_and_only_on_postgres() {
        let e = parse(Some("postgres://u@h/db"), Some("x; DROP"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("`x; DROP`"), "{e}");
        let e = parse(None, Some("chaos")).unwrap_err().to_string();
        assert!(e.contains("only applies to a PostgreSQL store"), "{e}");
    }
}
