//! The stage's logs as a user who redirects them sees them: plain text, no
//! terminal colour codes, when stdout is not a terminal.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn redirected_logs_carry_no_colour_codes() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sockhop-local"))
        .args(["--port", "0", "--table", "logs-test", "--in-memory"])
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("sockhop-local starts");
    let stdout = child.stdout.take().expect("stdout");
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("stdout line");
        let done = line.contains("Press Ctrl-C");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    // At debug level the start-up logs plenty (the SDK clients, DynamoDB Local).
    let logged = lines.iter().filter(|l| l.contains("DEBUG")).count();
    assert!(logged > 0, "the stage logged while starting: {lines:#?}");
    let coloured: Vec<&String> = lines.iter().filter(|l| l.contains('\u{1b}')).collect();
    assert!(
        coloured.is_empty(),
        "colour codes in redirected logs: {coloured:#?}"
    );
}
