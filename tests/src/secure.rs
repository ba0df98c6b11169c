//! A `nats-server` running the secure configuration `deploy/` ships
//! (`deploy/nats/secure/treem-secure.conf`), for the scenarios that attack
//! it (`tests/tests/e2e/nats_security.rs`).
//!
//! [`SecureNats::start`] does what an operator does, in a temporary
//! directory: copies the shipped configuration, runs the `treem-nats-auth`
//! generator (its library, [`treem_auth::nats::cli`]) to make one nkey per
//! ward, town and province and the `accounts.conf` the configuration
//! includes, makes a certificate authority and a server certificate for
//! 127.0.0.1 (rcgen; nothing secret is committed), then starts the real
//! binary on a port the OS picks, from the configuration's directory (the
//! TLS paths in it are relative to the working directory).
//!
//! The hierarchy is the shipped one plus a second town, `691` with ward
//! `69101`, so that a town can be shown to read nothing of another town.
//!
//! # Layout of the temporary directory
//!
//! ```text
//! treem-secure-nats-XXXXXX/
//!   conf/treem-secure.conf   the shipped file, unchanged
//!   conf/accounts.conf       written by the generator (public keys only)
//!   conf/seeds/*.nk          one seed per identity (0600, dir 0700)
//!   conf/tls/                ca.pem, server-cert.pem, server-key.pem; client certs on demand
//!   conf/hierarchy.json      the hierarchy the generator read
//!   store/                   -sd
//!   nats-server.log          stdout+stderr
//! ```
//!
//! Dropping it kills the server (SIGKILL) and removes the directory, unless
//! the test is panicking: then the directory is kept and the log's tail
//! printed.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr};
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType};
use tempfile::TempDir;
use treem_auth::nats::ClientAuth;
use treem_auth::nats::cli::{Args, Command as AuthCommand};
use treem_auth::nats::keys::KeyDir;

use crate::nats::nats_server_binary;
use crate::{repo_root, wait_for};

/// The shipped secure configuration, relative to the repository root.
pub const SECURE_CONF: &str = "deploy/nats/secure/treem-secure.conf";

/// The town added to the shipped hierarchy (with one ward), to show that
/// towns are kept apart.
pub const OTHER_TOWN: &str = "691";
pub const OTHER_WARD: &str = "69101";

const START_DEADLINE: Duration = Duration::from_secs(30);
const LISTENING: &str = "Listening for client connections on ";

/// A test certificate authority: its certificate (PEM) and what it signs with.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub cert_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("self-signed CA certificate");
        TestCa { issuer: Issuer::new(params, key), cert_pem: cert.pem() }
    }

    /// A certificate for `name` (and 127.0.0.1 when `server`), signed by
    /// this CA: (certificate PEM, private key PEM).
    pub fn issue(&self, name: &str, server: bool) -> (String, String) {
        let mut params = CertificateParams::new(vec![name.to_string()]).expect("certificate parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        if server {
            params.subject_alt_names.push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        } else {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let key = KeyPair::generate().expect("certificate key");
        let cert = params.signed_by(&key, &self.issuer).expect("sign certificate");
        (cert.pem(), key.serialize_pem())
    }
}

/// A nats-server with the secure configuration, TLS and generated identities.
pub struct SecureNats {
    dir: Option<TempDir>,
    child: Option<Child>,
    port: u16,
    pub ca: TestCa,
    /// With mutual TLS: the client certificate and key the harness's own
    /// connections ([`SecureNats::connect_with`]) present.
    client_cert: Option<(PathBuf, PathBuf)>,
}

impl SecureNats {
    /// The shipped configuration as it is (TLS, no client certificates).
    pub async fn start() -> SecureNats {
        SecureNats::start_with(false).await
    }

    /// With `mutual`, the shipped configuration with its `# verify: true`
    /// line switched on (mutual TLS, as its comment describes).
    pub async fn start_with(mutual: bool) -> SecureNats {
        let dir = tempfile::Builder::new().prefix("treem-secure-nats-").tempdir().expect("temporary directory");
        let conf = dir.path().join("conf");
        let tls = conf.join("tls");
        std::fs::create_dir_all(&tls).expect("create conf/tls");
        std::fs::create_dir_all(dir.path().join("store")).expect("create store");
        let shipped = repo_root().join(SECURE_CONF);
        let text = std::fs::read_to_string(&shipped).unwrap_or_else(|e| panic!("read {}: {e}", shipped.display()));
        let text = if mutual {
            assert!(text.contains("  # verify: true\n"), "{SECURE_CONF} lost its commented `verify: true` line");
            text.replace("  # verify: true\n", "  verify: true\n")
        } else {
            text
        };
        std::fs::write(conf.join("treem-secure.conf"), text).expect("write the configuration");
        std::fs::write(conf.join("hierarchy.json"), hierarchy_with_a_second_town()).expect("write hierarchy");

        let ca = TestCa::new("treem test CA");
        let (cert, key) = ca.issue("localhost", true);
        std::fs::write(tls.join("ca.pem"), &ca.cert_pem).expect("write ca.pem");
        std::fs::write(tls.join("server-cert.pem"), cert).expect("write server cert");
        write_private(&tls.join("server-key.pem"), &key);

        let mut server = SecureNats { dir: Some(dir), child: None, port: 0, ca, client_cert: None };
        if mutual {
            server.client_cert = Some(server.client_cert("treem-tests"));
        }
        server.generate(AuthCommand::Generate);
        server.launch().await;
        server
    }

    fn dir(&self) -> &Path {
        self.dir.as_ref().expect("directory lives as long as the server").path()
    }

    /// The directory of the configuration, accounts.conf and seeds.
    pub fn conf_dir(&self) -> PathBuf {
        self.dir().join("conf")
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir().join("nats-server.log")
    }

    /// `tls://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("tls://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The CA file a client trusts.
    pub fn ca_file(&self) -> PathBuf {
        self.conf_dir().join("tls/ca.pem")
    }

    /// The current seed file of an identity (e.g. `ward-70-690-25320`).
    pub fn seed_file(&self, identity: &str) -> PathBuf {
        KeyDir::open(&self.conf_dir()).expect("seeds dir").seed_file(identity)
    }

    /// What a service of `identity` puts in its config: its seed and the CA.
    pub fn auth(&self, identity: &str) -> ClientAuth {
        ClientAuth { nkey_seed_file: Some(self.seed_file(identity)), tls_ca_file: Some(self.ca_file()), ..Default::default() }
    }

    /// A client certificate signed by the test CA: (cert file, key file).
    pub fn client_cert(&self, name: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = self.ca.issue(name, false);
        let cert_file = self.conf_dir().join(format!("tls/{name}-cert.pem"));
        let key_file = self.conf_dir().join(format!("tls/{name}-key.pem"));
        std::fs::write(&cert_file, cert).expect("write client cert");
        write_private(&key_file, &key);
        (cert_file, key_file)
    }

    /// Runs the generator on this server's directory (as an operator would
    /// run `treem-nats-auth --out <conf> <command>`); returns its output.
    pub fn generate(&self, command: AuthCommand) -> String {
        let args = Args { out: self.conf_dir(), hierarchy: Some(self.conf_dir().join("hierarchy.json")), command };
        let mut out = Vec::new();
        treem_auth::nats::cli::run(&args, &mut out).unwrap_or_else(|e| panic!("treem-nats-auth: {e}"));
        String::from_utf8(out).expect("utf-8 output")
    }

    /// `nats-server --signal reload=<pid>` (what SECURITY.md tells operators),
    /// then waits until the server logged that it reloaded.
    pub async fn reload(&self) {
        let pid = self.child.as_ref().expect("server running").id();
        let before = read(&self.log_path()).matches("Reloaded server configuration").count();
        let status = Command::new(nats_server_binary())
            .arg("--signal")
            .arg(format!("reload={pid}"))
            .status()
            .expect("run nats-server --signal reload");
        assert!(status.success(), "nats-server --signal reload={pid} failed: {status}");
        let log = self.log_path();
        wait_for("nats-server logs 'Reloaded server configuration'", Duration::from_secs(20), || {
            let log = log.clone();
            async move { (read(&log).matches("Reloaded server configuration").count() > before).then_some(()) }
        })
        .await;
    }

    /// Connects with `options` (TLS to this server's CA is added, and with
    /// mutual TLS the harness's client certificate), recording
    /// every error the server reports on the connection.
    pub async fn connect_with(
        &self,
        options: async_nats::ConnectOptions,
    ) -> Result<(async_nats::Client, ServerErrors), async_nats::ConnectError> {
        let errors = ServerErrors::default();
        let sink = errors.clone();
        let options = match &self.client_cert {
            Some((cert, key)) => options.add_client_certificate(cert.clone(), key.clone()),
            None => options,
        };
        options
            .add_root_certificates(self.ca_file())
            .require_tls(true)
            .connection_timeout(Duration::from_secs(5))
            .event_callback(move |event| {
                let sink = sink.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        sink.0.lock().expect("lock").push(e.to_string());
                    }
                }
            })
            .connect(self.url())
            .await
            .map(|client| (client, errors))
    }

    /// Connects as `identity` with its current seed.
    pub async fn connect_as(&self, identity: &str) -> (async_nats::Client, ServerErrors) {
        let seed = std::fs::read_to_string(self.seed_file(identity)).expect("read seed");
        self.connect_with(async_nats::ConnectOptions::with_nkey(seed.trim().to_string()))
            .await
            .unwrap_or_else(|e| panic!("connect as {identity}: {e}"))
    }

    async fn launch(&mut self) {
        let log = File::create(self.log_path()).expect("create log");
        let log_err = log.try_clone().expect("clone log handle");
        let child = Command::new(nats_server_binary())
            .args(["-c", "treem-secure.conf", "-p", "-1", "-sd"])
            .arg(self.dir().join("store"))
            .current_dir(self.conf_dir())
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", nats_server_binary().display()));
        self.child = Some(child);
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            let text = read(&self.log_path());
            if let Some(port) = listening_port(&text) {
                self.port = port;
                break;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("nats-server exited ({status}) at start:\n{text}");
            }
            assert!(Instant::now() < deadline, "nats-server did not listen within {START_DEADLINE:?}:\n{text}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Ready when JetStream answers the town about its own stream.
        let (client, _) = self.connect_as(&town_identity("690")).await;
        let js = async_nats::jetstream::new(client);
        let stream = treem_proto::subject::town_events_stream("70", "690");
        wait_for("the secure nats-server answers JetStream requests", START_DEADLINE, || {
            let js = js.clone();
            let stream = stream.clone();
            async move {
                match js.get_stream(&stream).await {
                    Ok(_) => Some(()),
                    Err(e) => e.to_string().contains("stream not found").then_some(()),
                }
            }
        })
        .await;
    }
}

impl Drop for SecureNats {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking()
            && let Some(dir) = self.dir.as_mut()
        {
            let log = read(&dir.path().join("nats-server.log"));
            let tail: Vec<&str> = log.lines().rev().take(40).collect();
            eprintln!(
                "secure nats-server kept at {}\n--- tail of its log ---\n{}",
                dir.path().display(),
                tail.into_iter().rev().collect::<Vec<_>>().join("\n")
            );
            dir.disable_cleanup(true);
        }
        self.dir.take();
    }
}

/// The errors a server reported on one connection (`-ERR '…'`), in order.
#[derive(Clone, Default)]
pub struct ServerErrors(Arc<Mutex<Vec<String>>>);

impl ServerErrors {
    pub fn all(&self) -> Vec<String> {
        self.0.lock().expect("lock").clone()
    }

    /// Waits until the server reported an error containing `text`.
    pub async fn wait_for(&self, text: &str) -> String {
        let what = format!("the server reports an error containing {text:?}");
        wait_for(&what, Duration::from_secs(20), || {
            let found = self.all().into_iter().find(|e| e.contains(text));
            async move { found }
        })
        .await
    }
}

pub fn ward_identity(ward: &str) -> String {
    let town = if ward == OTHER_WARD { OTHER_TOWN } else { "690" };
    treem_auth::nats::plan::ward_identity("70", town, ward)
}

pub fn town_identity(town: &str) -> String {
    treem_auth::nats::plan::town_identity("70", town)
}

pub fn province_identity() -> String {
    treem_auth::nats::plan::province_identity("70")
}

/// The shipped hierarchy with town 691 (one ward, 69101) added to province 70.
pub fn hierarchy_with_a_second_town() -> String {
    let shipped = std::fs::read_to_string(repo_root().join("proto/data/hierarchy.json")).expect("read the shipped hierarchy");
    let mut h: serde_json::Value = serde_json::from_str(&shipped).expect("hierarchy JSON");
    let unit = |code: &str, name: &str, kind: &str| serde_json::json!({"code": code, "name": name, "kind": kind, "valid_from": "2009-12-11", "valid_to": "2025-06-30"});
    let mut town = unit(OTHER_TOWN, "Thị xã thử", "thị xã");
    town["wards"] = serde_json::json!([unit(OTHER_WARD, "Phường thử", "phường")]);
    h["provinces"][0]["towns"].as_array_mut().expect("towns").push(town);
    serde_json::to_string_pretty(&h).expect("serialise hierarchy")
}

fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod 600");
}

fn read(path: &Path) -> String {
    std::fs::read(path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
}

fn listening_port(log: &str) -> Option<u16> {
    let line = log.split_inclusive('\n').find(|l| l.ends_with('\n') && l.contains(LISTENING))?;
    line.split(LISTENING).nth(1)?.trim().rsplit(':').next()?.parse().ok()
}
