//! Reading the current process's figures from `/proc` (Linux `proc(5)`).
//!
//! Each figure is an `Option`: when a file is missing or unparsable, that figure is absent and
//! the others are still reported.

use std::fs;

/// `/proc/[pid]/stat` times are in clock ticks of `USER_HZ`, which the kernel fixes at 100 for
/// every user-visible interface (the Prometheus Go client's procfs makes the same assumption),
/// so no `sysconf` call is needed.
const USER_HZ: f64 = 100.0;

/// One reading of the process's figures.
#[derive(Debug, Default)]
pub(crate) struct Sample {
    pub(crate) cpu_seconds: Option<f64>,
    pub(crate) resident_bytes: Option<f64>,
    pub(crate) virtual_bytes: Option<f64>,
    pub(crate) open_fds: Option<f64>,
    pub(crate) max_fds: Option<f64>,
    pub(crate) start_time_seconds: Option<f64>,
    pub(crate) threads: Option<f64>,
}

impl Sample {
    /// Reads every figure for the current process now.
    pub(crate) fn read() -> Sample {
        let stat = fs::read_to_string("/proc/self/stat")
            .ok()
            .and_then(|s| Stat::parse(&s));
        let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
        let boot_time = fs::read_to_string("/proc/stat")
            .ok()
            .and_then(|s| boot_time(&s));
        Sample {
            cpu_seconds: stat.as_ref().map(|s| (s.utime + s.stime) as f64 / USER_HZ),
            resident_bytes: status_kib(&status, "VmRSS:").map(|kib| kib * 1024.0),
            virtual_bytes: status_kib(&status, "VmSize:").map(|kib| kib * 1024.0),
            open_fds: fs::read_dir("/proc/self/fd")
                .ok()
                .map(|dir| dir.count() as f64),
            max_fds: fs::read_to_string("/proc/self/limits")
                .ok()
                .and_then(|s| max_open_files(&s)),
            start_time_seconds: stat
                .as_ref()
                .zip(boot_time)
                .map(|(s, boot)| boot + s.starttime as f64 / USER_HZ),
            threads: stat.as_ref().map(|s| s.num_threads as f64),
        }
    }
}

/// The fields of `/proc/self/stat` we use.
#[derive(Debug, PartialEq)]
struct Stat {
    utime: u64,
    stime: u64,
    num_threads: u64,
    starttime: u64,
}

impl Stat {
    /// Parses `pid (comm) state ppid ...`. `comm` may itself contain spaces and parentheses, so
    /// fields are counted from the last `)`.
    fn parse(text: &str) -> Option<Stat> {
        let rest = &text[text.rfind(')')? + 1..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        // After `comm`, field 3 (`state`) is index 0; proc(5) numbers fields from 1.
        let field = |n: usize| -> Option<u64> { fields.get(n - 3)?.parse().ok() };
        Some(Stat {
            utime: field(14)?,
            stime: field(15)?,
            num_threads: field(20)?,
            starttime: field(22)?,
        })
    }
}

/// `btime` from `/proc/stat`: boot time in seconds since the epoch.
fn boot_time(proc_stat: &str) -> Option<f64> {
    proc_stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()
}

/// A `Key:   1234 kB` line of `/proc/self/status`, in KiB.
fn status_kib(status: &str, key: &str) -> Option<f64> {
    let line = status.lines().find_map(|l| l.strip_prefix(key))?;
    line.split_whitespace().next()?.parse().ok()
}

/// The soft limit on the `Max open files` line of `/proc/self/limits`; `unlimited` is absent.
fn max_open_files(limits: &str) -> Option<f64> {
    let line = limits
        .lines()
        .find_map(|l| l.strip_prefix("Max open files"))?;
    line.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_is_parsed_after_a_comm_with_spaces_and_parentheses() {
        let text = "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 7 0 \
                    98765 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(
            Stat::parse(text),
            Some(Stat {
                utime: 250,
                stime: 75,
                num_threads: 7,
                starttime: 98765
            })
        );
    }

    #[test]
    fn truncated_stat_is_rejected() {
        assert_eq!(Stat::parse("1 (x) S 1 2 3"), None);
        assert_eq!(Stat::parse("no parenthesis"), None);
    }

    #[test]
    fn status_and_limits_lines_are_read() {
        let status = "Name:\tapi\nVmSize:\t  123456 kB\nVmRSS:\t    2048 kB\nThreads:\t5\n";
        assert_eq!(status_kib(status, "VmRSS:"), Some(2048.0));
        assert_eq!(status_kib(status, "VmSize:"), Some(123_456.0));
        assert_eq!(status_kib(status, "VmSwap:"), None);

        let limits = "Limit                     Soft Limit           Hard Limit           Units\n\
                      Max open files            1024                 524288               files\n";
        assert_eq!(max_open_files(limits), Some(1024.0));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(max_open_files(unlimited), None);

        assert_eq!(
            boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 5\n"),
            Some(1_700_000_000.0)
        );
    }
}
