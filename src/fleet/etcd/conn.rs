//! Connecting to etcd: one endpoint at a time, in rotation, each checked with a `Status`
//! call under the connect timeout, so a dead member is skipped and the next call after a
//! failure goes to the next member.

use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use super::{EtcdError, EtcdSettings};

fn read(path: &std::path::Path) -> Result<Vec<u8>, EtcdError> {
    std::fs::read(path).map_err(|source| EtcdError::TlsFile {
        path: path.to_path_buf(),
        source,
    })
}

/// Above etcd's default `--grpc-keepalive-min-time` of 5 s.
pub(crate) const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);

pub(crate) fn options(s: &EtcdSettings, require_leader: bool) -> Result<ConnectOptions, EtcdError> {
    // No per-request timeout on the channel: campaigns and watches are long calls; every
    // unary call is bounded by the caller with tokio's timeout instead.
    let mut o = ConnectOptions::new()
        .with_connect_timeout(s.connect_timeout())
        // HTTP/2 pings find a silent dead member. etcd sends GOAWAY (too_many_pings) to a
        // client pinging more often than its --grpc-keepalive-min-time (5 s by default),
        // which breaks every call in flight: stay above it.
        .with_keep_alive(
            KEEPALIVE_INTERVAL,
            s.connect_timeout().max(Duration::from_secs(2)),
        )
        .with_keep_alive_while_idle(true)
        .with_require_leader(require_leader);
    if let (Some(u), Some(p)) = (&s.user, &s.password) {
        o = o.with_user(u.clone(), p.clone());
    }
    if let Some(t) = &s.tls {
        let mut tls = TlsOptions::new().ca_certificate(Certificate::from_pem(read(&t.ca)?));
        if let (Some(c), Some(k)) = (&t.cert, &t.key) {
            tls = tls.identity(Identity::from_pem(read(c)?, read(k)?));
        }
        if let Some(d) = &t.domain {
            tls = tls.domain_name(d.clone());
        }
        o = o.with_tls(tls);
    }
    Ok(o)
}

/// Connect to the first endpoint, starting at `start` (mod the count), that answers a
/// `Status` within the connect timeout. Returns the client and the index used.
pub(crate) async fn connect_any(
    s: &EtcdSettings,
    start: usize,
    require_leader: bool,
) -> Result<(Client, usize), EtcdError> {
    let n = s.endpoints.len();
    let mut last = String::from("none tried");
    for k in 0..n {
        let i = (start + k) % n;
        let ep = &s.endpoints[i];
        let opts = options(s, require_leader)?;
        let attempt = async {
            let mut c = Client::connect([ep.as_str()], Some(opts)).await?;
            c.status().await?;
            Ok::<Client, etcd_client::Error>(c)
        };
        match tokio::time::timeout(s.connect_timeout(), attempt).await {
            Ok(Ok(c)) => return Ok((c, i)),
            Ok(Err(e)) => last = format!("{ep}: {e}"),
            Err(_) => last = format!("{ep}: no answer within {} ms", s.connect_timeout_ms),
        }
        tracing::debug!(endpoint = %ep, error = %last, "etcd endpoint not usable");
    }
    Err(EtcdError::Unreachable {
        endpoints: s.endpoints.join(", "),
        timeout_ms: s.connect_timeout_ms,
        last,
    })
}

/// Is this error one that says the connection (not the request) is bad, so the next call
/// should reconnect, to another member?
pub(crate) fn is_connection_error(e: &etcd_client::Error) -> bool {
    match e {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(st) => matches!(
            st.code(),
            tonic_code::Unavailable | tonic_code::Unknown | tonic_code::Cancelled
        ),
        _ => false,
    }
}

mod tonic_code {
    pub use tonic::Code::*;
}

pub(crate) fn current_thread_runtime() -> Result<tokio::runtime::Runtime, EtcdError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(EtcdError::Runtime)
}
