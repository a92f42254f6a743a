//! A real PostgreSQL server for a test: `initdb` into a temporary directory and `postgres` on a
//! free port, from Debian's `postgresql` package (installed by tests/setup.sh); run as the
//! `postgres` user when the tests run as root (the server refuses root). Stopped when dropped.

use super::{Background, free_port};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A running server.
pub struct Postgres {
    server: Option<Background>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// The directory holding `initdb` and `postgres`: the newest of Debian's versioned ones, else
/// wherever the PATH has them.
fn bin_dir() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.path().join("bin"))
                .filter(|p| p.join("postgres").exists())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions.pop().unwrap_or_default()
}

/// The uid and gid to run the server as: the `postgres` user's when running as root.
fn server_user() -> Option<(u32, u32)> {
    let uid = Command::new("id").arg("-u").output().ok()?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return None;
    }
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, "postgres"]).output().ok()?;
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some((
        id("-u").expect("a `postgres` user (tests/setup.sh installs postgresql)"),
        id("-g")?,
    ))
}

fn command(bin: &Path, name: &str, user: Option<(u32, u32)>) -> Command {
    use std::os::unix::process::CommandExt;
    let mut cmd = Command::new(bin.join(name));
    if let Some((uid, gid)) = user {
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// Starts a fresh server (user `weir`, trust authentication, database `postgres`).
pub fn start() -> Postgres {
    let bin = bin_dir();
    let user = server_user();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    if let Some((uid, gid)) = user {
        for path in [dir.path(), data.as_path()] {
            std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
        }
    }
    let init = command(&bin, "initdb", user)
        .args([
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "weir",
            "--no-sync",
        ])
        .output()
        .expect("initdb runs (tests/setup.sh installs postgresql)");
    assert!(
        init.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let port = free_port();
    let mut server = command(&bin, "postgres", user);
    server.args([
        "-D",
        data.to_str().unwrap(),
        "-p",
        &port.to_string(),
        "-k",
        dir.path().to_str().unwrap(),
        "-c",
        "listen_addresses=127.0.0.1",
        "-c",
        "fsync=off",
    ]);
    let server = Background::start(
        server,
        &dir.path().join("postgres.out"),
        &dir.path().join("postgres.log"),
    );
    let postgres = Postgres {
        server: Some(server),
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while postgres.try_query("SELECT 1").is_err() {
        assert!(Instant::now() < deadline, "PostgreSQL did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    postgres
}

impl Drop for Postgres {
    /// A fast shutdown (SIGINT), so the server leaves no shared memory behind.
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.signal("INT");
        }
    }
}

impl Postgres {
    /// The URL a pipeline connects with.
    pub fn url(&self) -> String {
        format!("postgres://weir@127.0.0.1:{}/postgres", self.port)
    }

    fn try_query(&self, sql: &str) -> Result<Vec<tokio_postgres::Row>, tokio_postgres::Error> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (client, connection) =
                tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await?;
            tokio::spawn(connection);
            client
                .simple_query("SET client_min_messages = warning")
                .await?;
            client.query(sql, &[]).await
        })
    }

    /// The rows `sql` returns.
    pub fn query(&self, sql: &str) -> Vec<tokio_postgres::Row> {
        self.try_query(sql).unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    /// Runs statements.
    pub fn execute(&self, sql: &str) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime
            .block_on(async {
                let (client, connection) =
                    tokio_postgres::connect(&self.url(), tokio_postgres::NoTls).await?;
                tokio::spawn(connection);
                client.batch_execute(sql).await
            })
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
}
