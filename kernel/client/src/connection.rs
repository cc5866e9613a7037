//! The connection file: ports, transport and signing key a kernel binds to.

use std::net::TcpListener;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Contents of a Jupyter connection file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// Always "tcp" here.
    pub transport: String,
    /// Address the kernel binds to.
    pub ip: String,
    /// Shell channel port (requests and replies).
    pub shell_port: u16,
    /// IOPub channel port (broadcast output and status).
    pub iopub_port: u16,
    /// Stdin channel port (input requests).
    pub stdin_port: u16,
    /// Control channel port (interrupt, shutdown).
    pub control_port: u16,
    /// Heartbeat port.
    pub hb_port: u16,
    /// "hmac-sha256".
    pub signature_scheme: String,
    /// The HMAC key.
    pub key: String,
    /// The kernel name, for information.
    #[serde(default)]
    pub kernel_name: String,
}

impl ConnectionInfo {
    /// Connection info on 127.0.0.1 with five free ports and a fresh random key.
    pub fn with_free_ports(kernel_name: &str) -> Result<ConnectionInfo> {
        // Hold all five listeners at once so the ports are distinct, then release them
        // for the kernel (as jupyter_client does; a small race remains).
        let listeners = (0..5)
            .map(|_| TcpListener::bind("127.0.0.1:0"))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(Error::io("find free ports on 127.0.0.1"))?;
        let ports = listeners
            .iter()
            .map(|listener| listener.local_addr().map(|addr| addr.port()))
            .collect::<std::io::Result<Vec<_>>>()
            .map_err(Error::io("read port of a listener"))?;
        drop(listeners);
        Ok(ConnectionInfo {
            transport: "tcp".to_string(),
            ip: "127.0.0.1".to_string(),
            shell_port: ports[0],
            iopub_port: ports[1],
            stdin_port: ports[2],
            control_port: ports[3],
            hb_port: ports[4],
            signature_scheme: "hmac-sha256".to_string(),
            key: uuid::Uuid::new_v4().to_string(),
            kernel_name: kernel_name.to_string(),
        })
    }

    /// The zmq endpoint for `port`, e.g. `tcp://127.0.0.1:5555`.
    pub fn endpoint(&self, port: u16) -> String {
        format!("{}://{}:{}", self.transport, self.ip, port)
    }

    /// Writes the file (mode 0600, as it holds the key).
    pub fn write(&self, path: &Path) -> Result<()> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let text = serde_json::to_string_pretty(self).map_err(Error::json("connection info"))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)
            .map_err(Error::io(format!("create {}", path.display())))?;
        file.write_all(text.as_bytes())
            .map_err(Error::io(format!("write {}", path.display())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_distinct_and_key_is_fresh() {
        let a = ConnectionInfo::with_free_ports("k").unwrap();
        let mut ports = vec![
            a.shell_port,
            a.iopub_port,
            a.stdin_port,
            a.control_port,
            a.hb_port,
        ];
        ports.sort();
        ports.dedup();
        assert_eq!(ports.len(), 5);
        assert!(ports.iter().all(|&p| p != 0));
        let b = ConnectionInfo::with_free_ports("k").unwrap();
        assert_ne!(a.key, b.key);
        assert_eq!(
            a.endpoint(a.shell_port),
            format!("tcp://127.0.0.1:{}", a.shell_port)
        );
    }

    #[test]
    fn writes_a_file_jupyter_can_read() {
        let info = ConnectionInfo::with_free_ports("rust-multiprocessing").unwrap();
        let path = std::env::temp_dir().join(format!("kc-conn-{}.json", std::process::id()));
        info.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value["signature_scheme"], "hmac-sha256");
        assert_eq!(value["shell_port"], info.shell_port);
        let back: ConnectionInfo = serde_json::from_str(&text).unwrap();
        assert_eq!(back, info);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_file(path).unwrap();
    }
}
