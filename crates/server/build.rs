//! Stamps the binary with the commit it was built from (`stripe-manager --version`,
//! `/healthz`, the `stripe_manager_build_info` metric): `SM_BUILD_COMMIT` when set (a build from a
//! source tarball), else `git rev-parse`, else "unknown".

use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=SM_BUILD_COMMIT");
    let commit = std::env::var("SM_BUILD_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git(&["rev-parse", "--short=12", "HEAD"]))
        .unwrap_or_else(|| "unknown".to_owned());
    println!("cargo:rustc-env=SM_COMMIT={commit}");
    // Rebuild when HEAD moves: a commit, a checkout, a fetch that moves the branch. Only
    // files that exist are named: Cargo reruns the script on every build for a missing
    // one (a checkout without `packed-refs` recompiled the crate each time).
    let Some(dir) = git(&["rev-parse", "--absolute-git-dir"]) else {
        return;
    };
    let common = git(&["rev-parse", "--path-format=absolute", "--git-common-dir"])
        .unwrap_or_else(|| dir.clone());
    let mut watched = vec![format!("{dir}/HEAD")];
    // The branch HEAD names (none when detached: HEAD itself then holds the commit).
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(format!("{common}/{branch}"));
    }
    // Where a branch without a loose ref file keeps it (after `git gc`, a fresh clone).
    watched.push(format!("{common}/packed-refs"));
    for path in watched {
        if std::path::Path::new(&path).exists() {
            println!("cargo:rerun-if-changed={path}");
        }
    }
}
