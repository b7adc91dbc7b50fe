//! The floor of `signgate bench route`, measured in the same run as the accepts: what an accept
//! cannot avoid doing. On the CPU, one SHA-256 pass over the envelope and one RSA-2048 signature
//! (the recipient's status 01), taken from `openssl speed` on one core (its rates divide by the
//! CPU time it used, so they are per core); on the disk, writing the envelope's bytes durably
//! with the fsync pattern of the group commit (one `fdatasync` per group of concurrent
//! accepts, as SQLite's WAL with `synchronous=FULL` does).

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use super::CliError;
use crate::error::ErrorCode;

/// The floor rate for one envelope size, and what it is made of.
#[derive(Debug, Clone, Copy)]
pub struct Floor {
    /// Cores the accepts may use.
    pub cores: usize,
    /// `openssl speed -evp sha256 -bytes <envelope size>`: bytes per second on one core.
    pub sha256_bytes_per_sec: f64,
    /// `openssl speed rsa2048`: signatures per second on one core.
    pub rsa_signs_per_core: f64,
    /// cores / (envelope bytes / SHA-256 rate + 1 / RSA signatures per core).
    pub cpu: f64,
    /// Envelopes written and made durable per second, one `fdatasync` per group.
    pub disk: f64,
}

impl Floor {
    /// The lower of the CPU and disk floors, in accepts per second.
    pub fn rate(&self) -> f64 {
        self.cpu.min(self.disk)
    }

    /// Which of the two bounds the floor.
    pub fn bound(&self) -> &'static str {
        if self.disk < self.cpu {
            "disk"
        } else {
            "CPU"
        }
    }
}

fn fail(what: &str, e: impl std::fmt::Display) -> CliError {
    CliError {
        code: ErrorCode::Internal,
        message: format!("{what}: {e}"),
    }
}

/// Measures the floor for envelopes of `envelope_bytes`: `openssl speed` on one core, and
/// `count` envelopes of that size appended to a file in `dir` (the database's file system),
/// synced every `group` envelopes.
pub fn measure(
    envelope_bytes: usize,
    group: usize,
    count: usize,
    dir: &Path,
) -> Result<Floor, CliError> {
    let cores = std::thread::available_parallelism()
        .map(usize::from)
        .unwrap_or(1);
    let sha = openssl_speed_mr(&["-bytes", &envelope_bytes.to_string(), "-evp", "sha256"])?;
    // "+F:<n>:sha256:<bytes per second>"
    let sha256_bytes_per_sec = field(&sha, "+F:", 3)
        .ok_or_else(|| fail("openssl speed sha256", "no +F line in its output"))?;
    let rsa = openssl_speed_mr(&["rsa2048"])?;
    // "+F2:<n>:2048:<signatures per second>:<verifications per second>"
    let rsa_signs_per_core = field(&rsa, "+F2:", 3)
        .ok_or_else(|| fail("openssl speed rsa2048", "no +F2 line in its output"))?;
    let per_accept = envelope_bytes as f64 / sha256_bytes_per_sec + 1.0 / rsa_signs_per_core;
    Ok(Floor {
        cores,
        sha256_bytes_per_sec,
        rsa_signs_per_core,
        cpu: cores as f64 / per_accept,
        disk: durable_writes(envelope_bytes, group.max(1), count.max(1), dir)?,
    })
}

fn openssl_speed_mr(args: &[&str]) -> Result<String, CliError> {
    let out = Command::new("openssl")
        .args(["speed", "-mr", "-seconds", "1"])
        .args(args)
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| fail("running openssl speed (is openssl installed?)", e))?;
    if !out.status.success() {
        return Err(fail("openssl speed", format!("exited with {}", out.status)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Field `n` (colon-separated) of the last line starting with `prefix`.
fn field(text: &str, prefix: &str, n: usize) -> Option<f64> {
    let line = text.lines().rev().find(|l| l.starts_with(prefix))?;
    line.split(':').nth(n)?.trim().parse().ok()
}

/// Envelopes per second appended to a file and made durable, one `fdatasync` per `group`.
fn durable_writes(size: usize, group: usize, count: usize, dir: &Path) -> Result<f64, CliError> {
    let path = dir.join("floor-wal");
    let mut file = std::fs::File::create(&path).map_err(|e| fail("disk floor", e))?;
    let envelope = vec![b'x'; size];
    let started = Instant::now();
    for n in 1..=count {
        file.write_all(&envelope)
            .map_err(|e| fail("disk floor", e))?;
        if n % group == 0 || n == count {
            file.sync_data().map_err(|e| fail("disk floor", e))?;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    drop(file);
    std::fs::remove_file(&path).map_err(|e| fail("disk floor", e))?;
    Ok(count as f64 / secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_openssl_machine_readable_lines() {
        let sha =
            "+DT:sha256:1:146000\n+R:6387:sha256:0.550000\n+H:146000\n+F:25:sha256:1695458181.82\n";
        assert_eq!(field(sha, "+F:", 3), Some(1_695_458_181.82));
        let rsa = "+R1:1768:2048:0.51\n+F2:2:2048:3466.666667:52792.000000\n";
        assert_eq!(field(rsa, "+F2:", 3), Some(3_466.666_667));
        assert_eq!(field(rsa, "+F:", 3), None);
    }

    #[test]
    fn the_floor_is_the_lower_bound() {
        let f = Floor {
            cores: 2,
            sha256_bytes_per_sec: 1e9,
            rsa_signs_per_core: 1000.0,
            cpu: 1900.0,
            disk: 500.0,
        };
        assert_eq!(f.rate(), 500.0);
        assert_eq!(f.bound(), "disk");
    }
}
