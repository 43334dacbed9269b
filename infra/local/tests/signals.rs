//! The `sockhop-local` binary as a user runs it: whatever signal stops it, the
//! DynamoDB Local it started stops too.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Starts the stage on a free port with its own DynamoDB Local; returns the
/// process and DynamoDB Local's port once the stage has printed its URLs.
fn start_stage() -> (Child, u16) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockhop-local"))
        .args(["--port", "0", "--table", "signals-test", "--in-memory"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sockhop-local starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut port = None;
    let mut lines = BufReader::new(stdout).lines();
    for line in lines.by_ref() {
        let line = line.expect("stdout line");
        if let Some(rest) = line.trim().strip_prefix("DynamoDB") {
            let address = rest.split_whitespace().next().expect("endpoint");
            let number = address.rsplit(':').next().expect("port");
            port = Some(number.parse().expect("numeric port"));
        }
        if line.contains("Press Ctrl-C") {
            break;
        }
    }
    // Keep reading, as a terminal would, so the stage can print while it stops.
    std::thread::spawn(move || lines.for_each(drop));
    let port = port.expect("the stage printed its DynamoDB endpoint");
    assert!(
        listening(port),
        "DynamoDB Local listens while the stage runs"
    );
    (child, port)
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stops_everything_on(signal: i32, clean_exit: bool) {
    let (mut child, port) = start_stage();
    // SAFETY: kill(2) on our own child's pid.
    assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
    let mut status = None;
    wait_until("the stage exits", Duration::from_secs(20), || {
        status = child.try_wait().expect("wait");
        status.is_some()
    });
    if clean_exit {
        assert!(status.expect("exited").success(), "clean exit: {status:?}");
    }
    wait_until(
        "DynamoDB Local stops listening",
        Duration::from_secs(10),
        || !listening(port),
    );
}

#[test]
fn sigterm_stops_dynamodb_local() {
    stops_everything_on(libc::SIGTERM, true);
}

#[test]
fn sighup_stops_dynamodb_local() {
    stops_everything_on(libc::SIGHUP, true);
}

#[test]
fn sigint_stops_dynamodb_local() {
    stops_everything_on(libc::SIGINT, true);
}

/// No handler runs on SIGKILL: the kernel's parent-death signal takes DynamoDB
/// Local down with the stage.
#[test]
fn sigkill_does_not_leave_dynamodb_local_behind() {
    stops_everything_on(libc::SIGKILL, false);
}
