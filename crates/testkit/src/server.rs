//! Shared pieces of starting a server process.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (the OS picks; the server binds it right after).
pub(crate) fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("no free port: {e}"))?;
    listener
        .local_addr()
        .map(|a| a.port())
        .map_err(|e| e.to_string())
}

/// Starts a server with `start` on a free port, trying three: another process can take the
/// port between choosing and binding it. The last error explains a failure.
pub(crate) fn on_free_port<T>(
    mut start: impl FnMut(u16) -> Result<T, String>,
) -> Result<T, String> {
    let mut last_error = String::new();
    for _ in 0..3 {
        match start(free_port()?) {
            Ok(server) => return Ok(server),
            Err(e) => last_error = e,
        }
    }
    Err(last_error)
}

/// Starts `command` as a server process: its output appended to `log`, in a process group of
/// its own (a Ctrl-C of the tests does not reach it first), stopped with `signal` when the test
/// binary exits. Waits up to 30 s until `ready` succeeds; a failure carries the log's last
/// lines. Returns the process id.
pub(crate) fn spawn_server(
    command: &mut Command,
    log: &Path,
    signal: &'static str,
    ready: impl FnMut() -> Result<(), String>,
) -> Result<u32, String> {
    let log_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .map_err(|e| format!("{}: {e}", log.display()))?;
    let child = command
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
        .stderr(log_file)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {:?}: {e}", command.get_program()))?;
    crate::reaper::stop_at_exit(child.id(), signal);
    wait_until(Duration::from_secs(30), ready)
        .map_err(|e| format!("{e}\nserver log:\n{}", log_tail(log)))?;
    Ok(child.id())
}

/// Uid and gid of a system user, from /etc/passwd.
pub(crate) fn user_ids(name: &str) -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    passwd.lines().find_map(|line| {
        let fields: Vec<&str> = line.split(':').collect();
        (fields.first() == Some(&name) && fields.len() > 3)
            .then(|| Some((fields[2].parse().ok()?, fields[3].parse().ok()?)))
            .flatten()
    })
}

/// Whether the test runs as root (servers then run as their own system user).
pub(crate) fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Gives `path` and everything under it to `user` (when running as root).
pub(crate) fn chown_to(path: &Path, user: &str) -> Result<(), String> {
    if !is_root() {
        return Ok(());
    }
    run(Command::new("chown").arg("-R").arg(user).arg(path))
}

/// Runs a command to completion; its stderr becomes the error.
pub(crate) fn run(command: &mut Command) -> Result<(), String> {
    output(command).map(|_| ())
}

/// Runs a command to completion and returns its stdout.
pub(crate) fn output(command: &mut Command) -> Result<String, String> {
    let out = command
        .output()
        .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "{:?} failed ({}): {}{}",
            command.get_program(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        ))
    }
}

/// Calls `ready` until it succeeds or `timeout` passes; the last error explains the failure.
pub(crate) fn wait_until(
    timeout: Duration,
    mut ready: impl FnMut() -> Result<(), String>,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match ready() {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(e),
            Err(_) => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

/// The last lines of a server log, for error messages.
pub(crate) fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// Sends `signal` to process `pid` and waits (up to 30 s) until it has exited.
pub(crate) fn stop_process(pid: u32, signal: &str) -> Result<(), String> {
    run(Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string()))?;
    wait_until(Duration::from_secs(30), || {
        // `kill -0` fails once the process is gone (or a zombie we do not own is reaped).
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let zombie = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .is_ok_and(|stat| stat.split_whitespace().nth(2) == Some("Z"));
        if alive && !zombie {
            Err(format!("process {pid} still runs"))
        } else {
            Ok(())
        }
    })
}
