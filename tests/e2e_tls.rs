//! End to end over TLS: certificates made with the `openssl` CLI at test time, a mosquitto of
//! our own with a TLS listener on a free 127.0.0.1 port, the real agent with an `mqtts://` url,
//! and a central subscriber that connects over TLS too.

// A test (or bench) fails by panicking: unwrap and expect say where.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::{AgentProc, Broker, free_port, gsmgw_bin, wait_for, write_config_with};
use gsmgw_testkit::mosquitto::{Mosquitto, Tls};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use serde_json::{Value, json};

const T: Duration = Duration::from_secs(30);

/// Runs `openssl ARGS` in `dir`; panics with its output on failure.
fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl (apt-get install -y openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Certificates for one test, all in a temp dir.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    /// A CA, a server certificate for 127.0.0.1/localhost and a client certificate signed by
    /// it, and a second CA that signed neither. The client key is RSA in PKCS#1 form
    /// (`BEGIN RSA PRIVATE KEY`), the others are EC P-256 keys in PKCS#8 form.
    fn make() -> Pki {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for (ca, cn) in [("ca", "gsmgw test CA"), ("other-ca", "unrelated test CA")] {
            openssl(
                d,
                &[
                    "genpkey",
                    "-algorithm",
                    "EC",
                    "-pkeyopt",
                    "ec_paramgen_curve:P-256",
                    "-out",
                    &format!("{ca}.key"),
                ],
            );
            openssl(
                d,
                &[
                    "req",
                    "-x509",
                    "-new",
                    "-key",
                    &format!("{ca}.key"),
                    "-subj",
                    &format!("/CN={cn}"),
                    "-days",
                    "2",
                    "-addext",
                    "basicConstraints=critical,CA:TRUE",
                    "-addext",
                    "keyUsage=critical,keyCertSign,cRLSign",
                    "-out",
                    &format!("{ca}.pem"),
                ],
            );
        }
        openssl(
            d,
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "server.key",
            ],
        );
        openssl(d, &["genrsa", "-traditional", "-out", "client.key", "2048"]);
        let client_key = std::fs::read_to_string(d.join("client.key")).unwrap();
        assert!(client_key.starts_with("-----BEGIN RSA PRIVATE KEY-----"));
        std::fs::write(
            d.join("server.ext"),
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .unwrap();
        std::fs::write(
            d.join("client.ext"),
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
        .unwrap();
        for (name, cn) in [("server", "127.0.0.1"), ("client", "gw-tls")] {
            openssl(
                d,
                &[
                    "req",
                    "-new",
                    "-key",
                    &format!("{name}.key"),
                    "-subj",
                    &format!("/CN={cn}"),
                    "-out",
                    &format!("{name}.csr"),
                ],
            );
            openssl(
                d,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-days",
                    "2",
                    "-extfile",
                    &format!("{name}.ext"),
                    "-out",
                    &format!("{name}.pem"),
                ],
            );
        }
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// How the TLS broker authenticates clients.
#[derive(Clone, Copy)]
enum ClientAuth {
    /// Anonymous clients, no client certificate.
    None,
    /// A client certificate signed by the CA and a user name and password.
    CertAndPassword,
}

const USER: &str = "gw-tls";
const PASSWORD: &str = "s3cret pass";

/// A mosquitto with only a TLS listener on a free 127.0.0.1 port.
struct TlsBroker;

impl TlsBroker {
    fn start(pki: &Pki, auth: ClientAuth) -> Broker {
        let tls = |require_certificate| Tls {
            cafile: pki.path("ca.pem"),
            certfile: pki.path("server.pem"),
            keyfile: pki.path("server.key"),
            require_certificate,
        };
        let m = match auth {
            ClientAuth::None => Mosquitto::new().tls(tls(false)),
            ClientAuth::CertAndPassword => {
                Mosquitto::new().tls(tls(true)).users(&[(USER, PASSWORD)])
            }
        };
        m.line("log_type all").start()
    }
}

/// `[mqtt]` lines after `url`: TLS files and credentials.
fn mqtt_extra(ca: &Path, client: Option<(&Path, &Path)>, creds: bool) -> String {
    let mut s = format!("ca_file = \"{}\"\n", ca.display());
    if let Some((cert, key)) = client {
        s.push_str(&format!(
            "cert_file = \"{}\"\nkey_file = \"{}\"\n",
            cert.display(),
            key.display()
        ));
    }
    if creds {
        s.push_str(&format!(
            "username = \"{USER}\"\npassword = \"{PASSWORD}\"\n"
        ));
    }
    s
}

/// A gateway config without modems; `mqtt_extra` is appended to the `[mqtt]` table.
fn write_tls_config(dir: &Path, gateway: &str, url: &str, mqtt_extra: &str) -> PathBuf {
    let path = write_config_with(dir, gateway, url, "", &[]);
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text.replacen(
        "keep_alive_secs = 5\n",
        &format!("keep_alive_secs = 5\n{mqtt_extra}"),
        1,
    );
    std::fs::write(&path, text).unwrap();
    path
}

type Inbox = tokio::sync::mpsc::UnboundedReceiver<(String, Value, bool)>;

/// A central subscriber over TLS, its configuration built by the agent's own tls module.
async fn tls_subscriber(
    port: u16,
    filter: &str,
    pki: &Pki,
    auth: ClientAuth,
) -> (AsyncClient, Inbox) {
    let (client_files, creds) = match auth {
        ClientAuth::None => (None, None),
        ClientAuth::CertAndPassword => (
            Some((pki.path("client.pem"), pki.path("client.key"))),
            Some((USER, PASSWORD)),
        ),
    };
    let cfg = gsmgw_agent::tls::client_config(
        Some(&pki.path("ca.pem")),
        client_files.as_ref().map(|(c, _)| c.as_path()),
        client_files.as_ref().map(|(_, k)| k.as_path()),
    )
    .expect("subscriber TLS config");
    let id = format!("central-tls-{}-{}", std::process::id(), free_port());
    let mut o = MqttOptions::new(id, "127.0.0.1", port);
    o.set_keep_alive(Duration::from_secs(5));
    o.set_transport(gsmgw_agent::tls::transport(Arc::new(cfg)));
    if let Some((u, p)) = creds {
        o.set_credentials(u, p);
    }
    let (client, mut el) = AsyncClient::new(o, 64);
    client
        .subscribe(filter, QoS::AtLeastOnce)
        .await
        .expect("subscribe");
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    let v = serde_json::from_slice(&p.payload).unwrap_or(Value::Null);
                    if tx.send((p.topic.clone(), v, p.retain)).is_err() {
                        break;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("tls subscriber: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    });
    (client, rx)
}

/// Waits up to `timeout` for a message on `topic` satisfying `pred`; None if none came.
async fn next_on(
    rx: &mut Inbox,
    topic: &str,
    timeout: Duration,
    pred: impl Fn(&Value, bool) -> bool,
) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some((t, v, retain))) if t == topic && pred(&v, retain) => return Some(v),
            Ok(Some(_)) => {}
            _ => return None,
        }
    }
}

/// The agent's birth message must reach a TLS subscriber, live and then retained.
async fn birth_over_tls(auth: ClientAuth, client_files: bool, creds: bool) {
    let pki = Pki::make();
    let broker = TlsBroker::start(&pki, auth);
    let work = tempfile::tempdir().unwrap();
    let client = client_files.then(|| (pki.path("client.pem"), pki.path("client.key")));
    let extra = mqtt_extra(
        &pki.path("ca.pem"),
        client.as_ref().map(|(c, k)| (c.as_path(), k.as_path())),
        creds,
    );
    let cfg = write_tls_config(work.path(), "gw-tls", &broker.url(), &extra);
    let (_c1, mut live) = tls_subscriber(broker.port, "gsmgw/gw-tls/#", &pki, auth).await;
    let agent = AgentProc::start(&cfg);

    let topic = "gsmgw/gw-tls/status";
    let birth = next_on(&mut live, topic, T, |v, _| v["online"] == json!(true)).await;
    let Some(birth) = birth else {
        panic!(
            "no birth message over TLS within {T:?}\nagent log:\n{}\nbroker log:\n{}",
            agent.log(),
            broker.log()
        );
    };
    assert!(birth["boot_id"].as_str().is_some_and(|s| !s.is_empty()));

    // A subscriber arriving later gets it as the retained status.
    let (_c2, mut late) = tls_subscriber(broker.port, topic, &pki, auth).await;
    let retained = next_on(&mut late, topic, T, |v, retain| {
        retain && v["online"] == json!(true)
    })
    .await;
    assert_eq!(
        retained.map(|v| v["boot_id"].clone()),
        Some(birth["boot_id"].clone()),
        "retained status over TLS"
    );

    // A clean stop says goodbye over the same TLS session.
    let status = agent.terminate();
    assert!(status.success(), "agent exit status {status:?}");
    let bye = next_on(&mut live, topic, T, |v, _| v["online"] == json!(false)).await;
    assert!(bye.is_some(), "no offline status after SIGTERM");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn birth_reaches_central_over_tls_with_server_auth_only() {
    birth_over_tls(ClientAuth::None, false, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn birth_reaches_central_over_mutual_tls_with_password() {
    birth_over_tls(ClientAuth::CertAndPassword, true, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_ca_keeps_running_never_connects_and_logs_why() {
    let pki = Pki::make();
    let broker = TlsBroker::start(&pki, ClientAuth::None);
    let work = tempfile::tempdir().unwrap();
    // The broker's certificate is not signed by this CA.
    let extra = mqtt_extra(&pki.path("other-ca.pem"), None, false);
    let cfg = write_tls_config(work.path(), "gw-badca", &broker.url(), &extra);
    let (_c, mut rx) =
        tls_subscriber(broker.port, "gsmgw/gw-badca/#", &pki, ClientAuth::None).await;
    let mut agent = AgentProc::start(&cfg);

    let wait = Duration::from_secs(4);
    let status = next_on(&mut rx, "gsmgw/gw-badca/status", wait, |_, _| true).await;
    assert!(
        status.is_none(),
        "an agent that cannot verify the broker published {status:?}"
    );
    assert!(agent.running(), "agent exited; log:\n{}", agent.log());
    let log = wait_for(
        Duration::from_secs(10),
        "the agent to log the TLS failure",
        || {
            let log = agent.log();
            log.contains("broker not reachable").then_some(log)
        },
    );
    assert!(
        log.contains("invalid peer certificate: UnknownIssuer"),
        "the log does not say why:\n{log}"
    );
    assert!(!log.contains("panicked"), "{log}");
    let st = agent.terminate();
    assert!(st.success(), "agent exit status {st:?}");
}

#[test]
fn unusable_tls_files_are_a_configuration_error_at_start() {
    let pki = Pki::make();
    let work = tempfile::tempdir().unwrap();
    // Readable files (so `config check` passes them) whose content is not what is needed.
    let not_pem = work.path().join("not-pem.crt");
    std::fs::write(&not_pem, "this is not a certificate\n").unwrap();
    // A certificate where the key should be, private like a key must be (a key others can
    // read is refused before its contents are read).
    let cert_as_key = work.path().join("cert-as-key.pem");
    std::fs::copy(pki.path("client.pem"), &cert_as_key).unwrap();
    std::fs::set_permissions(
        &cert_as_key,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let cases = [
        (mqtt_extra(&not_pem, None, false), "not-pem.crt"),
        (
            // A certificate where the key should be.
            mqtt_extra(
                &pki.path("ca.pem"),
                Some((&pki.path("client.pem"), &cert_as_key)),
                false,
            ),
            "no unencrypted private key",
        ),
        (
            // A key that is not the certificate's.
            mqtt_extra(
                &pki.path("ca.pem"),
                Some((&pki.path("client.pem"), &pki.path("server.key"))),
                false,
            ),
            "client certificate",
        ),
    ];
    for (extra, expect) in cases {
        // Port 9 on loopback: nothing is ever sent, the start fails before connecting.
        let cfg = write_tls_config(work.path(), "gw-badfile", "mqtts://127.0.0.1:9", &extra);
        let mut child = Command::new(gsmgw_bin())
            .arg("run")
            .arg("--config")
            .arg(&cfg)
            .env("GSMGW_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start gsmgw run");
        let st = wait_for(
            Duration::from_secs(15),
            "gsmgw run to refuse the config",
            || child.try_wait().ok().flatten(),
        );
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert_eq!(st.code(), Some(1), "{err}");
        assert!(
            (err.contains("configuration: mqtt TLS:") || err.contains(": mqtt."))
                && err.contains(expect),
            "expected a configuration error naming `{expect}`:\n{err}"
        );
        assert!(!err.contains("panicked"), "{err}");
    }
}

#[test]
fn config_check_validates_tls_files() {
    let pki = Pki::make();
    let work = tempfile::tempdir().unwrap();
    let check = |cfg: &Path| {
        Command::new(gsmgw_bin())
            .args(["config", "check"])
            .arg(cfg)
            .output()
            .expect("run gsmgw config check")
    };

    let good = mqtt_extra(
        &pki.path("ca.pem"),
        Some((&pki.path("client.pem"), &pki.path("client.key"))),
        true,
    );
    let cfg = write_tls_config(work.path(), "gw-check", "mqtts://127.0.0.1:8883", &good);
    let out = check(&cfg);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let missing = mqtt_extra(&work.path().join("missing-ca.pem"), None, false);
    let cfg = write_tls_config(work.path(), "gw-check", "mqtts://127.0.0.1:8883", &missing);
    let out = check(&cfg);
    assert_eq!(out.status.code(), Some(1));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("mqtt.ca_file"), "{s}");

    let half = format!(
        "ca_file = \"{}\"\ncert_file = \"{}\"\n",
        pki.path("ca.pem").display(),
        pki.path("client.pem").display()
    );
    let cfg = write_tls_config(work.path(), "gw-check", "mqtts://127.0.0.1:8883", &half);
    let out = check(&cfg);
    assert_eq!(out.status.code(), Some(1));
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("mqtt.cert_file") && s.contains("key_file"),
        "{s}"
    );
}
