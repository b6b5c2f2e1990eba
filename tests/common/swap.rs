//! Swap for a test: a swap file of the test's own, turned on for as long as
//! it is held, and a way to push a process's pages out to it.
#![allow(dead_code, reason = "each test binary uses what it needs")]
#![allow(
    unsafe_code,
    reason = "pidfd_open and process_madvise have no safe wrapper here"
)]

use std::path::PathBuf;
use std::process::Command;

/// A swap file in use; turned off and removed when dropped.
pub struct SwapFile {
    path: PathBuf,
}

impl SwapFile {
    /// A swap file of `bytes`, turned on; `None`, with the reason printed,
    /// where this machine does not allow it (not root, no `mkswap` or
    /// `swapon`, a filesystem that takes no swap file, a kernel without
    /// `process_madvise`).
    pub fn try_enable(bytes: usize) -> Option<Self> {
        let skip = |why: &str| {
            eprintln!("skipped: {why}");
            None
        };
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return skip("swap needs root");
        }
        if let Err(why) = page_out_probe() {
            return skip(&why);
        }
        // Beside the build, on a disk: /tmp may be a tmpfs, which takes no swap file.
        let dir = super::files::target_dir();
        let path = dir.join(format!("wasmhouse-test-swap-{}", std::process::id()));
        if let Err(err) = std::fs::write(&path, vec![0u8; bytes]) {
            return skip(&format!("cannot write {}: {err}", path.display()));
        }
        let swap = Self { path };
        let _ = std::fs::set_permissions(
            &swap.path,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        );
        for (program, args) in [("mkswap", vec!["-q"]), ("swapon", vec![])] {
            let ran = Command::new(program).args(&args).arg(&swap.path).output();
            match ran {
                Ok(out) if out.status.success() => {}
                Ok(out) => {
                    return skip(&format!(
                        "{program} {}: {}",
                        swap.path.display(),
                        String::from_utf8_lossy(&out.stderr).trim()
                    ));
                }
                Err(err) => return skip(&format!("{program}: {err}")),
            }
        }
        Some(swap)
    }
}

impl Drop for SwapFile {
    fn drop(&mut self) {
        let _ = Command::new("swapoff").arg(&self.path).status();
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `MADV_PAGEOUT` on every writable private mapping of process `pid`:
/// what the kernel can reclaim goes to swap now. The bytes of the
/// mappings asked about.
pub fn page_out(pid: u32) -> u64 {
    let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else {
        return 0;
    };
    let Ok(pidfd) = pidfd_open(pid) else {
        return 0;
    };
    let mut asked = 0;
    for line in maps.lines() {
        let mut fields = line.split_whitespace();
        let (Some(range), Some(perms)) = (fields.next(), fields.next()) else {
            continue;
        };
        if !perms.starts_with("rw") || !perms.ends_with('p') {
            continue;
        }
        let Some((start, end)) = range.split_once('-') else {
            continue;
        };
        let (Ok(start), Ok(end)) = (
            usize::from_str_radix(start, 16),
            usize::from_str_radix(end, 16),
        ) else {
            continue;
        };
        // Mappings that cannot be paged out refuse; the others still go.
        if process_madvise(pidfd, start, end - start).is_ok() {
            asked += (end - start) as u64;
        }
    }
    // SAFETY: a descriptor this function opened.
    unsafe { libc::close(pidfd) };
    asked
}

/// Bytes of process `pid` in swap (`VmSwap`).
pub fn swapped_bytes(pid: u32) -> u64 {
    super::status_bytes(pid, "VmSwap").unwrap_or(0)
}

/// Whether this kernel lets this process page out a process's memory.
fn page_out_probe() -> Result<(), String> {
    let pidfd = pidfd_open(std::process::id()).map_err(|err| format!("pidfd_open: {err}"))?;
    let page = vec![1u8; 4096 * 4];
    let result = process_madvise(pidfd, page.as_ptr() as usize & !4095, 4096)
        .map_err(|err| format!("process_madvise(MADV_PAGEOUT): {err}"));
    // SAFETY: a descriptor this function opened.
    unsafe { libc::close(pidfd) };
    result
}

fn pidfd_open(pid: u32) -> std::io::Result<i32> {
    // SAFETY: pidfd_open takes a pid and flags, and returns a descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(fd as i32)
    }
}

fn process_madvise(pidfd: i32, start: usize, len: usize) -> std::io::Result<()> {
    let range = libc::iovec {
        iov_base: start as *mut libc::c_void,
        iov_len: len,
    };
    // SAFETY: the iovec names addresses in the other process; the kernel
    // checks them, and advice never touches this process's memory.
    let done = unsafe {
        libc::syscall(
            libc::SYS_process_madvise,
            pidfd,
            &range as *const libc::iovec,
            1usize,
            libc::MADV_PAGEOUT,
            0u32,
        )
    };
    if done < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(())
    }
}
