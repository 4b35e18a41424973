//! Connection settings the way the Temporal CLI takes them: `TEMPORAL_*` environment variables and
//! `temporal.toml` profiles (via the SDK's envconfig), overridden by flags.

use super::TargetError;
use std::{fmt, path::PathBuf};
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
        let bad = |reason: String| TargetError::BadConnectionSettings { reason };
        let mut options = LoadClientConfigProfileOptions::default();
        options.config_file_profile = self.profile.clone();
        let mut profile =
            temporalio_common::envconfig::load_client_config_profile(options, None).map_err(|e| bad(e.to_string()))?;
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

    /// Whether this endpoint uses TLS.
    pub fn tls(&self) -> bool {
        self.profile
            .tls
            .as_ref()
            .map_or(self.profile.api_key.is_some(), |t| t.disabled != Some(true))
    }

    /// Connection options, with `identity` for pollers and logs.
    pub(super) fn connection_options(&self, identity: String) -> Result<ConnectionOptions, String> {
        let mut options = ConnectionOptions::try_from(self.profile.clone()).map_err(|e| e.to_string())?;
        options.identity = identity;
        Ok(options)
    }

    pub(super) fn client_options(&self) -> ClientOptions {
        ClientOptions::new(self.namespace.clone()).build()
    }
}

/// Opens the connection; kept here so that the secret-bearing options never leave this module.
pub(super) async fn open(endpoint: &Endpoint, identity: String) -> Result<Connection, String> {
    let options = endpoint.connection_options(identity)?;
    Connection::connect(options).await.map_err(|e| e.to_string())
}
