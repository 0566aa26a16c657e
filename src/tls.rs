//! TLS server configuration: PEM files from the config, or a self-signed
//! certificate that `localserve` makes on first start and keeps, made
//! into roost-actors' [`TlsSetup`] (certificates by SNI, per-listener
//! tickets and client certificates).

use crate::config::{TlsConfig, TlsFiles};
use anyhow::{anyhow, Context, Result};
use roost_actors::tls::{Certificates, TlsSetup};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::Arc;

/// File names of the self-signed pair inside the data directory.
pub const SELF_SIGNED_CERT: &str = "localserve-cert.pem";
pub const SELF_SIGNED_KEY: &str = "localserve-key.pem";

pub fn setup(config: &TlsConfig, data_dir: &Path) -> Result<Arc<TlsSetup>> {
    let (cert, key) = match &config.primary {
        TlsFiles::Files { cert, key } => (cert.clone(), key.clone()),
        TlsFiles::SelfSigned => {
            let (cert, key) = (
                data_dir.join(SELF_SIGNED_CERT),
                data_dir.join(SELF_SIGNED_KEY),
            );
            if !cert.exists() || !key.exists() {
                make_self_signed(&cert, &key)?;
            }
            (cert, key)
        }
    };
    let mut pairs = vec![load_pair(&cert, &key)?];
    for (cert, key) in &config.more {
        pairs.push(load_pair(cert, key)?);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let certs = Certificates::new(pairs, &provider).map_err(|e| anyhow!("TLS: {e}"))?;
    Ok(Arc::new(TlsSetup::new(
        certs,
        provider,
        config.listeners.clone(),
    )))
}

/// A PEM certificate chain and its private key.
fn load_pair(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let certs: Vec<CertificateDer<'static>> = {
        let pem = std::fs::read(cert).with_context(|| format!("cannot read {}", cert.display()))?;
        rustls_pemfile::certs(&mut pem.as_slice())
            .collect::<Result<_, _>>()
            .with_context(|| format!("{}: not a PEM certificate chain", cert.display()))?
    };
    if certs.is_empty() {
        return Err(anyhow!("{}: no certificate found", cert.display()));
    }
    let key: PrivateKeyDer<'static> = {
        let pem = std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
        rustls_pemfile::private_key(&mut pem.as_slice())
            .with_context(|| format!("{}: not a PEM private key", key.display()))?
            .ok_or_else(|| anyhow!("{}: no private key found", key.display()))?
    };
    Ok((certs, key))
}

fn make_self_signed(cert: &Path, key: &Path) -> Result<()> {
    let names = vec!["localhost".to_string(), "127.0.0.1".to_string()];
    let ck =
        rcgen::generate_simple_self_signed(names).context("making a self-signed certificate")?;
    std::fs::write(cert, ck.cert.pem())
        .with_context(|| format!("cannot write {}", cert.display()))?;
    std::fs::write(key, ck.key_pair.serialize_pem())
        .with_context(|| format!("cannot write {}", key.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600))?;
    Ok(())
}
