//! A minimal Chorus WebSocket client for the README walkthrough: connects as one device,
//! optionally resumes from a seq, and prints every frame it receives, one per line.
//!
//! `cargo run --example ws_client -- --token TOKEN [--url ws://127.0.0.1:8080/v1/ws] [--since N]`

use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

#[derive(Parser)]
struct Args {
    /// Bearer token from POST /v1/accounts or /v1/sessions.
    #[arg(long)]
    token: String,
    #[arg(long, default_value = "ws://127.0.0.1:8080/v1/ws")]
    url: String,
    /// Replay stored events with seq greater than this, then go live.
    #[arg(long)]
    since: Option<u64>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let mut request = args.url.as_str().into_client_request()?;
    request
        .headers_mut()
        .insert("Authorization", format!("Bearer {}", args.token).parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
    if let Some(since) = args.since {
        let frame = serde_json::json!({"type": "resume", "since": since}).to_string();
        ws.send(Message::text(frame)).await?;
    }
    while let Some(msg) = ws.next().await {
        match msg? {
            Message::Text(text) => println!("{text}"),
            Message::Close(frame) => {
                println!("closed: {frame:?}");
                break;
            }
            _ => {}
        }
    }
    Ok(())
}
