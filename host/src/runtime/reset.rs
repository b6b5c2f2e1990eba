//! How an instance's memory is made fresh for the next instance in its slot.
//!
//! Wasmtime's pooling allocator resets a slot in one of two ways:
//!
//! - **Decommit**: the first `keep_resident` bytes are overwritten (zeros,
//!   or the component's initial image), everything past them is given back
//!   with `madvise(MADV_DONTNEED)`. The kernel drops every private page of
//!   the range, resident or swapped out, and the next touch reads the image
//!   or zeros again. Fresh on any machine.
//! - **Pagemap scan** (`PAGEMAP_SCAN`, Linux 6.7+): the kernel lists the
//!   pages the instance wrote and Wasmtime restores just those in place,
//!   keeping them mapped: fewer page faults and TLB shootdowns. But the scan
//!   asks for pages that are *present*: a written page that was swapped out
//!   in the meantime is neither restored nor given back, and the next
//!   instance in the slot reads the earlier request's bytes from swap.
//!
//! So the scan is used only where this process's pages cannot be swapped
//! out at all: a kernel built without swap, or a memory cgroup (this
//! process's or an ancestor's) that allows it no swap. Swap being off
//! right now is not enough: `swapon` can add some at any time.

use std::path::{Path, PathBuf};

/// The reset chosen for this process, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MemoryReset {
    /// Whether Wasmtime's pagemap scan is turned on.
    pub(crate) pagemap_scan: bool,
    /// Why, for the start-up log.
    pub(crate) why: String,
}

/// What this machine says about swap for this process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Swap {
    /// The kernel has no swap support (`/proc/swaps` does not exist).
    Unsupported,
    /// A memory cgroup holds this process to no swap; the path that says so.
    ForbiddenBy(PathBuf),
    /// Pages of this process may be swapped out (now, or after a `swapon`).
    Possible,
}

impl MemoryReset {
    /// The reset for this machine: the pagemap scan where the kernel has
    /// it and this process cannot swap, else decommit.
    pub(crate) fn for_this_machine() -> Self {
        let scan_available = wasmtime::PoolingAllocationConfig::is_pagemap_scan_available();
        Self::choose(scan_available, swap_for_this_process())
    }

    /// The rule itself, given what the machine says.
    pub(crate) fn choose(scan_available: bool, swap: Swap) -> Self {
        let (pagemap_scan, why) = match (scan_available, swap) {
            (false, _) => (
                false,
                "the kernel has no PAGEMAP_SCAN (Linux 6.7+): written pages are given back".into(),
            ),
            (true, Swap::Unsupported) => (
                true,
                "the kernel has no swap: written pages are restored in place".into(),
            ),
            (true, Swap::ForbiddenBy(path)) => (
                true,
                format!(
                    "{} allows this process no swap: written pages are restored in place",
                    path.display()
                ),
            ),
            (true, Swap::Possible) => (
                false,
                "this process's pages may be swapped out, and a swapped-out page escapes the \
                 pagemap scan: written pages are given back (a memory cgroup with no swap, \
                 memory.swap.max = 0, turns the scan on)"
                    .into(),
            ),
        };
        Self { pagemap_scan, why }
    }
}

/// What `/proc` and the memory cgroup say about swap for this process.
fn swap_for_this_process() -> Swap {
    if !Path::new("/proc/swaps").exists() {
        return Swap::Unsupported;
    }
    let (Ok(cgroups), Ok(mounts)) = (
        std::fs::read_to_string("/proc/self/cgroup"),
        std::fs::read_to_string("/proc/self/mountinfo"),
    ) else {
        return Swap::Possible;
    };
    memory_cgroup_dirs(&cgroups, &mounts)
        .iter()
        .find_map(|dir| forbids_swap(dir))
        .map_or(Swap::Possible, Swap::ForbiddenBy)
}

/// This process's cgroup v2 directory and every ancestor up to the
/// mount's root, most specific first, from `/proc/self/cgroup` and
/// `/proc/self/mountinfo`. (The legacy v1 memory controller cannot forbid
/// swap: its memory-and-swap limit only says that swapping frees no room
/// in the cgroup, and the machine's own reclaim still swaps its pages out.)
pub(crate) fn memory_cgroup_dirs(cgroups: &str, mountinfo: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    // The unified hierarchy's line is "0::path".
    let Some(path) = cgroups.lines().find_map(|line| line.strip_prefix("0::")) else {
        return dirs;
    };
    for (root, mount_point) in cgroup2_mounts(mountinfo) {
        let Ok(relative) = Path::new(path).strip_prefix(&root) else {
            continue;
        };
        let mut dir = mount_point.join(relative);
        loop {
            dirs.push(dir.clone());
            if dir == mount_point || !dir.pop() {
                break;
            }
        }
    }
    dirs
}

/// `(root within the hierarchy, mount point)` of each `cgroup2` mount.
fn cgroup2_mounts(mountinfo: &str) -> Vec<(PathBuf, PathBuf)> {
    mountinfo
        .lines()
        .filter_map(|line| {
            // "id parent major:minor root mount-point options [optional…] - fstype source super-options"
            let (before, after) = line.split_once(" - ")?;
            let fields: Vec<&str> = before.split(' ').collect();
            (after.split(' ').next() == Some("cgroup2") && fields.len() >= 5).then(|| {
                (
                    PathBuf::from(unescape_mount_path(fields[3])),
                    PathBuf::from(unescape_mount_path(fields[4])),
                )
            })
        })
        .collect()
}

/// Mountinfo writes space, tab, newline and backslash in paths as octal
/// escapes.
fn unescape_mount_path(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 4)
            .and_then(|digits| u8::from_str_radix(digits, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// `dir` if it allows its processes no swap (`memory.swap.max` is 0: the
/// kernel then keeps their pages in memory even under the machine's own
/// reclaim, since a page goes to swap only once its cgroup is charged for
/// the swap slot).
fn forbids_swap(dir: &Path) -> Option<PathBuf> {
    std::fs::read_to_string(dir.join("memory.swap.max"))
        .is_ok_and(|max| max.trim() == "0")
        .then(|| dir.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_only_where_nothing_can_be_swapped_out() {
        let cases = [
            (false, Swap::Unsupported, false),
            (false, Swap::ForbiddenBy("/sys/fs/cgroup/a".into()), false),
            (false, Swap::Possible, false),
            (true, Swap::Unsupported, true),
            (true, Swap::ForbiddenBy("/sys/fs/cgroup/a".into()), true),
            (true, Swap::Possible, false),
        ];
        for (available, swap, scan) in cases {
            let chosen = MemoryReset::choose(available, swap.clone());
            assert_eq!(
                chosen.pagemap_scan, scan,
                "{available} {swap:?}: {}",
                chosen.why
            );
        }
    }

    #[test]
    fn the_cgroup2_directory_and_its_ancestors_only() {
        let cgroups = "12:cpu,cpuacct:/a\n4:memory:/process_api/e07\n0::/user.slice/app\n";
        let mountinfo = "\
30 25 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
29 22 0:26 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate
";
        let dirs = memory_cgroup_dirs(cgroups, mountinfo);
        let expected: Vec<PathBuf> = [
            "/sys/fs/cgroup/unified/user.slice/app",
            "/sys/fs/cgroup/unified/user.slice",
            "/sys/fs/cgroup/unified",
        ]
        .into_iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(dirs, expected);
        // Only the legacy hierarchy: nothing can forbid swap.
        assert!(memory_cgroup_dirs("4:memory:/a\n", mountinfo).is_empty());
    }

    #[test]
    fn a_container_mount_of_its_own_cgroup_maps_the_path_under_its_root() {
        // Without a cgroup namespace, a container sees its full path and a
        // mount whose root is that path.
        let mountinfo = "40 30 0:30 /docker/abc /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n";
        let dirs = memory_cgroup_dirs("0::/docker/abc\n", mountinfo);
        assert_eq!(dirs, vec![PathBuf::from("/sys/fs/cgroup")]);
        // A path outside the mount's root is not guessed at.
        assert!(memory_cgroup_dirs("0::/elsewhere\n", mountinfo).is_empty());
    }

    #[test]
    fn a_cgroup_with_no_swap_is_found_and_one_with_swap_is_not() {
        let root = tempfile::tempdir().expect("tempdir");
        let child = root.path().join("app");
        std::fs::create_dir(&child).expect("mkdir");
        std::fs::write(child.join("memory.swap.max"), "max\n").expect("write");
        assert_eq!(forbids_swap(&child), None);
        std::fs::write(child.join("memory.swap.max"), "0\n").expect("write");
        assert_eq!(forbids_swap(&child), Some(child.clone()));
        assert_eq!(forbids_swap(root.path()), None);
    }

    #[test]
    fn mount_paths_are_unescaped() {
        assert_eq!(unescape_mount_path(r"/a\040b\011c\134d"), "/a b\tc\\d");
        assert_eq!(unescape_mount_path(r"/x\9"), r"/x\9");
    }

    #[test]
    fn this_machine_gets_a_decision_with_a_reason() {
        let chosen = MemoryReset::for_this_machine();
        assert!(!chosen.why.is_empty());
    }
}
