//! Connection settings the way the Temporal CLI takes them: `TEMPORAL_*` environment variables and
//! `temporal.toml` profiles (via the SDK's envconfig), overridden by flags.

use super::TargetError;
use std::{collections::HashMap, fmt, path::PathBuf};
use temporalio_client::{
    ClientOptions, Connection, ConnectionOptions,
    envconfig::{ClientConfigProfile, DataSource, LoadClientConfigProfileOptions},
};
use temporalio_common::envconfig::ClientConfigTLS;

/// Connection flags; unset ones fall back to the environment and the profile.
#[derive(Clone, Default, clap::Args)]
pub struct ConnectionSettings {
    /// Frontend of an existing cluster (HOST:PORT); selects the remote target.
    #[arg(long, env = "TEMPORAL_ADDRESS")]
    pub address: Option<String>,
    /// Namespace (default: TEMPORAL_NAMESPACE, the profile's, or `default`).
    #[arg(long)]
    pub namespace: Option<String>,
    /// Profile of the Temporal CLI config file (TEMPORAL_CONFIG_FILE, else the CLI's default path).
    #[arg(long)]
    pub profile: Option<String>,
    /// API key (default: TEMPORAL_API_KEY); turns TLS on unless TLS is disabled explicitly.
    #[arg(long, hide_env_values = true)]
    pub api_key: Option<String>,
    /// Use TLS (default: TEMPORAL_TLS, or on when TLS files or an API key are given).
    #[arg(long)]
    pub tls: Option<bool>,
    /// CA certificate of the server (PEM).
    #[arg(long)]
    pub tls_ca_path: Option<PathBuf>,
    /// Client certificate for mTLS (PEM).
    #[arg(long)]
    pub tls_cert_path: Option<PathBuf>,
    /// Client key for mTLS (PEM).
    #[arg(long)]
    pub tls_key_path: Option<PathBuf>,
    /// Server name to verify the server certificate against.
    #[arg(long)]
    pub tls_server_name: Option<String>,
}

/// Never print the API key.
impl fmt::Debug for ConnectionSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionSettings")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .field("profile", &self.profile)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish_non_exhaustive()
    }
}

/// A resolved place to connect to.
#[derive(Clone)]
pub struct Endpoint {
    /// Frontend `host:port` (or URL).
    pub address: String,
    /// Namespace.
    pub namespace: String,
    profile: ClientConfigProfile,
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .field("tls", &self.profile.tls.is_some())
            .field("api_key", &self.profile.api_key.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

impl ConnectionSettings {
    /// Environment and profile, then flags on top.
    pub fn resolve(&self) -> Result<Endpoint, TargetError> {
        self.resolve_in(None)
    }

    /// [`Self::resolve`] with `env` in place of the process environment (`None`: the real one).
    fn resolve_in(&self, env: Option<&HashMap<String, String>>) -> Result<Endpoint, TargetError> {
        let bad = |reason: String| TargetError::BadConnectionSettings { reason };
        let mut options = LoadClientConfigProfileOptions::default();
        options.config_file_profile = self.profile.clone();
        let mut profile =
            temporalio_common::envconfig::load_client_config_profile(options, env).map_err(|e| bad(e.to_string()))?;
        if let Some(a) = &self.address {
            profile.address = Some(a.clone());
        }
        if let Some(n) = &self.namespace {
            profile.namespace = Some(n.clone());
        }
        if let Some(k) = &self.api_key {
            profile.api_key = Some(k.clone());
        }
        let files = [&self.tls_ca_path, &self.tls_cert_path, &self.tls_key_path];
        if self.tls.is_some() || files.iter().any(|f| f.is_some()) || self.tls_server_name.is_some() {
            let tls = profile.tls.get_or_insert_with(ClientConfigTLS::default);
            let path = |p: &Option<PathBuf>| p.as_ref().map(|p| DataSource::Path(p.display().to_string()));
            tls.disabled = self.tls.map(|on| !on).or(tls.disabled);
            tls.server_ca_cert = path(&self.tls_ca_path).or(tls.server_ca_cert.take());
            tls.client_cert = path(&self.tls_cert_path).or(tls.client_cert.take());
            tls.client_key = path(&self.tls_key_path).or(tls.client_key.take());
            tls.server_name = self.tls_server_name.clone().or(tls.server_name.take());
        }
        Ok(Endpoint {
            address: profile.address.clone().unwrap_or_else(|| "localhost:7233".into()),
            namespace: profile.namespace.clone().unwrap_or_else(|| "default".into()),
            profile,
        })
    }
}

impl Endpoint {
    /// A server the harness started: plain gRPC on loopback.
    pub fn local(address: String, namespace: String) -> Self {
        let mut profile = ClientConfigProfile::default();
        profile.address = Some(address.clone());
        profile.namespace = Some(namespace.clone());
        Self {
            address,
            namespace,
            profile,
        }
    }

    /// The same server, reached the same way, in another namespace.
    pub fn in_namespace(&self, namespace: &str) -> Self {
        let mut other = self.clone();
        other.namespace = namespace.to_owned();
        other.profile.namespace = Some(namespace.to_owned());
        other
    }

    /// Whether this endpoint uses TLS.
    pub fn tls(&self) -> bool {
        self.profile
            .tls
            .as_ref()
            .map_or(self.profile.api_key.is_some(), |t| t.disabled != Some(true))
    }

    /// The TLS settings when TLS is on (empty ones when only an API key turned it on), for a
    /// connection the SDK does not make (the wire proxy's). Holds key material: never log it.
    pub(crate) fn tls_settings(&self) -> Option<ClientConfigTLS> {
        self.tls().then(|| self.profile.tls.clone().unwrap_or_default())
    }

    /// The API key, for a connection the SDK does not make (the wire proxy's). Never log it.
    pub(crate) fn api_key(&self) -> Option<&str> {
        self.profile.api_key.as_deref()
    }

    /// The environment that makes a child process (`chaos worker`) connect like this endpoint
    /// does even through a plain TCP forwarder (the network fault proxy): TLS on or off as here,
    /// the same files and key, verified against the real server's name. Holds key material:
    /// never log it.
    pub fn child_env(&self) -> Vec<(String, String)> {
        let Some(tls) = self.tls_settings() else {
            return vec![("TEMPORAL_TLS".into(), "false".into())];
        };
        let host = self.address.rsplit_once(':').map_or(self.address.as_str(), |(h, _)| h);
        let host = host.rsplit('/').next().unwrap_or(host).trim_matches(['[', ']']);
        let mut env = vec![
            ("TEMPORAL_TLS".to_owned(), "true".to_owned()),
            (
                "TEMPORAL_TLS_SERVER_NAME".to_owned(),
                tls.server_name.clone().unwrap_or_else(|| host.to_owned()),
            ),
        ];
        let files = [
            ("SERVER_CA_CERT", &tls.server_ca_cert),
            ("CLIENT_CERT", &tls.client_cert),
            ("CLIENT_KEY", &tls.client_key),
        ];
        for (name, source) in files {
            match source {
                Some(DataSource::Path(path)) => env.push((format!("TEMPORAL_TLS_{name}_PATH"), path.clone())),
                Some(DataSource::Data(data)) => env.push((
                    format!("TEMPORAL_TLS_{name}_DATA"),
                    String::from_utf8_lossy(data).into_owned(),
                )),
                // (`DataSource` may grow kinds this harness cannot pass on.)
                Some(_) | None => {}
            }
        }
        if let Some(key) = self.api_key() {
            env.push(("TEMPORAL_API_KEY".to_owned(), key.to_owned()));
        }
        env
    }

    /// Connection options, with `identity` for pollers and logs.
    pub(super) fn connection_options(&self, identity: String) -> Result<ConnectionOptions, BoxError> {
        let mut options = ConnectionOptions::try_from(self.profile.clone())?;
        options.identity = identity;
        Ok(options)
    }

    pub(super) fn client_options(&self) -> ClientOptions {
        ClientOptions::new(self.namespace.clone()).build()
    }
}

/// Any error of the connection's making (configuration, transport).
pub(super) type BoxError = Box<dyn std::error::Error>;

/// Opens the connection; kept here so that the secret-bearing options never leave this module.
pub(super) async fn open(endpoint: &Endpoint, identity: String) -> Result<Connection, BoxError> {
    let options = endpoint.connection_options(identity)?;
    Ok(Connection::connect(options).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CLI config file with two profiles, and an environment pointing at it.
    fn env_with_profiles(dir: &std::path::Path, vars: &[(&str, &str)]) -> HashMap<String, String> {
        let file = dir.join("temporal.toml");
        std::fs::write(
            &file,
            "[profile.default]\naddress = \"profile-host:7233\"\nnamespace = \"profile-ns\"\n\n\
             [profile.cloud]\naddress = \"cloud-host:7233\"\nnamespace = \"cloud-ns\"\napi_key = \"profile-key\"\n",
        )
        .unwrap();
        let mut env: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect();
        env.insert("TEMPORAL_CONFIG_FILE".into(), file.display().to_string());
        env
    }

    #[test]
    fn defaults_without_environment_or_profile() {
        let dir = tempfile::tempdir().unwrap();
        let mut env = HashMap::new();
        env.insert(
            "TEMPORAL_CONFIG_FILE".into(),
            dir.path().join("absent.toml").display().to_string(),
        );
        let e = ConnectionSettings::default().resolve_in(Some(&env)).unwrap();
        assert_eq!(
            (e.address.as_str(), e.namespace.as_str(), e.tls()),
            ("localhost:7233", "default", false)
        );
    }

    #[test]
    fn flags_beat_environment_which_beats_the_profile() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_with_profiles(dir.path(), &[]);
        let e = ConnectionSettings::default().resolve_in(Some(&env)).unwrap();
        assert_eq!(
            (e.address.as_str(), e.namespace.as_str()),
            ("profile-host:7233", "profile-ns")
        );

        let env = env_with_profiles(dir.path(), &[("TEMPORAL_ADDRESS", "env-host:7233")]);
        let e = ConnectionSettings::default().resolve_in(Some(&env)).unwrap();
        assert_eq!(
            (e.address.as_str(), e.namespace.as_str()),
            ("env-host:7233", "profile-ns")
        );

        let flags = ConnectionSettings {
            address: Some("flag-host:7233".into()),
            namespace: Some("flag-ns".into()),
            ..Default::default()
        };
        let e = flags.resolve_in(Some(&env)).unwrap();
        assert_eq!(
            (e.address.as_str(), e.namespace.as_str()),
            ("flag-host:7233", "flag-ns")
        );
    }

    #[test]
    fn a_named_profile_is_used_and_a_missing_one_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_with_profiles(dir.path(), &[]);
        let cloud = ConnectionSettings {
            profile: Some("cloud".into()),
            ..Default::default()
        };
        let e = cloud.resolve_in(Some(&env)).unwrap();
        assert_eq!(e.address, "cloud-host:7233");
        assert!(e.tls(), "an API key turns TLS on");
        let missing = ConnectionSettings {
            profile: Some("nope".into()),
            ..Default::default()
        };
        let err = missing.resolve_in(Some(&env)).unwrap_err().to_string();
        assert!(err.contains("nope"), "{err}");
    }

    #[test]
    fn api_key_turns_tls_on_unless_tls_is_turned_off() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_with_profiles(dir.path(), &[("TEMPORAL_API_KEY", "env-key")]);
        let e = ConnectionSettings::default().resolve_in(Some(&env)).unwrap();
        assert!(e.tls());
        assert_eq!(e.profile.api_key.as_deref(), Some("env-key"));
        let flag_key = ConnectionSettings {
            api_key: Some("flag-key".into()),
            tls: Some(false),
            ..Default::default()
        };
        let e = flag_key.resolve_in(Some(&env)).unwrap();
        assert_eq!(e.profile.api_key.as_deref(), Some("flag-key"));
        assert!(!e.tls(), "--tls false wins over the API key");
    }

    #[test]
    fn tls_files_turn_tls_on_and_flags_override_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_with_profiles(
            dir.path(),
            &[
                ("TEMPORAL_TLS_SERVER_CA_CERT_PATH", "/env/ca.pem"),
                ("TEMPORAL_TLS_SERVER_NAME", "env-name"),
            ],
        );
        let flags = ConnectionSettings {
            tls_ca_path: Some("/flag/ca.pem".into()),
            ..Default::default()
        };
        let e = flags.resolve_in(Some(&env)).unwrap();
        assert!(e.tls());
        let tls = e.profile.tls.as_ref().unwrap();
        assert!(
            matches!(&tls.server_ca_cert, Some(DataSource::Path(p)) if p == "/flag/ca.pem"),
            "{tls:?}"
        );
        assert_eq!(
            tls.server_name.as_deref(),
            Some("env-name"),
            "unset flags keep the environment's"
        );
    }

    #[test]
    fn a_child_process_gets_the_connection_as_environment() {
        let dir = tempfile::tempdir().unwrap();
        let env = env_with_profiles(dir.path(), &[]);
        let flags = ConnectionSettings {
            address: Some("temporal.example.com:7233".into()),
            api_key: Some("k".into()),
            tls_ca_path: Some("/ca.pem".into()),
            ..Default::default()
        };
        let child: HashMap<String, String> = flags.resolve_in(Some(&env)).unwrap().child_env().into_iter().collect();
        let var = |name: &str| child.get(name).map(String::as_str);
        assert_eq!(var("TEMPORAL_TLS"), Some("true"));
        assert_eq!(var("TEMPORAL_TLS_SERVER_NAME"), Some("temporal.example.com"));
        assert_eq!(var("TEMPORAL_TLS_SERVER_CA_CERT_PATH"), Some("/ca.pem"));
        assert_eq!(var("TEMPORAL_API_KEY"), Some("k"));
        let plain = ConnectionSettings::default().resolve_in(Some(&env)).unwrap();
        assert_eq!(plain.child_env(), [("TEMPORAL_TLS".to_owned(), "false".to_owned())]);
    }

    #[test]
    fn secrets_never_show_in_debug_output() {
        let settings = ConnectionSettings {
            api_key: Some("sekret-key".into()),
            ..Default::default()
        };
        assert!(!format!("{settings:?}").contains("sekret"));
        let dir = tempfile::tempdir().unwrap();
        let env = env_with_profiles(dir.path(), &[]);
        let e = settings.resolve_in(Some(&env)).unwrap();
        assert!(!format!("{e:?}").contains("sekret"));
    }
}
