//! TLS material: the configured PEM files, or a self-signed certificate
//! generated on first start under `data_dir/tls` so that browsers get a
//! secure context (camera and microphone need one).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// Paths of the certificate and key to serve.
pub fn ensure_certificate(
    data_dir: &Path,
    cert: Option<&Path>,
    key: Option<&Path>,
    ips: &[IpAddr],
) -> anyhow::Result<(PathBuf, PathBuf)> {
    if let (Some(c), Some(k)) = (cert, key) {
        return Ok((c.to_owned(), k.to_owned()));
    }
    let dir = data_dir.join("tls");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let mut names = vec!["localhost".to_owned()];
    if let Ok(h) = std::fs::read_to_string("/etc/hostname") {
        let h = h.trim();
        if !h.is_empty() && h != "localhost" {
            names.push(h.to_owned());
        }
    }
    let mut params = rcgen::CertificateParams::new(names).context("certificate names")?;
    for ip in ips {
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress(*ip));
    }
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "kaigi (self-signed)");
    let key_pair = rcgen::KeyPair::generate().context("generating TLS key")?;
    let certificate = params.self_signed(&key_pair).context("self-signing")?;
    std::fs::write(&cert, certificate.pem())
        .with_context(|| format!("writing {}", cert.display()))?;
    write_private(&key, key_pair.serialize_pem().as_bytes())?;
    tracing::info!(cert = %cert.display(), "generated a self-signed TLS certificate");
    Ok((cert, key))
}

/// Writes a file readable by the owner only.
pub fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("writing {}", path.display()))?;
    f.write_all(data)?;
    Ok(())
}
