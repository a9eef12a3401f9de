//! HTTPS for the fakes. Real providers answer only over TLS, and the API server accepts `http://` provider
//! URLs only on loopback, so a fake that API pods call (on the test node's bridge address) serves HTTPS with a
//! certificate from the test CA (`scripts/kube-testenv.sh` issues it), which the pods trust through the
//! FaxPluginConfig's `apiServer.trustBundle`.
//!
//! The accept loop is written here (tokio-rustls and hyper-util, which the workspace already builds) rather
//! than taken from axum-server: it is the only TLS server in the project and a dozen lines long.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder;
use hyper_util::service::TowerToHyperService;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// A TLS server configuration from a PEM certificate chain and a PEM private key.
pub fn server_config(cert_pem: &Path, key_pem: &Path) -> io::Result<Arc<ServerConfig>> {
    let certs = CertificateDer::pem_file_iter(cert_pem)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| io::Error::other(format!("{}: {e}", cert_pem.display())))?;
    let key =
        PrivateKeyDer::from_pem_file(key_pem).map_err(|e| io::Error::other(format!("{}: {e}", key_pem.display())))?;
    let mut config =
        ServerConfig::builder().with_no_client_auth().with_single_cert(certs, key).map_err(io::Error::other)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// The test servers' certificate from the environment `scripts/kube-testenv.sh` writes
/// (`FAXBOT_TEST_TLS_CERT`, `FAXBOT_TEST_TLS_KEY`), or `None` when it is not set.
pub fn from_test_env() -> Option<io::Result<Arc<ServerConfig>>> {
    let cert = std::env::var_os("FAXBOT_TEST_TLS_CERT")?;
    let key = std::env::var_os("FAXBOT_TEST_TLS_KEY")?;
    Some(server_config(Path::new(&cert), Path::new(&key)))
}

/// Serves `app` on `listener`, over TLS when `tls` is set, until the runtime stops.
pub(crate) fn spawn_serve(listener: TcpListener, app: Router, tls: Option<Arc<ServerConfig>>) {
    let Some(tls) = tls else {
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        return;
    };
    let acceptor = TlsAcceptor::from(tls);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(_) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let (acceptor, app) = (acceptor.clone(), app.clone());
            tokio::spawn(async move {
                let Ok(stream) = acceptor.accept(tcp).await else { return };
                let _ = Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), TowerToHyperService::new(app))
                    .await;
            });
        }
    });
}
