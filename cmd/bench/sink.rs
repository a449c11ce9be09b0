//! `gim-bench sink`: an HTTP receiver for webhook benchmarks that answers every POST with
//! 204 and counts them, cheap enough not to take the CPU the server under test needs.
//! Prints the count when it gets SIGTERM or Ctrl-C.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use axum::{extract::State, http::StatusCode, routing::post};

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    listen: SocketAddr,
}

async fn receive(State(count): State<Arc<AtomicU64>>, _body: axum::body::Bytes) -> StatusCode {
    count.fetch_add(1, Ordering::Relaxed);
    StatusCode::NO_CONTENT
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let count = Arc::new(AtomicU64::new(0));
    let app = axum::Router::new().fallback(post(receive)).with_state(count.clone());
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            tokio::select! {
                _ = terminate.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await?;
    println!("webhook sink received {} events", count.load(Ordering::Relaxed));
    Ok(())
}
