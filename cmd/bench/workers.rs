//! Worker processes of a benchmark: a process holds at most ~19,000 sockets here, so
//! many sessions are spread over children of `gim-bench` itself, each with a share of
//! the tokens (in a file) and a loopback source address of its own. A worker reports on
//! its stdout, one line at a time.

use std::{
    io::{BufRead, BufReader, Lines, Write},
    net::{IpAddr, Ipv4Addr, SocketAddr},
    path::PathBuf,
    process::{Child, ChildStdout, Command, Stdio},
};

use anyhow::Context;

/// What every worker is told: where the connect nodes are, its tokens, its address.
#[derive(clap::Args)]
pub struct Share {
    #[arg(long, value_delimiter = ',')]
    pub ws: Vec<SocketAddr>,
    #[arg(long)]
    pub tokens_file: PathBuf,
    #[arg(long)]
    pub source: Ipv4Addr,
}

impl Share {
    pub fn tokens(&self) -> anyhow::Result<Vec<String>> {
        Ok(std::fs::read_to_string(&self.tokens_file)?.lines().map(str::to_owned).collect())
    }

    /// The connect node of session `index`, and the address to open it from.
    pub fn route(&self, index: usize) -> (SocketAddr, IpAddr) {
        (self.ws[index % self.ws.len()], IpAddr::V4(self.source))
    }
}

/// The running workers and their output.
pub struct Workers {
    children: Vec<Child>,
    outputs: Vec<Lines<BufReader<ChildStdout>>>,
    dir: PathBuf,
}

impl Workers {
    /// Starts `count` workers running `gim-bench <subcommand> --ws W <args> --tokens-file
    /// F --source A` (see `Share`), the tokens (each user's first device) shared out among
    /// them; worker `i` binds its sockets to `127.{network}.1.{i + 1}` (for fewer than 250).
    pub fn start(
        subcommand: &str,
        ws: &[SocketAddr],
        args: &[String],
        tokens: &[Vec<String>],
        count: usize,
        network: u8,
    ) -> anyhow::Result<Self> {
        let ws: Vec<String> = ws.iter().map(ToString::to_string).collect();
        let dir = std::env::temp_dir().join(format!("gim-bench-{subcommand}-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let share = tokens.len().div_ceil(count.max(1)).max(1);
        let mut children = Vec::new();
        for (index, chunk) in tokens.chunks(share).enumerate() {
            let file = dir.join(format!("tokens-{index}"));
            let mut out = std::fs::File::create(&file)?;
            for token in chunk {
                writeln!(out, "{}", token[0])?;
            }
            let child = Command::new(std::env::current_exe()?)
                .arg(subcommand)
                .args(["--ws", &ws.join(",")])
                .args(args)
                .arg("--tokens-file")
                .arg(&file)
                .args(["--source", &format!("127.{network}.{}.{}", 1 + index / 250, 1 + index % 250)])
                .stdout(Stdio::piped())
                .spawn()?;
            children.push(child);
        }
        let mut outputs = Vec::new();
        for child in &mut children {
            outputs.push(BufReader::new(child.stdout.take().context("worker stdout")?).lines());
        }
        Ok(Self { children, outputs, dir })
    }

    /// The next line of every worker, in worker order.
    pub fn next_lines(&mut self) -> anyhow::Result<Vec<String>> {
        self.outputs.iter_mut().map(|lines| Ok(lines.next().context("a worker ended early")??)).collect()
    }

    /// The sum over the workers of the number each reports next as `{prefix} {n}`.
    pub fn sum(&mut self, prefix: &str) -> anyhow::Result<usize> {
        let mut sum = 0;
        for line in self.next_lines()? {
            let number = line.strip_prefix(prefix).and_then(|rest| rest.trim().parse::<usize>().ok());
            sum += number.with_context(|| format!("unexpected worker output: {line}"))?;
        }
        Ok(sum)
    }

    /// Waits for the workers to end and removes their token files.
    pub fn finish(mut self) -> anyhow::Result<()> {
        for child in &mut self.children {
            child.wait()?;
        }
        std::fs::remove_dir_all(&self.dir)?;
        Ok(())
    }
}
