//! Per-test log files. What a process of a test writes (the agent's log on stderr, modemsim,
//! mosquitto, kamailio, SIPp) goes to a file of that test,
//! `target/<profile>/test-logs/<test binary>/<test name>/<label>.log`, and is printed only when
//! the test fails: a passing test stays quiet, a failing one shows every log it had.
//!
//! Printing is done by a panic hook (installed on first use, chained to the previous one) for
//! the files registered on the panicking thread: the test's thread, where libtest captures
//! what is printed and shows it under the failure. A hook rather than a drop guard because it
//! also prints the logs of processes the test had already stopped (an agent restarted, a
//! broker stopped) and needs nothing in the test itself.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Once;

/// At most this much of the end of each log is printed (the whole file stays on disk).
const PRINT_MAX: usize = 512 * 1024;

#[derive(Default)]
struct Registry {
    /// This thread's log directory, made (emptied) on first use.
    dir: Option<PathBuf>,
    /// Labels given so far, for `agent`, `agent-2`, ...
    labels: HashMap<String, u32>,
    /// What to print if this thread panics: (label, file), in start order.
    files: Vec<(String, PathBuf)>,
}

thread_local! {
    static REGISTRY: RefCell<Registry> = RefCell::new(Registry::default());
}

/// `target/<profile>/test-logs/<binary>/` for the running test binary (or bench).
fn binary_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    let stem = exe
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    // e2e_sms-0123abcd → e2e_sms
    let name = match stem.rsplit_once('-') {
        Some((n, h)) if h.chars().all(|c| c.is_ascii_hexdigit()) => n.to_string(),
        _ => stem,
    };
    // target/<profile>/deps/<exe>
    let profile = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    profile.join("test-logs").join(name)
}

/// The running test's name (libtest names the thread after it), made a file name.
fn test_name() -> String {
    let t = std::thread::current();
    let name = t.name().unwrap_or("unnamed");
    name.replace("::", "__").replace(['/', ' '], "_")
}

fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let prev = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            print_registered();
            prev(info);
        }));
    });
}

/// Prints (to stderr, captured by libtest) every log registered on this thread, once.
fn print_registered() {
    let files = REGISTRY
        .try_with(|r| {
            r.try_borrow_mut()
                .map(|mut r| std::mem::take(&mut r.files))
                .unwrap_or_default()
        })
        .unwrap_or_default();
    for (label, path) in files {
        let Ok(bytes) = std::fs::read(&path) else {
            eprintln!("===== {label} log: {} (gone) =====", path.display());
            continue;
        };
        let text = String::from_utf8_lossy(&bytes);
        let shown = crate::tail(&text, PRINT_MAX);
        let cut = if shown.len() < text.len() {
            format!(" (its last {} bytes)", shown.len())
        } else {
            String::new()
        };
        eprintln!(
            "===== {label} log{cut}: {} =====\n{}{}===== end of {label} log =====",
            path.display(),
            shown,
            if shown.ends_with('\n') || shown.is_empty() {
                ""
            } else {
                "\n"
            }
        );
    }
}

/// Registers `path` (a log some process writes itself, e.g. mosquitto's `log_dest file`) to be
/// printed if the running test fails.
pub fn watch(label: &str, path: &Path) {
    install_hook();
    REGISTRY.with(|r| {
        r.borrow_mut()
            .files
            .push((label.to_string(), path.to_path_buf()))
    });
}

/// A log file of the running test, for one process.
#[derive(Debug, Clone)]
pub struct ProcLog {
    path: PathBuf,
}

impl ProcLog {
    /// A new, empty log file named after `label` (`agent`, `modemsim-modem1`, ...; a label given
    /// twice in one test gets `-2`, `-3` ...) in this test's log directory, registered to be
    /// printed if the test fails.
    pub fn new(label: &str) -> ProcLog {
        let path = REGISTRY.with(|r| {
            let mut r = r.borrow_mut();
            let dir = r
                .dir
                .get_or_insert_with(|| {
                    let dir = binary_dir().join(test_name());
                    // Last run's logs of this test.
                    let _ = std::fs::remove_dir_all(&dir);
                    std::fs::create_dir_all(&dir)
                        .unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
                    dir
                })
                .clone();
            let n = r.labels.entry(label.to_string()).or_insert(0);
            *n += 1;
            let file = if *n == 1 {
                format!("{label}.log")
            } else {
                format!("{label}-{n}.log")
            };
            dir.join(file.replace('/', "_"))
        });
        File::create(&path).unwrap_or_else(|e| panic!("create {}: {e}", path.display()));
        let log = ProcLog { path };
        let name = log
            .path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned());
        watch(name.as_deref().unwrap_or(label), &log.path);
        log
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file opened for appending, for a child's stdout or stderr.
    pub fn file(&self) -> File {
        OpenOptions::new()
            .append(true)
            .open(&self.path)
            .unwrap_or_else(|e| panic!("open {}: {e}", self.path.display()))
    }

    /// [`ProcLog::file`] as a `Stdio`.
    pub fn stdio(&self) -> Stdio {
        Stdio::from(self.file())
    }

    /// What has been written so far.
    pub fn read(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.path).unwrap_or_default()).into_owned()
    }
}
