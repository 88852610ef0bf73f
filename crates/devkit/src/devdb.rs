//! A private, throw-away PostgreSQL for `dossier dev` and the tests, started from the
//! server binaries installed on the machine (initdb and pg_ctl on PATH or under
//! /usr/lib/postgresql/*/bin). Written by hand because the crates that do this
//! download PostgreSQL from the internet, which production-like machines cannot reach.
//!
//! PostgreSQL refuses to run as root, so when Dossier runs as root the cluster is
//! created and run as the `postgres` system user (or `nobody`).
//!
//! A watchdog shell process stops the server and deletes its directory when the
//! process that started it exits for any reason, SIGKILL included, so nothing is left
//! behind.

use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

pub struct PrivatePostgres {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    user: Option<nix::unistd::User>,
    stopped: bool,
    /// Stopped by `halt`, data kept, until `resume`.
    halted: bool,
}

impl PrivatePostgres {
    /// Creates a cluster in a new temporary directory and starts it on a free port.
    pub fn start() -> anyhow::Result<PrivatePostgres> {
        let bin = find_bin_dir()?;
        let user = if nix::unistd::geteuid().is_root() {
            let u = nix::unistd::User::from_name("postgres")
                .ok()
                .flatten()
                .or_else(|| nix::unistd::User::from_name("nobody").ok().flatten())
                .context("running as root, and neither a `postgres` nor a `nobody` user exists to run PostgreSQL as")?;
            Some(u)
        } else {
            None
        };
        let dir = std::env::temp_dir().join(format!(
            "dossier-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))?;
        if let Some(u) = &user {
            std::os::unix::fs::chown(&dir, Some(u.uid.as_raw()), Some(u.gid.as_raw()))
                .context("cannot hand the data directory to the postgres user")?;
        }
        let mut pg = PrivatePostgres {
            dir,
            bin,
            port: 0,
            user,
            stopped: false,
            halted: false,
        };
        pg.init()?;
        pg.start_server()?;
        pg.spawn_watchdog()?;
        Ok(pg)
    }

    fn data(&self) -> PathBuf {
        self.dir.join("data")
    }

    fn command(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        if let Some(u) = &self.user {
            c.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        }
        c.env("LC_ALL", "C")
            .env_remove("PGDATA")
            .current_dir(&self.dir);
        c
    }

    fn init(&self) -> anyhow::Result<()> {
        let out = self
            .command("initdb")
            .arg("-D")
            .arg(self.data())
            .args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
                "--no-instructions",
            ])
            .stdin(Stdio::null())
            .output()
            .context("cannot run initdb")?;
        if !out.status.success() {
            bail!(
                "initdb failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    fn start_server(&mut self) -> anyhow::Result<()> {
        // A port can be taken between choosing and binding it: try a few.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            match self.pg_ctl_start(port)? {
                Ok(()) => {
                    self.port = port;
                    return Ok(());
                }
                Err(log) => last_error = log,
            }
        }
        bail!(
            "the private PostgreSQL did not start: {}",
            last_error.trim()
        )
    }

    /// `pg_ctl start` on `port`, waiting until the server accepts connections. The outer
    /// error is pg_ctl failing to run; the inner one is the server not starting (with
    /// its log).
    fn pg_ctl_start(&self, port: u16) -> anyhow::Result<Result<(), String>> {
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
            self.dir.display()
        );
        // Statement counts for `dossier bench` (what each submission and evaluation
        // costs PostgreSQL), where the module is installed (Debian's server package has it).
        if self.bin.join("../lib/pg_stat_statements.so").is_file() {
            options.push_str(
                " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all",
            );
        }
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-w", "-t", "60", "-o", &options, "-l"])
            .arg(self.dir.join("postgres.log"))
            .arg("start")
            .stdin(Stdio::null())
            .output()
            .context("cannot run pg_ctl")?;
        if out.status.success() {
            return Ok(Ok(()));
        }
        Ok(Err(
            std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default()
        ))
    }

    /// Stops the server the way an operator's restart or a failover does (`pg_ctl stop
    /// -m fast`: open sessions are terminated, in-flight transactions roll back) and
    /// keeps its data directory, so [`PrivatePostgres::resume`] can start it again with
    /// everything committed so far. Returns once the server has exited. For fault tests.
    pub fn halt(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.stopped, "the private PostgreSQL was stopped for good");
        anyhow::ensure!(!self.halted, "the private PostgreSQL is already halted");
        let out = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "-t", "60", "stop"])
            .stdin(Stdio::null())
            .output()
            .context("cannot run pg_ctl")?;
        if !out.status.success() {
            bail!(
                "pg_ctl stop failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        self.halted = true;
        Ok(())
    }

    /// Starts a server halted by [`PrivatePostgres::halt`] again, on the same port (so
    /// [`PrivatePostgres::url`] stays valid), and returns once it accepts connections.
    /// The port can be briefly taken (a connection attempt in progress, another
    /// process): it retries for up to about 30 seconds before giving up.
    pub fn resume(&mut self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.stopped, "the private PostgreSQL was stopped for good");
        anyhow::ensure!(self.halted, "the private PostgreSQL is not halted");
        let mut last_error = String::new();
        for attempt in 0..30 {
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_secs(1));
            }
            match self.pg_ctl_start(self.port)? {
                Ok(()) => {
                    self.halted = false;
                    return Ok(());
                }
                Err(log) => last_error = log,
            }
        }
        bail!(
            "the private PostgreSQL did not start again on port {}: {}",
            self.port,
            last_error.trim()
        )
    }

    fn spawn_watchdog(&self) -> anyhow::Result<()> {
        let script = format!(
            "while [ -d /proc/{pid} ]; do sleep 1; done; {pg_ctl} -D {data} -m immediate stop >/dev/null 2>&1; rm -rf {dir}",
            pid = std::process::id(),
            pg_ctl = shell_quote(&self.bin.join("pg_ctl")),
            data = shell_quote(&self.data()),
            dir = shell_quote(&self.dir),
        );
        let mut c = Command::new("/bin/sh");
        c.arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if let Some(u) = &self.user {
            c.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        }
        // Its own process group: a Ctrl-C aimed at us must not kill the watchdog first.
        c.process_group(0);
        c.spawn().context("cannot start the PostgreSQL watchdog")?;
        Ok(())
    }

    /// URL of the `postgres` database as the `postgres` superuser.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Stops the server and deletes its data.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.data())
            .args(["-m", "fast", "-w", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn shell_quote(p: &Path) -> String {
    format!("'{}'", p.display().to_string().replace('\'', r"'\''"))
}

/// Finds the directory holding initdb and pg_ctl: PATH first, then the newest
/// /usr/lib/postgresql/<version>/bin.
pub(crate) fn find_bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let initdb = dir.join("initdb");
            if initdb.is_file() && dir.join("pg_ctl").is_file() {
                // Resolve Debian's symlinks to the real bin directory.
                let real = std::fs::canonicalize(&initdb).unwrap_or(initdb);
                return Ok(real.parent().map(Path::to_path_buf).unwrap_or(dir));
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).context(
        "no DATABASE_URL is set and no PostgreSQL server binaries were found (initdb and pg_ctl on PATH or under /usr/lib/postgresql/*/bin). \
         Install PostgreSQL (Debian/Ubuntu: `apt-get install postgresql`; macOS: `brew install postgresql`) or set DATABASE_URL",
    )
}
