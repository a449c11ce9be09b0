//! `gim-bench probe`: what one small write to a loopback TCP socket costs this machine,
//! the floor under every delivery a fan-out benchmark measures. Virtual machines differ
//! several-fold here (a write that wakes its reader on another CPU costs 2 µs on bare
//! metal and 12-17 µs on some VMs), so benchmark figures are read beside this one.

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    thread,
    time::Instant,
};

use crate::server;

#[derive(clap::Args)]
pub struct Args {
    /// Round trips of the ping-pong part (two writes and two wake-ups each).
    #[arg(long, default_value_t = 20_000)]
    round_trips: usize,
    /// Writes of the streaming part (the reader drains as fast as it can).
    #[arg(long, default_value_t = 200_000)]
    writes: usize,
    /// Bytes per write, about one chat message frame.
    #[arg(long, default_value_t = 100)]
    bytes: usize,
}

fn pair() -> anyhow::Result<(TcpStream, TcpStream)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let client = TcpStream::connect(listener.local_addr()?)?;
    let (server, _) = listener.accept()?;
    client.set_nodelay(true)?;
    server.set_nodelay(true)?;
    Ok((client, server))
}

fn cpu_now() -> anyhow::Result<f64> {
    server::cpu_seconds(&[std::process::id()])
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let message = vec![7u8; args.bytes];

    // Ping-pong: every write finds its reader asleep, as a push to an idle device does.
    let (mut client, mut server) = pair()?;
    let size = args.bytes;
    let echo = thread::spawn(move || -> std::io::Result<()> {
        let mut buffer = vec![0u8; size];
        while server.read_exact(&mut buffer).is_ok() {
            server.write_all(&buffer)?;
        }
        Ok(())
    });
    let (cpu, started) = (cpu_now()?, Instant::now());
    let mut buffer = vec![0u8; args.bytes];
    for _ in 0..args.round_trips {
        client.write_all(&message)?;
        client.read_exact(&mut buffer)?;
    }
    let (wall, cpu) = (started.elapsed().as_secs_f64(), cpu_now()? - cpu);
    drop(client);
    echo.join().expect("echo thread")?;
    let writes = 2.0 * args.round_trips as f64;
    println!(
        "loopback write to a sleeping reader ({} B, ping-pong): {:.1} µs wall and {:.1} µs CPU per write",
        args.bytes,
        wall / writes * 1e6,
        cpu / writes * 1e6
    );

    // Streaming: the reader is mostly awake, so wake-ups are shared by many writes.
    let (mut client, mut server) = pair()?;
    let drain = thread::spawn(move || {
        let mut buffer = vec![0u8; 64 * 1024];
        while matches!(server.read(&mut buffer), Ok(n) if n > 0) {}
    });
    let (cpu, started) = (cpu_now()?, Instant::now());
    for _ in 0..args.writes {
        client.write_all(&message)?;
    }
    drop(client);
    drain.join().expect("drain thread");
    let (wall, cpu) = (started.elapsed().as_secs_f64(), cpu_now()? - cpu);
    println!(
        "loopback write to a busy reader ({} B, streaming): {:.1} µs wall and {:.1} µs CPU per write",
        args.bytes,
        wall / args.writes as f64 * 1e6,
        cpu / args.writes as f64 * 1e6
    );
    Ok(())
}
