//! Secrets come from the environment, or from the file their `_FILE` twin names (a
//! mounted Kubernetes Secret), never from a command-line flag: `ps` shows every
//! process's arguments to every user of the machine.

use std::fmt;

/// A secret setting, read when the command line is parsed; a problem (both forms set, an
/// unreadable or empty file) is reported when the settings are resolved, with every
/// other problem. Its `Debug` never shows the value.
#[derive(Clone)]
pub struct Secret {
    name: String,
    value: Result<Option<String>, String>,
}

impl Secret {
    /// `NAME`, or the contents of the file `NAME_FILE` names (one trailing newline
    /// dropped, as `echo >` and editors leave one).
    pub fn from_env(name: &str) -> Secret {
        let file_var = format!("{name}_FILE");
        Secret::from_sources(name, std::env::var(name).ok(), std::env::var_os(&file_var))
    }

    fn from_sources(name: &str, value: Option<String>, file: Option<std::ffi::OsString>) -> Secret {
        let file_var = format!("{name}_FILE");
        let value = match (value, file) {
            (Some(_), Some(_)) => Err(format!("set {name} or {file_var}, not both")),
            (Some(v), None) => Ok(Some(v)),
            (None, None) => Ok(None),
            (None, Some(path)) => match std::fs::read_to_string(&path) {
                Err(e) => Err(format!(
                    "cannot read {file_var} ({}): {e}",
                    std::path::Path::new(&path).display()
                )),
                Ok(text) => {
                    let text = text
                        .strip_suffix('\n')
                        .map(|t| t.strip_suffix('\r').unwrap_or(t))
                        .unwrap_or(&text);
                    if text.is_empty() {
                        Err(format!("the file {file_var} names is empty"))
                    } else {
                        Ok(Some(text.to_owned()))
                    }
                }
            },
        };
        Secret {
            name: name.to_owned(),
            value,
        }
    }

    /// A value set by the program (the developer tools' simulators' token).
    pub fn value(name: &str, value: impl Into<String>) -> Secret {
        Secret {
            name: name.to_owned(),
            value: Ok(Some(value.into())),
        }
    }

    pub fn unset(name: &str) -> Secret {
        Secret {
            name: name.to_owned(),
            value: Ok(None),
        }
    }

    /// The value, if set; an error naming the variable when it could not be read.
    pub fn get(&self) -> anyhow::Result<Option<&str>> {
        match &self.value {
            Ok(v) => Ok(v.as_deref()),
            Err(e) => Err(anyhow::anyhow!("{e}")),
        }
    }

    pub fn is_set(&self) -> bool {
        matches!(self.value, Ok(Some(_)) | Err(_))
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match &self.value {
            Ok(Some(_)) => "set",
            Ok(None) => "unset",
            Err(_) => "unreadable",
        };
        write!(f, "Secret({}: {state})", self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_comes_from_its_variable_or_its_file_never_both() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            Some(path.into_os_string())
        };
        let get = |s: Secret| {
            s.get()
                .map(|v| v.map(str::to_owned))
                .map_err(|e| e.to_string())
        };
        let k = "DOSSIER_LOOKUP_KEY";
        assert_eq!(get(Secret::from_sources(k, None, None)), Ok(None));
        assert_eq!(
            get(Secret::from_sources(k, Some("abc".into()), None)),
            Ok(Some("abc".into()))
        );
        assert_eq!(
            get(Secret::from_sources(k, None, file("a", "s3cret\n"))),
            Ok(Some("s3cret".into()))
        );
        assert_eq!(
            get(Secret::from_sources(k, None, file("b", "s3cret\r\n"))),
            Ok(Some("s3cret".into()))
        );
        let both = get(Secret::from_sources(k, Some("x".into()), file("c", "y"))).unwrap_err();
        assert!(both.contains("not both"), "{both}");
        let empty = get(Secret::from_sources(k, None, file("d", "\n"))).unwrap_err();
        assert!(empty.contains("empty"), "{empty}");
        let missing = get(Secret::from_sources(
            k,
            None,
            Some("/nonexistent/key".into()),
        ))
        .unwrap_err();
        assert!(
            missing.contains("DOSSIER_LOOKUP_KEY_FILE") && missing.contains("/nonexistent/key")
        );
        let shown = format!("{:?}", Secret::value(k, "hunter2"));
        assert!(
            !shown.contains("hunter2") && shown.contains("set"),
            "{shown}"
        );
    }
}
