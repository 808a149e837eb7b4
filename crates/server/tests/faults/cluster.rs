//! A throwaway PostgreSQL cluster the test can stop and start (as `scripts/test` starts
//! one when none answers): `initdb` in a temp directory, run as the `postgres` user when
//! the tests run as root.

use std::path::PathBuf;
use std::process::Command;

pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

impl Cluster {
    pub fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .find(|p| p.join("initdb").exists())?;
        let as_postgres = Command::new("id").arg("-u").output().ok()?.stdout == b"0\n";
        let dir = std::env::temp_dir().join(format!("sm-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).ok()?;
        if as_postgres {
            Command::new("chown")
                .args(["postgres"])
                .arg(&dir)
                .status()
                .ok()?;
        }
        let port = super::dead_port();
        let c = Self {
            dir,
            bin,
            port,
            as_postgres,
        };
        let data = c.dir.join("data");
        c.run(
            "initdb",
            &[
                "-D",
                data.to_str()?,
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
            ],
        )?;
        c.pg_ctl("start")?;
        Some(c)
    }

    fn run(&self, tool: &str, args: &[&str]) -> Option<()> {
        let exe = self.bin.join(tool);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).output().ok()?;
        if !out.status.success() {
            eprintln!("{tool} failed: {}", String::from_utf8_lossy(&out.stderr));
            return None;
        }
        Some(())
    }

    fn pg_ctl(&self, action: &str) -> Option<()> {
        let data = self.dir.join("data");
        let log = self.dir.join("log");
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c fsync=off",
            self.port,
            self.dir.display()
        );
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str()?,
                "-l",
                log.to_str()?,
                "-w",
                "-m",
                "fast",
                "-o",
                &options,
                action,
            ],
        )
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    pub fn stop(&self) {
        self.pg_ctl("stop").expect("pg_ctl stop");
    }

    pub fn restart(&self) {
        self.pg_ctl("start").expect("pg_ctl start");
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.pg_ctl("stop");
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
