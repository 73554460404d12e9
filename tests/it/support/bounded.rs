//! Runs the tool on hostile input with a deadline and measures it: its peak resident memory
//! (its own, or that of a child it waited for, such as curl: wait4's rusage holds both) and the
//! wall time. Every hostile run must stay under [`MAX_RSS_MIB`] and [`MAX_SECS`].

use std::{
    io::Read,
    os::unix::process::{CommandExt, ExitStatusExt},
    process::{Command, ExitStatus, Output, Stdio},
    thread,
    time::{Duration, Instant},
};

/// The memory a hostile input may make the tool take, at its peak.
pub const MAX_RSS_MIB: u64 = 256;
/// The time a hostile input may make the tool take. The longest, 500 pages of continuation
/// tokens (500 runs of curl), takes 4 s on an idle machine and 15 s beside other tests.
pub const MAX_SECS: u64 = 60;
/// A run still going then is killed, so that a test of an endless loop ends.
const DEADLINE: Duration = Duration::from_secs(120);
/// The address space a run may map: a reader that never stops fails to allocate here instead
/// of taking the machine (24 GiB, shared).
const ADDRESS_SPACE: u64 = 3 << 30;
/// What is kept of each of the run's stdout and stderr.
const KEEP: u64 = 4 << 20;

pub struct Measured {
    pub out: Output,
    pub peak_kib: u64,
    pub elapsed: Duration,
    pub killed: bool,
}

/// Runs `cmd` with `stdin`, killing it at the deadline.
#[allow(clippy::zombie_processes)] // reaped by wait4, for its rusage
pub fn run(mut cmd: Command, stdin: Stdio) -> Measured {
    // SAFETY: setrlimit is async-signal-safe, and nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit {
                rlim_cur: ADDRESS_SPACE,
                rlim_max: ADDRESS_SPACE,
            };
            libc::setrlimit(libc::RLIMIT_AS, &lim);
            Ok(())
        });
    }
    let started = Instant::now();
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let keep = |r: Option<Box<dyn Read + Send>>| {
        thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(r) = r {
                let _ = r.take(KEEP).read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = keep(child.stdout.take().map(|r| Box::new(r) as _));
    let err = keep(child.stderr.take().map(|r| Box::new(r) as _));
    let pid = child.id() as libc::pid_t;
    let (mut status, mut usage) = (0, unsafe { std::mem::zeroed::<libc::rusage>() });
    let mut killed = false;
    loop {
        // SAFETY: plain out-pointers to locals; the pid is our own unreaped child.
        let r = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if r == pid {
            break;
        }
        assert_eq!(r, 0, "wait4 failed");
        if started.elapsed() > DEADLINE && !killed {
            let _ = child.kill();
            killed = true;
        }
        thread::sleep(Duration::from_millis(10));
    }
    let elapsed = started.elapsed();
    Measured {
        out: Output {
            status: ExitStatus::from_raw(status),
            stdout: out.join().unwrap(),
            stderr: err.join().unwrap(),
        },
        peak_kib: usage.ru_maxrss as u64,
        elapsed,
        killed,
    }
}

impl Measured {
    /// Holds the run to the memory and time caps, naming the input in the failure.
    #[track_caller]
    pub fn within_caps(&self, what: &str) {
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&self.out.stdout),
            String::from_utf8_lossy(&self.out.stderr)
        );
        assert!(
            !self.killed,
            "{what}: still running after {} s, killed; it printed:\n{all}",
            DEADLINE.as_secs()
        );
        assert!(
            self.peak_kib < MAX_RSS_MIB << 10,
            "{what}: peak RSS {} MiB, over the {MAX_RSS_MIB} MiB cap; it printed:\n{all}",
            self.peak_kib >> 10
        );
        assert!(
            self.elapsed < Duration::from_secs(MAX_SECS),
            "{what}: took {:.1} s, over the {MAX_SECS} s cap",
            self.elapsed.as_secs_f64()
        );
    }
}

/// The largest memory and longest time over a test's hostile runs, for the CI report.
#[derive(Default)]
pub struct Figures {
    rss: (u64, String),
    time: (Duration, String),
}

impl Figures {
    /// Checks `m` against the caps and keeps its figures.
    #[track_caller]
    pub fn add(&mut self, what: &str, m: &Measured) {
        m.within_caps(what);
        if m.peak_kib > self.rss.0 {
            self.rss = (m.peak_kib, what.to_string());
        }
        if m.elapsed > self.time.0 {
            self.time = (m.elapsed, what.to_string());
        }
    }

    /// One line for `target/ci-report.txt`.
    pub fn report(&self, test: &str) {
        super::ci_report(&format!(
            "{test}: largest peak RSS {:.1} MiB ({}), longest {:.2} s ({}); caps {MAX_RSS_MIB} MiB, {MAX_SECS} s\n",
            self.rss.0 as f64 / 1024.0,
            self.rss.1.escape_debug(),
            self.time.0.as_secs_f64(),
            self.time.1.escape_debug()
        ));
    }
}
