//! A relay whose every move the test scripts.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use msg_relay_api::wire::Frame;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

pub struct FakeRelay {
    listener: TcpListener,
}

pub struct Conn {
    ws: WebSocketStream<TcpStream>,
}

impl FakeRelay {
    pub async fn bind() -> Self {
        Self { listener: TcpListener::bind("127.0.0.1:0").await.unwrap() }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.listener.local_addr().unwrap())
    }

    /// Accepts the next client connection (within 10 s).
    pub async fn accept(&self) -> Conn {
        let (tcp, _) = tokio::time::timeout(Duration::from_secs(10), self.listener.accept())
            .await
            .expect("no connection within 10 s")
            .unwrap();
        Conn { ws: tokio_tungstenite::accept_async(tcp).await.unwrap() }
    }
}

impl Conn {
    /// The next binary frame from the client (within 10 s), skipping pings.
    pub async fn recv(&mut self) -> Vec<u8> {
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(10), self.ws.next())
                .await
                .expect("no frame within 10 s")
                .expect("client closed")
                .unwrap();
            if let Message::Binary(b) = msg {
                return b.to_vec();
            }
        }
    }

    pub async fn send(&mut self, frame: Frame<'_>) {
        self.ws.send(Message::Binary(frame.encode().into())).await.unwrap();
    }

    /// Drops the TCP connection without a close handshake.
    pub fn kill(self) {
        drop(self);
    }
}
