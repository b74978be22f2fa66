//! EAL start-up: arguments from `[dpdk] eal_args` plus what Rondo adds, pre-flight checks
//! with errors that name the setting, and the calling thread's CPU affinity kept (EAL pins
//! the main thread to its lcore; threads started later would inherit that pin).
#![allow(unsafe_code)]

use std::sync::{Mutex, OnceLock};

use super::{err_text, DpdkError};
use crate::config::DpdkSettings;

/// What EAL was started with (the first call wins; EAL cannot be initialised twice).
static EAL: OnceLock<Vec<String>> = OnceLock::new();
/// Serialises initialisation attempts (a failed one may be retried with other arguments).
static INIT: Mutex<()> = Mutex::new(());

/// What Rondo knows about the ports when EAL starts.
#[derive(Debug, Clone, Default)]
pub struct EalPlan {
    /// PCI addresses of the ports (passed as `-a ADDR`; none: `--no-pci`).
    pub pci: Vec<String>,
    /// Cores the workers are pinned to (the main lcore avoids them).
    pub worker_cores: Option<Vec<usize>>,
}

fn has_any(args: &[String], opts: &[&str]) -> bool {
    args.iter().any(|a| {
        opts.iter()
            .any(|o| a == o || (o.starts_with("--") && a.starts_with(&format!("{o}="))))
    })
}

/// The full argument list (program name first) for `settings` and `plan`.
pub fn eal_args(settings: &DpdkSettings, plan: &EalPlan) -> Vec<String> {
    let user = settings
        .eal_args
        .clone()
        .unwrap_or_else(|| vec!["--in-memory".to_string()]);
    let mut args = vec!["rondo".to_string()];
    args.extend(user.iter().cloned());
    if !has_any(&user, &["-l", "--lcores", "-c"]) {
        let online: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        let busy = plan.worker_cores.clone().unwrap_or_default();
        let main = online
            .iter()
            .copied()
            .find(|c| !busy.contains(c))
            .or_else(|| online.first().copied())
            .unwrap_or(0);
        args.extend(["-l".to_string(), main.to_string()]);
    }
    if !has_any(&user, &["--file-prefix"]) {
        args.extend(["--file-prefix".to_string(), "rondo".to_string()]);
    }
    if !has_any(&user, &["-a", "--allow", "-b", "--block", "--no-pci", "-w"]) {
        if plan.pci.is_empty() {
            // Never let EAL take over NICs nobody configured.
            args.push("--no-pci".to_string());
        } else {
            for p in &plan.pci {
                args.extend(["-a".to_string(), p.clone()]);
            }
        }
    }
    args
}

/// Hugepages the kernel has free, summed over page sizes: `(free, total)`.
fn hugepages() -> (u64, u64) {
    let mut free = 0;
    let mut total = 0;
    if let Ok(dir) = std::fs::read_dir("/sys/kernel/mm/hugepages") {
        for e in dir.flatten() {
            let read = |f: &str| {
                std::fs::read_to_string(e.path().join(f))
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .unwrap_or(0)
            };
            free += read("free_hugepages");
            total += read("nr_hugepages");
        }
    }
    (free, total)
}

/// Why EAL cannot get memory with `args`, checked before EAL tries (EAL's own message for
/// this is a generic "Cannot init memory").
pub fn preflight(
    args: &[String],
    free_total: (u64, u64),
    hugetlbfs_mounted: bool,
) -> Result<(), DpdkError> {
    if has_any(args, &["--no-huge"]) {
        return Ok(());
    }
    let (free, total) = free_total;
    if free == 0 {
        return Err(DpdkError::NoHugepages {
            detail: format!("none are free ({total} reserved in /sys/kernel/mm/hugepages, 0 free)"),
        });
    }
    if !has_any(args, &["--in-memory"]) && !hugetlbfs_mounted && !has_any(args, &["--huge-dir"]) {
        return Err(DpdkError::NoHugepages {
            detail: format!(
                "no hugetlbfs is mounted ({free} pages free); mount one (`mount -t hugetlbfs nodev /dev/hugepages`) or add \"--in-memory\""
            ),
        });
    }
    Ok(())
}

fn hugetlbfs_mounted() -> bool {
    std::fs::read_to_string("/proc/mounts")
        .map(|m| {
            m.lines()
                .any(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"))
        })
        .unwrap_or(false)
}

/// Start EAL once for this process. A second call with the same arguments is a no-op; with
/// different ones it is an error (EAL cannot be re-initialised).
pub fn init(settings: &DpdkSettings, plan: &EalPlan) -> Result<(), DpdkError> {
    let args = eal_args(settings, plan);
    let _guard = INIT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(first) = EAL.get() {
        if first[1..] == args[1..] || settings.eal_args.is_none() {
            return Ok(());
        }
        return Err(DpdkError::EalAgain {
            first: first.clone(),
            now: args,
        });
    }
    preflight(&args, hugepages(), hugetlbfs_mounted())?;
    let affinity = Affinity::current();
    tracing::info!(args = ?args, "starting DPDK EAL");
    // SAFETY: EAL is initialised at most once per process: EAL is set below on success and
    // checked above under INIT, and a failed rte_eal_init may be called again (it returns
    // EALREADY or retries) without undefined behaviour.
    let r = unsafe { dpdk_sys::eal_init(&args) };
    if let Some(a) = affinity {
        a.restore();
    }
    match r {
        Ok(_) => {
            let _ = EAL.set(args);
            tracing::info!(version = %dpdk_sys::runtime_version(), "DPDK EAL up");
            Ok(())
        }
        Err(errno) => {
            let hint = match errno {
                libc::ENOMEM => "; not enough memory: raise -m, reserve more hugepages, or lower runtime.pool_size",
                libc::EALREADY => "; EAL was already started in this process",
                libc::EACCES => "; permission denied: run as root or give the hugepage/VFIO files to this user",
                libc::EINVAL => "; an argument is not valid for this DPDK (see `dpdk-testpmd --help` for EAL options)",
                _ => "",
            };
            Err(DpdkError::EalInit {
                args,
                errno,
                msg: err_text(errno),
                hint: hint.to_string(),
            })
        }
    }
}

/// Register the calling thread as a DPDK lcore (for its mempool cache); undone by
/// [`unregister_thread`].
pub fn register_thread() -> Result<(), String> {
    // SAFETY: EAL is up (callers hold queues of a started port); registering a non-EAL
    // thread is what rte_thread_register is for.
    let r = unsafe { dpdk_sys::rte_thread_register() };
    if r == 0 {
        Ok(())
    } else {
        // SAFETY: reads this thread's rte_errno.
        let e = unsafe { dpdk_sys::rte_errno() };
        Err(format!(
            "rte_thread_register failed ({}); this worker runs without a mempool cache",
            err_text(e)
        ))
    }
}

/// Undo [`register_thread`].
pub fn unregister_thread() {
    // SAFETY: only called on a thread that registered; a no-op on others.
    unsafe { dpdk_sys::rte_thread_unregister() }
}

/// A thread's CPU affinity, to put back after EAL pinned the thread to the main lcore.
struct Affinity(libc::cpu_set_t);

impl Affinity {
    fn current() -> Option<Affinity> {
        // SAFETY: cpu_set_t is plain data; all-zero is a valid empty set.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        // SAFETY: pid 0 is the calling thread; `set` is a valid cpu_set_t of the size given.
        let r =
            unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
        (r == 0).then_some(Affinity(set))
    }
    fn restore(&self) {
        // SAFETY: pid 0 is the calling thread; the set was filled by sched_getaffinity.
        let r =
            unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &self.0) };
        if r != 0 {
            tracing::warn!("could not restore the CPU affinity EAL changed; threads started from here inherit the main lcore's CPU");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(args: &[&str]) -> DpdkSettings {
        DpdkSettings {
            eal_args: Some(args.iter().map(|a| a.to_string()).collect()),
            ..DpdkSettings::default()
        }
    }

    #[test]
    fn args_get_defaults_only_where_not_given() {
        let a = eal_args(&DpdkSettings::default(), &EalPlan::default());
        assert_eq!(a[0], "rondo");
        assert_eq!(a[1], "--in-memory");
        assert!(a.contains(&"-l".to_string()));
        assert!(a.contains(&"--no-pci".to_string()));
        assert!(a.windows(2).any(|w| w == ["--file-prefix", "rondo"]));

        let plan = EalPlan {
            pci: vec!["0000:3b:00.0".into()],
            worker_cores: None,
        };
        let a = eal_args(
            &s(&["--no-huge", "-m", "512", "-l", "1", "--file-prefix=x"]),
            &plan,
        );
        assert_eq!(
            a,
            [
                "rondo",
                "--no-huge",
                "-m",
                "512",
                "-l",
                "1",
                "--file-prefix=x",
                "-a",
                "0000:3b:00.0"
            ]
        );
        let a = eal_args(&s(&["-a", "0000:01:00.0"]), &plan);
        assert!(
            !a.contains(&"0000:3b:00.0".to_string()),
            "user allowlist wins"
        );
    }

    #[test]
    fn main_lcore_avoids_worker_cores() {
        let have: Vec<usize> = core_affinity::get_core_ids()
            .unwrap_or_default()
            .into_iter()
            .map(|c| c.id)
            .collect();
        if have.len() < 2 {
            return;
        }
        let plan = EalPlan {
            pci: vec![],
            worker_cores: Some(vec![have[0]]),
        };
        let a = eal_args(&DpdkSettings::default(), &plan);
        let i = a.iter().position(|x| x == "-l").unwrap();
        assert_eq!(a[i + 1], have[1].to_string());
    }

    #[test]
    fn preflight_names_the_missing_hugepages() {
        let args = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
        let e = preflight(&args(&["rondo", "--in-memory"]), (0, 0), true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("dpdk.eal_args") && e.contains("none are free"),
            "{e}"
        );
        assert!(e.contains("--no-huge"), "says how to run without: {e}");
        assert!(preflight(&args(&["rondo", "--no-huge"]), (0, 0), false).is_ok());
        assert!(preflight(&args(&["rondo", "--in-memory"]), (8, 8), false).is_ok());
        let e = preflight(&args(&["rondo"]), (8, 8), false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("hugetlbfs"), "{e}");
        assert!(preflight(&args(&["rondo"]), (8, 8), true).is_ok());
    }
}
