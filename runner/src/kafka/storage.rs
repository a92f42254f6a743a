//! The embedded broker's `storage` setting: what users write (`memory://`, `sqlite://broker.db`,
//! `sqlite:///srv/weir/broker.db`, `sqlite:/srv/weir/broker.db`, `sqlite:broker.db`) turned
//! into the file it means and the URL the broker takes. The broker itself joins every sqlite path
//! to the working directory, so `sqlite:///srv/x.db` used to land in `./srv/x.db`; here a path
//! after `sqlite:` (with or without `//`) is absolute when it starts with `/` and relative to the
//! working directory otherwise, and the broker is given the absolute path.

use std::path::{Path, PathBuf};

/// Where the broker keeps its data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Storage {
    /// In memory, gone when the process exits.
    Memory,
    /// A sqlite database file (absolute), with the URL's query (broker options), if any.
    Sqlite {
        /// The database file.
        file: PathBuf,
        /// What followed `?`, without it.
        query: Option<String>,
    },
}

/// Why a `storage` value cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum StorageError {
    /// Neither `memory://` nor a `sqlite:` URL.
    #[error("storage `{0}` is not \"memory://\" or \"sqlite://FILE\" (also `sqlite:///abs/path`)")]
    Scheme(String),
    /// `sqlite:` without a file.
    #[error("storage `{0}` names no database file (write `sqlite://broker.db`)")]
    NoFile(String),
    /// The file's directory does not exist.
    #[error(
        "storage `{storage}`: the directory {directory} does not exist (the database would be {file})"
    )]
    NoDirectory {
        /// The value as written.
        storage: String,
        /// The missing directory.
        directory: String,
        /// The file it resolved to.
        file: String,
    },
}

impl Storage {
    /// Reads `storage` as written, resolving a relative sqlite path against `working_dir`.
    pub fn parse(storage: &str, working_dir: &Path) -> Result<Storage, StorageError> {
        if storage == "memory://" || storage == "memory:" {
            return Ok(Storage::Memory);
        }
        let Some(rest) = storage.strip_prefix("sqlite:") else {
            return Err(StorageError::Scheme(storage.to_string()));
        };
        let rest = rest.strip_prefix("//").unwrap_or(rest);
        let (path, query) = match rest.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (rest, None),
        };
        if path.is_empty() || path.ends_with('/') {
            return Err(StorageError::NoFile(storage.to_string()));
        }
        Ok(Storage::Sqlite {
            file: working_dir.join(path),
            query,
        })
    }

    /// Checks that a sqlite file's directory exists (the broker creates the file, not the
    /// directory).
    pub fn check_directory(&self, storage: &str) -> Result<(), StorageError> {
        match self {
            Storage::Memory => Ok(()),
            Storage::Sqlite { file, .. } => {
                let directory = file.parent().unwrap_or(Path::new("/"));
                if directory.is_dir() {
                    Ok(())
                } else {
                    Err(StorageError::NoDirectory {
                        storage: storage.to_string(),
                        directory: directory.display().to_string(),
                        file: file.display().to_string(),
                    })
                }
            }
        }
    }

    /// The URL the broker is given. For sqlite, an absolute path after an empty host and one
    /// more `/` (the broker strips one `/` before joining the path to its working directory, and
    /// joining an absolute path keeps it as it is).
    pub fn broker_url(&self) -> String {
        match self {
            Storage::Memory => "memory://".to_string(),
            Storage::Sqlite { file, query } => {
                let mut url = format!("sqlite:///{}", file.display());
                if let Some(query) = query {
                    url.push('?');
                    url.push_str(query);
                }
                url
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Storage, StorageError};
    use std::path::{Path, PathBuf};

    fn sqlite(file: &str) -> Storage {
        Storage::Sqlite {
            file: PathBuf::from(file),
            query: None,
        }
    }

    #[test]
    fn the_forms_users_write_mean_the_file_they_name() {
        let cwd = Path::new("/work/job");
        let parse = |s: &str| Storage::parse(s, cwd);
        assert_eq!(parse("memory://"), Ok(Storage::Memory));
        assert_eq!(
            parse("sqlite://broker.db"),
            Ok(sqlite("/work/job/broker.db"))
        );
        assert_eq!(
            parse("sqlite://data/b.db"),
            Ok(sqlite("/work/job/data/b.db"))
        );
        assert_eq!(parse("sqlite:broker.db"), Ok(sqlite("/work/job/broker.db")));
        assert_eq!(parse("sqlite:///srv/x.db"), Ok(sqlite("/srv/x.db")));
        assert_eq!(parse("sqlite:/srv/x.db"), Ok(sqlite("/srv/x.db")));
        assert_eq!(
            parse("sqlite://b.db?maintenance_interval=1m"),
            Ok(Storage::Sqlite {
                file: PathBuf::from("/work/job/b.db"),
                query: Some("maintenance_interval=1m".into())
            })
        );
        assert!(matches!(parse("sqlite://"), Err(StorageError::NoFile(_))));
        assert!(matches!(
            parse("postgres://db"),
            Err(StorageError::Scheme(_))
        ));
        assert!(matches!(parse("/srv/x.db"), Err(StorageError::Scheme(_))));
    }

    #[test]
    fn the_broker_is_given_the_absolute_path() {
        let cwd = Path::new("/work/job");
        let url = |s: &str| Storage::parse(s, cwd).unwrap().broker_url();
        assert_eq!(url("sqlite://broker.db"), "sqlite:////work/job/broker.db");
        assert_eq!(url("sqlite:///srv/x.db"), "sqlite:////srv/x.db");
        assert_eq!(url("sqlite://b.db?x=1"), "sqlite:////work/job/b.db?x=1");
        assert_eq!(url("memory://"), "memory://");
        // What the broker does with it: the URL's path (after `sqlite://` and an empty host),
        // less one leading `/`, joined to its working directory — an absolute path stays as it
        // is.
        let given = url("sqlite:///srv/x.db");
        let path = given.strip_prefix("sqlite://").unwrap();
        let relative = path.strip_prefix('/').unwrap();
        assert_eq!(
            Path::new("/elsewhere").join(relative),
            Path::new("/srv/x.db")
        );
    }

    #[test]
    fn a_missing_directory_is_named() {
        let storage = Storage::parse("sqlite:///no/such/dir/x.db", Path::new("/")).unwrap();
        let error = storage
            .check_directory("sqlite:///no/such/dir/x.db")
            .unwrap_err();
        assert_eq!(
            error.to_string(),
            "storage `sqlite:///no/such/dir/x.db`: the directory /no/such/dir does not exist \
             (the database would be /no/such/dir/x.db)"
        );
    }
}
