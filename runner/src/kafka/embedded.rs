//! The embedded broker: with `brokers = "embedded"`, weir starts a Kafka-compatible broker
//! (tansu) inside its own process, so a pipeline needs no separate Kafka. Any Kafka client can
//! use it while weir runs. One broker per listen address per process, shared by every stage
//! that asks for it; `weir broker` runs only this.
//!
//! Built with the `embedded-broker` cargo feature (on by default); without it, `"embedded"` is
//! an error that says so.

use super::broker_users::BrokerUser;
use super::storage::{Storage, StorageError};
use crate::serve::tls::{TlsError, check_files, server_config};
use crate::serve::{ListenError, listen_address};
use crate::stage::OptionIssue;
use serde::Deserialize;
use std::net::SocketAddr;

/// Why the embedded broker could not be started or reached.
#[derive(Debug, thiserror::Error)]
pub enum EmbeddedError {
    /// `listen` is not an address.
    #[error(transparent)]
    Listen(#[from] ListenError),
    /// This process already runs a broker there, with other storage or users.
    #[error("the embedded broker at {address} already runs with {running}, not {asked}")]
    OtherSettings {
        /// The listen address.
        address: SocketAddr,
        /// What it runs with.
        running: String,
        /// What was asked for.
        asked: String,
    },
    /// A user's password could not be read.
    #[error("embedded broker: {0}")]
    Password(String),
    /// The TLS certificate, key or client CA cannot be used.
    #[error("embedded broker: {0}")]
    Tls(#[from] TlsError),
    /// Something else listens on the address.
    #[error(
        "cannot start the embedded broker: {address} is already in use (another broker, or another weir?); set `embedded.listen` (e.g. in [kafka]) to a free address, or point `brokers` at the broker that is running"
    )]
    InUse {
        /// The listen address.
        address: SocketAddr,
    },
    /// The address cannot be bound.
    #[error("cannot start the embedded broker on {address}: {source}")]
    Bind {
        /// The listen address.
        address: SocketAddr,
        /// The operating system's error.
        #[source]
        source: std::io::Error,
    },
    /// `storage` is not a URL.
    #[error("storage `{storage}` is not a URL: {message}")]
    StorageUrl {
        /// The value as written.
        storage: String,
        /// What the URL parser said.
        message: String,
    },
    /// `storage` names no usable storage.
    #[error("embedded broker: {0}")]
    Storage(#[from] StorageError),
    /// The broker refused its configuration.
    #[error("cannot start the embedded broker: {message}")]
    Broker {
        /// The broker's error.
        message: String,
    },
    /// The broker task ended before it listened.
    #[error("the embedded broker did not start on {address} (see the error above)")]
    Exited {
        /// The listen address.
        address: SocketAddr,
    },
    /// The broker did not listen in time.
    #[error("the embedded broker did not listen on {address} within 10s")]
    Slow {
        /// The listen address.
        address: SocketAddr,
    },
    /// This weir was built without the broker.
    #[error(
        "this weir was built without the embedded broker (cargo feature `embedded-broker`); set `brokers` to a Kafka cluster"
    )]
    NotBuilt,
}

/// Where the embedded broker listens and keeps its data (`embedded = { ... }` of a Kafka stage,
/// usually set once in `[kafka]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedOptions {
    /// Listen address; clients are told to connect to the same address.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `memory://` (gone when weir exits) or `sqlite://FILE` (durable).
    #[serde(default = "default_storage")]
    pub storage: String,
    /// The address clients are told to connect to, when it is not `listen` (a TLS terminator
    /// or a proxy in front of the broker).
    #[serde(default)]
    pub advertise: Option<String>,
    /// SCRAM users; with any, the broker accepts only clients that authenticate as one of them
    /// (SCRAM-SHA-256 or SCRAM-SHA-512).
    #[serde(default)]
    pub users: Vec<BrokerUser>,
    /// Serve TLS on the listen address (and only TLS), optionally requiring client
    /// certificates.
    #[serde(default)]
    pub tls: Option<BrokerTls>,
}

/// `tls = { cert, key, ca }` of the embedded broker: its listener speaks TLS only, with this
/// certificate chain and key (PEM); with `ca`, every client must show a certificate that CA
/// signed (mutual TLS). SASL logins then run inside TLS (SASL_SSL).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct BrokerTls {
    /// PEM file: the broker's certificate, then any intermediates.
    pub cert: String,
    /// PEM file: the broker's private key.
    pub key: String,
    /// PEM file: the CA that signs client certificates; with it, clients must show one.
    #[serde(default)]
    pub ca: Option<String>,
}

impl BrokerTls {
    /// Checks that the files exist; issues name `tls.cert`, `tls.key`, `tls.ca`.
    pub fn check(&self) -> Vec<OptionIssue> {
        check_files(&[
            ("tls.cert", Some(&self.cert)),
            ("tls.key", Some(&self.key)),
            ("tls.ca", self.ca.as_ref()),
        ])
    }

    /// The broker's TLS configuration.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        server_config(&self.cert, &self.key, self.ca.as_deref())
    }
}

/// The default listen address, Kafka's usual port on loopback.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9092";

fn default_listen() -> String {
    DEFAULT_LISTEN.into()
}
fn default_storage() -> String {
    "memory://".into()
}

impl Default for EmbeddedOptions {
    fn default() -> Self {
        EmbeddedOptions {
            listen: default_listen(),
            storage: default_storage(),
            advertise: None,
            users: Vec::new(),
            tls: None,
        }
    }
}

impl EmbeddedOptions {
    /// Checks the address, the storage scheme and the users; issues name the key.
    pub fn check(&self) -> Vec<OptionIssue> {
        let mut issues = Vec::new();
        match self.address() {
            Err(e) => issues.push(OptionIssue::new("listen", e.to_string())),
            Ok(addr) if addr.port() == 0 => issues.push(OptionIssue::new(
                "listen",
                "the embedded broker needs a fixed port (clients are told it)",
            )),
            Ok(_) => {}
        }
        if let Err(e) = self.resolved_storage() {
            issues.push(OptionIssue::new("storage", e.to_string()));
        }
        issues.extend(super::broker_users::check(&self.users));
        if let Some(tls) = &self.tls {
            issues.extend(tls.check());
        }
        issues
    }

    /// The storage as it resolves from the working directory, its directory checked.
    pub fn resolved_storage(&self) -> Result<Storage, StorageError> {
        let working_dir = std::env::current_dir().unwrap_or_default();
        let storage = Storage::parse(&self.storage, &working_dir)?;
        storage.check_directory(&self.storage)?;
        Ok(storage)
    }

    /// The listen address.
    pub fn address(&self) -> Result<SocketAddr, ListenError> {
        listen_address(&self.listen, DEFAULT_LISTEN)
    }
}

/// Starts the broker for `options` unless this process already runs one there; returns the
/// bootstrap address for clients.
pub async fn ensure(options: &EmbeddedOptions) -> Result<String, EmbeddedError> {
    imp::ensure(options).await
}

#[cfg(feature = "embedded-broker")]
mod imp {
    use super::{BrokerTls, EmbeddedError, EmbeddedOptions};
    use crate::kafka::broker_users::{self, ScramHash};
    use crate::kafka::security::Secret;
    use std::collections::HashMap;
    use std::net::SocketAddr;
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};
    use tansu_broker::broker::Broker;
    use tansu_broker::coordinator::group::administrator::Controller;
    use tansu_sans_io::ScramMechanism;
    use tansu_storage::{ScramCredential, Storage as _, StorageContainer};
    use tokio::sync::Mutex;
    use tokio::task::JoinHandle;

    /// Brokers this process runs, by listen address, with their settings.
    type Running = Mutex<HashMap<SocketAddr, (String, JoinHandle<()>)>>;

    fn running() -> &'static Running {
        static RUNNING: OnceLock<Running> = OnceLock::new();
        RUNNING.get_or_init(Default::default)
    }

    pub async fn ensure(options: &EmbeddedOptions) -> Result<String, EmbeddedError> {
        let addr = options.address()?;
        let mut running = running().lock().await;
        if let Some((running_with, task)) = running.get(&addr)
            && !task.is_finished()
        {
            if *running_with != settings(options) {
                return Err(EmbeddedError::OtherSettings {
                    address: addr,
                    running: running_with.clone(),
                    asked: settings(options),
                });
            }
            return Ok(told(options, addr));
        }
        let task = start(addr, options, &told(options, addr)).await?;
        running.insert(addr, (settings(options), task));
        Ok(told(options, addr))
    }

    /// What must agree for two stages to share one broker: storage, user names and TLS.
    fn settings(options: &EmbeddedOptions) -> String {
        let names: Vec<_> = options.users.iter().map(|u| u.username.as_str()).collect();
        let mut settings = format!("storage {}", options.storage);
        if !names.is_empty() {
            settings += &format!(" and users {}", names.join(", "));
        }
        match &options.tls {
            Some(BrokerTls { cert, ca: None, .. }) => settings += &format!(" over TLS ({cert})"),
            Some(BrokerTls {
                cert, ca: Some(ca), ..
            }) => settings += &format!(" over mutual TLS ({cert}, clients of {ca})"),
            None => {}
        }
        settings
    }

    /// The address clients are told: `advertise`, or the listen address.
    fn told(options: &EmbeddedOptions, addr: SocketAddr) -> String {
        options
            .advertise
            .clone()
            .unwrap_or_else(|| advertised(addr).to_string())
    }

    /// The address clients are told: the listen address, or loopback for a wildcard one.
    fn advertised(addr: SocketAddr) -> SocketAddr {
        if addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        } else {
            addr
        }
    }

    async fn start(
        addr: SocketAddr,
        options: &EmbeddedOptions,
        told: &str,
    ) -> Result<JoinHandle<()>, EmbeddedError> {
        let storage = options.storage.as_str();
        let users = broker_users::passwords(&options.users).map_err(EmbeddedError::Password)?;
        let tls = options
            .tls
            .as_ref()
            .map(BrokerTls::server_config)
            .transpose()?;
        let serves_tls = tls.is_some();
        // tansu binds inside `serve`; check first so a taken port gets a clear message.
        match std::net::TcpListener::bind(addr) {
            Ok(probe) => drop(probe),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                return Err(EmbeddedError::InUse { address: addr });
            }
            Err(source) => {
                return Err(EmbeddedError::Bind {
                    address: addr,
                    source,
                });
            }
        }
        let url = |a: SocketAddr| {
            url::Url::parse(&format!("tcp://{a}")).expect("a socket address makes a tcp:// URL")
        };
        let broker_url = options.resolved_storage()?.broker_url();
        let storage_url = url::Url::parse(&broker_url).map_err(|e| EmbeddedError::StorageUrl {
            storage: storage.to_string(),
            message: e.to_string(),
        })?;
        let mut broker = Broker::<Controller<StorageContainer>, StorageContainer>::builder()
            .node_id(111)
            .cluster_id("weir")
            .incarnation_id(uuid::Uuid::new_v4())
            .advertised_listener(url::Url::parse(&format!("tcp://{told}")).map_err(|e| {
                EmbeddedError::Broker {
                    message: format!("advertised address `{told}`: {e}"),
                }
            })?)
            .storage(storage_url)
            .listener(url(addr))
            .authentication(!users.is_empty())
            .tls_server_config(tls)
            .silent(true)
            .build()
            .await
            .map_err(|e| EmbeddedError::Broker {
                message: e.to_string(),
            })?;
        for (username, password) in &users {
            add_user(broker.storage(), username, password).await?;
        }
        let task = tokio::spawn(async move {
            if let Err(e) = broker.serve(tokio::time::Instant::now()).await {
                tracing::error!("embedded broker stopped: {e}");
            }
        });
        wait_until_listening(addr, &task).await?;
        let protocol = if serves_tls { "TLS only" } else { "plaintext" };
        tracing::info!("embedded Kafka broker listening on {addr} ({protocol}, storage {storage})");
        if !users.is_empty() {
            tracing::info!(
                "the broker requires SASL SCRAM-SHA-256/512 as one of {} user(s)",
                users.len()
            );
        }
        Ok(task)
    }

    /// Stores `username`'s SCRAM-SHA-256 and SCRAM-SHA-512 credentials (a fresh salt each).
    async fn add_user(
        storage: &StorageContainer,
        username: &str,
        password: &Secret,
    ) -> Result<(), EmbeddedError> {
        for (hash, mechanism) in [
            (ScramHash::Sha256, ScramMechanism::Scram256),
            (ScramHash::Sha512, ScramMechanism::Scram512),
        ] {
            let salt = uuid::Uuid::new_v4().into_bytes();
            let stored = broker_users::credential(hash, password.expose(), &salt);
            let credential = ScramCredential {
                salt: stored.salt.into(),
                iterations: stored.iterations as i32,
                stored_key: stored.stored_key.into(),
                server_key: stored.server_key.into(),
            };
            storage
                .upsert_user_scram_credential(username, mechanism, credential)
                .await
                .map_err(|e| EmbeddedError::Broker {
                    message: format!("storing user `{username}`: {e}"),
                })?;
        }
        Ok(())
    }

    async fn wait_until_listening(
        addr: SocketAddr,
        task: &JoinHandle<()>,
    ) -> Result<(), EmbeddedError> {
        let connect_to = advertised(addr);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(connect_to).await.is_ok() {
                return Ok(());
            }
            if task.is_finished() {
                return Err(EmbeddedError::Exited { address: addr });
            }
            if Instant::now() > deadline {
                return Err(EmbeddedError::Slow { address: addr });
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

#[cfg(not(feature = "embedded-broker"))]
mod imp {
    use super::{EmbeddedError, EmbeddedOptions};

    pub async fn ensure(_: &EmbeddedOptions) -> Result<String, EmbeddedError> {
        Err(EmbeddedError::NotBuilt)
    }
}
