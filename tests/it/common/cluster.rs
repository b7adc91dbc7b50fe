//! Several real `signgate serve` processes on one PostgreSQL database (the scale-out the
//! README describes): a fresh database ([`PgDatabase`]), a batch folder every process shares
//! (`batch_dir`), and one data folder, configuration and log per process. Processes are
//! started, SIGKILLed, paused (SIGSTOP) and resumed (SIGCONT) by index; the batch tests
//! (`tests/it/scale_out.rs`) and the routing test of two processes under load use it.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use super::{signgate, PgDatabase, Server};

/// One process of a [`Cluster`].
struct Member {
    dir: PathBuf,
    config: PathBuf,
    server: Option<Server>,
}

/// `n` gateway processes over one PostgreSQL database and one shared batch folder.
pub struct Cluster {
    /// The database every process uses (dropped with the cluster).
    pub db: PgDatabase,
    /// The batch folder every process shares.
    pub batch_dir: PathBuf,
    members: Vec<Member>,
    envs: Vec<(String, String)>,
    binary: PathBuf,
    _tmp: tempfile::TempDir,
}

impl Cluster {
    /// Writes the configurations of `n` processes: process `i` gets `body(i)` (top-level keys
    /// first, then tables, as in any `signgate.toml`, without `data_dir`, `batch_dir` and
    /// `[database]`, which the cluster sets) and its own data folder. `envs` are set for every
    /// process and admin command. `None` (the test then returns) without `DATABASE_URL`
    /// outside CI ([`PgDatabase::create`]).
    pub fn new(
        prefix: &str,
        n: usize,
        envs: &[(&str, &str)],
        body: impl Fn(usize) -> String,
    ) -> Option<Cluster> {
        let db = PgDatabase::create(prefix)?;
        let tmp = tempfile::tempdir().expect("temp dir");
        let batch_dir = tmp.path().join("shared-batches");
        let members = (0..n)
            .map(|i| {
                let dir = tmp.path().join(format!("p{i}"));
                std::fs::create_dir_all(&dir).expect("process folder");
                let config = dir.join("signgate.toml");
                let (top, tables) = split_tables(&body(i));
                std::fs::write(
                    &config,
                    format!(
                        "data_dir = {:?}\nbatch_dir = {:?}\n{top}\n{tables}\n\n[database]\nurl = {:?}\n",
                        dir.join("data"),
                        batch_dir,
                        db.url
                    ),
                )
                .expect("write config");
                Member {
                    dir,
                    config,
                    server: None,
                }
            })
            .collect();
        Some(Cluster {
            db,
            batch_dir,
            members,
            envs: envs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            binary: super::signgate_bin(),
            _tmp: tmp,
        })
    }

    /// Runs the processes from the signgate binary at `bin` instead of the test build's (a
    /// bench runs a release build).
    pub fn with_binary(mut self, bin: PathBuf) -> Cluster {
        self.binary = bin;
        self
    }

    /// Number of processes.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Process `i`'s configuration file.
    pub fn config(&self, i: usize) -> &Path {
        &self.members[i].config
    }

    /// Process `i`'s folder (its data folder is `data/` in it).
    pub fn dir(&self, i: usize) -> &Path {
        &self.members[i].dir
    }

    /// Starts process `i` (`signgate serve --listen 127.0.0.1:0 --config …`) and waits for its
    /// listening line.
    pub fn start(&mut self, i: usize) {
        let envs: Vec<(&str, &str)> = self
            .envs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain([("SIGNGATE_LOG", "signgate=info")])
            .collect();
        let member = &mut self.members[i];
        let server = Server::start_binary(
            &self.binary,
            &member.dir,
            &[
                OsStr::new("serve"),
                OsStr::new("--listen"),
                OsStr::new("127.0.0.1:0"),
                OsStr::new("--config"),
                member.config.as_os_str(),
            ],
            &envs,
        );
        member.server = Some(server);
    }

    /// Starts every process.
    pub fn start_all(&mut self) {
        for i in 0..self.len() {
            self.start(i);
        }
    }

    /// `http://127.0.0.1:PORT/` of running process `i`.
    pub fn url(&self, i: usize) -> String {
        self.server(i).url.clone()
    }

    /// The process id of running process `i`.
    pub fn pid(&self, i: usize) -> u32 {
        self.server(i).pid()
    }

    fn server(&self, i: usize) -> &Server {
        self.members[i].server.as_ref().expect("process running")
    }

    /// Sends `signal` (`KILL`, `STOP`, `CONT`, `TERM`) to process `i`.
    pub fn signal(&self, i: usize, signal: &str) {
        let pid = self.server(i).pid().to_string();
        let status = Command::new("kill")
            .args([&format!("-{signal}"), &pid])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed");
    }

    /// SIGKILLs process `i` (a crash: no shutdown) and reaps it; its log stays readable.
    pub fn kill(&mut self, i: usize) {
        self.signal(i, "KILL");
        // Dropping the server reaps the killed child.
        let log = self.log(i);
        self.members[i].server = None;
        std::fs::write(self.members[i].dir.join("killed.log"), log).expect("keep log");
    }

    /// Process `i`'s stderr so far (its last run's, or the one it had when killed).
    pub fn log(&self, i: usize) -> String {
        match &self.members[i].server {
            Some(s) => s.log(),
            None => {
                std::fs::read_to_string(self.members[i].dir.join("killed.log")).unwrap_or_default()
            }
        }
    }

    /// Runs `signgate ARGS --config CONFIG(0)` (admin commands over the shared database).
    pub fn admin(&self, args: &[&str]) -> Output {
        let mut cmd = signgate(args);
        cmd.arg("--config")
            .arg(&self.members[0].config)
            .env_remove("SIGNGATE_DATABASE_URL");
        for (k, v) in &self.envs {
            cmd.env(k, v);
        }
        super::run(&mut cmd)
    }

    /// Runs `sql` on the shared database.
    pub fn execute(&self, sql: &str) {
        super::block_on(async {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&self.db.url)
                .await
                .expect("connect to the shared database");
            sqlx::query(sql)
                .execute(&pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            pool.close().await;
        })
    }

    /// The first column of the first row of `sql` on the shared database, as an integer.
    pub fn scalar(&self, sql: &str) -> i64 {
        use sqlx::Row;
        super::block_on(async {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(1)
                .connect(&self.db.url)
                .await
                .expect("connect to the shared database");
            let row = sqlx::query(sql)
                .fetch_one(&pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let v: i64 = row.get(0);
            pool.close().await;
            v
        })
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Resume paused processes, then let each server's drop kill and reap it.
        for m in &self.members {
            if let Some(server) = &m.server {
                let _ = Command::new("kill")
                    .args(["-CONT", &server.pid().to_string()])
                    .status();
            }
        }
        for m in &mut self.members {
            m.server = None;
        }
    }
}

/// Splits a TOML text into its top-level keys and the rest (from the first `[` line).
fn split_tables(body: &str) -> (String, String) {
    match body
        .find("\n[")
        .or_else(|| body.starts_with('[').then_some(0))
    {
        Some(at) => (body[..at].to_string(), body[at..].to_string()),
        None => (body.to_string(), String::new()),
    }
}
