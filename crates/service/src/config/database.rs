//! The PostgreSQL URL every command that talks to the database takes, and the check
//! that it cannot travel in plaintext.

use super::Secret;

/// Refuses a database URL that could travel in plaintext to another machine: SSNs are
/// sealed, but everything else an application holds is not.
pub(super) fn check_database_tls(database_url: &str, allow_plaintext: bool) -> anyhow::Result<()> {
    let url = url::Url::parse(database_url).map_err(|_| {
        anyhow::anyhow!(
            "DATABASE_URL is not a URL (postgres://user:password@host:5432/db?sslmode=verify-full)"
        )
    })?;
    let query = |key: &str| {
        url.query_pairs()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.into_owned())
    };
    // A Unix socket (no host, or host=/path) never leaves the machine.
    let socket = url.host_str().is_none_or(str::is_empty)
        || query("host").is_some_and(|h| h.starts_with('/'));
    if socket || dossier_upstream::settings::is_loopback(&url) || allow_plaintext {
        return Ok(());
    }
    let mode = query("sslmode").unwrap_or_else(|| "prefer".into());
    match mode.as_str() {
        "require" | "verify-ca" | "verify-full" => Ok(()),
        _ => anyhow::bail!(
            "DATABASE_URL to {} has sslmode={mode}, which can fall back to plaintext: add sslmode=verify-full&sslrootcert=/path/to/ca.crt (or at least sslmode=require), or set DOSSIER_DATABASE_ALLOW_PLAINTEXT=true for a network you trust",
            url.host_str().unwrap_or("")
        ),
    }
}

/// The PostgreSQL URL, as every command that talks to the database takes it. Its
/// `Debug` shows the URL without its password.
#[derive(Clone, clap::Args)]
pub struct DatabaseArgs {
    /// PostgreSQL URL. Global, so it may follow a subcommand (`dossier jobs list
    /// --database-url …`).
    #[arg(
        long = "database-url",
        env = "DATABASE_URL",
        hide_env_values = true,
        global = true
    )]
    pub database_url: Option<String>,

    /// DATABASE_URL_FILE: a file holding the URL (a mounted Secret), so its password
    /// is in neither the command line nor the environment.
    #[arg(skip = Secret::from_env("DATABASE_URL"))]
    pub from_file: Secret,
}

impl std::fmt::Debug for DatabaseArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseArgs")
            .field(
                "database_url",
                &self.database_url.as_deref().map(dossier_store::redact_url),
            )
            .finish()
    }
}

impl DatabaseArgs {
    /// A URL given by the program.
    pub fn of(url: &str) -> DatabaseArgs {
        DatabaseArgs {
            database_url: Some(url.to_owned()),
            from_file: Secret::unset("DATABASE_URL"),
        }
    }

    /// The URL (flag, DATABASE_URL or DATABASE_URL_FILE), or an error naming the
    /// command that needs it.
    pub fn url(&self, command: &str) -> anyhow::Result<String> {
        let from_file = self.from_file.get()?;
        match (&self.database_url, from_file) {
            (Some(url), _) => Ok(url.clone()),
            (None, Some(url)) => Ok(url.to_owned()),
            (None, None) => anyhow::bail!(
                "DATABASE_URL is not set; `dossier {command}` needs the service's PostgreSQL URL (DATABASE_URL, DATABASE_URL_FILE or --database-url)"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_across_the_network_needs_tls() {
        for ok in [
            "postgres://dossier:pw@db.internal/dossier?sslmode=verify-full&sslrootcert=/ca.crt",
            "postgres://dossier:pw@db.internal/dossier?sslmode=require",
            "postgres://dossier:pw@127.0.0.1:5432/dossier",
            "postgres://dossier:pw@localhost/dossier?sslmode=disable",
            "postgres:///dossier?host=/var/run/postgresql",
        ] {
            assert!(check_database_tls(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "postgres://dossier:hunter2@db.internal/dossier",
            "postgres://dossier:hunter2@db.internal/dossier?sslmode=disable",
            "postgres://dossier:hunter2@10.1.2.3/dossier?sslmode=prefer",
        ] {
            let e = check_database_tls(bad, false).unwrap_err().to_string();
            assert!(e.contains("sslmode=verify-full"), "{e}");
            assert!(!e.contains("hunter2"), "{e}");
            assert!(
                check_database_tls(bad, true).is_ok(),
                "allowed explicitly: {bad}"
            );
        }
    }

    #[test]
    fn database_args_never_print_the_password() {
        let d = DatabaseArgs::of("postgres://dossier:hunter2@db.internal/dossier");
        let shown = format!("{d:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("db.internal"), "{shown}");
    }
}
