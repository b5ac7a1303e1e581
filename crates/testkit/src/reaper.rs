//! Cleanup that survives the test binary.
//!
//! Rust does not run destructors of statics at exit, and a panicking or killed test binary runs
//! nothing at all. So the kit starts, once, a small shell process — the reaper — and keeps a
//! pipe to its standard input. Each server process and temp dir is announced on that pipe. When
//! the test binary ends, however it ends, the pipe closes; the reaper then stops every announced
//! process (its signal, then SIGKILL after 10 s) and removes every announced directory.
//!
//! The reaper runs in its own process group, so a Ctrl-C aimed at the tests does not kill it
//! before it has cleaned up.

use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{ChildStdin, Command, Stdio};
use std::sync::{Mutex, OnceLock};

const SCRIPT: &str = r#"
pids=""
dirs=""
namespaces=""
links=""
while IFS= read -r line; do
  case "$line" in
    pid\ *) pids="$pids ${line#pid }";;
    dir\ *) dirs="$dirs
${line#dir }";;
    netns\ *) namespaces="$namespaces ${line#netns }";;
    link\ *) links="$links ${line#link }";;
  esac
done
for entry in $pids; do kill "-${entry#*:}" "${entry%%:*}" 2>/dev/null; done
i=0
while [ $i -lt 100 ]; do
  alive=0
  for entry in $pids; do kill -0 "${entry%%:*}" 2>/dev/null && alive=1; done
  [ $alive = 0 ] && break
  sleep 0.1
  i=$((i + 1))
done
for entry in $pids; do kill -KILL "${entry%%:*}" 2>/dev/null; done
echo "$dirs" | while IFS= read -r dir; do [ -n "$dir" ] && rm -rf "$dir"; done
for link in $links; do ip link del "$link" 2>/dev/null; done
for namespace in $namespaces; do ip netns del "$namespace" 2>/dev/null; done
"#;

fn pipe() -> &'static Mutex<Option<ChildStdin>> {
    static PIPE: OnceLock<Mutex<Option<ChildStdin>>> = OnceLock::new();
    PIPE.get_or_init(|| {
        let child = Command::new("sh")
            .arg("-c")
            .arg(SCRIPT)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn();
        Mutex::new(child.ok().and_then(|mut c| c.stdin.take()))
    })
}

fn announce(line: &str) {
    let mut guard = pipe().lock().unwrap_or_else(|e| e.into_inner());
    if let Some(stdin) = guard.as_mut() {
        let _ = writeln!(stdin, "{line}");
        let _ = stdin.flush();
    }
}

/// Has `pid` stopped with `signal` (e.g. `"INT"`, `"TERM"`) when the test binary exits.
pub fn stop_at_exit(pid: u32, signal: &str) {
    announce(&format!("pid {pid}:{signal}"));
}

/// Deletes the network namespace `name` when the test binary exits.
pub fn delete_netns_at_exit(name: &str) {
    announce(&format!("netns {name}"));
}

/// Deletes the network link `name` (of the root namespace) when the test binary exits.
pub fn delete_link_at_exit(name: &str) {
    announce(&format!("link {name}"));
}

/// Has `dir` removed, recursively, when the test binary exits.
pub fn remove_at_exit(dir: &Path) {
    announce(&format!("dir {}", dir.display()));
}

/// A new temp dir, removed when the test binary exits.
pub fn temp_dir(prefix: &str) -> std::io::Result<std::path::PathBuf> {
    let dir = tempfile::Builder::new().prefix(prefix).tempdir()?.keep();
    remove_at_exit(&dir);
    Ok(dir)
}
