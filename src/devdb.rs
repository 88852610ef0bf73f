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
            let options = format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300",
                self.dir.display()
            );
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
                self.port = port;
                return Ok(());
            }
            last_error = std::fs::read_to_string(self.dir.join("postgres.log")).unwrap_or_default();
        }
        bail!(
            "the private PostgreSQL did not start: {}",
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
fn find_bin_dir() -> anyhow::Result<PathBuf> {
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
