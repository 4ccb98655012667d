//! A TCP listener on 127.0.0.1 that accepts every connection and never answers:
//! the server that hangs, so that a client's own timeout is what ends the wait
//! (a black-holed address may fail at once where the network refuses it).

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub struct SilentListener {
    port: u16,
    accepting: JoinHandle<()>,
}

impl SilentListener {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local address").port();
        let accepting = tokio::spawn(async move {
            // Held open, never read from nor written to, until the listener is dropped.
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        Self { port, accepting }
    }

    pub fn port(&self) -> u16 {
        self.port
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}
