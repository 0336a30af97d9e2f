//! What `execve` will make of a file, where std has no call to ask: whether the real user may
//! execute it, whether it carries file capabilities, and whether its mount ignores setuid bits.
//! Used by `mcp-redirect run` (the command's `inspect` module, deciding whether a program will
//! honour `LD_PRELOAD`); nothing here runs inside a preloaded program.

use std::ffi::{CStr, CString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// The extended attribute that holds a file's capabilities.
const CAPABILITY_XATTR: &CStr = c"security.capability";

fn c_path(path: &Path) -> Option<CString> {
    CString::new(path.as_os_str().as_bytes()).ok()
}

/// `access(X_OK)`: whether the real user may execute the file (mode bits, ACLs, `noexec`
/// mounts; for root, any execute bit).
pub fn executable(path: &Path) -> bool {
    let Some(path) = c_path(path) else {
        return false;
    };
    // SAFETY: `path` is a NUL-terminated string that outlives the call.
    unsafe { libc::access(path.as_ptr(), libc::X_OK) == 0 }
}

/// Whether the file carries a `security.capability` extended attribute (followed through
/// symlinks, as exec does). A file system without extended attributes has none.
pub fn has_file_capabilities(path: &Path) -> bool {
    let Some(path) = c_path(path) else {
        return false;
    };
    // SAFETY: both strings are NUL-terminated and outlive the call; a null buffer with size
    // 0 asks only for the value's size, so nothing is written.
    let size = unsafe {
        libc::getxattr(
            path.as_ptr(),
            CAPABILITY_XATTR.as_ptr(),
            std::ptr::null_mut(),
            0,
        )
    };
    size > 0
}

/// Gives the file the capabilities in `blob` (a `vfs_cap_data`), as `setcap` does: for the
/// command's tests on machines without `setcap`.
pub fn set_file_capabilities(path: &Path, blob: &[u8]) -> io::Result<()> {
    let path = c_path(path).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: both strings are NUL-terminated and `blob` is readable for its length; all
    // outlive the call.
    let status = unsafe {
        libc::setxattr(
            path.as_ptr(),
            CAPABILITY_XATTR.as_ptr(),
            blob.as_ptr().cast(),
            blob.len(),
            0,
        )
    };
    if status == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the file lies on a file system mounted `nosuid`, where exec ignores setuid bits
/// and file capabilities.
pub fn on_nosuid_mount(path: &Path) -> bool {
    let Some(path) = c_path(path) else {
        return false;
    };
    // SAFETY: statvfs is plain data, for which all-zero bytes are a valid value.
    let mut stats: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is NUL-terminated and `stats` a valid, writable statvfs; both outlive
    // the call.
    let status = unsafe { libc::statvfs(path.as_ptr(), &mut stats) };
    status == 0 && stats.f_flag & libc::ST_NOSUID != 0
}
