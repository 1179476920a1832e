//! Stamps the version, `git describe`, target triple and build profile into the binary.
use std::process::Command;

fn main() {
    let describe = Command::new("git")
        .args(["describe", "--always", "--dirty", "--tags"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".to_string());
    let target = std::env::var("TARGET").unwrap_or_else(|_| "unknown".into());
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".into());
    println!("cargo:rustc-env=GSMGW_GIT_DESCRIBE={describe}");
    println!("cargo:rustc-env=GSMGW_TARGET={target}");
    println!("cargo:rustc-env=GSMGW_PROFILE={profile}");
    // Re-stamp when the checkout moves to another commit or the index changes.
    for p in [".git/HEAD", ".git/index", ".git/refs"] {
        if std::path::Path::new(p).exists() {
            println!("cargo:rerun-if-changed={p}");
        }
    }
    println!("cargo:rerun-if-changed=build.rs");
}
